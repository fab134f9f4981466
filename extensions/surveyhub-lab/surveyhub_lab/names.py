"""Object names in the position field: LAMOST designations, resolved to a position.

A LAMOST designation (``LAMOST JHHMMSS.ss+DDMMSS.s``, the ``LAMOST`` optional) is the IAU-style name of a
spectrum's position, truncated. So a designation resolves two ways: to the position of its catalog row
(the archive's ``designation`` search, exact to the catalog), or, when the version holds no such row, to
the coordinates written in the name itself (good to 0.01 s of RA and 0.1" of Dec). Names of other
catalogs (``M 31``, ``HD 1234``) cannot be resolved here (there is no name service to ask), so they are
refused with a message saying what the field takes. The panel's ``src/validate.ts`` applies the same rules
before any request.

>>> d = parse_designation("J045608.42+841515.4")
>>> d.name, round(d.ra, 5), round(d.dec, 5)
('LAMOST J045608.42+841515.4', 74.03508, 84.25428)
>>> parse_designation("LAMOST J245608.42+841515.4") is None
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from surveyhub_lab.errors import Refused

_DESIGNATION = re.compile(
    r"^(?:LAMOST\s*)?J\s*(\d{2})(\d{2})(\d{2}(?:\.\d{1,3})?)\s*([+-])(\d{2})(\d{2})(\d{2}(?:\.\d{1,2})?)$",
    re.IGNORECASE,
)

#: What the position field takes, for messages.
POSITION_FORMS = (
    'decimal degrees ("150.0 +20.5"), sexagesimal ("10:00:00 +20:30:00") '
    'or a LAMOST designation ("LAMOST J045608.42+841515.4")'
)


@dataclass(frozen=True)
class Designation:
    """A well-formed LAMOST designation: its canonical text and the position its digits give."""

    name: str
    ra: float
    dec: float


def parse_designation(text: str) -> Designation | None:
    """The designation ``text`` is (``LAMOST`` optional, case and inner spaces free), or None."""
    m = _DESIGNATION.match(text.strip())
    if not m:
        return None
    hh, mm, ss, sign, dd, dm, ds = m.groups()
    if int(hh) > 23 or int(mm) > 59 or float(ss) >= 60 or int(dd) > 90 or int(dm) > 59 or float(ds) >= 60:
        return None
    ra = (int(hh) + int(mm) / 60 + float(ss) / 3600) * 15
    dec = int(dd) + int(dm) / 60 + float(ds) / 3600
    if dec > 90:
        return None
    dec = -dec if sign == "-" else dec
    return Designation(f"LAMOST J{hh}{mm}{ss}{sign}{dd}{dm}{ds}", ra, dec)


def is_coordinates(text: str) -> bool:
    """Whether ``text`` is a position the archive reads itself (decimal or sexagesimal)."""
    from surveyhub.archive.search import SearchError, parse_position

    try:
        parse_position(text)
    except (SearchError, ValueError):
        return False
    return True


async def resolve(archive: Any, release: str, version: str, catalog: str, text: str) -> dict[str, Any]:
    """Where the position field's ``text`` points: ``{"kind", "ra", "dec", ...}``.

    ``kind`` is ``coordinates`` (the text is a position), ``catalog`` (a designation of a row of the
    version's ``catalog``: its ``obsid`` and ``designation`` come along, and the position is the row's),
    or ``name`` (a well-formed designation the catalog does not hold: the position its digits give).
    Refused (400, ``name_unknown``) for anything else, in words naming the ``pos`` field.
    """
    from surveyhub.archive.search import parse_position

    text = text.strip()
    if not text:
        raise Refused(400, "request_invalid", "pos: give a position or a LAMOST designation")
    designation = parse_designation(text)
    if designation is None:
        if is_coordinates(text):
            ra, dec = parse_position(text)
            return {"kind": "coordinates", "input": text, "ra": ra, "dec": dec}
        raise Refused(
            400,
            "name_unknown",
            f"pos: {text!r} is not a position nor a LAMOST designation; give {POSITION_FORMS} "
            "(names of other catalogs are not resolved)",
        )
    params = {
        "catalog": catalog,
        "designation": designation.name,
        "columns": "obsid,designation,ra,dec",
        "sort": "obsid",
        "limit": "10",
    }
    payload = await archive.get_json(f"api/{release}/{version}/search", params)
    names = [c["name"] for c in payload.get("columns", [])]
    rows = [dict(zip(names, row, strict=False)) for row in payload.get("rows", [])]
    if rows:
        first = rows[0]
        return {
            "kind": "catalog",
            "input": text,
            "name": designation.name,
            "ra": first["ra"],
            "dec": first["dec"],
            "obsid": first["obsid"],
            "obsids": [r["obsid"] for r in rows],
            "designation": first["designation"],
        }
    return {
        "kind": "name",
        "input": text,
        "name": designation.name,
        "ra": designation.ra,
        "dec": designation.dec,
        "note": f"{designation.name} is not in {release} {version} {catalog}: "
        "the position is read from the name",
    }


async def resolve_search_params(
    archive: Any, release: str, version: str, pairs: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Search parameters with a designation in ``pos`` replaced by the position it resolves to.

    Coordinates go on to the archive untouched; a text that is neither is Refused as :func:`resolve` does.
    """
    if not any(name == "pos" and _is_name(value) for name, value in pairs):
        return pairs
    catalog = next((value for name, value in pairs if name == "catalog"), "lrs") or "lrs"
    out: list[tuple[str, str]] = []
    for name, value in pairs:
        if name == "pos" and _is_name(value):
            where = await resolve(archive, release, version, catalog, value)
            value = f"{where['ra']!r} {where['dec']!r}"
        out.append((name, value))
    return out


def _is_name(text: str) -> bool:
    """Whether a ``pos`` value needs resolving (a designation, or neither a designation nor coordinates).

    Designations are looked up even though astropy would read ``J045608.42+841515.4`` as coordinates: the
    catalog row's position is the exact one (the name's digits are truncated).
    """
    return bool(text.strip()) and (parse_designation(text) is not None or not is_coordinates(text))
