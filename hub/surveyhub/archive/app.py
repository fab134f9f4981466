"""The archive service's HTTP application (tornado, as JupyterHub services are).

Every handler asks the identity provider who the caller is, then the engine what that caller may read.
A release version the caller may not read answers exactly like one that does not exist (404, same text),
so no response hints at what is there. CPU-bound work (queries, plots) runs in a thread pool so the
service keeps answering while it works; large results are streamed.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import functools
import io
import json
import posixpath
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tornado import web

from surveyhub.archive import formats, spectrum_products
from surveyhub.archive.database import PlatformDatabase
from surveyhub.archive.engine import ArchiveEngine
from surveyhub.archive.identity import Caller, Identity, caller_teams
from surveyhub.archive.sandbox import QueryError
from surveyhub.archive.search import (
    DISTANCE_COLUMN,
    SearchError,
    parse_position,
    parse_radius,
    parse_search,
    run_search,
    table_rows,
)
from surveyhub.releases.registry import ReleaseVersion, SpectrumNotFound, VersionNotFound
from surveyhub.releases.spectrum import read_spectrum

_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="archive")


async def _in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(_POOL, fn, *args)


class ArchiveHandler(web.RequestHandler):
    """Common ground: identity, access, JSON errors."""

    engine: ArchiveEngine
    identity: Identity
    caller: Caller
    refused_unread = False

    def initialize(self, engine: ArchiveEngine, identity: Identity, cache_dir: Path) -> None:
        self.engine = engine
        self.identity = identity
        self.cache_dir = cache_dir

    async def prepare(self) -> None:
        try:
            caller = await self.identity.identify(self)
            if caller is None:
                raise web.HTTPError(401, reason="authentication required: log in to the hub or pass a token")
        except web.HTTPError:
            # A handler that streams the request body (TAP) has not read it yet, so tornado closes the
            # connection after the answer; say so, or a keep-alive proxy (the hub's) reuses the closing
            # connection for the next caller's request, who then gets a 503.
            self.refused_unread = self.request.method in ("POST", "PUT")
            raise
        self.caller = caller

    def set_default_headers(self) -> None:
        # Called again when an error clears the headers: where the refusal's Connection header survives.
        if self.refused_unread:
            self.set_header("Connection", "close")

    def readable(self, release: str, version: str) -> ReleaseVersion:
        """The version, or 404 with the same words whether it is absent or not readable."""
        try:
            return self.engine.version(release, version, self.caller.groups)
        except VersionNotFound:
            raise web.HTTPError(404, reason=f"no release version {release}/{version}") from None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": self._reason, "status": status_code}))

    def send_json(self, payload: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(payload, default=_json_default))

    async def stream_pulled(self, chunks: Iterable[bytes]) -> None:
        """Like :meth:`stream`, but each chunk is made in the thread pool (it may wait on a running query),
        so the service answers others meanwhile."""
        it = iter(chunks)
        done = object()
        try:
            while (chunk := await _in_thread(next, it, done)) is not done:
                self.write(chunk)
                await self.flush()
        except (QueryError, OSError) as exc:  # the document already says ERROR where its format can
            self.log_exception(type(exc), exc, exc.__traceback__)
        self.finish()

    async def stream(self, chunks: Iterable[bytes]) -> None:
        """Write chunks as they come, flushing so the client receives them while later ones are made."""
        for chunk in chunks:
            self.write(chunk)
            await self.flush()
        self.finish()


def _published(version: ReleaseVersion) -> float | None:
    """The version's publication time as a POSIX timestamp (file times in downloads), if recorded."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(version.manifest.published).timestamp()
    except ValueError:
        return None


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _column_meta(version: ReleaseVersion, catalog: str, schema: pa.Schema) -> list[formats.ColumnMeta]:
    documented = {c.name: c for c in version.manifest.catalogs[catalog].columns}
    metas = []
    for name in schema.names:
        column = documented.get(name)
        if name == DISTANCE_COLUMN:
            metas.append(
                formats.ColumnMeta(name, "arcsec", "pos.angDistance", "Distance from the search centre")
            )
        elif column is not None:
            metas.append(formats.ColumnMeta(name, column.unit, column.ucd, column.description))
        else:
            metas.append(formats.ColumnMeta(name))
    return metas


