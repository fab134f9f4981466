"""The JSON search API's queries: what a researcher asks of a catalog, checked, then answered fast.

A search combines any of: a cone (decimal or sexagesimal centre, radius with units), a list of obsids, a
designation, plan/date/spectrograph/fibre, class/subclass, ranges of redshift and stellar parameters, and
SNR thresholds; with column selection, sorting, paging and an exact count. Every parameter is checked
before anything runs, and a bad one gets an error naming it.

Cones and obsid lists select candidate rows from the serving copy by binary search (no scan); only the
remaining conditions, if any, go to the sandboxed DuckDB over those candidates, with values bound as
parameters (never pasted into SQL) and column names checked against the catalog.

>>> req = parse_search({"pos": "10:00:00 +20:00:00", "radius": "2arcmin", "class": "STAR,GALAXY",
...                     "snrg_min": "10", "sort": "-snrg", "limit": "5"})
>>> round(req.ra, 3), round(req.dec, 3), round(req.radius_deg * 60, 3), req.classes, req.sort
(150.0, 20.0, 2.0, ['STAR', 'GALAXY'], [('snrg', False)])
>>> parse_search({"radius": "2"})
Traceback (most recent call last):
...
surveyhub.archive.search.SearchError: radius: give a position (pos, or ra and dec) with a radius
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from astropy import units as u
from astropy.coordinates import Angle, SkyCoord

from surveyhub.archive.engine import ArchiveEngine
from surveyhub.releases.registry import ReleaseVersion

#: Ranges a search may constrain: parameter prefix -> catalog column.
RANGES = ("z", "teff", "logg", "feh", "rv", "alpha_m", "mag_ps_g", "mag_ps_r", "ra", "dec", "lmjd", "mjd")
SNR_BANDS = ("snru", "snrg", "snrr", "snri", "snrz", "snr_b", "snr_r")
EXACT = ("planid", "obsdate", "spid", "fiberid", "designation", "uid", "tsource", "fibertype")
DISTANCE_COLUMN = "distance_arcsec"
DEFAULT_COLUMNS = ("obsid", "designation", "ra", "dec", "class", "subclass", "z", "snrg", "snrr", "obsdate")


class SearchError(ValueError):
    """A search parameter that cannot be used; the message starts with the parameter's name."""


