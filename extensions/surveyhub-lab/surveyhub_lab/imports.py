"""The import engine: release store (read-only) to the user's cloud space, server-side, as the user.

An import copies the released files of a list of obsids from one release version into a new folder of one
of the user's spaces, with the catalog rows of those obsids beside them and a ``manifest.json`` that says
what was imported, from where, when, and with which checksums, so the work can be cited and reproduced:

```
<folder>/spectra/spec-…fits.gz     the released files, under their LAMOST names
<folder>/catalog.parquet           the catalog rows of the imported obsids (from the archive's search API)
<folder>/manifest.json             release, version, obsids, query, files with size and sha256, times
<folder>/.surveyhub-import.json    the import's state: what is planned, what is done (resume reads it)
```

Who may read what is the archive's to say (``api/releases`` with the user's token: the server does not know
its user's groups), so the engine asks it (while it reads the version's index) and refuses versions it
does not list before anything is written; it finds each file through the version's obsid index and
reads it with the user's own permissions (on the embedded default, an ungranted version is unreadable for
the user's account anyway).

Copies run concurrently (at most ``concurrency`` files at once for the whole server, ``local_concurrency``
per import between local folders), with the blocking fsspec work in threads. Each file appears under its
final name only when complete and verified (:mod:`surveyhub_lab.storage`), so a cancelled, failed or
crashed import leaves only whole, correct files, and resuming copies only the ones that are missing. The
state file is saved every few seconds and the manifest is written last: a folder with a ``manifest.json``
is a finished import. A pointer to each import (``<user space>/.surveyhub/imports/<id>.json``) lets a
restarted server list them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import posixpath
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem

from surveyhub_lab.archive_client import ArchiveClient, ArchiveError
from surveyhub_lab.errors import Refused
from surveyhub_lab.spaces import Space, Spaces, Target
from surveyhub_lab.storage import (
    Cancelled,
    Committer,
    Throttle,
    committer_for,
    is_temporary,
    read_file,
    sha256_hex,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

STATE_NAME = ".surveyhub-import.json"
MANIFEST_NAME = "manifest.json"
SPECTRA_DIR = "spectra"
MANIFEST_FORMAT = "surveyhub-import/1"
#: Largest ``query`` object a client may attach (it is stored in the manifest, not interpreted).
MAX_QUERY_BYTES = 64 * 1024
#: Catalogs whose obsid index names released files, in the order their tables are named.
SPECTRUM_CATALOGS = ("lrs", "mrs")

RUNNING = "running"
CANCELLING = "cancelling"
CANCELLED = "cancelled"
INTERRUPTED = "interrupted"  # the server stopped (or crashed) while the import ran
FAILED = "failed"
COMPLETED = "completed"
RESUMABLE = (CANCELLED, INTERRUPTED, FAILED)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _human(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(nbytes) < 1000 or unit == "TB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} TB"  # pragma: no cover - the loop always returns


def _some(values: Sequence[Any], limit: int = 10) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f" (and {len(values) - limit} more)" if len(values) > limit else "")


@dataclass(frozen=True)
class ImportRequest:
    """A checked ``POST surveyhub/imports`` body."""

    release: str
    version: str
    obsids: list[int]
    destination: Mapping[str, Any]
    query: dict[str, Any]


def parse_request(body: Any, *, max_obsids: int) -> ImportRequest:
    """Check the request body field by field; Refused (400) names the first field at fault."""
    from surveyhub.releases.registry import check_name

    if not isinstance(body, Mapping):
        raise Refused(400, "request_invalid", "the body must be a JSON object")
    names = {}
    for name in ("release", "version"):
        value = body.get(name)
        try:
            names[name] = check_name(name, value if isinstance(value, str) else "")
        except ValueError:
            raise Refused(
                400, "request_invalid", f"{name}: {value!r} is not a {name} name (e.g. DEMO, v1)"
            ) from None
    raw = body.get("obsids")
    if not isinstance(raw, list) or not raw:
        raise Refused(400, "request_invalid", "obsids: give a non-empty list of obsids")
    obsids: list[int] = []
    seen: set[int] = set()
    for item in raw:
        if isinstance(item, bool) or not (
            (isinstance(item, int) and item > 0) or (isinstance(item, str) and item.strip().isdigit())
        ):
            raise Refused(
                400, "request_invalid", f"obsids: {item!r} is not an obsid (a positive whole number)"
            )
        obsid = int(item)
        if obsid not in seen:
            seen.add(obsid)
            obsids.append(obsid)
    if len(obsids) > max_obsids:
        raise Refused(
            400, "too_many_obsids", f"obsids: {len(obsids)} is above the limit of {max_obsids} per import"
        )
    query = body.get("query") or {}
    if not isinstance(query, Mapping):
        raise Refused(
            400, "request_invalid", "query: must be a JSON object (the search that found the obsids)"
        )
    if len(json.dumps(query)) > MAX_QUERY_BYTES:
        raise Refused(400, "request_invalid", f"query: larger than {MAX_QUERY_BYTES} bytes")
    return ImportRequest(names["release"], names["version"], obsids, body.get("destination"), dict(query))


@dataclass
class PlannedFile:
    """One released file to copy: where it is in the version and where it goes in the import folder."""

    obsid: int
    catalog: str
    source: str  # relative to the version, e.g. fits/20120928/<planid>/spec-….fits.gz
    path: str  # relative to the import folder, e.g. spectra/spec-….fits.gz
    size: int


@dataclass
class TableFile:
    """One result table of the import: the catalog rows of its obsids, as the archive's search gave them."""

    catalog: str
    path: str
    rows: int
    size: int
    sha256: str


