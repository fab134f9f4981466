"""The routes of the server extension, under ``<base_url>surveyhub/`` (JSON unless the archive sends bytes).

Every handler is an authenticated ``APIHandler``: a request without the server's token or cookie gets 403
before anything is asked of the archive or the storage. Refusals are JSON
``{"error": "<what is wrong, naming it>", "code": "<stable code>", "status": N}``; answers the archive
gives (its own errors too) are passed on as they came. The shapes are listed in the extension's README.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler

from surveyhub_lab.archive_client import ArchiveError
from surveyhub_lab.errors import Refused

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

    def archive(self) -> Any:
        """The archive client; Refused (503) outside the platform."""
        if not self.lab.archive.configured:
            raise Refused(503, "not_configured", "no archive service is configured (SURVEYHUB_ARCHIVE_URL)")
        return self.lab.archive

    async def proxy(self, path: str, params: list[tuple[str, str]] | Mapping[str, str] = ()) -> None:
        """Pass an archive answer on: status, type and body as the archive gave them."""
        try:
            response = await self.archive().get(path, params)
        except Refused as refusal:
            self.refuse(refusal)
            return
        except ArchiveError as exc:
            self.refuse(Refused(exc.status, "archive_unavailable", exc.message))
            return
        self.set_status(response.status)
        for name, value in response.headers.items():
            if name != "Content-Type":
                self.set_header(name, value)
        self.finish(response.body, set_content_type=response.content_type)

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
        await self.proxy(f"api/{release}/{version}/search", self.query_pairs("release", "version"))


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
        self.send({"imports": await self.lab.imports.list()})

    @tornado.web.authenticated
    async def post(self) -> None:
        try:
            try:
                body = json.loads(self.request.body or b"null")
            except ValueError:
                raise Refused(400, "request_invalid", "the body is not JSON") from None
            self.archive()
            job = await self.lab.imports.create(body)
        except Refused as refusal:
            self.refuse(refusal)
            return
        self.set_header("Location", self.request.path.rstrip("/") + "/" + job.id)
        self.send(job.progress(), 202)


class ImportHandler(SurveyhubHandler):
    """``GET surveyhub/imports/{id}``: progress; ``DELETE``: cancel (answers once it has stopped)."""

    @tornado.web.authenticated
    async def get(self, import_id: str) -> None:
        try:
            job = await self.lab.imports.get(import_id)
        except Refused as refusal:
            self.refuse(refusal)
            return
        self.send(job.progress())

    @tornado.web.authenticated
    async def delete(self, import_id: str) -> None:
        try:
            job = await self.lab.imports.cancel(import_id)
        except Refused as refusal:
            self.refuse(refusal)
            return
        self.send(job.progress())


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
        self.send(job.progress(), 202)


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
    ]
