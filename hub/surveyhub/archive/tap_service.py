"""The TAP 1.1 service: sync and async (UWS 1.1) queries, VOSI tables, capabilities and availability.

Parameters are read case-insensitively from the query string and the (form or multipart) body, as TAP
clients send them. Errors are VOTables with ``QUERY_STATUS=ERROR`` (DALI), whatever format was asked for.
Async jobs run in a small bounded pool; their state lives in the platform database and their results in
files, so a restart keeps finished results and ends interrupted jobs in ERROR with the reason.
"""

from __future__ import annotations

import asyncio
import io
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pandas as pd
import pyarrow as pa
from astropy.io.votable import parse_single_table
from tornado import httputil, web

from surveyhub.archive import formats, vo_documents
from surveyhub.archive.app import ArchiveHandler, _in_thread
from surveyhub.archive.database import PlatformDatabase, TapJob, utcnow
from surveyhub.archive.engine import ArchiveEngine
from surveyhub.archive.formats import ColumnMeta
from surveyhub.archive.identity import Caller
from surveyhub.archive.sandbox import QueryError
from surveyhub.archive.tap import (
    TapError,
    TapTable,
    catalog_tables,
    open_query,
    tap_schema_tables,
    upload_table,
)

MAX_UPLOAD_BYTES = 20 * 2**20
RETENTION = timedelta(days=1)
PHASES = (
    "PENDING",
    "QUEUED",
    "EXECUTING",
    "COMPLETED",
    "ERROR",
    "ABORTED",
    "UNKNOWN",
    "HELD",
    "SUSPENDED",
    "ARCHIVED",
)


def _owner(caller: Caller) -> str:
    return caller.name or "anonymous"


class TapParams:
    """TAP parameters from the query string and body, names case-insensitive (values case-sensitive).

    The body is parsed here, not by tornado: TAP clients (STILTS among them) send multipart bodies with a
    CRLF preamble before the first boundary, which RFC 2046 allows and tornado's parser refuses.
    """

    def __init__(self, handler: web.RequestHandler) -> None:
        self.values: dict[str, str] = {}
        body_args: dict[str, list[bytes]] = {}
        files: dict[str, list[httputil.HTTPFile]] = {}
        raw = getattr(handler, "raw_body", None)
        body = bytes(raw) if raw is not None else handler.request.body
        if body:
            content_type = handler.request.headers.get("Content-Type", "")
            if content_type.startswith("multipart/form-data"):
                body = body.lstrip(b"\r\n")
            try:
                httputil.parse_body_arguments(content_type, body, body_args, files, handler.request.headers)
            except httputil.HTTPInputError as exc:
                raise TapError(f"the request body cannot be read: {exc}") from None
        for source in (handler.request.query_arguments, body_args):
            for key, vals in source.items():
                if vals and key.lower() != "token":
                    self.values[key.upper()] = vals[-1].decode("utf-8", errors="replace")
        self.files = {name: parts[0].body for name, parts in files.items() if parts}

    def get(self, name: str, default: str | None = None) -> str | None:
        """A parameter's value."""
        return self.values.get(name.upper(), default)


def _fetch_upload(url: str) -> bytes:
    """An upload given by URL (TAPRegExt upload-http): http(s) only, bounded in size and time."""
    import requests

    try:
        with requests.get(url, stream=True, timeout=10, allow_redirects=False) as response:
            response.raise_for_status()
            data = b""
            for chunk in response.iter_content(1 << 16):
                data += chunk
                if len(data) > MAX_UPLOAD_BYTES:
                    raise TapError(f"UPLOAD: {url} is larger than the limit of {MAX_UPLOAD_BYTES} bytes")
            return data
    except requests.RequestException:
        raise TapError(f"UPLOAD: {url} could not be fetched") from None


