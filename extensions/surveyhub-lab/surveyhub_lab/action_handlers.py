"""The routes of the panel's result actions: download the table, open it in a notebook, share a query.

``GET surveyhub/download?release=R&version=V&format=csv|votable|parquet&<search>`` streams the whole result
of a search as a file; ``POST surveyhub/notebooks`` writes a notebook reproducing a search (and loading an
import); ``POST surveyhub/history/{id}/share?team=T`` shares one of the user's queries with a team. Like
every route of the extension they are authenticated ``APIHandler``s and refuse with JSON naming the problem.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import tornado.web
from tornado.iostream import StreamClosedError

from surveyhub_lab.archive_client import ArchiveError
from surveyhub_lab.downloads import DOWNLOAD_FORMATS, download_filename, stream_get
from surveyhub_lab.errors import Refused
from surveyhub_lab.handlers import SurveyhubHandler, _valid
from surveyhub_lab.notebooks import (
    PAGING,
    adql_for,
    build_notebook,
    check_folder,
    jupyter_path,
    write_new_notebook,
)


def _release_version(release: Any, version: Any) -> tuple[str, str]:
    for name, value in (("release", release), ("version", version)):
        if not isinstance(value, str) or not _valid(value):
            raise Refused(400, "request_invalid", f"{name}: {value!r} is not a {name} name (e.g. DEMO, v1)")
    return release, version


async def _count(lab: Any, release: str, version: str, search: list[tuple[str, str]]) -> dict[str, Any]:
    """The search's exact total and columns (a ``limit=0`` search); the archive's refusal as Refused."""
    try:
        return await lab.archive.get_json(
            f"api/{release}/{version}/search", [*search, ("limit", "0"), ("history", "0")]
        )
    except ArchiveError as exc:
        code = "archive_unavailable" if exc.status >= 500 else "search_refused"
        raise Refused(exc.status, code, exc.message) from None


class DownloadHandler(SurveyhubHandler):
    """``GET surveyhub/download``: every row of a search as CSV, VOTable or Parquet, streamed."""

    @tornado.web.authenticated
    async def get(self) -> None:
        try:
            release, version = _release_version(
                self.get_query_argument("release", ""), self.get_query_argument("version", "")
            )
            fmt = self.get_query_argument("format", "").strip().lower()
            if fmt not in DOWNLOAD_FORMATS:
                raise Refused(
                    400,
                    "format_invalid",
                    f"format: {fmt or 'nothing'!r} is not a table format to download; "
                    f"choose {', '.join(DOWNLOAD_FORMATS)}",
                )
            self.archive()
            search = self.query_pairs("release", "version", *PAGING)
            counted = await _count(self.lab, release, version, search)
            total = int(counted.get("total", -1))
            limit = self.lab.download_max_rows
            if total > limit:
                raise Refused(
                    413,
                    "download_too_large",
                    f"the search matches {total:,} rows, more than the {limit:,} a download may hold: "
                    "narrow the search, or run it as an asynchronous TAP query",
                    total=total,
                    limit=limit,
                )
        except Refused as refusal:
            self.refuse(refusal)
            return
        filename = download_filename(release, version, counted.get("catalog", "lrs"), fmt, total)
        params = [*search, ("limit", str(max(total, 0))), ("format", DOWNLOAD_FORMATS[fmt])]
        started = False

        async def send(status: int, headers: dict[str, str], chunk: bytes) -> None:
            nonlocal started
            if not started:
                started = True
                self.set_status(200)
                self.set_header("Content-Type", headers.get("Content-Type", "application/octet-stream"))
                self.set_header("Content-Disposition", f'attachment; filename="{filename}"')
                self.set_header("X-Surveyhub-Total-Rows", str(total))
            self.write(chunk)
            await self.flush()

        try:
            answer = await stream_get(self.lab.archive, f"api/{release}/{version}/search", params, send)
        except ArchiveError as exc:  # no answer at all (nothing was sent)
            self.refuse(Refused(exc.status, "archive_unavailable", exc.message))
            return
        except StreamClosedError:
            self.log.info("surveyhub_lab: the browser left during the download of %s", filename)
            return
        if answer.broken is not None:
            # Part of the file is out: closing without the last chunk tells the browser it is incomplete
            # (finishing would make a cut table look whole).
            self.log.warning("surveyhub_lab: download %s cut short: %s", filename, answer.broken)
            self.request.connection.close()
            return
        if answer.status != 200:
            message = _error_message(answer.error_body, answer.status)
            self.refuse(Refused(answer.status, "search_refused", message))
            return
        if not started:  # an empty body (nothing was sent yet)
            await send(200, answer.headers, b"")
        self.finish()


def _error_message(body: bytes, status: int) -> str:
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        return body[:200].decode(errors="replace") or f"HTTP {status}"
    if isinstance(payload, dict) and payload.get("error"):
        return str(payload["error"])
    return f"HTTP {status}"


class NotebookHandler(SurveyhubHandler):
    """``POST surveyhub/notebooks``: write a notebook reproducing a search; answers its path (201).

    Body: ``{"release", "version", "search": {param: value}, "folder"?: "<path in the file browser>",
    "import"?: "<import id>"}``. Without a folder it goes into the import's folder when that is in the file
    browser, else the home folder.
    """

    @tornado.web.authenticated
    async def post(self) -> None:
        try:
            body = self.json_body(must_be_object="the body must be a JSON object")
            release, version = _release_version(body.get("release"), body.get("version"))
            search = _search_params(body.get("search"))
            folder = check_folder(body.get("folder")) if body.get("folder") is not None else None
            self.archive()
            counted = await _count(self.lab, release, version, list(search.items()))
            imported, where = await self._import(body.get("import"), release, version)
            root = Path(self.contents_manager.root_dir)
            if folder is None:
                local = _local_folder(imported["url"]) if imported else None
                folder = (jupyter_path(local, root) if local is not None else None) or ""
            adql = _adql(search, release, version, [c["name"] for c in counted.get("columns", [])])
            nb = build_notebook(
                release=release,
                version=version,
                search=search,
                total=int(counted.get("total", -1)),
                adql=adql,
                imported=imported,
                import_where=where,
            )
            stem = f"{release}-{version}-{search.get('catalog', 'lrs')}-search"
            written = await asyncio.to_thread(write_new_notebook, root / folder, stem, nb)
        except Refused as refusal:
            self.refuse(refusal)
            return
        path = "/".join(p for p in (folder, written.name) if p)
        self.send(
            {"path": path, "total": counted.get("total"), "adql": adql, "import": body.get("import")}, 201
        )

    async def _import(self, import_id: Any, release: str, version: str) -> tuple[dict[str, Any] | None, str]:
        """The completed import the notebook loads (None without one) and where it is, in words."""
        if import_id in (None, ""):
            return None, ""
        if not isinstance(import_id, str) or not re.fullmatch(r"[0-9a-f]{32}", import_id):
            raise Refused(400, "request_invalid", f"import: {import_id!r} is not an import id")
        progress = (await self.lab.imports.get(import_id)).progress()
        if progress["status"] != "completed":
            raise Refused(
                409,
                "import_not_completed",
                f"import: the import into {progress['folder']} is {progress['status']}; "
                "a notebook loads completed imports only (resume it first)",
            )
        space = progress["destination"].get("space", "user")
        where = "your space" if space == "user" else f"team {space.removeprefix('team:')}'s space"
        return {"id": import_id, "url": progress["url"], "folder": progress["folder"]}, where


def _search_params(search: Any) -> dict[str, str]:
    """The panel's search as the archive's search API takes it (strings), without paging."""
    if not isinstance(search, dict):
        raise Refused(400, "request_invalid", "search: give the search as an object of parameters")
    out: dict[str, str] = {}
    for key, value in search.items():
        if not isinstance(key, str) or not re.fullmatch(r"[a-z_][a-z0-9_]*", key):
            raise Refused(400, "request_invalid", f"search: {key!r} is not a search parameter")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise Refused(400, "request_invalid", f"search.{key}: {value!r} is not a text or a number")
        if key not in (*PAGING, "release", "version") and str(value).strip():
            out[key] = str(value)
    return out


def _local_folder(url: str) -> Path | None:
    if url.startswith("file://"):
        from urllib.parse import unquote, urlsplit

        return Path(unquote(urlsplit(url).path))
    return None


def _adql(search: dict[str, str], release: str, version: str, columns: list[str]) -> str | None:
    """The search in ADQL on the version's TAP schema (``<release>_<version>``), if it can be written so."""
    from surveyhub.archive.search import DISTANCE_COLUMN, SearchError, parse_search

    try:
        request = parse_search(search)
    except SearchError:
        return None
    schema = re.sub(r"[^a-z0-9_]", "_", f"{release}_{version}".lower())
    return adql_for(request, schema, columns, DISTANCE_COLUMN)


class ShareHandler(SurveyhubHandler):
    """``POST surveyhub/history/{id}/share?team=T``: share one of your queries with one of your teams."""

    @tornado.web.authenticated
    async def post(self, record_id: str) -> None:
        team = self.get_query_argument("team", "")
        if not _valid(team):
            self.refuse(Refused(400, "request_invalid", f"team: {team!r} is not a team name"))
            return
        path = f"api/history/{record_id}/share"
        response = await self.archive_response(lambda archive: archive.post(path, {"team": team}))
        if response is not None:
            self.pass_on(response)


def action_routes(kwargs: dict[str, Any]) -> list[tuple[str, type, dict[str, Any]]]:
    """The routes of the result actions (added to :func:`surveyhub_lab.handlers.routes`)."""
    return [
        (r"surveyhub/download", DownloadHandler, kwargs),
        (r"surveyhub/notebooks", NotebookHandler, kwargs),
        (r"surveyhub/history/([0-9a-f]{32})/share", ShareHandler, kwargs),
    ]