class ReleasesHandler(ArchiveHandler):
    """``api/releases``: the versions the caller may read, with what they hold."""

    async def get(self) -> None:
        out = []
        for v in self.engine.versions(self.caller.groups):
            m = v.manifest
            out.append(
                {
                    "release": v.release,
                    "version": v.version,
                    "title": m.title,
                    "description": m.description,
                    "policy": m.policy.describe(),
                    "observation_start": m.observation_start,
                    "observation_end": m.observation_end,
                    "counts": m.counts,
                    "acknowledgement": m.acknowledgement,
                    "catalogs": {
                        name: {
                            "title": info.title,
                            "rows": info.rows,
                            "columns": [c.to_dict() for c in info.columns],
                        }
                        for name, info in m.catalogs.items()
                    },
                }
            )
        self.send_json({"user": self.caller.name, "releases": out})


class SearchHandler(ArchiveHandler):
    """``api/{release}/{version}/search``: the JSON search API (also CSV, VOTable, Parquet, FITS)."""

    async def get(self, release: str, version: str) -> None:
        v = self.readable(release, version)
        params = {k: [x.decode() for x in vals] for k, vals in self.request.query_arguments.items()}
        fmt = (params.pop("format", None) or ["json"])[-1]
        # history=0: a client's own bookkeeping (a count before a download, an import's catalog rows),
        # not a query the user asked; it stays out of their history
        remember = (params.pop("history", None) or ["1"])[-1].lower() not in ("0", "false", "no")
        try:
            req = parse_search(params)
            result = await _in_thread(run_search, self.engine, v, req)
        except SearchError as exc:
            raise web.HTTPError(400, reason=str(exc)) from None
        db = self.application.settings.get("database")
        if (
            db is not None and remember and not self.caller.anonymous
        ):  # off the request's path: a commit costs ms
            db.record_later(
                self.caller.name,
                "search",
                {"catalog": result.catalog, **req.describe()},
                release=release,
                version=version,
                rows=result.total,
            )
        if fmt == "json":
            self.send_json(
                {
                    "release": release,
                    "version": version,
                    "catalog": result.catalog,
                    "total": result.total,
                    "offset": req.offset,
                    "columns": [
                        dataclasses.asdict(m) for m in _column_meta(v, result.catalog, result.table.schema)
                    ],
                    "rows": table_rows(result.table),
                    "query": req.describe(),
                }
            )
            return
        await self._send_table(v, result.catalog, result.table, fmt, f"{release}-{version}-{result.catalog}")

    async def _send_table(
        self, v: ReleaseVersion, catalog: str, table: pa.Table, fmt: str, stem: str
    ) -> None:
        try:
            kind = formats.content_type(fmt)
        except formats.FormatError as exc:
            raise web.HTTPError(400, reason=str(exc)) from None
        self.set_header("Content-Type", kind)
        self.set_header("Content-Disposition", f'attachment; filename="{stem}.{formats.extension(fmt)}"')
        meta = _column_meta(v, catalog, table.schema)
        await self.stream(formats.stream_result(table.to_batches(), table.schema, meta, fmt))