def parse_uploads(params: TapParams, max_rows: int) -> list[TapTable]:
    """TAP_UPLOAD tables: ``UPLOAD=name,param:field`` (VOTable in the body) or ``name,http(s)://...``."""
    spec = params.get("UPLOAD")
    if not spec:
        return []
    tables = []
    for item in spec.split(";"):
        name, _, uri = item.partition(",")
        name, uri = name.strip(), uri.strip()
        if uri.startswith("param:"):
            data = params.files.get(uri[6:])
            if data is None:
                raise TapError(f"UPLOAD: no file part named {uri[6:]!r} in the request")
            detail = True
        elif uri.startswith(("http://", "https://")):
            data = _fetch_upload(uri)
            detail = False  # never echo what a URL returned: it may not be the caller's to see
        else:
            raise TapError(f"UPLOAD: {uri or item!r}: give param:NAME (inline) or an http(s) URL")
        if len(data) > MAX_UPLOAD_BYTES:
            raise TapError(f"UPLOAD: {name} is {len(data)} bytes, above the limit of {MAX_UPLOAD_BYTES}")
        try:
            votable = parse_single_table(io.BytesIO(data))
            table = votable.to_table(use_names_over_ids=True)
        except Exception as exc:
            reason = f" ({exc})" if detail else ""
            raise TapError(f"UPLOAD: {name} is not a readable VOTable{reason}") from None
        if len(table) > max_rows:
            raise TapError(f"UPLOAD: {name} has {len(table)} rows, above the limit of {max_rows}")
        frame = table.to_pandas()
        declared: dict[str, str] = {}
        for f in votable.fields:
            if f.xtype == "timestamp" and f.name in frame.columns:
                frame[f.name] = pd.to_datetime(frame[f.name].astype(str).str.strip(), errors="coerce")
            elif f.datatype == "char":
                declared[(f.name or "").lower()] = (
                    "char"  # ASCII char columns stay char in results, as uploaded
                )
        uploaded = upload_table(name, pa.Table.from_pandas(frame, preserve_index=False))
        uploaded.columns = [ColumnMeta(m.name, datatype=declared.get(m.name)) for m in uploaded.columns]
        tables.append(uploaded)
    return tables


def _maxrec(params: TapParams) -> int | None:
    text = params.get("MAXREC")
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise TapError(f"MAXREC: {text!r} is not a whole number") from None


def _format(params: TapParams) -> str:
    fmt = params.get("RESPONSEFORMAT") or params.get("FORMAT") or "votable"
    try:
        formats.output_format(fmt)
    except formats.FormatError as exc:
        raise TapError(f"RESPONSEFORMAT: {exc}") from None
    return fmt


def _check_request(params: TapParams) -> str:
    request = params.get("REQUEST", "doQuery")
    if request != "doQuery":
        raise TapError(f"REQUEST: {request!r} is not supported (use doQuery)")
    lang = (params.get("LANG") or "ADQL").upper()
    if lang not in ("ADQL", "ADQL-2.0", "ADQL-2.1"):
        raise TapError(f"LANG: {lang!r} is not supported (use ADQL)")
    query = params.get("QUERY")
    if not query or not query.strip():
        raise TapError("QUERY: missing")
    return query


@web.stream_request_body
class TapHandler(ArchiveHandler):
    """Base of the TAP handlers: errors as VOTable documents; request bodies read raw (see TapParams)."""

    raw_body: bytearray | None = None

    async def prepare(self) -> None:
        await super().prepare()
        self.raw_body = bytearray()

    def data_received(self, chunk: bytes) -> None:
        if self.raw_body is None:
            return
        self.raw_body.extend(chunk)
        if len(self.raw_body) > MAX_UPLOAD_BYTES + 2**20:
            self.raw_body = None
            raise web.HTTPError(413, reason=f"request body above the limit of {MAX_UPLOAD_BYTES} bytes")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", formats.error_content_type("votable"))
        self.finish(formats.error_document(self._reason or "error", "votable"))

    @property
    def tap_url(self) -> str:
        """The TAP base URL as the client reached it."""
        path = self.request.path
        base = path[: path.index("/tap") + 4] if "/tap" in path else path
        return f"{self.request.protocol}://{self.request.host}{base}"

    def token_query(self) -> str:
        """``?token=...`` when the client authenticated with the query form (VO clients, LAMOST scripts), so
        the UWS redirects and job links it follows still carry its token; empty otherwise."""
        token = self.get_query_argument("token", None)
        return f"?{urlencode({'token': token})}" if token else ""

    def tap_error(self, exc: Exception) -> None:
        """Answer 400 with a VOTable error."""
        self.set_status(400)
        self.set_header("Content-Type", formats.error_content_type("votable"))
        self.finish(formats.error_document(str(exc), "votable"))


class SyncHandler(TapHandler):
    """``tap/sync``."""

    async def get(self) -> None:
        await self.post()

    async def post(self) -> None:
        try:
            params = TapParams(self)
            query = _check_request(params)
            fmt = _format(params)
            uploads = parse_uploads(params, self.engine.limits.max_upload_rows)
            maxrec = _maxrec(params)
            result = await _in_thread(
                lambda: open_query(self.engine, query, self.caller.groups, maxrec=maxrec, uploads=uploads)
            )
        except TapError as exc:
            self.tap_error(exc)
            return
        self.set_header("Content-Type", formats.content_type(fmt))
        stream = result.stream
        await self.stream_pulled(
            formats.stream_result(stream, stream.schema, result.columns, fmt, overflow=stream.overflow)
        )
        self.record(query, "tap-sync", stream.rows, result.duration_s)

    def record(self, query: str, kind: str, rows: int, duration: float) -> None:
        """Keep the query in the caller's history (named callers only)."""
        db: PlatformDatabase | None = self.application.settings.get("database")
        if db is not None and not self.caller.anonymous:  # off the request's path: a commit costs ms
            db.record_later(_owner(self.caller), kind, query, rows=rows, duration_s=duration)


