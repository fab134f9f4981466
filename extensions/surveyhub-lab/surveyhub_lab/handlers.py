"""The routes of the server extension, under ``<base_url>surveyhub/`` (JSON unless the archive sends bytes).

Every handler is an authenticated ``APIHandler``: a request without the server's token or cookie gets 403
before anything is asked of the archive or the storage. Refusals are JSON
``{"error": "<what is wrong, naming it>", "code": "<stable code>", "status": N}``; answers the archive
gives (its own errors too) are passed on as they came. The shapes are listed in the extension's README.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import tornado.web
from jupyter_server.base.handlers import APIHandler

from surveyhub_lab.archive_client import ArchiveClient, ArchiveError
from surveyhub_lab.errors import Refused
from surveyhub_lab.names import resolve_search_params

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"


class SurveyhubHandler(APIHandler):
    """Shared ground: the extension's objects, JSON answers and refusals."""

    lab: Any

    def initialize(self, lab: Any) -> None:
        self.lab = lab

    def send(self, payload: Any, status: int = 200) -> None:
        """Answer ``payload`` as JSON with ``status``."""
        self.set_status(status)
        self.finish(json.dumps(payload))

    def refuse(self, refusal: Refused) -> None:
        """Answer a refusal as JSON that names the problem."""
        self.send(refusal.to_json(), refusal.status)

    def json_body(self, must_be_object: str | None = None) -> Any:
        """The request's JSON body; Refused (400) when it is not JSON, or, with ``must_be_object`` (the
        sentence to say), when it is not a JSON object."""
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError:
            raise Refused(400, "request_invalid", "the body is not JSON") from None
        if must_be_object is not None and not isinstance(body, dict):
            raise Refused(400, "request_invalid", must_be_object)
        return body

    def archive(self) -> Any:
        """The archive client; Refused (503) outside the platform."""
        if not self.lab.archive.configured:
            raise Refused(503, "not_configured", "no archive service is configured (SURVEYHUB_ARCHIVE_URL)")
        return self.lab.archive

    async def archive_response(self, request: Callable[[ArchiveClient], Awaitable[Any]]) -> Any | None:
        """The archive's answer to ``request(archive)``, whatever its status; None once the refusal is
        sent (no archive configured, or no answer from it)."""
        try:
            return await request(self.archive())
        except Refused as refusal:
            self.refuse(refusal)
        except ArchiveError as exc:
            self.refuse(Refused(exc.status, "archive_unavailable", exc.message))
        return None

    def pass_on(self, response: Any, *, headers: bool = False) -> None:
        """Answer what the archive answered: status, type and body (and, with ``headers``, its others)."""
        self.set_status(response.status)
        if headers:
            for name, value in response.headers.items():
                if name != "Content-Type":
                    self.set_header(name, value)
        self.finish(response.body, set_content_type=response.content_type)

    async def proxy(self, path: str, params: list[tuple[str, str]] | Mapping[str, str] = ()) -> None:
        """Pass an archive answer on: status, headers, type and body as the archive gave them."""
        response = await self.archive_response(lambda archive: archive.get(path, params))
        if response is not None:
            self.pass_on(response, headers=True)

    def with_path(self, progress: dict[str, Any]) -> dict[str, Any]:
        """An import's progress with ``path``: its folder in the file browser (None when not shown there)."""
        return with_browser_path(progress, Path(self.contents_manager.root_dir))

    def query_pairs(self, *skip: str) -> list[tuple[str, str]]:
        """The request's query string as (name, value) pairs in order, without ``skip``."""
        return [
            (name, value.decode())
            for name, values in self.request.query_arguments.items()
            if name not in skip
            for value in values
        ]


class ReleasesHandler(SurveyhubHandler):
    """``GET surveyhub/releases``: the versions the user may read (the archive's ``api/releases``)."""

    @tornado.web.authenticated
    async def get(self) -> None:
        await self.proxy("api/releases")


class SearchHandler(SurveyhubHandler):
    """``GET surveyhub/search?release=R&version=V&...``: the archive's search, the rest passed through."""

    @tornado.web.authenticated
    async def get(self) -> None:
        release = self.get_query_argument("release", "")
        version = self.get_query_argument("version", "")
        for name, value in (("release", release), ("version", version)):
            if not _valid(value):
                self.refuse(
                    Refused(400, "request_invalid", f"{name}: {value!r} is not a {name} name (e.g. DEMO, v1)")
                )
                return
        pairs = self.query_pairs("release", "version")
        try:  # a LAMOST designation in ``pos`` becomes its catalog row's position (surveyhub_lab.names)
            pairs = await resolve_search_params(self.archive(), release, version, pairs)
        except Refused as refusal:
            self.refuse(refusal)
            return
        except ArchiveError as exc:
            self.refuse(Refused(exc.status, "archive_refused", exc.message))
            return
        await self.proxy(f"api/{release}/{version}/search", pairs)


class SpectrumHandler(SurveyhubHandler):
    """``GET surveyhub/spectra/{release}/{version}/{obsid}/{fits|png|thumb|csv|info}``: one spectrum."""

    @tornado.web.authenticated
    async def get(self, release: str, version: str, obsid: str, kind: str) -> None:
        await self.proxy(f"api/{release}/{version}/spectra/{obsid}/{kind}")