class SpectrumHandler(ArchiveHandler):
    """One spectrum's products: the released FITS file, PNG plot or thumbnail, CSV, catalog row."""

    async def get(self, release: str, version: str, obsid: str, product: str) -> None:
        await self.serve(release, version, obsid, product)

    async def serve(self, release: str, version: str, obsid: str | None, product: str) -> None:
        v = self.readable(release, version)
        if obsid is None or not obsid.strip().isdigit():
            raise web.HTTPError(400, reason=f"obsid: {obsid!r} is not an obsid (a whole number)")
        try:
            location = await _in_thread(v.locate_spectrum, int(obsid))
        except SpectrumNotFound:
            raise web.HTTPError(404, reason=f"no spectrum with obsid {obsid} in {v.key}") from None
        name = posixpath.basename(location.relpath)
        if product == "fits":
            data = await _in_thread(v.store.fs.cat_file, v.path(location.relpath))
            self.set_header("Content-Type", "application/fits")
            self.set_header("Content-Disposition", f'attachment; filename="{name}"')
            self.finish(data)
        elif product in ("png", "thumb"):
            size = "thumb" if product == "thumb" else "full"
            cache = self.application.settings["png_cache"]
            key = (v.release, v.version, v.manifest.published, int(obsid), size)
            data = await _in_thread(
                cache.get_or_render,
                key,
                lambda: spectrum_products.spectrum_png(self._read(v, location.relpath), size=size),
            )
            self.set_header("Content-Type", "image/png")
            self.set_header("Cache-Control", "private, max-age=86400")
            self.finish(data)
        elif product in ("csv", "fits2csv"):
            data = await _in_thread(lambda: spectrum_products.spectrum_csv(self._read(v, location.relpath)))
            self.set_header("Content-Type", "text/csv")
            self.set_header("Content-Disposition", f'attachment; filename="{name.split(".fits")[0]}.csv"')
            self.finish(data)
        elif product == "info":
            cat = self.engine.catalog(v, location.catalog)
            rows = cat.obsid_rows([int(obsid)])
            table = cat.take(rows)
            row = {k: vals[0] for k, vals in table.to_pydict().items() if not k.startswith("_")}
            self.send_json(spectrum_products.spectrum_info(row))
        else:
            raise web.HTTPError(
                404, reason=f"no spectrum product {product!r}: use fits, png, thumb, csv or info"
            )

    @staticmethod
    def _read(v: ReleaseVersion, relpath: str) -> Any:
        with v.store.fs.open(v.path(relpath), "rb") as fh:
            return read_spectrum(fh)


class LamostSpectrumHandler(SpectrumHandler):
    """LAMOST's ``{dr}/{ver}/{lrs|mrs}/spectrum/{fits|png|fits2csv|info}?obsid=N`` (existing scripts)."""

    async def get(self, release: str, version: str, arm: str, product: str) -> None:  # type: ignore[override]
        await self.serve(release, version, self.get_query_argument("obsid", None), product)


class SpectraTarHandler(ArchiveHandler):
    """Many spectra at once, as one streamed tar of their released files (plus a manifest)."""

    async def get(self, release: str, version: str) -> None:
        await self._send(release, version, self.get_query_arguments("obsid"))

    async def post(self, release: str, version: str) -> None:
        body = self.request.body.decode(errors="replace")
        await self._send(release, version, body.replace(",", " ").split())

    async def _send(self, release: str, version: str, raw: list[str]) -> None:
        v = self.readable(release, version)
        ids = [p for item in raw for p in item.replace(",", " ").split()]
        bad = [i for i in ids if not i.isdigit()]
        if bad or not ids:
            raise web.HTTPError(
                400, reason=f"obsid: {bad[0]!r} is not an obsid" if bad else "obsid: give obsids"
            )
        limit = self.engine.limits.max_rows
        if len(ids) > limit:
            raise web.HTTPError(400, reason=f"obsid: {len(ids)} spectra is above the limit of {limit}")
        found = await _in_thread(v.locate_spectra, [int(i) for i in ids])
        missing = [i for i in ids if int(i) not in found]
        if missing:
            raise web.HTTPError(404, reason=f"no spectrum with obsid {missing[0]} in {v.key}")
        fs = v.store.fs
        entries = []
        for loc in found.values():
            path = v.path(loc.relpath)
            entries.append(
                spectrum_products.TarEntry(
                    posixpath.basename(loc.relpath),
                    functools.partial(fs.open, path, "rb"),
                    fs.size(path),
                    loc.obsid,
                )
            )
        self.set_header("Content-Type", "application/x-tar")
        self.set_header("Content-Disposition", f'attachment; filename="{release}-{version}-spectra.tar"')
        await self.stream(spectrum_products.stream_tar(entries, mtime=_published(v)))


def _upload_rows(body: bytes) -> list[dict[str, str]]:
    text = body.decode("utf-8-sig", errors="replace")
    first = text.splitlines()[0] if text.strip() else ""
    sep = "|" if first.count("|") > first.count(",") else ","
    return list(csv.DictReader(io.StringIO(text), delimiter=sep))