class TablesHandler(TapHandler):
    """``tap/tables``: VOSI tables of what the caller may query."""

    async def get(self) -> None:
        tables = await _in_thread(catalog_tables, self.engine, self.caller.groups)
        self.set_header("Content-Type", "text/xml")
        self.finish(vo_documents.tableset(tables + tap_schema_tables(tables)))


class CapabilitiesHandler(TapHandler):
    """``tap/capabilities``."""

    async def get(self) -> None:
        limits = self.engine.limits
        self.set_header("Content-Type", "text/xml")
        self.finish(
            vo_documents.capabilities(
                self.tap_url,
                max_rows=limits.max_rows,
                default_rows=min(100_000, limits.max_rows),
                upload_limit_rows=limits.max_upload_rows,
            )
        )


class AvailabilityHandler(TapHandler):
    """``tap/availability``."""

    async def prepare(self) -> None:  # availability is public: monitors poll it without tokens
        self.caller = Caller(None)

    async def get(self) -> None:
        ok = self.engine.store.fs.exists(self.engine.store.root)
        self.set_header("Content-Type", "text/xml")
        self.finish(
            vo_documents.availability(
                ok, "service is accepting queries" if ok else "release store unreachable"
            )
        )


class JobRunner:
    """Runs async jobs in a bounded pool; state in the database, results in files."""

    def __init__(
        self, engine: ArchiveEngine, db: PlatformDatabase, results_dir: Path, workers: int = 2
    ) -> None:
        self.engine = engine
        self.db = db
        self.results_dir = results_dir
        results_dir.mkdir(parents=True, exist_ok=True)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tap-job")
        self.changed = threading.Condition()
        db.fail_interrupted_jobs()

    def upload_path(self, job_id: str, field: str) -> Path:
        """Where an inline upload of a job is kept until the job runs."""
        safe = "".join(c for c in field if c.isalnum() or c in "_-")[:64] or "upload"
        return self.results_dir / f"{job_id}.upload.{safe}"

    def submit(self, job_id: str) -> None:
        """Queue a job."""
        self.pool.submit(self._run, job_id)

    def _set(self, job_id: str, **values: Any) -> TapJob | None:
        with self.db.session() as s, s.begin():
            job = s.get(TapJob, job_id)
            if job is None:
                return None
            for key, value in values.items():
                setattr(job, key, value)
        with self.changed:
            self.changed.notify_all()
        return job

    def _run(self, job_id: str) -> None:
        with self.db.session() as s:
            job = s.get(TapJob, job_id)
        if job is None or job.phase != "QUEUED":
            return
        self._set(job_id, phase="EXECUTING", started=utcnow())
        params = job.parameters or {}
        fmt = params.get("RESPONSEFORMAT") or params.get("FORMAT") or "votable"
        try:
            maxrec = int(params["MAXREC"]) if params.get("MAXREC") not in (None, "") else None
            stored = _Stored(params)
            stored.files = {
                p.name.split(".upload.", 1)[1]: p.read_bytes()
                for p in self.results_dir.glob(f"{job_id}.upload.*")
            }
            uploads = parse_uploads(stored, self.engine.limits.max_upload_rows)
            result = open_query(
                self.engine, params.get("QUERY", ""), set(job.groups or []), maxrec=maxrec, uploads=uploads
            )
            stream = result.stream
            path = self.results_dir / f"{job_id}.{formats.extension(fmt)}"
            tmp = path.with_suffix(".part")
            with open(tmp, "wb") as out:
                for chunk in formats.stream_result(
                    stream, stream.schema, result.columns, fmt, overflow=stream.overflow
                ):
                    out.write(chunk)
            tmp.replace(path)
            with self.db.session() as s:
                current = s.get(TapJob, job_id)
            if current is None or current.phase == "ABORTED":
                path.unlink(missing_ok=True)
                return
            self._set(
                job_id,
                phase="COMPLETED",
                ended=utcnow(),
                result_path=str(path),
                result_type=formats.content_type(fmt),
                rows=stream.rows,
                overflow=stream.overflow(),
            )
            if job.owner != "anonymous":
                self.db.record_later(
                    job.owner,
                    "tap-async",
                    params.get("QUERY", ""),
                    rows=stream.rows,
                    duration_s=result.duration_s,
                )
        except (TapError, QueryError, ValueError, OSError) as exc:
            self._set(job_id, phase="ERROR", ended=utcnow(), error=str(exc))


