"""The panel's other ways to search: object names, ADQL through the archive's TAP, and position lists.

``GET surveyhub/resolve`` turns the position field's text (coordinates or a LAMOST designation) into a
position; ``GET surveyhub/adql/examples`` gives worked ADQL examples for a version; ``POST surveyhub/adql``
runs a query through the archive's TAP ``sync`` endpoint with the user's token; ``POST surveyhub/upload``
matches an uploaded CSV of positions or obsids against a catalog (the archive's ``crossmatch``: the nearest
row within a radius for each input row). Answers that hold rows have the shape of the search
(``columns``, ``rows``, ``total``, ``offset``), so the panel shows them in the same result grid.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlencode

import tornado.web

from surveyhub_lab.adql_examples import examples
from surveyhub_lab.archive_client import ArchiveError
from surveyhub_lab.errors import Refused
from surveyhub_lab.handlers import SurveyhubHandler, _valid
from surveyhub_lab.names import resolve
from surveyhub_lab.position_list import MAX_UPLOAD_ROWS, archive_csv, parse_position_list

#: Most rows an ADQL query from the panel brings back (its MAXREC); the panel pages through them.
MAX_ADQL_ROWS = 10_000
DEFAULT_ADQL_ROWS = 1_000
#: Longest ADQL text and largest uploaded file accepted.
MAX_ADQL_CHARS = 20_000
MAX_UPLOAD_BYTES = 5_000_000


def _refusal(exc: ArchiveError) -> Refused:
    """An archive error as the extension's refusal (a version the user may not read looks absent)."""
    if exc.status == 404:
        return Refused(404, "version_not_readable", exc.message)
    if exc.status >= 500:
        return Refused(502, "archive_unavailable", exc.message)
    return Refused(exc.status, "archive_refused", exc.message)


class _RowsHandler(SurveyhubHandler):
    """Shared ground of the routes below: release and version arguments, refusals."""

    async def answer(self, work: Awaitable[Any]) -> None:
        """Send what ``work`` answers, or the refusal it raises (the archive's own, translated)."""
        try:
            result = await work
        except Refused as refusal:
            self.refuse(refusal)
            return
        except ArchiveError as exc:
            self.refuse(_refusal(exc))
            return
        self.send(result)

    def version_args(self, required: bool = True) -> tuple[str, str]:
        release = self.get_query_argument("release", "")
        version = self.get_query_argument("version", "")
        for name, value in (("release", release), ("version", version)):
            if (value or required) and not _valid(value):
                raise Refused(
                    400, "request_invalid", f"{name}: {value!r} is not a {name} name (e.g. DEMO, v1)"
                )
        return release, version


class ResolveHandler(_RowsHandler):
    """``GET surveyhub/resolve?release=R&version=V&pos=TEXT[&catalog=lrs]``: where a position field points."""

    @tornado.web.authenticated
    async def get(self) -> None:
        await self.answer(self.resolved())

    async def resolved(self) -> dict[str, Any]:
        release, version = self.version_args()
        catalog = self.get_query_argument("catalog", "lrs")
        if not _valid(catalog):
            raise Refused(400, "request_invalid", f"catalog: {catalog!r} is not a catalog name")
        return await resolve(self.archive(), release, version, catalog, self.get_query_argument("pos", ""))


class AdqlExamplesHandler(_RowsHandler):
    """``GET surveyhub/adql/examples?release=R&version=V``: worked queries for that version's tables."""

    @tornado.web.authenticated
    async def get(self) -> None:
        await self.answer(self.listed())

    async def listed(self) -> dict[str, Any]:
        release, version = self.version_args()
        archive = self.archive()
        _, versions = await archive.readable_versions()
        readable = versions.get(f"{release}/{version}")
        if readable is None:
            raise Refused(404, "version_not_readable", f"no release version {release} {version}")
        catalogs = list((readable.info.get("catalogs") or {}).keys())
        centre = None
        if "lrs" in catalogs:
            first = await archive.get_json(
                f"api/{release}/{version}/search", {"columns": "ra,dec", "limit": "1", "count": "false"}
            )
            if first.get("rows"):
                centre = (float(first["rows"][0][0]), float(first["rows"][0][1]))
        return {
            "release": release,
            "version": version,
            "examples": examples(release, version, catalogs, centre),
        }


def tap_error_text(body: bytes) -> str:
    """The message of a TAP error document (VOTable ``INFO name=QUERY_STATUS value=ERROR``)."""
    try:
        root = ET.fromstring(body)  # noqa: S314 - the archive's own document
    except ET.ParseError:
        return body[:300].decode(errors="replace").strip() or "the query failed"
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "INFO" and el.get("name") == "QUERY_STATUS":
            return (el.text or el.get("value") or "the query failed").strip()
    return "the query failed"