class CrossmatchHandler(ArchiveHandler):
    """``POST api/{release}/{version}/crossmatch``: the nearest catalog row for each uploaded position."""

    async def post(self, release: str, version: str) -> None:
        v = self.readable(release, version)
        catalog = self.get_query_argument("catalog", "lrs")
        try:
            radius = parse_radius(self.get_query_argument("radius", "3arcsec"))
            if radius > self.engine.limits.max_radius_deg:
                raise SearchError(f"radius: above the limit of {self.engine.limits.max_radius_deg:g} deg")
            rows = _upload_rows(self.request.body)
        except SearchError as exc:
            raise web.HTTPError(400, reason=str(exc)) from None
        if len(rows) > self.engine.limits.max_upload_rows:
            raise web.HTTPError(
                400,
                reason=f"upload: {len(rows)} rows is above the limit of {self.engine.limits.max_upload_rows}",
            )
        try:
            cat = self.engine.catalog(v, catalog)
        except KeyError as exc:
            raise web.HTTPError(400, reason=f"catalog: {exc.args[0]}") from None
        result = await _in_thread(_nearest, cat, rows, radius)
        self.send_json(
            {
                "release": release,
                "version": version,
                "catalog": catalog,
                "radius_deg": radius,
                "matches": result,
            }
        )


def _nearest(cat: Any, rows: list[dict[str, str]], radius: float) -> list[dict[str, Any]]:
    """For each uploaded row (ra/dec, pos, or obsid): the nearest catalog row within ``radius`` or None."""
    out: list[dict[str, Any]] = []
    columns = [
        c
        for c in ("obsid", "designation", "ra", "dec", "class", "subclass", "z", "snrg")
        if c in cat.schema.names
    ]
    for i, row in enumerate(rows):
        lowered = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
        match = None
        try:
            if lowered.get("obsid"):
                found = cat.obsid_rows([int(lowered["obsid"])])
                if found.size:
                    match = cat.take(found[:1], columns).to_pylist()[0] | {"distance_arcsec": 0.0}
            else:
                pos = lowered.get("pos") or f"{lowered.get('ra', '')} {lowered.get('dec', '')}"
                ra, dec = parse_position(pos)
                found, dist = cat.cone_rows(ra, dec, radius)
                if found.size:
                    best = int(np.argmin(dist))
                    match = cat.take(found[best : best + 1], columns).to_pylist()[0]
                    match["distance_arcsec"] = float(dist[best] * 3600)
            out.append({"row": i, "input": row, "match": match})
        except (SearchError, ValueError) as exc:
            out.append({"row": i, "input": row, "match": None, "error": str(exc)})
    return out


