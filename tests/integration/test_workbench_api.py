"""The workbench's HTTP API on a real archive service: teams see only their own lists, nothing is lost.

alice and bob are team ``astro``, carol team ``cosmo`` (tokens file of :mod:`tests.support.workbench`);
``lamost-partners`` grants DEMO v1 to all three and is not a team. Concurrency: threads post verdicts of
two members over HTTP at once while a third polls the change feed; every write must be in the database
and in the feed. The same concurrency test runs on PostgreSQL 15 when Debian's packages are there.
"""

from __future__ import annotations

import io
import json
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import requests

from surveyhub.releases.registry import ReleaseStore
from tests.support.platform import reachable_dir
from tests.support.workbench import postgres_missing, session_for, temporary_postgres, workbench_archive


@pytest.fixture(scope="module")
def archive(platform_store: ReleaseStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with workbench_archive(platform_store.url, tmp_path_factory.mktemp("wb-sqlite")) as url:
        yield url


@pytest.fixture(scope="module")
def obsids(archive: str) -> list[int]:
    answer = session_for("alice").get(
        archive + "api/DEMO/v1/search", params={"columns": "obsid", "limit": "60", "sort": "obsid"}
    )
    assert answer.status_code == 200, answer.text
    return [row[0] if isinstance(row, list) else row["obsid"] for row in answer.json()["rows"]]


def make_list(url: str, user: str, team: str, obsids: list[int], title: str = "candidates") -> dict:
    answer = session_for(user).post(
        f"{url}api/workbench/teams/{team}/lists",
        json={
            "title": title,
            "release": "DEMO",
            "version": "v1",
            "obsids": obsids,
            "source": "query",
            "query": "SELECT obsid FROM demo_v1.lrs WHERE snrg > 10",
            "description": "from a TAP query",
        },
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def put_verdict(url: str, user: str, list_id: str, obsid: int, body: dict) -> requests.Response:
    return session_for(user).put(f"{url}api/workbench/lists/{list_id}/items/{obsid}/verdict", json=body)


def test_a_teams_lists_are_its_members_only(archive: str, obsids: list[int]) -> None:
    alice, bob, carol = (session_for(u) for u in ("alice", "bob", "carol"))
    assert alice.get(archive + "api/workbench/teams").json()["teams"] == ["astro"]
    assert carol.get(archive + "api/workbench/teams").json()["teams"] == ["cosmo"]
    made = make_list(archive, "alice", "astro", obsids[:10])
    lid = made["id"]
    assert made["n_items"] == 10
    assert made["team"] == "astro"
    assert made["created_by"] == "alice"

    # bob, in the team, sees the list with the catalog's facts of every item
    listed = bob.get(archive + "api/workbench/teams/astro/lists").json()["lists"]
    assert lid in [t["id"] for t in listed]
    loaded = bob.get(f"{archive}api/workbench/lists/{lid}").json()
    assert [i["obsid"] for i in loaded["items"]] == obsids[:10]
    assert all(i["class"] in ("STAR", "GALAXY", "QSO", "Unknown") for i in loaded["items"])
    assert loaded["query"].startswith("SELECT obsid")
    assert put_verdict(archive, "bob", lid, obsids[0], {"class_ok": True}).status_code == 200

    # carol (another team) gets the same 404 as for a list that does not exist, on every route
    missing = "0" * 32
    for path in ("", "/changes?since=0", "/summary", "/export?format=csv"):
        theirs = carol.get(f"{archive}api/workbench/lists/{lid}{path}")
        nothing = carol.get(f"{archive}api/workbench/lists/{missing}{path}")
        assert theirs.status_code == nothing.status_code == 404, (path, theirs.text)
        assert theirs.json()["error"].replace(lid, missing) == nothing.json()["error"]
    assert put_verdict(archive, "carol", lid, obsids[0], {"class_ok": True}).status_code == 404
    assert carol.get(archive + "api/workbench/teams/astro/lists").status_code == 404
    assert (
        carol.post(
            archive + "api/workbench/teams/astro/lists",
            json={"title": "x", "release": "DEMO", "version": "v1", "obsids": obsids[:1]},
        ).status_code
        == 404
    )
    assert lid not in [
        t["id"] for t in carol.get(archive + "api/workbench/teams/cosmo/lists").json()["lists"]
    ]
    # a group that grants release access is not a team
    assert alice.get(archive + "api/workbench/teams/lamost-partners/lists").status_code == 404
    # no token, no workbench
    assert requests.get(f"{archive}api/workbench/lists/{lid}", timeout=30).status_code == 401
    # and bob's verdict is not carol's to see anywhere
    assert all(
        v["member"] != "carol" for v in bob.get(f"{archive}api/workbench/lists/{lid}").json()["verdicts"]
    )


def test_bad_input_is_refused_by_name(archive: str, obsids: list[int]) -> None:
    alice = session_for("alice")
    base = archive + "api/workbench/teams/astro/lists"
    cases = {
        "obsids": {"title": "t", "release": "DEMO", "version": "v1", "obsids": ["12x"]},
        "not in DEMO/v1": {
            "title": "t",
            "release": "DEMO",
            "version": "v1",
            "obsids": [obsids[0], 999999999],
        },
        "title": {"title": "", "release": "DEMO", "version": "v1", "obsids": obsids[:2]},
        "source": {"title": "t", "release": "DEMO", "version": "v1", "obsids": obsids[:2], "source": "x"},
        "unknown field": {"title": "t", "release": "DEMO", "version": "v1", "obsids": obsids[:2], "x": 1},
    }
    for word, body in cases.items():
        answer = alice.post(base, json=body)
        assert answer.status_code == 400, (word, answer.text)
        assert word in answer.json()["error"], (word, answer.text)
    # a version alice may not read is as absent as one that does not exist
    answer = alice.post(base, json={"title": "t", "release": "DEMO", "version": "v0", "obsids": obsids[:1]})
    assert answer.status_code == 404
    lid = make_list(archive, "alice", "astro", obsids[:3])["id"]
    for word, body in {
        "corrected_class": {"class_ok": False},
        "quality_flags": {"class_ok": True, "quality_flags": ["sparkly"]},
        "z_fix": {"class_ok": True, "z_fix": "high"},
    }.items():
        answer = put_verdict(archive, "alice", lid, obsids[0], body)
        assert answer.status_code == 400, (word, answer.text)
        assert word in answer.json()["error"], (word, answer.text)
    assert put_verdict(archive, "alice", lid, obsids[5], {"class_ok": True}).status_code == 404
    assert alice.get(f"{archive}api/workbench/lists/{lid}/changes?since=x").status_code == 400


def test_verdicts_progress_disagreements_and_export(archive: str, obsids: list[int]) -> None:
    items = obsids[10:16]
    lid = make_list(archive, "alice", "astro", items, title="export me")["id"]
    alice, bob = session_for("alice"), session_for("bob")
    catalog = {i["obsid"]: i for i in alice.get(f"{archive}api/workbench/lists/{lid}").json()["items"]}
    other = next(c for c in ("STAR", "GALAXY", "QSO") if c != catalog[items[0]]["class"])
    start = alice.get(f"{archive}api/workbench/lists/{lid}/changes?since=0").json()["seq"]
    assert put_verdict(archive, "alice", lid, items[0], {"class_ok": True, "z_fix": 0.1}).status_code == 200
    answer = put_verdict(
        archive,
        "bob",
        lid,
        items[0],
        {"class_ok": False, "corrected_class": other, "quality_flags": ["low-snr"], "note": "broad lines"},
    )
    assert answer.status_code == 200, answer.text
    assert put_verdict(archive, "alice", lid, items[1], {"class_ok": True}).status_code == 200
    assert put_verdict(archive, "bob", lid, items[1], {"class_ok": True}).status_code == 200
    # alice changes her mind on items[1]: her row is replaced, bob's stays
    assert put_verdict(archive, "alice", lid, items[1], {"class_ok": True, "note": "sure"}).status_code == 200

    changes = bob.get(f"{archive}api/workbench/lists/{lid}/changes?since={start}").json()
    assert [(v["member"], v["obsid"]) for v in changes["verdicts"]] == [
        ("alice", items[0]),
        ("bob", items[0]),
        ("bob", items[1]),
        ("alice", items[1]),
    ]
    assert changes["seq"] == start + 5
    later = bob.get(f"{archive}api/workbench/lists/{lid}/changes?since={changes['seq']}").json()
    assert later == {"seq": changes["seq"], "verdicts": []}

    summary = alice.get(f"{archive}api/workbench/lists/{lid}/summary").json()
    assert summary["progress"] == {
        "alice": {"done": 2, "total": 6, "fraction": 2 / 6},
        "bob": {"done": 2, "total": 6, "fraction": 2 / 6},
    }
    assert [d["obsid"] for d in summary["disagreements"]] == [items[0]]
    assert summary["disagreements"][0]["reasons"] == [
        "class: " + " / ".join(sorted([catalog[items[0]]["class"], other]))
    ]

    table = pq.read_table(io.BytesIO(alice.get(f"{archive}api/workbench/lists/{lid}/export").content))
    rows = table.to_pylist()
    assert len(rows) == 4 + 4  # two verdicts on each of two items, one empty row for each other item
    by = {(r["obsid"], r["member"]): r for r in rows}
    assert by[(items[0], "bob")]["final_class"] == other
    assert by[(items[0], "bob")]["quality_flags"] == "low-snr"
    assert by[(items[0], "alice")]["final_class"] == catalog[items[0]]["class"]
    assert by[(items[0], "alice")]["z_fix"] == 0.1
    assert by[(items[0], "alice")]["disagreement"]
    assert not by[(items[1], "bob")]["disagreement"]
    assert by[(items[1], "alice")]["note"] == "sure"
    assert {r["obsid"] for r in rows if r["member"] is None} == set(items[2:])
    assert b"export me" in table.schema.metadata[b"surveyhub.workbench"]
    csv = pacsv.read_csv(io.BytesIO(bob.get(f"{archive}api/workbench/lists/{lid}/export?format=csv").content))
    assert csv.num_rows == 8
    assert csv.column_names == table.column_names


def hammer(url: str, obsids: list[int], *, rounds: int = 3) -> None:
    """Two members write verdicts on every item, several times, from 8 threads at once, while a third
    session polls the change feed; afterwards the database and the feed hold every member's last word."""
    lid = make_list(url, "alice", "astro", obsids, title="concurrent")["id"]
    bob_poll = session_for("bob")
    seen: dict[tuple[str, int], str] = {}
    stop = threading.Event()
    cursor = [0]

    def poll() -> None:
        while True:
            last = stop.is_set()
            got = bob_poll.get(f"{url}api/workbench/lists/{lid}/changes?since={cursor[0]}").json()
            for v in got["verdicts"]:
                seen[(v["member"], v["obsid"])] = v["note"]
            cursor[0] = got["seq"]
            if last:
                return

    sessions = {u: [session_for(u) for _ in range(4)] for u in ("alice", "bob")}
    jobs = [(u, o, r) for r in range(rounds) for o in obsids for u in ("alice", "bob")]

    def write(job: tuple[str, int, int]) -> tuple[int, str, int, str]:
        user, obsid, r = job
        s = sessions[user][obsid % 4]
        answer = s.put(
            f"{url}api/workbench/lists/{lid}/items/{obsid}/verdict",
            json={"class_ok": True, "note": f"{user}-{obsid}-{r}"},
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["seq"], user, obsid, f"{user}-{obsid}-{r}"

    poller = threading.Thread(target=poll)
    poller.start()
    with ThreadPoolExecutor(max_workers=8) as pool:
        writes = list(pool.map(write, jobs))
    stop.set()
    poller.join(timeout=60)
    # every write got its own change number, and each member's last word on an item is the write that
    # came last (the highest number), whichever thread sent it
    assert sorted(w[0] for w in writes) == list(range(1, len(jobs) + 1))
    final = {(user, obsid): note for _, user, obsid, note in sorted(writes)}
    assert len(final) == 2 * len(obsids)
    verdicts = session_for("alice").get(f"{url}api/workbench/lists/{lid}").json()["verdicts"]
    assert {(v["member"], v["obsid"]): v["note"] for v in verdicts} == final
    assert seen == final  # the poller, asking only for what is new, missed nothing
    summary = session_for("bob").get(f"{url}api/workbench/lists/{lid}/summary").json()
    assert {m: p["done"] for m, p in summary["progress"].items()} == {
        "alice": len(obsids),
        "bob": len(obsids),
    }


def test_two_members_writing_at_once_lose_nothing(archive: str, obsids: list[int]) -> None:
    hammer(archive, obsids[20:60])


def test_two_members_writing_at_once_on_postgresql(platform_store: ReleaseStore, obsids: list[int]) -> None:
    reason = postgres_missing()
    if reason:
        pytest.skip(reason)
    work = reachable_dir("surveyhub-wb-pg-")
    try:
        with (
            temporary_postgres(work) as db_url,
            workbench_archive(platform_store.url, work / "archive", db_url) as url,
        ):
            hammer(url, obsids[20:60])
            # the verdicts are rows in PostgreSQL: two members' last word on each of the 40 items
            import psycopg

            with psycopg.connect(host=str(work / "pgsock"), user="postgres", dbname="postgres") as conn:
                count = conn.execute("SELECT count(*) FROM wb_verdicts").fetchone()[0]
            assert count == 2 * 40
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_the_apps_list_sources_and_export(
    archive: str, obsids: list[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's ways to a list (an import manifest in the team space, a history entry, a TAP query) and
    its export into the team space, from the member's side, against the real archive."""
    from surveyhub.apps.workbench import (
        WorkbenchClient,
        find_manifests,
        obsids_from_adql,
        obsids_from_history,
        write_export,
    )
    from tests.support.workbench import TOKENS

    client = WorkbenchClient(archive, TOKENS["alice"])
    space = tmp_path / "teams" / "astro"
    folder = space / "imports" / "run1"
    folder.mkdir(parents=True)
    manifest = {"release": "DEMO", "version": "v1", "obsids": obsids[:3], "query": {"obsid": obsids[:3]}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (space / "notes").mkdir()
    (space / "notes" / "manifest.json").write_text("not an import")  # skipped, not an error
    found = find_manifests(space.as_uri() + "/")
    assert [(m.path, m.obsids) for m in found] == [("imports/run1/manifest.json", obsids[:3])]

    # a search alice ran is in her history; re-running it gives the same obsids
    wanted = obsids[30:34]
    client.call("GET", "api/DEMO/v1/search", params={"obsid": ",".join(map(str, wanted))})
    record = next(r for r in client.history() if r["kind"] == "search" and str(wanted[0]) in r["query"])
    assert sorted(obsids_from_history(client, record)) == sorted(wanted)
    adql = f"SELECT obsid FROM demo_v1.lrs WHERE obsid IN ({', '.join(map(str, wanted))})"  # noqa: S608 - our ints
    assert sorted(obsids_from_adql(client, adql)) == sorted(wanted)
    with pytest.raises(ValueError, match="no obsid column"):
        obsids_from_adql(client, "SELECT TOP 1 ra FROM demo_v1.lrs")

    made = client.create_list(
        "astro",
        title="From a manifest",
        release="DEMO",
        version="v1",
        obsids=found[0].obsids,
        source="manifest",
    )
    client.put_verdict(made["id"], obsids[0], {"class_ok": True})
    monkeypatch.setenv("SURVEYHUB_TEAMS", json.dumps({"astro": space.as_uri() + "/"}))
    url = write_export(client, made, "csv")
    assert url == f"{space.as_uri()}/workbench/from-a-manifest-{made['id'][:8]}.csv"
    table = pacsv.read_csv(url.removeprefix("file://"))
    assert table.num_rows == 3
    assert table["member"].to_pylist().count("alice") == 1
    assert not list(space.glob("workbench/*.partial"))