@dataclass
class SearchRequest:
    """A checked search."""

    catalog: str = "lrs"
    ra: float | None = None
    dec: float | None = None
    radius_deg: float | None = None
    obsids: list[int] | None = None
    classes: list[str] | None = None
    subclass: str | None = None
    exact: dict[str, Any] = field(default_factory=dict)
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    snr_min: dict[str, float] = field(default_factory=dict)
    columns: list[str] | None = None
    sort: list[tuple[str, bool]] = field(default_factory=list)
    offset: int = 0
    limit: int | None = None
    count: bool = True

    def describe(self) -> dict[str, Any]:
        """The request as plain data (recorded in the query history, reproduced in notebooks)."""
        out: dict[str, Any] = {"catalog": self.catalog}
        for key in ("ra", "dec", "radius_deg", "obsids", "classes", "subclass", "columns", "offset", "limit"):
            value = getattr(self, key)
            if value not in (None, [], 0) or (key == "offset" and value):
                out[key] = value
        for key in ("exact", "ranges", "snr_min"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.sort:
            out["sort"] = [("" if asc else "-") + col for col, asc in self.sort]
        return out


def _one(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else None
    if isinstance(value, bytes):
        value = value.decode()
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _float(params: Mapping[str, Any], name: str) -> float | None:
    text = _one(params, name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise SearchError(f"{name}: {text!r} is not a number") from None
    if not np.isfinite(value):
        raise SearchError(f"{name}: {text!r} is not a finite number")
    return value


def parse_position(text: str) -> tuple[float, float]:
    """ICRS degrees from 'ra dec' in decimal degrees or sexagesimal (hours for RA), or 'ra,dec'."""
    cleaned = text.replace(",", " ").strip()
    parts = cleaned.split()
    try:
        if len(parts) == 2 and all(re.fullmatch(r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?", p) for p in parts):
            ra, dec = float(parts[0]), float(parts[1])
        else:
            coord = SkyCoord(cleaned, unit=(u.hourangle, u.deg), frame="icrs")
            ra, dec = float(coord.ra.deg), float(coord.dec.deg)
    except (ValueError, TypeError):
        raise SearchError(
            f"pos: cannot read {text!r} as a position (decimal degrees or sexagesimal)"
        ) from None
    if not (0.0 <= ra < 360.0 or np.isclose(ra, 360.0)) or not -90.0 <= dec <= 90.0:
        raise SearchError(f"pos: {text!r} is outside the sky (RA 0..360, Dec -90..90)")
    return ra % 360.0, dec


def parse_radius(text: str) -> float:
    """Degrees from '2arcmin', '30 arcsec', "1'", '30"', '0.5deg' or a bare number (degrees)."""
    cleaned = text.strip().replace("\u2033", '"').replace("\u2032", "'")  # double and single prime
    units = {'"': "arcsec", "'": "arcmin", "d": "deg"}
    if cleaned and cleaned[-1] in units and re.fullmatch(r"[0-9.eE+-]+.", cleaned):
        cleaned = cleaned[:-1] + units[cleaned[-1]]
    try:
        value = float(cleaned)
        angle = Angle(value, u.deg)
    except ValueError:
        try:
            angle = Angle(cleaned)
        except (ValueError, u.UnitsError):
            raise SearchError(f"radius: cannot read {text!r} (use e.g. 30arcsec, 2arcmin, 0.5deg)") from None
    degrees = float(angle.to(u.deg).value)
    if not np.isfinite(degrees) or degrees <= 0:
        raise SearchError(f"radius: {text!r} must be a positive angle")
    return degrees


def _list(params: Mapping[str, Any], name: str) -> list[str] | None:
    raw = params.get(name)
    if raw is None:
        return None
    items = raw if isinstance(raw, (list, tuple)) else [raw]
    out: list[str] = []
    for item in items:
        text = item.decode() if isinstance(item, bytes) else str(item)
        out.extend(p for p in re.split(r"[\s,;]+", text) if p)
    return out or None


def parse_search(params: Mapping[str, Any], *, catalog: str | None = None) -> SearchRequest:
    """Check query parameters (strings or lists of strings) and build a :class:`SearchRequest`."""
    req = SearchRequest(catalog=catalog or _one(params, "catalog") or "lrs")
    pos = _one(params, "pos")
    ra, dec = _float(params, "ra"), _float(params, "dec")
    if pos is not None:
        req.ra, req.dec = parse_position(pos)
    elif ra is not None or dec is not None:
        if ra is None or dec is None:
            raise SearchError("ra: give both ra and dec (or pos)")
        req.ra, req.dec = parse_position(f"{ra} {dec}")
    radius = _one(params, "radius") or _one(params, "sr")
    if radius is not None:
        if req.ra is None:
            raise SearchError("radius: give a position (pos, or ra and dec) with a radius")
        req.radius_deg = parse_radius(radius)
    elif req.ra is not None:
        req.radius_deg = parse_radius("1arcmin")
    obsids = _list(params, "obsid")
    if obsids is not None:
        try:
            req.obsids = [int(o) for o in obsids]
        except ValueError:
            bad = next(o for o in obsids if not o.lstrip("-").isdigit())
            raise SearchError(f"obsid: {bad!r} is not an obsid (a whole number)") from None
    classes = _list(params, "class")
    if classes is not None:
        known = {"STAR": "STAR", "GALAXY": "GALAXY", "QSO": "QSO", "UNKNOWN": "Unknown"}
        try:
            req.classes = [known[c.upper()] for c in classes]
        except KeyError as exc:
            raise SearchError(f"class: {exc.args[0]!r} is not one of STAR, GALAXY, QSO, Unknown") from None
    req.subclass = _one(params, "subclass")
    for name in EXACT:
        value = _one(params, name)
        if value is not None:
            if name in ("spid", "fiberid"):
                try:
                    req.exact[name] = int(value)
                except ValueError:
                    raise SearchError(f"{name}: {value!r} is not a whole number") from None
            else:
                req.exact[name] = value
    for name in RANGES:
        lo, hi = _float(params, f"{name}_min"), _float(params, f"{name}_max")
        if lo is not None or hi is not None:
            if lo is not None and hi is not None and lo > hi:
                raise SearchError(f"{name}_min: {lo:g} is above {name}_max {hi:g}")
            req.ranges[name] = (lo, hi)
    for band in SNR_BANDS:
        value = _float(params, f"{band}_min")
        if value is not None:
            req.snr_min[band] = value
    columns = _list(params, "columns")
    if columns is not None:
        req.columns = columns
    for item in _list(params, "sort") or []:
        req.sort.append((item.lstrip("+-"), not item.startswith("-")))
    offset, limit = _float(params, "offset"), _float(params, "limit")
    if offset is not None:
        if offset < 0 or offset != int(offset):
            raise SearchError("offset: must be a whole number of rows, 0 or more")
        req.offset = int(offset)
    if limit is not None:
        if limit < 0 or limit != int(limit):
            raise SearchError("limit: must be a whole number of rows, 0 or more")
        req.limit = int(limit)
    req.count = (_one(params, "count") or "true").lower() not in ("false", "0", "no")
    return req


@dataclass
class SearchResult:
    """One page of a search: rows, the exact number of matching rows, and the version it came from."""

    table: pa.Table
    total: int
    version: ReleaseVersion
    catalog: str
    request: SearchRequest


def _check_columns(names: Sequence[str], schema: pa.Schema, what: str) -> None:
    known = set(schema.names) | {DISTANCE_COLUMN}
    for name in names:
        if name not in known or name.startswith("_"):
            raise SearchError(f"{what}: unknown column {name!r}")


def run_search(engine: ArchiveEngine, version: ReleaseVersion, req: SearchRequest) -> SearchResult:
    """Answer a search on one readable version."""
    limits = engine.limits
    try:
        cat = engine.catalog(version, req.catalog)
    except KeyError as exc:
        raise SearchError(f"catalog: {exc.args[0]}") from None
    schema = cat.schema
    columns = req.columns or [c for c in DEFAULT_COLUMNS if c in schema.names]
    _check_columns(columns, schema, "columns")
    _check_columns([c for c, _ in req.sort], schema, "sort")
    for name in [*req.exact, *req.ranges, *req.snr_min, *(["class"] if req.classes else [])]:
        if name not in schema.names:
            raise SearchError(f"{name}: catalog {req.catalog} has no column {name!r}")
    if req.radius_deg is not None and req.radius_deg > limits.max_radius_deg:
        raise SearchError(
            f"radius: {req.radius_deg:g} deg is above the limit of {limits.max_radius_deg:g} deg"
        )
    limit = limits.default_rows if req.limit is None else req.limit
    if limit > limits.max_rows:
        raise SearchError(f"limit: {limit} is above the limit of {limits.max_rows} rows per page")

    # Candidate rows from the indexes: cones and obsid lists never scan the catalog.
    rows: np.ndarray | None = None
    distance: np.ndarray | None = None
    if req.ra is not None and req.radius_deg is not None:
        rows, distance = cat.cone_rows(req.ra, req.dec, req.radius_deg)
    if req.obsids is not None:
        by_id = cat.obsid_rows(req.obsids)
        if rows is None:
            rows = by_id
        else:
            keep = np.isin(rows, by_id)
            rows, distance = rows[keep], distance[keep] if distance is not None else None
    # Only the columns the answer needs are gathered: the page's, the sort's and the conditions'.
    needed = list(
        dict.fromkeys(
            [
                *columns,
                *(c for c, _ in req.sort),
                *req.exact,
                *req.ranges,
                *req.snr_min,
                *(["class"] if req.classes else []),
                *(["subclass"] if req.subclass else []),
            ]
        )
    )
    needed = [c for c in needed if c != DISTANCE_COLUMN]
    base = cat.table.select(needed) if rows is None else cat.take(rows, needed)
    if distance is not None:
        base = base.append_column(DISTANCE_COLUMN, pa.array(distance * 3600.0))

    where, params = _conditions(req)
    sort = req.sort or ([(DISTANCE_COLUMN, True)] if distance is not None else [])
    if not where:
        total = base.num_rows
        if sort:
            base = base.sort_by([(c, "ascending" if asc else "descending") for c, asc in sort])
        page = base.slice(req.offset, limit).select(columns)
        return SearchResult(page, total, version, req.catalog, req)
    select = ", ".join(f'"{c}"' for c in columns)
    order = " ORDER BY " + ", ".join(f'"{c}" {"ASC" if asc else "DESC"}' for c, asc in sort) if sort else ""
    # Column names were checked against the schema above and every value is a bound parameter.
    sql = f"SELECT {select} FROM {{t}} WHERE {where}{order} LIMIT {int(limit)} OFFSET {int(req.offset)}"  # noqa: S608
    page = engine.sandbox.run(sql, {"t": base}, params=params, timeout_s=limits.timeout_s).table
    total = -1
    if req.count:
        counted = engine.sandbox.run(
            f"SELECT count(*) AS n FROM {{t}} WHERE {where}",  # noqa: S608 - checked names, bound values
            {"t": base},
            params=params,
        )
        total = int(counted.table["n"][0].as_py())
    return SearchResult(page, total, version, req.catalog, req)


def _conditions(req: SearchRequest) -> tuple[str, list[Any]]:
    """SQL conditions with ``?`` placeholders (column names come from the checked request only)."""
    parts: list[str] = []
    params: list[Any] = []
    if req.classes:
        parts.append(f'"class" IN ({", ".join("?" for _ in req.classes)})')
        params.extend(req.classes)
    if req.subclass:
        parts.append('"subclass" ILIKE ?')
        params.append(req.subclass.replace("*", "%"))
    for name, value in req.exact.items():
        if name == "designation":
            value = value if value.upper().startswith("LAMOST") else f"LAMOST {value}"
            parts.append("upper(replace(\"designation\", ' ', '')) = upper(replace(?, ' ', ''))")
        else:
            parts.append(f'"{name}" = ?')
        params.append(value)
    for name, (lo, hi) in req.ranges.items():
        if lo is not None:
            parts.append(f'"{name}" >= ?')
            params.append(lo)
        if hi is not None:
            parts.append(f'"{name}" <= ?')
            params.append(hi)
    for band, value in req.snr_min.items():
        parts.append(f'"{band}" >= ?')
        params.append(value)
    return " AND ".join(parts), params


def table_rows(table: pa.Table) -> list[list[Any]]:
    """Rows as JSON-ready lists (NaN as None)."""
    cols = []
    for column in table.columns:
        if pa.types.is_floating(column.type):
            column = pc.if_else(pc.is_nan(column), None, column)
        cols.append(column.to_pylist())
    return [list(r) for r in zip(*cols, strict=True)] if cols else []