class AsyncJobsHandler(TapHandler):
    """``tap/async``: the caller's job list, and job creation."""

    async def get(self) -> None:
        db: PlatformDatabase = self.application.settings["database"]
        phases = {p.upper() for p in self.get_query_arguments("PHASE")}
        jobs = []
        if not self.caller.anonymous:
            with db.session() as s:
                jobs = [
                    j
                    for j in s.query(TapJob)
                    .filter(TapJob.owner == _owner(self.caller))
                    .order_by(TapJob.created)
                    if not phases or j.phase in phases
                ]
        self.set_header("Content-Type", "text/xml")
        self.finish(vo_documents.uws_job_list(jobs, self.tap_url + "/async", self.token_query()))

    async def post(self) -> None:
        db: PlatformDatabase = self.application.settings["database"]
        runner: JobRunner = self.application.settings["job_runner"]
        try:
            params = TapParams(self)
        except TapError as exc:
            self.tap_error(exc)
            return
        total = sum(len(data) for data in params.files.values())
        if total > MAX_UPLOAD_BYTES:
            self.tap_error(TapError(f"UPLOAD: {total} bytes, above the limit of {MAX_UPLOAD_BYTES}"))
            return
        stored = {
            k: v
            for k, v in params.values.items()
            if k in ("QUERY", "LANG", "REQUEST", "MAXREC", "FORMAT", "RESPONSEFORMAT", "RUNID", "UPLOAD")
        }
        job = TapJob(
            id=uuid.uuid4().hex,
            owner=_owner(self.caller),
            phase="PENDING",
            parameters=stored,
            groups=sorted(self.caller.groups),
            created=utcnow(),
            destruction=utcnow() + RETENTION,
        )
        for field, data in params.files.items():
            runner.upload_path(job.id, field).write_bytes(data)
        with db.session() as s, s.begin():
            s.add(job)
        if (params.get("PHASE") or "").upper() == "RUN":
            await self._start(job.id)
        self.redirect(f"{self.tap_url}/async/{job.id}{self.token_query()}", status=303)

    async def _start(self, job_id: str) -> None:
        db: PlatformDatabase = self.application.settings["database"]
        runner: JobRunner = self.application.settings["job_runner"]
        with db.session() as s, s.begin():
            job = s.get(TapJob, job_id)
            params = job.parameters or {}
            try:
                _check_request(_Stored(params))
                _format(_Stored(params))
            except TapError as exc:
                job.phase, job.error, job.ended = "ERROR", str(exc), utcnow()
                return
            job.phase = "QUEUED"
        runner.submit(job_id)