@dataclass
class ImportJob:
    """One import: its plan, what is done, and (while it runs) its progress and task."""

    id: str
    user: str
    release: str
    version: str
    obsids: list[int]
    query: dict[str, Any]
    target: Target
    files: list[PlannedFile]
    tables: list[TableFile]
    version_info: dict[str, Any]
    created: str
    status: str = RUNNING
    updated: str = ""
    finished: str | None = None
    error: str | None = None
    failures: list[dict[str, str]] = field(default_factory=list)
    done: dict[str, str] = field(default_factory=dict)  # path -> sha256 of files under their final names
    # This run only (not saved): for rate, time left and "copied this run".
    copied: int = 0
    found: int = 0
    run_bytes: int = 0
    run_started: float = 0.0
    run_ended: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    task: asyncio.Task | None = None
    stop_status: str = CANCELLED
    dirty: bool = False

    @property
    def bytes_total(self) -> int:
        """Bytes of all planned files."""
        return sum(f.size for f in self.files)

    @property
    def bytes_done(self) -> int:
        """Bytes of the files under their final names."""
        return sum(f.size for f in self.files if f.path in self.done)

    @property
    def active(self) -> bool:
        """Whether a run of this import is under way."""
        return self.task is not None and not self.task.done()

    def path(self, relative: str) -> str:
        """A path inside the import folder, in the filesystem's own form."""
        return posixpath.join(self.target.path, relative)

    def progress(self) -> dict[str, Any]:
        """What ``GET surveyhub/imports/{id}`` answers (see the README for the fields)."""
        now = time.monotonic()
        elapsed = ((self.run_ended or now) - self.run_started) if self.run_started else 0.0
        rate = self.run_bytes / elapsed if elapsed > 0 and self.run_bytes else 0.0
        remaining = self.bytes_total - self.bytes_done
        eta: float | None
        if self.status == COMPLETED:
            eta = 0.0
        elif self.status in (RUNNING, CANCELLING) and rate > 0:
            eta = remaining / rate
        else:
            eta = None
        return {
            "id": self.id,
            "status": self.status,
            "release": self.release,
            "version": self.version,
            "destination": self.target.to_json(),
            "folder": self.target.folder,
            "url": self.target.url,
            "files_total": len(self.files),
            "files_done": len(self.done),
            "files_copied": self.copied,
            "files_found": self.found,
            "files_failed": len(self.failures),
            "bytes_total": self.bytes_total,
            "bytes_done": self.bytes_done,
            "rate_bytes_per_s": round(rate, 1),
            "elapsed_s": round(elapsed, 3),
            "eta_s": None if eta is None else round(eta, 1),
            "created": self.created,
            "updated": self.updated or self.created,
            "finished": self.finished,
            "error": self.error,
            "failures": self.failures[:10],
            "tables": [t.path for t in self.tables],
            "manifest": self.target.url + MANIFEST_NAME if self.status == COMPLETED else None,
        }

    def state(self) -> dict[str, Any]:
        """The state file's content (a fresh snapshot): enough to list, resume and finish after a restart."""
        self.updated = _now()
        return {
            "format": MANIFEST_FORMAT,
            "id": self.id,
            "user": self.user,
            "release": self.release,
            "version": self.version,
            "obsids": self.obsids,
            "query": self.query,
            "destination": self.target.to_json(),
            "version_info": self.version_info,
            "created": self.created,
            "updated": self.updated,
            "finished": self.finished,
            "status": self.status,
            "error": self.error,
            "failures": self.failures,
            "files": [asdict(f) for f in self.files],
            "tables": [asdict(t) for t in self.tables],
            "done": self._done_snapshot(),
        }

    def _done_snapshot(self) -> dict[str, str]:
        with self.lock:
            return dict(self.done)

    @classmethod
    def from_state(cls, state: Mapping[str, Any], target: Target) -> ImportJob:
        """Rebuild an import from its state file (a restarted server)."""
        return cls(
            id=state["id"],
            user=state.get("user", ""),
            release=state["release"],
            version=state["version"],
            obsids=[int(o) for o in state["obsids"]],
            query=dict(state.get("query") or {}),
            target=target,
            files=[PlannedFile(**f) for f in state["files"]],
            tables=[TableFile(**t) for t in state["tables"]],
            version_info=dict(state.get("version_info") or {}),
            created=state["created"],
            status=state.get("status", INTERRUPTED),
            updated=state.get("updated", ""),
            finished=state.get("finished"),
            error=state.get("error"),
            failures=list(state.get("failures") or []),
            done=dict(state.get("done") or {}),
        )

    def manifest(self, archive_url: str, completed: str) -> dict[str, Any]:
        """``manifest.json``: what a reader needs to cite the import and check or redo it."""
        by_path = {f.path: f for f in self.files}
        return {
            "format": MANIFEST_FORMAT,
            "id": self.id,
            "user": self.user,
            "release": self.release,
            "version": self.version,
            "title": self.version_info.get("title"),
            "published": self.version_info.get("published"),
            "acknowledgement": self.version_info.get("acknowledgement"),
            "archive": archive_url,
            "query": self.query,
            "obsids": self.obsids,
            "destination": self.target.to_json(),
            "created": self.created,
            "completed": completed,
            "files": [
                {
                    "obsid": f.obsid,
                    "catalog": f.catalog,
                    "path": f.path,
                    "source": f.source,
                    "size": f.size,
                    "sha256": self.done[f.path],
                }
                for f in sorted(by_path.values(), key=lambda f: f.path)
            ],
            "tables": [
                asdict(t)
                | {
                    "source": {
                        "endpoint": f"api/{self.release}/{self.version}/search",
                        "params": {
                            "catalog": t.catalog,
                            "obsid": [f.obsid for f in self.files if f.catalog == t.catalog],
                            "sort": "obsid",
                        },
                        "format": "parquet",
                    }
                }
                for t in self.tables
            ],
            "totals": {"files": len(self.files), "bytes": self.bytes_total},
            "software": {"surveyhub_lab": _version()},
        }


