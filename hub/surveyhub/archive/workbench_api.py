"""``api/workbench/...``: the team inspection workbench's routes in the archive service.

A team is a JupyterHub group whose properties carry ``surveyhub_team`` (:mod:`surveyhub.hub.access`);
under the hub the archive asks the hub which of the caller's groups are teams (the service holds the
``read:groups`` scope for it), standalone the tokens file lists them. Only members reach a team's lists:
any other caller gets the same 404 as for a list that does not exist, as the archive does for versions.

| route | what |
|---|---|
| ``GET api/workbench/teams`` | the caller's teams |
| ``GET/POST api/workbench/teams/{team}/lists`` | the team's lists; make one from obsids (+ query, source) |
| ``GET api/workbench/lists/{id}`` | the list, its items (with the catalog's class, subclass, z), verdicts |
| ``GET api/workbench/lists/{id}/changes?since=N`` | verdicts changed after change number N (polled) |
| ``PUT api/workbench/lists/{id}/items/{obsid}/verdict`` | the caller's verdict on one item (upsert) |
| ``GET api/workbench/lists/{id}/summary`` | progress per member and the disagreements |
| ``GET api/workbench/lists/{id}/export?format=parquet|csv`` | the result as a table |

The export is returned, not written: the app in the member's own server writes it into the team space
with the member's own credentials (the archive holds no credentials for users' or teams' spaces on S3,
and on Kubernetes it mounts none), so the file is the member's, in the team's group, like any other.

Database work runs in a small pool of its own, so a verdict never queues behind a long catalog query.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from tornado import web

from surveyhub.archive.app import ArchiveHandler
from surveyhub.archive.identity import caller_teams
from surveyhub.archive.workbench_store import (
    CatalogFacts,
    NotFound,
    VerdictInput,
    WorkbenchError,
    WorkbenchStore,
    list_json,
    parse_obsids,
    verdict_json,
)

_DB_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="workbench-db")


async def _db(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(_DB_POOL, fn, *args)


class WorkbenchHandler(ArchiveHandler):
    """Common ground: the store, the caller's teams, JSON bodies, 404 for what is not the caller's."""

    teams: frozenset[str]

    async def prepare(self) -> None:
        await super().prepare()
        self.teams = await caller_teams(self.identity, self.caller)

    @property
    def store(self) -> WorkbenchStore:
        return self.application.settings["workbench"]

    def json_body(self) -> Any:
        try:
            return json.loads(self.request.body or b"null")
        except ValueError as exc:
            raise web.HTTPError(400, reason=f"body: not JSON ({exc})") from None

    def member_of(self, team: str) -> None:
        if team not in self.teams:
            raise web.HTTPError(404, reason=f"no team {team}")

    async def target_list(self, list_id: str) -> Any:
        try:
            return await _db(self.store.get_list, list_id, self.teams)
        except NotFound as exc:
            raise web.HTTPError(404, reason=str(exc.args[0])) from None


class TeamsHandler(WorkbenchHandler):
    """``GET api/workbench/teams``: the teams the caller works in."""

    async def get(self) -> None:
        self.send_json({"user": self.caller.name, "teams": sorted(self.teams)})


class TeamListsHandler(WorkbenchHandler):
    """``GET/POST api/workbench/teams/{team}/lists``."""

    async def get(self, team: str) -> None:
        self.member_of(team)
        lists = await _db(self.store.lists, team)
        self.send_json({"team": team, "lists": [list_json(t) for t in lists]})

    async def post(self, team: str) -> None:
        self.member_of(team)
        body = self.json_body()
        if not isinstance(body, dict):
            raise web.HTTPError(400, reason="body: send a JSON object with title, release, version, obsids")
        unknown = set(body) - {"title", "release", "version", "obsids", "source", "query", "description"}
        if unknown:
            raise web.HTTPError(400, reason=f"body: unknown field {sorted(unknown)[0]!r}")
        for key in ("release", "version"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise web.HTTPError(400, reason=f"{key}: missing")
        for key in ("title", "query", "description", "source"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise web.HTTPError(400, reason=f"{key}: must be text")
        version = self.readable(body["release"], body["version"])
        try:
            obsids = parse_obsids(body.get("obsids"))
            facts = await asyncio.get_running_loop().run_in_executor(None, self._facts, version, obsids)
            record = await _db(
                lambda: self.store.create_list(
                    team,
                    self.caller.name,
                    title=body.get("title") or "",
                    release=version.release,
                    version=version.version,
                    facts=facts,
                    source=body.get("source") or "obsids",
                    query=body.get("query"),
                    description=body.get("description"),
                )
            )
        except WorkbenchError as exc:
            raise web.HTTPError(400, reason=str(exc)) from None
        self.set_status(201)
        self.send_json(list_json(record))

    def _facts(self, version: Any, obsids: list[int]) -> list[CatalogFacts]:
        """The catalog's class, subclass and z of each obsid; obsids not in the version are refused."""
        located = version.locate_spectra(obsids)
        missing = [o for o in obsids if o not in located]
        if missing:
            shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
            raise WorkbenchError(f"obsids: {len(missing)} not in {version.key}: {shown}")
        facts: dict[int, CatalogFacts] = {}
        for name in sorted({loc.catalog for loc in located.values()}):
            wanted = [o for o in obsids if located[o].catalog == name]
            cat = self.engine.catalog(version, name)
            columns = [c for c in ("obsid", "class", "subclass", "z") if c in cat.schema.names]
            for row in cat.take(cat.obsid_rows(wanted), columns).to_pylist():
                z = row.get("z")
                facts[int(row["obsid"])] = CatalogFacts(
                    int(row["obsid"]),
                    name,
                    row.get("class"),
                    row.get("subclass"),
                    None if z is None or z <= -999 else float(z),
                )
        return [facts[o] for o in obsids]


