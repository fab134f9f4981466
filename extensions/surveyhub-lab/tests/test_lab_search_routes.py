"""The panel's other ways to search, through the server extension, against a real archive service.

Names in the position field (LAMOST designations), the ADQL tab's worked examples (every one is run) and
errors, and the position-list upload, each checked against what the archive's own search says.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

pytestmark = pytest.mark.xdist_group("lab")

V2 = {"release": "DEMO", "version": "v2"}


async def rows_of(api: Any, version: str, **params: str) -> list[dict[str, Any]]:
    """The archive's search (through the extension) as a list of dicts."""
    query = {"release": "DEMO", "version": version, **params}
    status, result = await api("surveyhub", "search", params=query)
    assert status == 200, result
    names = [c["name"] for c in result["columns"]]
    return [dict(zip(names, row, strict=True)) for row in result["rows"]]


async def resolved(api: Any, pos: str, version: str = "v2") -> tuple[int, Any]:
    """``GET surveyhub/resolve`` of ``pos`` in DEMO ``version``."""
    return await api("surveyhub", "resolve", params={"release": "DEMO", "version": version, "pos": pos})


async def adql(api: Any, query: str, **more: Any) -> tuple[int, Any]:
    """``POST surveyhub/adql`` of ``query``."""
    return await api("surveyhub", "adql", method="POST", body={"query": query, **more})


async def upload(jp_fetch: Any, text: str, **params: str) -> tuple[int, Any]:
    """``POST surveyhub/upload`` of a CSV text into DEMO v2; (status, JSON) errors included."""
    try:
        response = await jp_fetch(
            "surveyhub", "upload", method="POST", body=text.encode(), params=V2 | params,
            headers={"Content-Type": "text/csv"},
        )  # fmt: skip
    except HTTPClientError as exc:
        return exc.code, json.loads(exc.response.body)
    return response.code, json.loads(response.body)


async def test_designations_resolve_to_their_catalog_rows_or_to_the_position_they_spell(api: Any) -> None:
    row = (await rows_of(api, "v2", columns="obsid,designation,ra,dec", limit="1", offset="7"))[0]
    bare = row["designation"].removeprefix("LAMOST ")
    for text in (row["designation"], bare, bare.lower()):
        status, where = await resolved(api, text)
        assert status == 200, where
        assert where["kind"] == "catalog"
        assert (where["obsid"], where["ra"], where["dec"]) == (row["obsid"], row["ra"], row["dec"])
    # the search takes the name too, and finds the row at distance 0
    found = await rows_of(api, "v2", pos=bare, radius="2arcsec", columns="obsid,distance_arcsec")
    assert found[0]["obsid"] == row["obsid"]
    assert found[0]["distance_arcsec"] < 1e-6
    # a well-formed designation no row has: the position its digits give
    status, where = await resolved(api, "J120000.00-450000.0")
    assert status == 200, where
    assert (where["kind"], where["ra"], where["dec"]) == ("name", 180.0, -45.0)
    assert "not in DEMO v2 lrs" in where["note"]
    # coordinates pass; other names are refused at the pos field, by the resolver and by the search
    status, where = await resolved(api, "10:00:00 +20:00:00")
    assert (status, where["kind"]) == (200, "coordinates")
    assert (where["ra"], where["dec"]) == (pytest.approx(150.0), pytest.approx(20.0))
    for route in ("resolve", "search"):
        status, refused = await api("surveyhub", route, params=V2 | {"pos": "M 31", "radius": "1arcmin"})
        assert (status, refused["code"]) == (400, "name_unknown"), refused
        assert refused["error"].startswith("pos: 'M 31' is not a position nor a LAMOST designation")


