"""TAP through a real archive process with real clients: pyvo, astropy, and STILTS taplint."""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import pyvo
import requests
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io.votable import parse as votable_parse
from astropy.io.votable import parse_single_table
from astropy.table import Table

from surveyhub.releases.registry import ReleaseStore
from tests.support.archive import ALICE, BOB, CAROL, archive_server
from tests.support.stilts import taplint_report

pytestmark = pytest.mark.xdist_group("mock")


def _session(token: str | None) -> requests.Session:
    session = requests.Session()
    if token:
        session.headers["Authorization"] = f"token {token}"
    return session


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tap")


@pytest.fixture(scope="module")
def url(mock_store: ReleaseStore, workdir: Path) -> Iterator[str]:
    with archive_server(mock_store.url, workdir) as base:
        yield base


@pytest.fixture(scope="module")
def lrs(mock_store: ReleaseStore) -> pd.DataFrame:
    return (
        mock_store.version("DEMO", "v0", {"lamost-wg"}).open_catalog("lrs").compute().reset_index(drop=True)
    )


def _tap(url: str, token: str | None) -> pyvo.dal.TAPService:
    return pyvo.dal.TAPService(url + "tap", session=_session(token))


def test_sync_cone_equals_brute_force(url: str, lrs: pd.DataFrame) -> None:
    centre = lrs.iloc[100]
    query = (  # noqa: S608 - a test's own ADQL, numbers from the catalog
        "SELECT obsid, DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', {ra}, {dec})) AS d FROM demo_v0.lrs "
        "WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra}, {dec}, 0.5)) ORDER BY d"
    ).format(ra=centre["ra"], dec=centre["dec"])
    result = _tap(url, ALICE).run_sync(query).to_table()
    sep = SkyCoord(lrs["ra"].to_numpy() * u.deg, lrs["dec"].to_numpy() * u.deg).separation(
        SkyCoord(centre["ra"] * u.deg, centre["dec"] * u.deg)
    )
    assert set(result["obsid"]) == set(lrs["obsid"][sep.deg <= 0.5])
    assert np.all(np.diff(np.asarray(result["d"])) >= 0)


def test_aggregates_joins_and_subqueries(url: str, lrs: pd.DataFrame, mock_store: ReleaseStore) -> None:
    service = _tap(url, ALICE)
    counts = service.run_sync("SELECT class, COUNT(*) AS n FROM demo_v0.lrs GROUP BY class").to_table()
    assert dict(zip(counts["class"], counts["n"], strict=True)) == lrs["class"].value_counts().to_dict()
    joined = service.run_sync(
        "SELECT TOP 50 l.obsid, s.teff FROM demo_v0.lrs AS l JOIN demo_v0.stellar AS s ON l.obsid = s.obsid "
        "WHERE s.teff > 6500 AND l.obsid IN (SELECT obsid FROM demo_v0.lrs WHERE snrg > 20) ORDER BY l.obsid"
    ).to_table()
    stellar = mock_store.version("DEMO", "v0", {"lamost-wg"}).open_catalog("stellar").compute()
    want = stellar[(stellar["teff"] > 6500) & stellar["obsid"].isin(lrs["obsid"][lrs["snrg"] > 20])]
    assert list(joined["obsid"]) == sorted(want["obsid"])[:50]


def test_maxrec_sets_the_overflow_flag(url: str) -> None:
    response = _session(ALICE).get(
        url + "tap/sync", params={"QUERY": "SELECT obsid FROM demo_v0.lrs", "MAXREC": 7}
    )
    assert b'name="QUERY_STATUS" value="OVERFLOW"' in response.content
    assert len(parse_single_table(io.BytesIO(response.content)).array) == 7
    huge = _session(ALICE).get(
        url + "tap/sync", params={"QUERY": "SELECT obsid FROM demo_v0.lrs", "MAXREC": 10**12}
    )
    assert b'value="ERROR"' in huge.content
    assert b"MAXREC" in huge.content