class ConeSearchHandler(ArchiveHandler):
    """IVOA Simple Cone Search 1.03 (``scs/{release}/{version}/{catalog}``) and LAMOST's conesearch route."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        fmt = self.get_query_argument("output.fmt", "votable") if status_code != 401 else "votable"
        self.set_status(200 if status_code in (400,) else status_code)
        self.set_header("Content-Type", formats.content_type("json" if fmt == "json" else "votable"))
        self.finish(formats.error_document(self._reason, "json" if fmt == "json" else "votable"))

    async def get(self, release: str, version: str, catalog: str) -> None:
        v = self.readable(release, version)
        args = {k.lower(): self.get_query_argument(k) for k in self.request.query_arguments}
        fmt = args.get("output.fmt", "votable")
        try:
            ra = args.get("ra")
            dec = args.get("dec")
            sr = args.get("sr")
            if ra is None or dec is None or sr is None:
                raise SearchError("RA, DEC and SR are required")
            ra_f, dec_f = parse_position(f"{ra} {dec}")
            radius = float(sr)
            if not np.isfinite(radius) or radius < 0:
                raise SearchError(f"SR: {sr!r} must be a non-negative number of degrees")
            if radius > self.engine.limits.max_radius_deg:
                raise SearchError(
                    f"SR: {radius:g} deg is above the limit of {self.engine.limits.max_radius_deg:g} deg"
                )
        except (SearchError, ValueError) as exc:
            raise web.HTTPError(400, reason=str(exc).removeprefix("pos: ")) from None
        try:
            cat = self.engine.catalog(v, catalog)
        except KeyError as exc:
            raise web.HTTPError(404, reason=str(exc.args[0])) from None
        verb = args.get("verb", "2")
        rows, dist = await _in_thread(cat.cone_rows, ra_f, dec_f, radius)
        order = np.argsort(dist, kind="stable")
        names = [n for n in cat.schema.names if not n.startswith("_")]
        if verb == "1":
            names = [n for n in ("obsid", "ra", "dec") if n in names] or names[:3]
        table = cat.take(rows[order], names).append_column(DISTANCE_COLUMN, pa.array(dist[order] * 3600.0))
        meta = _column_meta(v, catalog, table.schema)
        meta = _scs_ucds(meta)
        self.set_header("Content-Type", formats.content_type(fmt))
        await self.stream(
            formats.stream_result(table.to_batches(), table.schema, meta, fmt, info={"QUERY_STATUS": "OK"})
        )


def _scs_ucds(meta: list[formats.ColumnMeta]) -> list[formats.ColumnMeta]:
    """SCS 1.03 wants ID_MAIN, POS_EQ_RA_MAIN and POS_EQ_DEC_MAIN on the identity and position columns."""
    legacy = {"obsid": "ID_MAIN", "ra": "POS_EQ_RA_MAIN", "dec": "POS_EQ_DEC_MAIN"}
    return [formats.ColumnMeta(m.name, m.unit, legacy.get(m.name, m.ucd), m.description) for m in meta]


class LamostConeSearchHandler(ConeSearchHandler):
    """LAMOST's ``{dr}/{ver}/{lrs|mrs}/voservice/conesearch?ra&dec&sr[&output.fmt]``."""

    async def get(self, release: str, version: str, arm: str) -> None:  # type: ignore[override]
        await super().get(release, version, arm)


class LamostSqlHandler(ArchiveHandler):
    """LAMOST's ``{dr}/{ver}/sql?sql=...&output.fmt=`` with its own table names (combined, med_combined)."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        fmt = self.get_query_argument("output.fmt", "votable")
        self.set_header("Content-Type", formats.error_content_type(fmt))
        self.finish(formats.error_document(self._reason or "error", fmt))

    async def get(self, release: str, version: str) -> None:
        from surveyhub.archive.tap import LAMOST_TABLES, TapError, open_query, schema_name

        v = self.readable(release, version)
        sql = self.get_query_argument("sql", None)
        fmt = self.get_query_argument("output.fmt", "votable")
        if not sql:
            raise web.HTTPError(400, reason="sql: missing")
        schema = schema_name(v)
        aliases = {name: f"{schema}.{target}" for name, target in LAMOST_TABLES.items()}
        try:
            formats.output_format(fmt)
            result = await _in_thread(
                lambda: open_query(self.engine, sql, self.caller.groups, restrict_to=v, aliases=aliases)
            )
        except (TapError, formats.FormatError) as exc:
            raise web.HTTPError(400, reason=str(exc)) from None
        self.set_header("Content-Type", formats.content_type(fmt))
        stream = result.stream
        await self.stream_pulled(
            formats.stream_result(stream, stream.schema, result.columns, fmt, overflow=stream.overflow)
        )


class HistoryHandler(ArchiveHandler):
    """``api/history``: the caller's searches and queries, and those their teams shared."""

    async def get(self) -> None:
        db = self.application.settings["database"]
        if self.caller.anonymous:
            self.send_json({"history": []})
            return
        teams = await caller_teams(self.identity, self.caller)
        # in the pool: reading history first flushes the queued records, which may wait on the writer
        records = await _in_thread(db.history, self.caller.name, teams)
        self.send_json({"history": [_record_json(r) for r in records]})