def _version() -> str:
    from surveyhub_lab import __version__

    return __version__


class ImportManager:
    """Every import of one user's server: create, list, watch, cancel, resume; state kept in the spaces.

    ``store_url`` is the release store root as this user's server reaches it; ``index_url`` is where the
    pointers to the user's imports live (a hidden folder of their own space by default).
    """

    def __init__(
        self,
        *,
        archive: ArchiveClient,
        spaces: Spaces,
        store_url: str,
        store_options: Mapping[str, Any] | None = None,
        index_url: str | None = None,
        index_options: Mapping[str, Any] | None = None,
        concurrency: int = 8,
        local_concurrency: int = 2,
        quota_bytes: int = 0,
        rate_limit: float = 0,
        max_obsids: int = 100_000,
        state_interval: float = 2.0,
        stream_threshold: int = 64 * 2**20,
    ) -> None:
        self.archive = archive
        self.spaces = spaces
        self.store_url = store_url
        self.store_options = dict(store_options or {})
        user = spaces.user
        self.index_url = (
            index_url if index_url is not None else (user.url + ".surveyhub/imports/" if user else "")
        )
        self.index_options = dict(
            index_options if index_options is not None else (user.storage_options if user else {})
        )
        self.concurrency = max(1, int(concurrency))
        self.local_concurrency = max(1, min(int(local_concurrency), self.concurrency))
        self.quota_bytes = int(quota_bytes)
        self.throttle = Throttle(rate_limit)
        self.max_obsids = max_obsids
        self.state_interval = state_interval
        self.stream_threshold = stream_threshold
        self.jobs: dict[str, ImportJob] = {}
        # Copy workers in threads of their own; planning and state writes in others, never queued behind them.
        self._copiers = ThreadPoolExecutor(
            max_workers=2 * self.concurrency, thread_name_prefix="surveyhub-copy"
        )
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="surveyhub-import")
        # At most `concurrency` files in flight for the whole server, whatever the number of imports.
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._loaded = False
        self._load_lock: asyncio.Lock | None = None
        self._claims: set[str] = set()
        self._store: Any = None

    # -- plumbing -------------------------------------------------------------------------------------

    async def _thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def store(self) -> Any:
        """The release store with this user's storage options (imported lazily, so servers start fast)."""
        if self._store is None:
            from surveyhub.releases.registry import ReleaseStore

            if not self.store_url:
                raise Refused(503, "not_configured", "no release store is configured (SURVEYHUB_STORE_URL)")
            self._store = ReleaseStore(self.store_url, self.store_options)
        return self._store

    def _version(self, release: str, version: str) -> Any:
        """The version object without a policy check: the archive already said the user may read it."""
        from surveyhub.releases.registry import ReleaseVersion

        return ReleaseVersion(self.store, release, version)

    def _index(self) -> tuple[Any, str] | None:
        if not self.index_url:
            return None
        fs, root = fsspec.core.url_to_fs(self.index_url, **self.index_options)
        return fs, root.rstrip("/")

    # -- listing and loading --------------------------------------------------------------------------

    async def load(self) -> None:
        """Read the pointers and state files of earlier imports (once, on first use after a start)."""
        if self._loaded:
            return
        if self._load_lock is None:
            self._load_lock = asyncio.Lock()
        async with self._load_lock:
            if self._loaded:
                return
            for job in await self._thread(self._read_all):
                self.jobs.setdefault(job.id, job)
            self._loaded = True

    def _read_all(self) -> list[ImportJob]:
        index = self._index()
        if index is None:
            return []
        fs, root = index
        try:
            pointers = [p for p in fs.ls(root, detail=False) if p.endswith(".json")]
        except FileNotFoundError:
            return []
        jobs = []
        for pointer_path in sorted(pointers):
            try:
                pointer = json.loads(fs.cat_file(pointer_path))
                space = self.spaces.get(pointer["space"])
                job = self._read_job(space, pointer["folder"])
            except (Refused, OSError, ValueError, KeyError) as exc:
                # A team the user left, a folder they deleted: gone from their view, not an error.
                log.info("surveyhub import %s not listed: %s", pointer_path, exc)
                continue
            if job is not None:
                jobs.append(job)
        return jobs

    def _read_job(self, space: Space, folder: str) -> ImportJob | None:
        target = Target(space, folder)
        fs = target.fs
        try:
            state = json.loads(fs.cat_file(posixpath.join(target.path, STATE_NAME)))
        except FileNotFoundError:
            return None
        job = ImportJob.from_state(state, target)
        if job.status != COMPLETED and fs.exists(posixpath.join(target.path, MANIFEST_NAME)):
            job.status = COMPLETED  # the manifest is written last: the server stopped just after it
        elif job.status in (RUNNING, CANCELLING):
            job.status = INTERRUPTED
            job.error = "the server stopped while the import ran; resume it to copy the missing files"
        return job

    async def list(self) -> list[dict[str, Any]]:
        """Progress of every import, newest first."""
        await self.load()
        return [j.progress() for j in sorted(self.jobs.values(), key=lambda j: j.created, reverse=True)]

    async def get(self, import_id: str) -> ImportJob:
        """One import; Refused (404) when there is none with that id."""
        await self.load()
        job = self.jobs.get(import_id)
        if job is None:
            raise Refused(404, "import_not_found", f"no import with id {import_id!r}")
        return job

    # -- creating -------------------------------------------------------------------------------------

    async def create(self, body: Any) -> ImportJob:
        """Check and plan an import, refuse it with a reason or start it; returns the running import.

        Everything that can refuse runs before the first byte is written: the request, the destination,
        the archive's word on the version, the obsids (in the version's index and in the archive's answer),
        the files (present and readable), and the quota.
        """
        await self.load()
        if self.spaces.user is None:
            raise Refused(503, "not_configured", "no cloud space is configured (SURVEYHUB_CLOUD_URL)")
        req = parse_request(body, max_obsids=self.max_obsids)
        target = self.spaces.resolve(req.destination)
        earlier = next((j for j in self.jobs.values() if j.target.url == target.url), None)
        if target.url in self._claims or (earlier is not None and earlier.active):
            raise Refused(
                409,
                "destination_exists",
                f"destination.folder: {target.folder!r} is being imported into; choose another folder",
            )
        self._claims.add(target.url)
        try:
            job = await self._plan(req, target)  # refuses a folder that is not empty
            if earlier is not None:  # an import whose folder the user has since emptied: forget it
                self.jobs.pop(earlier.id, None)
                await self._thread(self._forget, earlier)
            self.jobs[job.id] = job
        finally:
            self._claims.discard(target.url)
        self._start(job)
        return job

    async def _readable(self, release: str, version: str) -> tuple[str, dict[str, Any]]:
        try:
            user, readable = await self.archive.readable_versions()
        except ArchiveError as exc:
            code = "archive_refused" if exc.status in (401, 403) else "archive_unavailable"
            raise Refused(
                502 if code == "archive_unavailable" else 403, code, f"archive: {exc.message}"
            ) from None
        key = f"{release}/{version}"
        if key not in readable:
            yours = ", ".join(sorted(readable)) or "none"
            raise Refused(
                404,
                "version_not_readable",
                f"release version {key}: not one you may read (or there is no such version); "
                f"the versions you may read are: {yours}",
                release=release,
                version=version,
            )
        info = {k: v for k, v in readable[key].info.items() if k != "catalogs"}
        return user, info

    async def _plan(self, req: ImportRequest, target: Target) -> ImportJob:
        version = self._version(req.release, req.version)
        # Three independent questions at once: the archive's word on the version, the folder, and the
        # version's index. Nothing is shown or written before all three answer, and a refusal is reported
        # in this order, so the archive's "not yours to read" wins over whatever the store said.
        answers = await asyncio.gather(
            self._readable(req.release, req.version),
            self._thread(self._check_empty, target),
            self._thread(self._locate, version, req.obsids),
            return_exceptions=True,
        )
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
        (user, info), _, (locations, published) = answers
        info["published"] = published
        missing = [o for o in req.obsids if o not in locations]
        if missing:
            raise Refused(
                400,
                "obsids_not_found",
                f"obsids: {len(missing)} of {len(req.obsids)} are not spectra of "
                f"{req.release}/{req.version}: " + _some(missing),
                obsids=missing[:100],
            )
        by_catalog: dict[str, list[int]] = {}
        for obsid in req.obsids:
            by_catalog.setdefault(locations[obsid].catalog, []).append(obsid)
        order = {name: i for i, name in enumerate(SPECTRUM_CATALOGS)}
        catalogs = sorted(by_catalog, key=lambda c: (order.get(c, len(order)), c))
        # The archive's rows and the files' sizes are independent questions: ask them at the same time.
        sizes = asyncio.ensure_future(self._sizes(version, [locations[o] for o in req.obsids]))
        try:
            tables = [await self._table(req, catalog, by_catalog[catalog]) for catalog in catalogs]
            files = await sizes
        finally:
            if not sizes.done():
                sizes.cancel()
                await asyncio.gather(sizes, return_exceptions=True)
        table_bytes = sum(len(data) for _, data, _ in tables)
        await self._thread(self._check_quota, target.space, sum(f.size for f in files) + table_bytes, None)
        job = ImportJob(
            id=uuid.uuid4().hex,
            user=user,
            release=req.release,
            version=req.version,
            obsids=req.obsids,
            query=req.query,
            target=target,
            files=files,
            tables=[],
            version_info=info,
            created=_now(),
        )
        try:
            await self._thread(self._begin, job, tables)
        except OSError as exc:
            await self._thread(self._undo_begin, job)
            raise Refused(
                403 if isinstance(exc, PermissionError) else 500,
                "destination_unwritable",
                f"destination: {target.url} could not be written: {exc}",
            ) from None
        return job

    async def _table(self, req: ImportRequest, catalog: str, wanted: list[int]) -> tuple[str, bytes, int]:
        """The catalog rows of ``wanted`` from the archive, as Parquet bytes; every obsid must be there."""
        try:
            table = await self.archive.catalog_rows(req.release, req.version, catalog, wanted)
        except ArchiveError as exc:
            raise Refused(
                502 if exc.status >= 500 else exc.status, "archive_refused", f"archive search: {exc.message}"
            ) from None
        got = set(table.column("obsid").to_pylist()) if table.num_rows else set()
        absent = [o for o in wanted if o not in got]
        if absent:  # the archive is the authority on what the user may see: it must list every row
            raise Refused(
                400,
                "obsids_not_found",
                f"obsids: the archive gives no {catalog} row in {req.release}/{req.version} for "
                + _some(absent),
                obsids=absent[:100],
            )
        return catalog, _parquet_bytes(table), table.num_rows

    def _check_empty(self, target: Target) -> None:
        fs = target.fs
        fs.invalidate_cache(target.path)
        try:
            entries = fs.ls(target.path, detail=False)
        except FileNotFoundError:
            return
        if entries:
            raise Refused(
                409,
                "destination_exists",
                f"destination.folder: {target.folder!r} already exists and is not empty; "
                "an import goes into a new (or empty) folder",
            )

    def _locate(self, version: Any, obsids: Sequence[int]) -> tuple[dict[int, Any], str | None]:
        try:
            manifest = version.manifest
            return version.locate_spectra(obsids), manifest.published
        except PermissionError:
            raise Refused(
                403,
                "store_unreadable",
                f"release version {version.key}: the release store does not let your account read it",
            ) from None
        except (FileNotFoundError, ValueError):  # ManifestError is a ValueError
            raise Refused(
                404, "version_not_readable", f"release version {version.key}: not in the release store"
            ) from None

    async def _sizes(self, version: Any, locations: Sequence[Any]) -> list[PlannedFile]:
        """Each file's size, asked in parallel (an S3 store answers one HEAD at a time)."""
        fs = version.store.fs

        def sizes(batch: Sequence[Any]) -> list[tuple[Any, int | None, str | None]]:
            out = []
            for loc in batch:
                try:
                    out.append((loc, int(fs.info(version.path(loc.relpath))["size"]), None))
                except FileNotFoundError:
                    out.append((loc, None, "missing"))
                except PermissionError:
                    out.append((loc, None, "unreadable"))
            return out

        step = max(1, -(-len(locations) // self.concurrency))
        batches = [locations[i : i + step] for i in range(0, len(locations), step)]
        results = [
            r for part in await asyncio.gather(*(self._thread(sizes, b) for b in batches)) for r in part
        ]
        unreadable = [loc.obsid for loc, _, why in results if why == "unreadable"]
        if unreadable:
            raise Refused(
                403,
                "store_unreadable",
                f"release version {version.key}: the release store does not let your account read the files "
                f"of obsids {_some(unreadable)}",
            )
        missing = [loc.obsid for loc, _, why in results if why == "missing"]
        if missing:
            raise Refused(
                400,
                "spectra_missing",
                f"obsids: {version.key} has no released file for {_some(missing)}",
                obsids=missing[:100],
            )
        files: list[PlannedFile] = []
        names: set[str] = set()
        for loc, size, _ in results:
            name = posixpath.basename(loc.relpath)
            if name in names:  # never seen in LAMOST's naming, but two files must not share a path
                name = f"{loc.obsid}-{name}"
            names.add(name)
            files.append(
                PlannedFile(loc.obsid, loc.catalog, loc.relpath, f"{SPECTRA_DIR}/{name}", int(size or 0))
            )
        return files

    def _check_quota(self, space: Space, needed: int, exclude: str | None) -> None:
        """Refuse when the space would hold more than the quota (what is there + imports under way + this)."""
        if self.quota_bytes <= 0:
            return
        try:
            used = int(space.fs.du(space.root, total=True)) if space.fs.exists(space.root) else 0
        except FileNotFoundError:
            used = 0
        pending = sum(
            j.bytes_total - j.bytes_done
            for j in self.jobs.values()
            if j.active and j.id != exclude and j.target.space.name == space.name
        )
        if used + pending + needed > self.quota_bytes:
            under_way = f" (and {_human(pending)} more are being imported)" if pending else ""
            raise Refused(
                413,
                "quota_exceeded",
                f"quota: this import needs {_human(needed)}, but {space.label.lower()} holds {_human(used)}"
                f"{under_way} of its quota of {_human(self.quota_bytes)}; "
                f"{_human(used + pending + needed - self.quota_bytes)} too much",
                needed_bytes=needed,
                used_bytes=used,
                pending_bytes=pending,
                quota_bytes=self.quota_bytes,
            )

    def _begin(self, job: ImportJob, tables: Sequence[tuple[str, bytes, int]]) -> None:
        """Lay out the folder: tables (atomic), state file, then the pointer that lists the import."""
        fs = job.target.fs
        fs.makedirs(job.path(SPECTRA_DIR), exist_ok=True)
        committer = committer_for(fs)
        for i, (catalog, data, rows) in enumerate(tables):
            name = "catalog.parquet" if i == 0 else f"catalog-{catalog}.parquet"
            sha = sha256_hex(data)
            committer.put_bytes(job.path(name), data, sha)
            job.tables.append(TableFile(catalog, name, rows, len(data), sha))
        self._write_state(job, job.state())
        index = self._index()
        if index is not None:
            ifs, root = index
            ifs.makedirs(root, exist_ok=True)
            pointer = json.dumps(
                {
                    "id": job.id,
                    "space": job.target.space.name,
                    "folder": job.target.folder,
                    "created": job.created,
                }
            ).encode()
            committer_for(ifs).put_bytes(posixpath.join(root, f"{job.id}.json"), pointer, sha256_hex(pointer))

    def _undo_begin(self, job: ImportJob) -> None:
        """Remove what a failed :meth:`_begin` wrote (the folder was empty or absent before it)."""
        with contextlib.suppress(OSError):
            job.target.fs.rm(job.target.path, recursive=True)
        self._forget(job)

    def _forget(self, job: ImportJob) -> None:
        """Remove the pointer to an import (its folder is gone)."""
        index = self._index()
        if index is not None:
            with contextlib.suppress(OSError):
                index[0].rm_file(posixpath.join(index[1], f"{job.id}.json"))

    def _write_state(self, job: ImportJob, state: Mapping[str, Any]) -> None:
        """Write a snapshot of the state (taken on the event loop, so no copy mutates it meanwhile)."""
        data = json.dumps(state, separators=(",", ":")).encode()  # for machines; the manifest is for people
        committer_for(job.target.fs).put_bytes(job.path(STATE_NAME), data, sha256_hex(data))

    async def _save(self, job: ImportJob) -> None:
        job.dirty = False
        await self._thread(self._write_state, job, job.state())

    # -- running --------------------------------------------------------------------------------------

    def _start(self, job: ImportJob) -> None:
        job.cancel.clear()
        job.stop_status = CANCELLED
        job.status = RUNNING
        job.error = None
        job.finished = None
        job.copied = job.found = job.run_bytes = 0
        job.run_started = time.monotonic()
        job.run_ended = None
        job.task = asyncio.get_running_loop().create_task(self._run(job), name=f"surveyhub-import-{job.id}")

    async def _run(self, job: ImportJob) -> None:
        stop = asyncio.Event()
        saver: asyncio.Task | None = None
        try:
            await self._reconcile(job)
            saver = asyncio.get_running_loop().create_task(self._save_periodically(job, stop))
            job.failures = []
            todo = [f for f in job.files if f.path not in job.done]
            queue = iter(todo)  # shared by the workers; next() on a list iterator is atomic under the GIL
            failed: list[tuple[PlannedFile, BaseException]] = []
            loop = asyncio.get_running_loop()
            await asyncio.gather(
                *(
                    loop.run_in_executor(self._copiers, self._copy_worker, job, queue, failed)
                    for _ in range(min(self._workers(job), len(todo)))
                )
            )
            job.failures = [
                {"path": f.path, "obsid": str(f.obsid), "error": str(r) or type(r).__name__}
                for f, r in failed
            ]
            if job.cancel.is_set():
                job.status = job.stop_status
            elif failed:
                job.status = FAILED
                job.error = (
                    f"{len(failed)} of {len(todo)} files failed; resume to try them again: "
                    + job.failures[0]["error"]
                )
            else:
                await self._finish(job)
        except Exception as exc:
            log.exception("surveyhub import %s failed", job.id)
            job.status = job.stop_status if job.cancel.is_set() else FAILED
            job.error = f"{type(exc).__name__}: {exc}"
        finally:
            stop.set()
            if saver is not None:
                await saver  # never cancelled mid-write: an old state must not land after the last one
            job.run_ended = time.monotonic()
            job.finished = job.finished if job.status == COMPLETED else _now()
            try:
                await self._save(job)
            except Exception:
                log.exception("surveyhub import %s: could not save its state", job.id)

    async def _save_periodically(self, job: ImportJob, stop: asyncio.Event) -> None:
        """Save the state every ``state_interval`` seconds while copies go on (so a crash loses little)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.state_interval)
            if stop.is_set() or not job.dirty:
                continue
            try:
                await self._save(job)
            except Exception:  # a transient storage error must not stop the import; the next save retries
                job.dirty = True
                log.warning("surveyhub import %s: could not save its state", job.id, exc_info=True)

    def _workers(self, job: ImportJob) -> int:
        """Copy workers for a run: ``local_concurrency`` from local disk to local disk, else ``concurrency``.

        Waiting on a network store or S3 is what many workers hide. Between two local folders there is
        nothing to wait on: every copy is CPU and kernel work, and the kernel serialises the creation of
        files in one folder, so workers beyond the cores only contend (the lab_import benchmark's copying
        phase, 1,000 files on 2 cores: 0.18 s with 8 workers, 0.12 s with 2; see bench/lab_import.py).
        """
        local = isinstance(self.store.fs, LocalFileSystem) and isinstance(job.target.fs, LocalFileSystem)
        return self.local_concurrency if local else self.concurrency

    def _copy_worker(
        self, job: ImportJob, queue: Iterator[PlannedFile], failed: list[tuple[PlannedFile, BaseException]]
    ) -> None:
        """One of an import's copy workers (a thread): take files from ``queue`` until it is empty.

        Workers live for the whole run rather than one thread hand-off per file, which costs as much as a
        small file's copy. Progress is written straight into the job, under its lock.
        """
        version = self._version(job.release, job.version)
        committer = committer_for(job.target.fs)
        for planned in queue:
            if job.cancel.is_set():
                return
            with self._slots:
                try:
                    sha = self._copy_one(job, version, committer, planned)
                except Cancelled:
                    return
                except Exception as exc:  # one bad file does not stop the others; resume retries it
                    with job.lock:
                        failed.append((planned, exc))
                    continue
            with job.lock:
                job.done[planned.path] = sha
                job.copied += 1
                job.run_bytes += planned.size
                job.dirty = True

    def _copy_one(self, job: ImportJob, version: Any, committer: Committer, planned: PlannedFile) -> str:
        """Copy one released file into the import folder; returns its sha256."""
        source = version.path(planned.source)
        target = job.path(planned.path)
        src_fs = version.store.fs
        if planned.size > self.stream_threshold:
            return committer.put_stream(
                target, lambda: src_fs.open(source, "rb"), planned.size, job.cancel, self.throttle
            )
        data = read_file(src_fs, source)
        if len(data) != planned.size:
            raise OSError(f"{planned.source}: read {len(data)} bytes, the store listed {planned.size}")
        self.throttle.take(len(data), job.cancel)
        if job.cancel.is_set():
            raise Cancelled
        sha = sha256_hex(data)
        committer.put_bytes(target, data, sha)
        return sha

    async def _reconcile(self, job: ImportJob) -> None:
        """Before a run: take stock of the folder, so only missing or unverifiable files are copied."""
        found = await self._thread(self._take_stock, job)
        job.found = found

    def _take_stock(self, job: ImportJob) -> int:
        """Verify what the folder holds against the plan; returns how many planned files are in place."""
        fs = job.target.fs
        committer = committer_for(fs)
        folder = job.path(SPECTRA_DIR)
        fs.invalidate_cache(folder)
        try:
            entries = fs.ls(folder, detail=True)
        except FileNotFoundError:
            entries = []
        planned = {posixpath.basename(f.path): f for f in job.files}
        present: dict[str, int] = {}
        for entry in entries:
            name = posixpath.basename(entry["name"].rstrip("/"))
            if is_temporary(name):  # a copy cut short by a crash; this import is the folder's only writer
                fs.rm_file(entry["name"])
            elif name in planned:
                present[planned[name].path] = int(entry.get("size") or 0)
        for path in list(job.done):
            if path not in present:
                del job.done[path]  # the user deleted it since: copy it again
        found = 0
        version = None
        for f in job.files:
            if f.path not in present:
                continue
            size, sha = (
                (present[f.path], None) if present[f.path] != f.size else committer.digest(job.path(f.path))
            )
            expected = job.done.get(f.path)
            if sha is not None and expected is None:
                # Committed after the last state save: verified then; check it against the source now.
                version = version or self._version(job.release, job.version)
                expected = sha256_hex(read_file(version.store.fs, version.path(f.source)))
            if size == f.size and sha == expected:
                job.done[f.path] = sha
                found += 1
            else:
                job.done.pop(f.path, None)
                fs.rm_file(job.path(f.path))
        for table in job.tables:
            try:
                size, sha = committer.digest(job.path(table.path))
            except FileNotFoundError:
                size, sha = -1, ""
            if (size, sha) != (table.size, table.sha256):
                raise OSError(
                    f"{table.path}: missing or changed since the import began; start a new import instead"
                )
        job.dirty = True
        return found

    async def _finish(self, job: ImportJob) -> None:
        completed = _now()
        manifest = json.dumps(job.manifest(self.archive.base_url, completed), indent=1).encode()
        await self._thread(
            committer_for(job.target.fs).put_bytes, job.path(MANIFEST_NAME), manifest, sha256_hex(manifest)
        )
        job.status = COMPLETED
        job.finished = completed

    # -- cancelling, resuming, stopping ---------------------------------------------------------------

    async def cancel(self, import_id: str) -> ImportJob:
        """Stop a running import; files being copied are dropped, finished ones stay (resume continues)."""
        job = await self.get(import_id)
        if not job.active:
            if job.status == COMPLETED:
                raise Refused(
                    409, "import_finished", f"import {import_id} is completed; there is nothing to cancel"
                )
            return job
        job.status = CANCELLING
        job.cancel.set()
        await _wait(job.task)
        return job

    async def resume(self, import_id: str) -> ImportJob:
        """Start a cancelled, interrupted or failed import again: it copies only what is missing."""
        job = await self.get(import_id)
        if job.active:
            raise Refused(409, "import_running", f"import {import_id} is running")
        if job.status not in RESUMABLE:
            raise Refused(
                409,
                "import_finished",
                f"import {import_id} is {job.status}; only {', '.join(RESUMABLE)} imports resume",
            )
        await self._readable(job.release, job.version)  # access may have changed since
        remaining = sum(f.size for f in job.files if f.path not in job.done)
        await self._thread(self._check_quota, job.target.space, remaining, job.id)
        self._start(job)
        return job

    async def wait(self, import_id: str) -> ImportJob:
        """Wait for an import's current run to end (tests, the benchmark, scripts)."""
        job = await self.get(import_id)
        await _wait(job.task)
        return job

    async def shutdown(self) -> None:
        """Stop every running import as *interrupted* (resumable) and save its state: the server stops."""
        running = [j for j in self.jobs.values() if j.active]
        for job in running:
            job.stop_status = INTERRUPTED
            job.cancel.set()
        await asyncio.gather(*(_wait(j.task) for j in running), return_exceptions=True)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._copiers.shutdown(wait=False, cancel_futures=True)


async def _wait(task: Awaitable[Any] | None) -> None:
    if task is not None:
        await asyncio.shield(task)


def _parquet_bytes(table: Any) -> bytes:
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


__all__ = ["COMPLETED", "ImportJob", "ImportManager", "ImportRequest", "Refused", "parse_request"]