class HistoryHandler(SurveyhubHandler):
    """``GET surveyhub/history``: the user's searches and queries (and their teams' shared ones)."""

    @tornado.web.authenticated
    async def get(self) -> None:
        await self.proxy("api/history")


class InfoHandler(SurveyhubHandler):
    """``GET surveyhub/info``: what the panel shows of the set-up (addresses, limits); no secrets."""

    @tornado.web.authenticated
    async def get(self) -> None:
        lab = self.lab
        self.send(
            {
                "archive_url": lab.archive_url or None,
                "tap_url": lab.tap_url or None,
                "releases_dir": lab.releases_dir or None,
                "concurrency": lab.concurrency,
                "quota_bytes": lab.quota_bytes or None,
                "rate_limit": lab.rate_limit or None,
                "max_obsids": lab.max_obsids,
                "configured": bool(lab.archive_url and lab.cloud_url),
            }
        )


class DestinationsHandler(SurveyhubHandler):
    """``GET surveyhub/destinations``: the user's space and their teams' spaces."""

    @tornado.web.authenticated
    async def get(self) -> None:
        self.send({"destinations": [space.to_json() for space in self.lab.spaces]})


class ImportsHandler(SurveyhubHandler):
    """``GET surveyhub/imports`` lists; ``POST`` starts one (202 once planned and checked)."""

    @tornado.web.authenticated
    async def get(self) -> None:
        self.send({"imports": [self.with_path(p) for p in await self.lab.imports.list()]})

    @tornado.web.authenticated
    async def post(self) -> None:
        try:
            body = self.json_body()
            self.archive()
            job = await self.lab.imports.create(body)
        except Refused as refusal:
            self.refuse(refusal)
            return
        self.set_header("Location", self.request.path.rstrip("/") + "/" + job.id)
        self.send(self.with_path(job.progress()), 202)


class ImportHandler(SurveyhubHandler):
    """``GET surveyhub/imports/{id}``: progress; ``DELETE``: cancel (answers once it has stopped)."""

    @tornado.web.authenticated
    async def get(self, import_id: str) -> None:
        try:
            job = await self.lab.imports.get(import_id)
        except Refused as refusal:
            self.refuse(refusal)
            return
        self.send(self.with_path(job.progress()))

    @tornado.web.authenticated
    async def delete(self, import_id: str) -> None:
        try:
            job = await self.lab.imports.cancel(import_id)
        except Refused as refusal:
            self.refuse(refusal)
            return
        self.send(self.with_path(job.progress()))


class ResumeHandler(SurveyhubHandler):
    """``POST surveyhub/imports/{id}/resume``: copy what a cancelled, interrupted or failed import misses."""

    @tornado.web.authenticated
    async def post(self, import_id: str) -> None:
        try:
            self.archive()
            job = await self.lab.imports.resume(import_id)
        except Refused as refusal:
            self.refuse(refusal)
            return
        self.send(self.with_path(job.progress()), 202)


def with_browser_path(progress: dict[str, Any], root: Path) -> dict[str, Any]:
    """Add ``path``, where the import folder is in JupyterLab's file browser (relative to ``root``).

    The panel's folder links open it there. A space on local disk is linked into the home (``~/cloud``,
    ``~/teams/<team>``); a space on S3 is not in the file browser at all, so its ``path`` is None.
    """
    from surveyhub_lab.notebooks import jupyter_path

    url = progress.get("url") or ""
    local = Path(unquote(urlsplit(url).path)) if url.startswith("file://") else None
    return progress | {"path": jupyter_path(local, root) if local is not None else None}


def _valid(name: str) -> bool:
    """Whether ``name`` is a release or version name (so it cannot change the archive path it goes into)."""
    from surveyhub.releases.registry import check_name

    try:
        check_name("name", name)
    except ValueError:
        return False
    return True


def routes(kwargs: dict[str, Any]) -> list[tuple[str, type, dict[str, Any]]]:
    """The extension's routes, relative to the server's base URL (the extension app prefixes it)."""
    from surveyhub_lab.action_handlers import action_routes
    from surveyhub_lab.apps_routes import apps_routes
    from surveyhub_lab.pixels import pixels_routes
    from surveyhub_lab.search_routes import search_routes

    return [
        (r"surveyhub/releases", ReleasesHandler, kwargs),
        (r"surveyhub/search", SearchHandler, kwargs),
        (
            rf"surveyhub/spectra/({_NAME})/({_NAME})/([0-9]+)/(fits|png|thumb|csv|info)",
            SpectrumHandler,
            kwargs,
        ),
        (r"surveyhub/history", HistoryHandler, kwargs),
        (r"surveyhub/info", InfoHandler, kwargs),
        (r"surveyhub/destinations", DestinationsHandler, kwargs),
        (r"surveyhub/imports", ImportsHandler, kwargs),
        (r"surveyhub/imports/([0-9a-f]{32})", ImportHandler, kwargs),
        (r"surveyhub/imports/([0-9a-f]{32})/resume", ResumeHandler, kwargs),
        *action_routes(kwargs),
        *search_routes(kwargs),
        *apps_routes(kwargs),
        *pixels_routes(kwargs),
    ]