async def test_every_worked_adql_example_runs_and_errors_say_where(api: Any) -> None:
    status, listed = await api("surveyhub", "adql", "examples", params=V2)
    assert status == 200, listed
    ids = [e["id"] for e in listed["examples"]]
    assert ids == ["cone", "class-counts", "stellar-cuts", "top-snr", "gaia-join"]
    results = {}
    for example in listed["examples"]:
        assert "demo_v2." in example["query"]
        status, result = await adql(api, example["query"], release="DEMO", version="v2", maxrec=1000)
        assert status == 200, (example["id"], result)
        assert result["rows"], f"{example['id']} returned no rows"
        assert len(result["rows"][0]) == len(result["columns"])
        results[example["id"]] = result
    # the class counts agree with the search's exact totals
    counts = {row[0]: row[1] for row in results["class-counts"]["rows"]}
    assert set(counts) <= {"STAR", "GALAXY", "QSO", "Unknown"}
    for cls, n in counts.items():
        status, page = await api("surveyhub", "search", params=V2 | {"class": cls, "limit": "0"})
        assert page["total"] == n, cls
    # the cone is centred on a real row: every row is within 0.5 deg, nearest first
    dist = [row[-1] for row in results["cone"]["rows"]]
    assert dist == sorted(dist)
    assert dist[0] < 1e-4  # the centre is the row's position to 4 decimals
    assert dist[-1] <= 0.5
    # MAXREC is kept and said
    status, result = await adql(api, "SELECT obsid FROM demo_v2.lrs", maxrec=7)
    assert (status, len(result["rows"]), result["overflow"]) == (200, 7, True)
    # errors name the query and where in it
    status, refused = await adql(api, "SELECT TOP 3 FRM demo_v2.lrs")
    assert (status, refused["code"], refused["line"], refused["column"]) == (400, "adql_invalid", 1, 25)
    assert refused["error"].startswith("query: syntax error")
    status, refused = await adql(api, "  ")
    assert (status, refused["code"]) == (400, "adql_invalid")
    status, refused = await adql(api, "SELECT 1", maxrec=10**6)
    assert (status, refused["code"]) == (400, "request_invalid")
    assert refused["error"].startswith("maxrec:")


@pytest.mark.parametrize("lab_user", ["bob"])
async def test_a_version_bob_may_not_read_has_no_examples_tables_or_names(api: Any) -> None:
    status, refused = await api("surveyhub", "adql", "examples", params={"release": "DEMO", "version": "v0"})
    assert (status, refused["code"]) == (404, "version_not_readable")
    status, refused = await adql(api, "SELECT TOP 1 obsid FROM demo_v0.lrs")
    assert (status, refused["code"]) == (400, "adql_invalid")
    assert "demo_v0" in refused["error"]
    status, refused = await resolved(api, "J120000.00-450000.0", "v0")
    assert (status, refused["code"]) == (404, "version_not_readable")


async def test_a_position_list_upload_matches_each_row_by_position_or_obsid(api: Any, jp_fetch: Any) -> None:
    rows = await rows_of(api, "v2", columns="obsid,designation,ra,dec", limit="3", offset="20")
    lines = ["name,ra,dec,obsid"]
    for i, r in enumerate(rows[:2]):  # 1 arcsec north of two rows, by position
        lines.append(f"target-{i},{r['ra']},{r['dec'] + 1 / 3600},")
    lines.append(f"by-obsid,,,{rows[2]['obsid']}")
    lines.append("")  # blank lines are skipped
    lines.append("nowhere,180.0,-45.0,")  # nothing within 3 arcsec
    status, result = await upload(jp_fetch, "\n".join(lines) + "\n", radius="3arcsec")
    assert status == 200, result
    names = [c["name"] for c in result["columns"]]
    assert names[:3] == ["input_id", "input_line", "distance_arcsec"]
    got = {row[0]: dict(zip(names, row, strict=True)) for row in result["rows"]}
    assert set(got) == {"target-0", "target-1", "by-obsid"}
    for i in range(2):
        assert got[f"target-{i}"]["obsid"] == rows[i]["obsid"]
        assert got[f"target-{i}"]["distance_arcsec"] == pytest.approx(1.0, abs=0.01)
    assert (got["by-obsid"]["obsid"], got["by-obsid"]["input_line"]) == (rows[2]["obsid"], 4)
    assert (result["inputs"], result["total"]) == (4, 3)
    assert result["unmatched"] == [{"line": 6, "id": "nowhere", "error": None}]

    # without an id column, rows are named by their line; tabs and sexagesimal work too
    status, result = await upload(jp_fetch, "ra\tdec\n10:00:00\t+20:00:00\n", radius="1arcsec")
    assert (status, result["inputs"], result["unmatched"][0]["id"]) == (200, 1, "2")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x,y\n1,2\n", "line 1: no usable columns (found 'x', 'y'): the header must name ra and dec"),
        ("ra,dec\n10,20\n10,abc\n", "line 3: dec 'abc' is not a number"),
        ("ra,dec\n400,20\n", "line 2: ra '400' is outside 0..360"),
        ("id,obsid\na,12x\n", "line 2: obsid '12x' is not an obsid"),
        ("ra,dec\n10,\n", "line 2: give both ra and dec (dec is empty)"),
        ("ra,dec\n", "the file has a header but no rows"),
        ("", "the file is empty"),
        ("ra,dec\n" + "10,20\n" * 10_001, "line 10002: more than 10000 rows"),
    ],
)
async def test_an_upload_that_cannot_be_used_is_refused_naming_the_line(
    jp_fetch: Any, text: str, message: str
) -> None:
    status, refused = await upload(jp_fetch, text)
    assert (status, refused["code"]) == (400, "upload_invalid"), refused
    assert refused["error"].startswith(message), refused["error"]
