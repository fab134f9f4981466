"""``GET surveyhub/spectra/{release}/{version}/{obsid}/pixels``: a spectrum's arrays as compact JSON.

The panel's preview plots flux, ivar (or its error) and the pixel masks, smooths client-side and marks lines
at the catalog redshift. The archive's ``csv`` product (LAMOST's ``fits2csv``) has only wavelength and
flux, so this route builds the rest from the released FITS file: it asks the archive for ``fits`` with the
user's own token (so the archive's access rules decide, exactly as for the other products), reads it with
:func:`surveyhub.releases.spectrum.read_spectrum` (any LAMOST layout) and answers::

    {"release", "version", "obsid", "kind": "LRS"|"MRS", "npix",
     "wavelength": [...], "flux": [...], "ivar": [...], "andmask": [...], "ormask": [...],
     "lines": [{"name", "rest", "kind": "emission"|"absorption"|"both"}]}

Floats are rounded to 7 significant digits (the file's float32 precision; wavelengths to 0.1 mA); a flux or
ivar that is not finite is ``null``. ``lines`` is :mod:`surveyhub.apps.lines` (vacuum rest wavelengths, as
LAMOST's grid is vacuum), served here so the panel and the platform's apps mark the same lines. An LRS
spectrum (3909 pixels, a 57 kB ``.fits.gz``) is about 155 kB of JSON, built in about 50 ms.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import tornado.web

from surveyhub_lab.errors import Refused
from surveyhub_lab.handlers import _NAME, SurveyhubHandler


def _floats(values: Iterable[float], digits: int = 7) -> list[float | None]:
    """``values`` rounded to ``digits`` significant digits, non-finite ones as None (JSON null)."""
    return [float(f"{v:.{digits}g}") if math.isfinite(v) else None for v in np.asarray(values, dtype=float)]


def line_list() -> list[dict[str, Any]]:
    """The standard lines of :mod:`surveyhub.apps.lines`, once each (H-alpha is both kinds: ``"both"``)."""
    from surveyhub.apps.lines import ABSORPTION, EMISSION

    kinds: dict[tuple[str, float], set[str]] = {}
    for line in (*EMISSION, *ABSORPTION):
        kinds.setdefault((line.name, line.rest), set()).add(line.kind)
    return [
        {"name": name, "rest": rest, "kind": "both" if len(k) > 1 else next(iter(k))}
        for (name, rest), k in sorted(kinds.items(), key=lambda item: item[0][1])
    ]


def spectrum_pixels(fits_bytes: bytes) -> dict[str, Any]:
    """The arrays of a LAMOST FITS file as JSON-ready lists (see the module docstring for the shape).

    Raises :class:`surveyhub.releases.spectrum.SpectrumReadError` for a file that is not a LAMOST spectrum.
    """
    from surveyhub.releases.spectrum import read_spectrum

    spec = read_spectrum(fits_bytes)
    return {
        "kind": spec.kind,
        "npix": spec.npix,
        "wavelength": [round(float(w), 4) for w in spec.wavelength],
        "flux": _floats(spec.flux),
        "ivar": _floats(spec.ivar),
        "andmask": [int(m) for m in spec.andmask],
        "ormask": [int(m) for m in spec.ormask],
        "lines": line_list(),
    }


class PixelsHandler(SurveyhubHandler):
    """The arrays of one spectrum, read from the FITS file the archive gives the user."""

    @tornado.web.authenticated
    async def get(self, release: str, version: str, obsid: str) -> None:
        from surveyhub.releases.spectrum import SpectrumReadError

        path = f"api/{release}/{version}/spectra/{obsid}/fits"
        response = await self.archive_response(lambda archive: archive.get(path))
        if response is None:
            return
        if response.status != 200:  # the archive's own refusal (404 for unreadable versions), as it came
            self.pass_on(response)
            return
        try:
            pixels = await _in_thread(spectrum_pixels, response.body)
        except SpectrumReadError as exc:
            self.refuse(Refused(502, "spectrum_unreadable", f"obsid {obsid}: {exc}"))
            return
        self.send({"release": release, "version": version, "obsid": int(obsid), **pixels})


async def _in_thread(func: Any, *args: Any) -> Any:
    """``func(*args)`` off the event loop: reading a FITS file and building the lists takes ~50 ms."""
    import asyncio

    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


def pixels_routes(kwargs: dict[str, Any]) -> list[tuple[str, type, dict[str, Any]]]:
    """The route, relative to the server's base URL."""
    return [(rf"surveyhub/spectra/({_NAME})/({_NAME})/([0-9]+)/pixels", PixelsHandler, kwargs)]