def test_each_user_has_their_own_tap_schema(url: str) -> None:
    def tables(token: str | None) -> set[str]:
        return {t.name for t in _tap(url, token).tables}

    assert "demo_v0.lrs" in tables(ALICE)
    assert "demo_v0.lrs" not in tables(BOB)
    assert "demo_v1.lrs" in tables(BOB)
    assert {n for n in tables(None) if not n.startswith("tap_schema")} == {
        "demo_v2.lrs",
        "demo_v2.stellar",
        "demo_v2.mrs",
        "demo_v2.gaia",
    }
    rows = _tap(url, BOB).run_sync("SELECT table_name FROM tap_schema.tables").to_table()
    assert not any(name.startswith("demo_v0") for name in rows["table_name"])
    columns = (
        _tap(url, ALICE)
        .run_sync(
            "SELECT unit, ucd, description FROM tap_schema.columns "
            "WHERE table_name = 'demo_v0.lrs' AND column_name = 'ra'"
        )
        .to_table()
    )
    assert (columns["unit"][0], columns["ucd"][0]) == ("deg", "pos.eq.ra;meta.main")


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("SELECT obsid FROM demo_v0.lrs", "unknown table 'demo_v0.lrs'"),  # bob may not read v0
        ("SELEC obsid FROM demo_v1.lrs", "only SELECT"),
        ("SELECT obsid FROM demo_v1.lrs WHERE (", ""),
        ("SELECT secret FROM demo_v1.lrs", "unknown column 'secret'"),
        ("SELECT * FROM read_csv('/etc/passwd')", "unknown table"),
        ("SELECT * FROM '/etc/passwd'", ""),
        ("COPY (SELECT 1) TO '/tmp/x'", "only SELECT"),
        ("SELECT 1; DROP TABLE x", ""),
        ("SELECT current_setting('threads') FROM demo_v1.lrs", "current_setting"),
        ("ATTACH '/tmp/x.db'", "only SELECT"),
    ],
)
def test_bad_and_hostile_queries_get_votable_errors(url: str, query: str, words: str) -> None:
    response = _session(BOB).post(
        url + "tap/sync", data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query}
    )
    assert response.status_code == 400
    document = votable_parse(io.BytesIO(response.content))  # the error is itself a valid VOTable
    status = [info for info in document.resources[0].infos if info.name == "QUERY_STATUS"]
    assert status[0].value == "ERROR"
    assert words in status[0].content
    assert not Path("/tmp/x").exists()
    assert not Path("/tmp/x.db").exists()


def test_async_job_lifecycle(url: str) -> None:
    service = _tap(url, CAROL)
    job = service.submit_job("SELECT class, COUNT(*) AS n FROM demo_v0.lrs GROUP BY class", maxrec=100)
    assert job.phase == "PENDING"
    job.run()
    job.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=60)
    assert job.phase == "COMPLETED"
    assert sum(job.fetch_result().to_table()["n"]) > 0
    job_url = job.url
    others = _session(ALICE).get(job_url)
    assert others.status_code == 404  # another user cannot see carol's job
    job.delete()
    assert _session(CAROL).get(job_url).status_code == 404
    bad = service.submit_job("SELECT nothing FROM demo_v0.lrs")
    bad.run()
    bad.wait(phases=["COMPLETED", "ERROR"], timeout=60)
    assert bad.phase == "ERROR"
    assert "unknown column" in _session(CAROL).get(bad.url + "/error").text
    aborted = service.submit_job("SELECT obsid FROM demo_v0.lrs")
    aborted.abort()
    assert aborted.phase == "ABORTED"


def test_upload_a_table_and_join_it(url: str, lrs: pd.DataFrame) -> None:
    picked = lrs.sample(8, random_state=5)
    mine = Table({"id": np.arange(8), "ra": picked["ra"].to_numpy(), "dec": picked["dec"].to_numpy()})
    result = (
        _tap(url, ALICE)
        .run_sync(
            "SELECT u.id, l.obsid FROM tap_upload.mine AS u JOIN demo_v0.lrs AS l "
            "ON 1 = CONTAINS(POINT('ICRS', l.ra, l.dec), CIRCLE('ICRS', u.ra, u.dec, 0.0003)) ORDER BY u.id",
            uploads={"mine": mine},
        )
        .to_table()
    )
    assert list(result["obsid"]) == list(picked["obsid"])