class ShareHandler(ArchiveHandler):
    """``POST api/history/{id}/share?team=T``: share one of your queries with a team you are in."""

    async def post(self, record_id: str) -> None:
        db = self.application.settings["database"]
        team = self.get_query_argument("team", "")
        if self.caller.anonymous:
            raise web.HTTPError(401, reason="log in to keep a history")
        try:
            teams = await caller_teams(self.identity, self.caller)
            if team in self.caller.groups and team not in teams:
                raise PermissionError(f"{team!r} is not a team (queries are shared with teams only)")
            record = db.share(self.caller.name, record_id, team, teams)
        except PermissionError as exc:
            raise web.HTTPError(403, reason=str(exc)) from None
        except KeyError as exc:
            raise web.HTTPError(404, reason=str(exc.args[0])) from None
        self.send_json(_record_json(record))


def _record_json(record: Any) -> dict[str, Any]:
    return {
        "id": record.id,
        "owner": record.owner,
        "kind": record.kind,
        "release": record.release,
        "version": record.version,
        "query": record.query,
        "started": record.started.isoformat(),
        "duration_s": record.duration_s,
        "rows": record.rows,
        "status": record.status,
        "shared_with": record.shared_with or [],
    }


def make_app(
    engine: ArchiveEngine,
    identity: Identity,
    *,
    base_url: str = "/",
    cache_dir: Path | None = None,
    database: PlatformDatabase | None = None,
    extra_handlers: Sequence[tuple[str, type[web.RequestHandler], dict[str, Any]]] = (),
    extra_settings: Mapping[str, Any] | None = None,
) -> web.Application:
    """The tornado application of the archive under ``base_url`` (``/services/archive/`` under the hub).

    ``extra_handlers`` and ``extra_settings`` are what an identity provider needs besides the archive's
    own routes (under the hub: the OAuth callback and the secret of its cookie).
    """
    base = "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"
    name = r"([A-Za-z0-9][A-Za-z0-9_.-]*)"
    init = {"engine": engine, "identity": identity, "cache_dir": cache_dir or engine.cache_dir}
    routes = [
        (rf"{base}api/releases", ReleasesHandler),
        (rf"{base}api/{name}/{name}/search", SearchHandler),
        (rf"{base}api/{name}/{name}/crossmatch", CrossmatchHandler),
        (rf"{base}api/{name}/{name}/spectra\.tar", SpectraTarHandler),
        (rf"{base}api/{name}/{name}/spectra/([0-9]+)/(fits|png|thumb|csv|info)", SpectrumHandler),
        (rf"{base}scs/{name}/{name}/{name}", ConeSearchHandler),
        (rf"{base}{name}/{name}/(lrs|mrs)/spectrum/(fits|png|fits2csv|info)", LamostSpectrumHandler),
        (rf"{base}{name}/{name}/(lrs|mrs)/voservice/conesearch", LamostConeSearchHandler),
    ]
    from surveyhub.archive.tap_service import JobRunner, tap_routes

    cache = Path(init["cache_dir"])
    cache.mkdir(parents=True, exist_ok=True)
    database = database or PlatformDatabase.connect(f"sqlite:///{cache / 'archive.sqlite'}")
    routes += [
        (rf"{base}{name}/{name}/sql", LamostSqlHandler),
        (rf"{base}api/history", HistoryHandler),
        (rf"{base}api/history/([0-9a-f]{{32}})/share", ShareHandler),
    ]
    from surveyhub.archive.ssa import LamostSsaHandler, SsaHandler

    routes += [
        (rf"{base}ssa/{name}/{name}", SsaHandler),
        (rf"{base}{name}/{name}/(lrs|mrs)/voservice/ssap", LamostSsaHandler),
    ]
    from surveyhub.archive.workbench_api import workbench_routes
    from surveyhub.archive.workbench_store import WorkbenchStore

    handlers = [(pattern, handler, init) for pattern, handler in routes] + tap_routes(base, init)
    handlers += workbench_routes(base, init)
    return web.Application(
        [*handlers, *extra_handlers],
        **dict(extra_settings or {}),
        base_url=base,
        png_cache=spectrum_products.PngCache(cache / "png"),
        database=database,
        job_runner=JobRunner(engine, database, cache / "tap-results"),
        workbench=WorkbenchStore(database.engine),
    )


__all__ = ["make_app"]