class _Stored(TapParams):
    """Stored job parameters read like request parameters."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = {k.upper(): v for k, v in values.items()}
        self.files = {}


class JobHandler(AsyncJobsHandler):
    """``tap/async/{id}`` and its parts (phase, results, error, parameters, quote, ...)."""

    def job(self, job_id: str) -> TapJob:
        db: PlatformDatabase = self.application.settings["database"]
        with db.session() as s:
            job = s.get(TapJob, job_id)
        if job is None or job.owner != _owner(self.caller):
            raise web.HTTPError(404, reason=f"no job {job_id}")
        return job

    async def get(self, job_id: str, part: str | None = None) -> None:  # type: ignore[override]
        job = self.job(job_id)
        url = f"{self.tap_url}/async/{job_id}"
        if part is None:
            wait = self.get_query_argument("WAIT", None)
            if wait is not None:
                job = await self._wait(job, float(wait), self.get_query_argument("PHASE", job.phase))
            self.set_header("Content-Type", "text/xml")
            self.finish(vo_documents.uws_job(job, url, self.token_query()))
        elif part == "phase":
            self.set_header("Content-Type", "text/plain")
            self.finish(job.phase)
        elif part == "results":
            self.set_header("Content-Type", "text/xml")
            self.finish(vo_documents.uws_results(job, url, self.token_query()))
        elif part == "results/result":
            if job.phase != "COMPLETED" or not job.result_path:
                raise web.HTTPError(404, reason=f"job {job_id} has no result (phase {job.phase})")
            self.set_header("Content-Type", job.result_type or "application/octet-stream")
            with open(job.result_path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    self.write(chunk)
                    await self.flush()
            self.finish()
        elif part == "error":
            if job.phase != "ERROR":
                raise web.HTTPError(404, reason=f"job {job_id} has no error (phase {job.phase})")
            self.set_header("Content-Type", formats.error_content_type("votable"))
            self.finish(formats.error_document(job.error or "error", "votable"))
        elif part == "parameters":
            self.set_header("Content-Type", "text/xml")
            self.finish(vo_documents.uws_parameters(job))
        elif part in ("quote", "executionduration", "destruction", "owner"):
            value = {
                "quote": "",
                "executionduration": str(job.execution_duration),
                "destruction": vo_documents._time(job.destruction) or "",
                "owner": job.owner,
            }[part]
            self.set_header("Content-Type", "text/plain")
            self.finish(value)
        else:
            raise web.HTTPError(404, reason=f"no such job resource {part!r}")

    async def _wait(self, job: TapJob, seconds: float, phase: str) -> TapJob:
        runner: JobRunner = self.application.settings["job_runner"]
        deadline = asyncio.get_running_loop().time() + min(max(seconds, 0), 60) if seconds >= 0 else None
        while job.phase == phase and job.phase in ("PENDING", "QUEUED", "EXECUTING"):
            remaining = 60.0 if deadline is None else deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            await _in_thread(lambda r=remaining: _wait_change(runner, min(r, 1.0)))
            job = self.job(job.id)
        return job

    async def post(self, job_id: str, part: str | None = None) -> None:  # type: ignore[override]
        job = self.job(job_id)
        db: PlatformDatabase = self.application.settings["database"]
        try:
            params = TapParams(self)
        except TapError as exc:
            self.tap_error(exc)
            return
        url = f"{self.tap_url}/async/{job_id}"
        if part is None and (params.get("ACTION") or "").upper() == "DELETE":
            await self.delete(job_id)
            return
        if part == "phase":
            phase = (params.get("PHASE") or "").upper()
            if phase == "RUN":
                if job.phase == "PENDING":
                    await self._start(job_id)
            elif phase == "ABORT":
                if job.phase in ("PENDING", "QUEUED", "EXECUTING"):
                    with db.session() as s, s.begin():
                        current = s.get(TapJob, job_id)
                        current.phase, current.ended = "ABORTED", utcnow()
            else:
                self.tap_error(TapError(f"PHASE: {phase!r}: use RUN or ABORT"))
                return
        elif part in ("executionduration", "destruction") and job.phase == "PENDING":
            with db.session() as s, s.begin():
                current = s.get(TapJob, job_id)
                if part == "executionduration" and params.get("EXECUTIONDURATION", "").isdigit():
                    current.execution_duration = min(int(params.get("EXECUTIONDURATION")), 600)
        elif part == "parameters" and job.phase == "PENDING":
            with db.session() as s, s.begin():
                current = s.get(TapJob, job_id)
                updated = dict(current.parameters or {})
                for key in ("QUERY", "LANG", "MAXREC", "FORMAT", "RESPONSEFORMAT", "RUNID"):
                    if params.get(key) is not None:
                        updated[key] = params.get(key)
                current.parameters = updated
        self.redirect(url + self.token_query(), status=303)

    async def delete(self, job_id: str, part: str | None = None) -> None:  # type: ignore[override]
        job = self.job(job_id)
        db: PlatformDatabase = self.application.settings["database"]
        with db.session() as s, s.begin():
            current = s.get(TapJob, job_id)
            if current is not None:
                s.delete(current)
        if job.result_path:
            Path(job.result_path).unlink(missing_ok=True)
        self.redirect(f"{self.tap_url}/async{self.token_query()}", status=303)


def _wait_change(runner: JobRunner, seconds: float) -> None:
    with runner.changed:
        runner.changed.wait(seconds)


def tap_routes(base: str, init: dict[str, Any]) -> list[tuple[str, type, dict[str, Any]]]:
    """The TAP routes under ``base`` (the service's base URL)."""
    job = r"([0-9a-f]{32})"
    return [
        (rf"{base}tap/sync", SyncHandler, init),
        (rf"{base}tap/async", AsyncJobsHandler, init),
        (rf"{base}tap/async/{job}", JobHandler, init),
        (
            rf"{base}tap/async/{job}/(phase|results|results/result|error|parameters|quote|executionduration|destruction|owner)",
            JobHandler,
            init,
        ),
        (rf"{base}tap/tables", TablesHandler, init),
        (rf"{base}tap/capabilities", CapabilitiesHandler, init),
        (rf"{base}tap/availability", AvailabilityHandler, init),
    ]
