"""Worked ADQL examples for the panel's ADQL tab, written for one release version's TAP tables.

The archive's TAP service names each readable version's schema ``<release>_<version>`` in lower case
(``demo_v2``; ``surveyhub.archive.tap.schema_name``) and its tables after the version's catalogs
(``demo_v2.lrs``, ``demo_v2.stellar``, ``demo_v2.gaia``). The examples are built here, server-side, for the
version picked in the panel, with only the tables it has, and the cone is centred on a real row of the
version (the first one the archive gives), so each example returns rows; the tests run every one of them
against a real archive.

>>> [e["id"] for e in examples("DEMO", "v2", ["lrs", "stellar", "gaia"], (89.5844, 81.4107))]
['cone', 'class-counts', 'stellar-cuts', 'top-snr', 'gaia-join']
>>> print(examples("DR10", "v1.1", ["lrs"], (10.0, 20.0))[0]["query"])
SELECT TOP 100 obsid, designation, ra, dec, class, z, snrg,
       DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 10.0, 20.0)) AS dist_deg
FROM dr10_v1_1.lrs
WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 10.0, 20.0, 0.5))
ORDER BY dist_deg
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any


def schema_name(release: str, version: str) -> str:
    """The TAP schema of a version, as the archive names it (lower case, ``.`` and ``-`` as ``_``)."""
    return re.sub(r"[.-]", "_", f"{release}_{version}".lower())


def examples(
    release: str, version: str, catalogs: Sequence[str], centre: tuple[float, float] | None
) -> list[dict[str, Any]]:
    """The worked examples for ``release``/``version``: ``[{"id", "title", "query"}]``.

    ``catalogs`` are the version's catalogs (an example needing one it lacks is left out); ``centre`` is
    the cone's centre in degrees (None leaves the cone out).
    """
    s = schema_name(release, version)
    have = set(catalogs)
    out: list[dict[str, Any]] = []
    if "lrs" in have and centre is not None:
        ra, dec = (round(float(c), 4) for c in centre)
        out.append(
            {
                "id": "cone",
                "title": "Cone: spectra within 0.5 deg of a position, nearest first",
                "query": (
                    "SELECT TOP 100 obsid, designation, ra, dec, class, z, snrg,\n"
                    f"       DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', {ra}, {dec})) AS dist_deg\n"
                    f"FROM {s}.lrs\n"
                    f"WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra}, {dec}, 0.5))\n"
                    "ORDER BY dist_deg"
                ),
            }
        )
    if "lrs" in have:
        out.append(
            {
                "id": "class-counts",
                "title": "Class counts: spectra per class, with their mean SNR (g)",
                "query": (
                    "SELECT class, COUNT(*) AS n, AVG(snrg) AS mean_snrg\n"
                    f"FROM {s}.lrs\n"
                    "GROUP BY class\n"
                    "ORDER BY n DESC"
                ),
            }
        )
    if {"lrs", "stellar"} <= have:
        out.append(
            {
                "id": "stellar-cuts",
                "title": "Stellar parameters: solar-type dwarfs (lrs joined with stellar)",
                "query": (
                    "SELECT TOP 200 l.obsid, l.designation, l.ra, l.dec, s.teff, s.logg, s.feh, l.snrg\n"
                    f"FROM {s}.lrs AS l\n"
                    f"JOIN {s}.stellar AS s ON s.obsid = l.obsid\n"
                    "WHERE s.teff BETWEEN 5000 AND 6500 AND s.logg > 3.5 AND s.feh > -1\n"
                    "ORDER BY l.snrg DESC"
                ),
            }
        )
    if "lrs" in have:
        out.append(
            {
                "id": "top-snr",
                "title": "Top 20 stars by SNR (g)",
                "query": (
                    "SELECT TOP 20 obsid, designation, class, subclass, snrg, snrr, obsdate\n"
                    f"FROM {s}.lrs\n"
                    "WHERE class = 'STAR'\n"
                    "ORDER BY snrg DESC"
                ),
            }
        )
    if {"lrs", "gaia"} <= have:
        out.append(
            {
                "id": "gaia-join",
                "title": "Gaia counterparts: spectra with their Gaia-like parallax and G magnitude",
                "query": (
                    "SELECT TOP 100 l.obsid, l.designation, l.class, g.source_id, g.parallax,\n"
                    "       g.phot_g_mean_mag\n"
                    f"FROM {s}.lrs AS l\n"
                    f"JOIN {s}.gaia AS g ON g.source_id = l.gaia_source_id\n"
                    "WHERE g.parallax > 0\n"
                    "ORDER BY g.phot_g_mean_mag"
                ),
            }
        )
    return out