def test_lamost_sql_route_knows_lamost_table_names(url: str, lrs: pd.DataFrame) -> None:
    response = _session(ALICE).get(
        url + "DEMO/v0/sql",
        params={"sql": "select obsid, class from combined where snrg > 50 limit 5", "output.fmt": "csv"},
    )
    table = pd.read_csv(io.StringIO(response.text))
    assert len(table) == 5
    assert set(table["obsid"]) <= set(lrs["obsid"][lrs["snrg"] > 50])
    hidden = _session(BOB).get(url + "DEMO/v0/sql", params={"sql": "select obsid from combined"})
    assert hidden.status_code == 404


def test_history_is_kept_and_shared_with_a_team(url: str) -> None:
    alice, carol, bob = _session(ALICE), _session(CAROL), _session(BOB)
    alice.get(url + "tap/sync", params={"QUERY": "SELECT TOP 1 obsid FROM demo_v0.lrs WHERE snrg > 77"})
    mine = alice.get(url + "api/history").json()["history"]
    record = next(r for r in mine if "snrg > 77" in r["query"])
    assert record["owner"] == "alice"
    assert record["rows"] == 1
    assert not any("snrg > 77" in r["query"] for r in carol.get(url + "api/history").json()["history"])
    assert alice.post(url + f"api/history/{record['id']}/share?team=lamost-partners").status_code == 403
    # lamost-wg is alice's group but not a team: release access is not a choice to work together
    not_a_team = alice.post(url + f"api/history/{record['id']}/share?team=lamost-wg")
    assert not_a_team.status_code == 403
    assert "not a team" in not_a_team.reason
    assert alice.post(url + f"api/history/{record['id']}/share?team=gaia-team").status_code == 200
    assert any(r["id"] == record["id"] for r in carol.get(url + "api/history").json()["history"])
    assert not any(r["id"] == record["id"] for r in bob.get(url + "api/history").json()["history"])


def test_a_search_marked_history_0_stays_out_of_the_history(url: str) -> None:
    alice = _session(ALICE)
    search = url + "api/DEMO/v0/search"
    assert alice.get(search, params={"snrg_min": "71.25", "limit": "0", "history": "0"}).status_code == 200
    assert alice.get(search, params={"snrg_min": "72.5", "limit": "0"}).status_code == 200
    queries = [json.dumps(r["query"]) for r in alice.get(url + "api/history").json()["history"]]
    assert any("72.5" in q for q in queries)
    assert not any("71.25" in q for q in queries)


def test_vosi_endpoints(url: str) -> None:
    assert (
        b"<avail:available>true</avail:available>"
        in requests.get(url + "tap/availability", timeout=30).content
    )
    caps = requests.get(url + "tap/capabilities", timeout=30).text
    assert "ivo://ivoa.net/std/TAP" in caps
    assert "ADQL" in caps


def test_taplint_reports_no_errors(url: str) -> None:
    report = taplint_report(f"{url}tap")
    assert "Totals: Errors: 0; Warnings: 0" in report, report[-4000:]


def test_jobs_survive_a_restart(mock_store: ReleaseStore, tmp_path: Path) -> None:
    with archive_server(mock_store.url, tmp_path) as base:
        service = _tap(base, ALICE)
        done = service.submit_job("SELECT TOP 3 obsid FROM demo_v0.lrs ORDER BY obsid")
        done.run()
        done.wait(phases=["COMPLETED", "ERROR"], timeout=60)
        stuck = service.submit_job("SELECT TOP 3 obsid FROM demo_v0.lrs")
    # The service stopped while this job ran: mark it EXECUTING as a crash would have left it.
    with sqlite3.connect(tmp_path / "cache" / "archive.sqlite") as db:
        db.execute("UPDATE tap_jobs SET phase = 'EXECUTING' WHERE id = ?", (stuck.job_id,))
    with archive_server(mock_store.url, tmp_path) as base:
        session = _session(ALICE)
        job_url = base + f"tap/async/{done.job_id}"
        assert session.get(job_url + "/phase").text == "COMPLETED"
        assert (
            len(parse_single_table(io.BytesIO(session.get(job_url + "/results/result").content)).array) == 3
        )
        assert session.get(base + f"tap/async/{stuck.job_id}/phase").text == "ERROR"
        assert "restarted" in session.get(base + f"tap/async/{stuck.job_id}/error").text