class AdqlHandler(_RowsHandler):
    """``POST surveyhub/adql`` ``{"query", "maxrec", "release", "version"}``: the rows of an ADQL query.

    Run by the archive's TAP ``sync`` (so the query is in the user's history as ``tap-sync``), answered in
    the search's shape plus ``overflow`` (more rows than ``maxrec``); an ADQL error is refused 400
    ``adql_invalid`` with the archive's words after ``query:`` and, when it says, ``line``/``column``.
    """

    @tornado.web.authenticated
    async def post(self) -> None:
        await self.answer(self.run_body())

    async def run_body(self) -> dict[str, Any]:
        return await self.run(self.json_body(must_be_object='the body must be {"query": "SELECT ..."}'))

    async def run(self, body: dict[str, Any]) -> dict[str, Any]:
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            raise Refused(400, "adql_invalid", "query: give an ADQL query (SELECT ... FROM ...)")
        if len(query) > MAX_ADQL_CHARS:
            raise Refused(400, "adql_invalid", f"query: {len(query)} characters, at most {MAX_ADQL_CHARS}")
        maxrec = body.get("maxrec", DEFAULT_ADQL_ROWS)
        if not isinstance(maxrec, int) or isinstance(maxrec, bool) or not 1 <= maxrec <= MAX_ADQL_ROWS:
            raise Refused(
                400, "request_invalid", f"maxrec: {maxrec!r} must be a whole number 1..{MAX_ADQL_ROWS}"
            )
        release, version = str(body.get("release") or ""), str(body.get("version") or "")
        for name, value in (("release", release), ("version", version)):
            if value and not _valid(value):
                raise Refused(400, "request_invalid", f"{name}: {value!r} is not a {name} name")
        form = {
            "REQUEST": "doQuery",
            "LANG": "ADQL",
            "QUERY": query,
            "MAXREC": str(maxrec),
            "RESPONSEFORMAT": "json",
        }
        response = await self.archive().post("tap/sync", (), urlencode(form).encode())
        if response.status != 200:
            if response.status in (401, 403):
                raise Refused(403, "archive_refused", response.error_message())
            if response.status >= 500:
                raise Refused(502, "archive_unavailable", tap_error_text(response.body))
            text = tap_error_text(response.body)
            where = re.search(r"\(line (\d+), column (\d+)\)", text)
            extra = {"line": int(where.group(1)), "column": int(where.group(2))} if where else {}
            raise Refused(400, "adql_invalid", f"query: {text}", **extra)
        payload = response.json()
        if payload.get("error"):
            raise Refused(400, "adql_failed", f"query: {payload['error']}")
        rows = payload.get("rows", [])
        return {
            "release": release,
            "version": version,
            "catalog": "ADQL",
            "total": len(rows),
            "offset": 0,
            "columns": payload.get("columns", []),
            "rows": rows,
            "overflow": bool(payload.get("overflow")),
            "maxrec": maxrec,
            "query": {"adql": query},
        }


class UploadHandler(_RowsHandler):
    """``POST surveyhub/upload?release=R&version=V[&catalog=lrs][&radius=3arcsec]``, the CSV as the body.

    Each usable input row gets the version's nearest catalog row within ``radius`` (or the row of its
    obsid). Answers the matched rows in the search's shape, led by the input row's ``input_id`` and
    ``input_line``, with ``inputs`` (rows read) and ``unmatched`` (``[{"line", "id"}]``).
    """

    @tornado.web.authenticated
    async def post(self) -> None:
        await self.answer(self.match())

    async def match(self) -> dict[str, Any]:
        from surveyhub.archive.search import SearchError, parse_radius

        release, version = self.version_args()
        catalog = self.get_query_argument("catalog", "lrs")
        if not _valid(catalog):
            raise Refused(400, "request_invalid", f"catalog: {catalog!r} is not a catalog name")
        radius = self.get_query_argument("radius", "3arcsec")
        try:
            parse_radius(radius)
        except SearchError as exc:
            raise Refused(400, "request_invalid", str(exc)) from None
        if len(self.request.body) > MAX_UPLOAD_BYTES:
            raise Refused(413, "upload_invalid", f"the file is above {MAX_UPLOAD_BYTES // 1_000_000} MB")
        try:
            text = self.request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(400, "upload_invalid", "the file is not UTF-8 text (a CSV file)") from None
        inputs = parse_position_list(text, MAX_UPLOAD_ROWS)
        response = await self.archive().post(
            f"api/{release}/{version}/crossmatch",
            {"catalog": catalog, "radius": radius},
            archive_csv(inputs).encode(),
            "text/csv",
        )
        if response.status != 200:
            raise _refusal(ArchiveError(response.status, response.error_message()))
        answer = response.json()
        by_line = {r.line: r for r in inputs}
        match_names: list[str] = []
        rows: list[list[Any]] = []
        unmatched: list[dict[str, Any]] = []
        for entry in answer.get("matches", []):
            source = by_line[int(entry["input"]["line"])]
            match = entry.get("match")
            if not match:
                unmatched.append({"line": source.line, "id": source.id, "error": entry.get("error")})
                continue
            if not match_names:
                match_names = ["distance_arcsec", *(k for k in match if k != "distance_arcsec")]
            rows.append([source.id, source.line, *(match.get(k) for k in match_names)])
        described = {
            "input_id": "The input row's id or name (its line number when the file has none)",
            "input_line": "The input row's line in the uploaded file",
            "distance_arcsec": "Distance from the input position to the matched row (0 for an obsid)",
        }
        columns = [
            {"name": n, "unit": "arcsec" if n == "distance_arcsec" else None, "description": described.get(n)}
            for n in ["input_id", "input_line", *match_names]
        ]
        return {
            "release": release,
            "version": version,
            "catalog": catalog,
            "radius_deg": answer.get("radius_deg"),
            "total": len(rows),
            "offset": 0,
            "inputs": len(inputs),
            "unmatched": unmatched,
            "columns": columns,
            "rows": rows,
            "query": {"upload": len(inputs), "radius": radius, "catalog": catalog},
        }


def search_routes(kwargs: dict[str, Any]) -> list[tuple[str, type, dict[str, Any]]]:
    """The routes of this module, relative to the server's base URL."""
    return [
        (r"surveyhub/resolve", ResolveHandler, kwargs),
        (r"surveyhub/adql/examples", AdqlExamplesHandler, kwargs),
        (r"surveyhub/adql", AdqlHandler, kwargs),
        (r"surveyhub/upload", UploadHandler, kwargs),
    ]
