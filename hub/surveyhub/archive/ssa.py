"""IVOA Simple Spectral Access 1.1 (queryData) over a release version's LRS spectra.

``ssa/{release}/{version}`` and LAMOST's ``{dr}/{ver}/{lrs|mrs}/voservice/ssap`` answer POS and SIZE
(the cone's diameter, degrees), BAND (wavelength interval in metres), TIME (MJD or ISO interval), FORMAT
and MAXREC with a VOTable whose columns carry the SSA utypes, each row linking to the released FITS file
and to its PNG preview. ``FORMAT=metadata`` describes the service without rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from astropy.time import Time
from tornado import web

from surveyhub.archive import formats
from surveyhub.archive.app import ArchiveHandler, _in_thread
from surveyhub.archive.formats import ColumnMeta
from surveyhub.archive.search import SearchError, parse_position
from surveyhub.releases.grid import lrs_wavelength

#: The LRS wavelength coverage in metres (what BAND is compared with).
LRS_BAND_M = (float(lrs_wavelength()[0]) * 1e-10, float(lrs_wavelength()[-1]) * 1e-10)
DEFAULT_SIZE_DEG = 0.05
DEFAULT_MAXREC = 1000


class SsaError(ValueError):
    """A bad SSA parameter (sent as QUERY_STATUS=ERROR)."""


def _interval(text: str | None, name: str, parse: Any) -> tuple[float | None, float | None] | None:
    """An SSA range ``lo/hi`` (either end may be empty) or a single value."""
    if text is None or text.strip() == "":
        return None
    lo_text, sep, hi_text = text.partition("/")
    try:
        lo = parse(lo_text) if lo_text.strip() else None
        hi = parse(hi_text) if sep and hi_text.strip() else (lo if not sep else None)
    except (ValueError, TypeError):
        raise SsaError(f"{name}: cannot read {text!r} as a value or a lo/hi range") from None
    return lo, hi


def _mjd(text: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        return float(Time(text, format="isot", scale="utc").mjd)


SSA_FIELDS = [
    ("obsid", "meta.id;meta.main", "ssa:DataID.CreatorDID", "", "LAMOST obsid of the spectrum"),
    ("title", "meta.title", "ssa:DataID.Title", "", "Designation, class and plan of the spectrum"),
    ("ra", "pos.eq.ra", "ssa:Char.SpatialAxis.Coverage.Location.Value", "deg", "Right ascension"),
    ("dec", "pos.eq.dec", "ssa:Char.SpatialAxis.Coverage.Location.Value", "deg", "Declination"),
    (
        "mjd",
        "time.epoch",
        "ssa:Char.TimeAxis.Coverage.Location.Value",
        "d",
        "Modified Julian date of observation",
    ),
    ("wave_min", "em.wl;stat.min", "ssa:Char.SpectralAxis.Coverage.Bounds.Start", "m", "Shortest wavelength"),
    ("wave_max", "em.wl;stat.max", "ssa:Char.SpectralAxis.Coverage.Bounds.Stop", "m", "Longest wavelength"),
    ("class", "src.class", "ssa:Target.Class", "", "Pipeline class"),
    ("z", "src.redshift", "ssa:Target.Redshift", "", "Pipeline redshift"),
    ("snrg", "stat.snr", "ssa:Derived.SNR", "", "SNR in the g band"),
    ("format", "meta.code.mime", "ssa:Access.Format", "", "MIME type of the linked file"),
    ("access_url", "meta.ref.url", "ssa:Access.Reference", "", "The released FITS file"),
    ("preview_url", "meta.ref.url;meta.preview", "", "", "PNG plot of the spectrum"),
    ("distance_arcsec", "pos.angDistance", "", "arcsec", "Distance from the query position"),
]


class SsaHandler(ArchiveHandler):
    """``ssa/{release}/{version}`` (and LAMOST's ssap route through :class:`LamostSsaHandler`)."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", formats.error_content_type("votable"))
        self.finish(formats.error_document(self._reason or "error", "votable"))

    def _arg(self, name: str) -> str | None:
        for key, values in self.request.query_arguments.items():
            if key.lower() == name.lower() and values:
                return values[-1].decode("utf-8", errors="replace")
        return None

    async def get(self, release: str, version: str, catalog: str = "lrs") -> None:
        v = self.readable(release, version)
        try:
            table = await _in_thread(self._query, v, catalog)
        except (SsaError, SearchError) as exc:
            self.set_status(400)
            self.set_header("Content-Type", formats.error_content_type("votable"))
            self.finish(formats.error_document(str(exc), "votable"))
            return
        meta = [
            ColumnMeta(n, unit, ucd, d, utype=ut)
            for n, ucd, ut, unit, d in SSA_FIELDS
            if n in table.column_names
        ]
        self.set_header("Content-Type", formats.content_type("votable"))
        await self.stream(
            formats.stream_result(
                table.to_batches(), table.schema, meta, "votable", info={"SERVICE_PROTOCOL": "SSAP 1.1"}
            )
        )

    def _query(self, v: Any, catalog: str) -> pa.Table:
        request = self._arg("REQUEST") or "queryData"
        if request.lower() != "querydata":
            raise SsaError(f"REQUEST: {request!r} is not supported (use queryData)")
        fmt = (self._arg("FORMAT") or "all").lower()
        empty = {
            n: pa.array(
                [],
                pa.string()
                if n in ("title", "class", "format", "access_url", "preview_url")
                else pa.float64(),
            )
            for n, *_ in SSA_FIELDS
        }
        empty["obsid"] = pa.array([], pa.int64())
        if fmt == "metadata":
            return pa.table(empty)
        if fmt not in ("all", "compliant", "native", "fits", "application/fits"):
            return pa.table(empty)  # no PNG-only or other products: an empty, valid answer
        pos = self._arg("POS")
        if pos is None:
            raise SsaError("POS: required (ra,dec in degrees)")
        ra, dec = parse_position(pos.split(";")[0])
        size_text = self._arg("SIZE")
        try:
            size = float(size_text) if size_text else DEFAULT_SIZE_DEG
        except ValueError:
            raise SsaError(f"SIZE: {size_text!r} is not a number of degrees") from None
        if not np.isfinite(size) or size <= 0:
            raise SsaError(f"SIZE: {size_text!r} must be a positive diameter in degrees")
        radius = size / 2
        if radius > self.engine.limits.max_radius_deg:
            raise SsaError(
                f"SIZE: {size:g} deg is above the limit of {2 * self.engine.limits.max_radius_deg:g} deg"
            )
        band = _interval(self._arg("BAND"), "BAND", float)
        if band is not None:
            lo, hi = band
            if (hi is not None and hi < LRS_BAND_M[0]) or (lo is not None and lo > LRS_BAND_M[1]):
                return pa.table(empty)
        time_range = _interval(self._arg("TIME"), "TIME", _mjd)
        maxrec_text = self._arg("MAXREC")
        maxrec = int(maxrec_text) if maxrec_text and maxrec_text.isdigit() else DEFAULT_MAXREC
        cat = self.engine.catalog(v, catalog)
        rows, dist = cat.cone_rows(ra, dec, radius)
        order = np.argsort(dist, kind="stable")
        rows, dist = rows[order], dist[order]
        table = cat.take(rows, ["obsid", "ra", "dec", "mjd", "class", "z", "snrg", "designation", "planid"])
        if time_range is not None:
            lo, hi = time_range
            mjd = table["mjd"].to_numpy().astype(float)
            keep = np.ones(len(mjd), bool)
            if lo is not None:
                keep &= mjd >= lo
            if hi is not None:
                keep &= mjd <= hi
            table, dist = table.filter(pa.array(keep)), dist[keep]
        counts = v.manifest.counts
        if counts.get("fits_files", 0) < counts.get("lrs_spectra", 0) + counts.get("mrs_spectra", 0):
            # Not every row has a released file (a partial mock): keep the rows whose file exists, so every
            # access link works. Complete releases skip this look-up.
            located = v.locate_spectra(table["obsid"].to_pylist()[: maxrec * 4])
            fs = v.store.fs
            have = {o for o, loc in located.items() if fs.exists(v.path(loc.relpath))}
            keep = np.array([o in have for o in table["obsid"].to_pylist()], bool)
            table, dist = table.filter(pa.array(keep)), dist[keep]
        table, dist = table.slice(0, maxrec), dist[:maxrec]
        base = f"{self.request.protocol}://{self.request.host}{self.application.settings['base_url'].rstrip('/')}"
        token = self.get_query_argument("token", None)
        suffix = f"?token={token}" if token else ""
        obsids = table["obsid"].to_pylist()
        n = len(obsids)
        return pa.table(
            {
                "obsid": table["obsid"],
                "title": [
                    f"{d} {c} {p}"
                    for d, c, p in zip(
                        table["designation"].to_pylist(),
                        table["class"].to_pylist(),
                        table["planid"].to_pylist(),
                        strict=True,
                    )
                ],
                "ra": table["ra"],
                "dec": table["dec"],
                "mjd": pa.array(table["mjd"].to_numpy().astype(float)),
                "wave_min": pa.array(np.full(n, LRS_BAND_M[0])),
                "wave_max": pa.array(np.full(n, LRS_BAND_M[1])),
                "class": table["class"],
                "z": table["z"],
                "snrg": pa.array(table["snrg"].to_numpy().astype(float)),
                "format": pa.array(["application/fits"] * n),
                "access_url": [
                    f"{base}/api/{v.release}/{v.version}/spectra/{o}/fits{suffix}" for o in obsids
                ],
                "preview_url": [
                    f"{base}/api/{v.release}/{v.version}/spectra/{o}/png{suffix}" for o in obsids
                ],
                "distance_arcsec": pa.array(dist * 3600.0),
            }
        )


class LamostSsaHandler(SsaHandler):
    """LAMOST's ``{dr}/{ver}/{lrs|mrs}/voservice/ssap?pos=ra,dec&size=deg``."""

    async def get(self, release: str, version: str, arm: str) -> None:  # type: ignore[override]
        if arm != "lrs":
            raise web.HTTPError(404, reason="SSA is offered for the LRS spectra")
        await super().get(release, version, "lrs")