class ListHandler(WorkbenchHandler):
    """``GET api/workbench/lists/{id}``: the list, its items and every verdict (what the app loads first)."""

    async def get(self, list_id: str) -> None:
        record = await self.target_list(list_id)
        items = await _db(self.store.items, list_id)
        seq, verdicts = await _db(self.store.verdicts, list_id, 0)
        self.send_json(
            list_json(record)
            | {
                "seq": max([seq, *(v.seq for v in verdicts)]),
                "items": [
                    {
                        "obsid": int(i.obsid),
                        "position": i.position,
                        "catalog": i.catalog,
                        "class": i.catalog_class,
                        "subclass": i.catalog_subclass,
                        "z": i.catalog_z,
                    }
                    for i in items
                ],
                "verdicts": [verdict_json(v) for v in verdicts],
            }
        )


class ChangesHandler(WorkbenchHandler):
    """``GET api/workbench/lists/{id}/changes?since=N``: the cheap poll for teammates' new verdicts."""

    async def get(self, list_id: str) -> None:
        raw = self.get_query_argument("since", "0")
        if not raw.isdigit():
            raise web.HTTPError(400, reason=f"since: {raw!r} is not a change number")
        await self.target_list(list_id)
        seq, verdicts = await _db(self.store.verdicts, list_id, int(raw))
        self.send_json(
            {
                "seq": max([seq, int(raw), *(v.seq for v in verdicts)]),
                "verdicts": [verdict_json(v) for v in verdicts],
            }
        )


class VerdictHandler(WorkbenchHandler):
    """``PUT api/workbench/lists/{id}/items/{obsid}/verdict``: the caller's own verdict (an upsert)."""

    async def put(self, list_id: str, obsid: str) -> None:
        try:
            verdict = VerdictInput.parse(self.json_body())
        except WorkbenchError as exc:
            raise web.HTTPError(400, reason=str(exc)) from None
        try:
            saved = await _db(
                self.store.record_verdict, list_id, int(obsid), self.caller.name, self.teams, verdict
            )
        except NotFound as exc:
            raise web.HTTPError(404, reason=str(exc.args[0])) from None
        self.send_json(verdict_json(saved))


class SummaryHandler(WorkbenchHandler):
    """``GET api/workbench/lists/{id}/summary``: progress per member, disagreements."""

    async def get(self, list_id: str) -> None:
        await self.target_list(list_id)
        self.send_json(await _db(self.store.summary, list_id))


#: Column types of the export (so an empty column still has its type).
EXPORT_SCHEMA = pa.schema(
    [
        ("position", pa.int32()),
        ("obsid", pa.int64()),
        ("catalog", pa.string()),
        ("catalog_class", pa.string()),
        ("catalog_subclass", pa.string()),
        ("catalog_z", pa.float64()),
        ("member", pa.string()),
        ("class_ok", pa.bool_()),
        ("corrected_class", pa.string()),
        ("final_class", pa.string()),
        ("quality_flags", pa.string()),
        ("z_fix", pa.float64()),
        ("note", pa.string()),
        ("updated", pa.string()),
        ("disagreement", pa.bool_()),
    ]
)


def export_table(rows: list[dict[str, Any]], record: Any) -> pa.Table:
    """The export rows as an Arrow table, with the list's provenance in the schema metadata."""
    table = pa.Table.from_pylist(rows, schema=EXPORT_SCHEMA)
    meta = {"surveyhub.workbench": json.dumps(list_json(record) | {"exported": time.time()})}
    return table.replace_schema_metadata(meta)


class ExportHandler(WorkbenchHandler):
    """``GET api/workbench/lists/{id}/export?format=parquet|csv``: the result, one row per verdict."""

    async def get(self, list_id: str) -> None:
        fmt = self.get_query_argument("format", "parquet")
        if fmt not in ("parquet", "csv"):
            raise web.HTTPError(400, reason=f"format: {fmt!r}: use parquet or csv")
        record = await self.target_list(list_id)
        rows = await _db(self.store.export_rows, list_id)
        table = export_table(rows, record)
        sink = io.BytesIO()
        if fmt == "parquet":
            pq.write_table(table, sink)
            self.set_header("Content-Type", "application/vnd.apache.parquet")
        else:
            pacsv.write_csv(table, sink)
            self.set_header("Content-Type", "text/csv")
        self.set_header("Content-Disposition", f'attachment; filename="workbench-{list_id}.{fmt}"')
        self.finish(sink.getvalue())


def workbench_routes(base: str, init: dict[str, Any]) -> list[tuple[str, type[web.RequestHandler], dict]]:
    """The workbench's routes under the archive's ``base``."""
    team = r"([A-Za-z0-9][A-Za-z0-9_.-]*)"
    lid = r"([0-9a-f]{32})"
    routes: list[tuple[str, type[web.RequestHandler]]] = [
        (rf"{base}api/workbench/teams", TeamsHandler),
        (rf"{base}api/workbench/teams/{team}/lists", TeamListsHandler),
        (rf"{base}api/workbench/lists/{lid}", ListHandler),
        (rf"{base}api/workbench/lists/{lid}/changes", ChangesHandler),
        (rf"{base}api/workbench/lists/{lid}/summary", SummaryHandler),
        (rf"{base}api/workbench/lists/{lid}/export", ExportHandler),
        (rf"{base}api/workbench/lists/{lid}/items/([0-9]+)/verdict", VerdictHandler),
    ]
    return [(pattern, handler, init) for pattern, handler in routes]


__all__ = ["caller_teams", "export_table", "workbench_routes"]
