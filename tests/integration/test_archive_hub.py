"""The archive as a JupyterHub-managed service: a real hub, its real proxy, the archive process it starts.

Everything goes through the proxy at ``{hub}/services/archive/``, as users' servers, browsers and VO
clients reach it: hub API tokens (header and ``?token=``), the hub's OAuth for a logged-in browser, and
the groups the hub holds deciding which versions each caller sees. A second instance of the same service,
``archive-open``, runs with ``--allow-anonymous``, so one hub covers both modes.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import pytest
import pyvo
import requests
from astropy.io.votable import parse as votable_parse

from surveyhub.releases.registry import ReleaseStore
from tests.support.jupyterhub import CHP, RunningHub, free_port, running_hub
from tests.support.stilts import taplint_report

pytestmark = pytest.mark.xdist_group("archive_hub")

#: The admin test service's token and the DummyAuthenticator password: fixed values of a throwaway test hub.
ADMIN_TOKEN = "surveyhub-test-admin-token-0123456789abcdef"  # noqa: S105
PASSWORD = "lamost-test-password"  # noqa: S105
ACCESS = "access:services!service=archive"

CONFIG = """\
c = get_config()  # noqa: F821 - the name jupyterhub's config loader provides
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allowed_users = {{"alice", "bob"}}
c.JupyterHub.load_groups = {{
    "lamost-wg": {{"users": ["alice"]}},
    "lamost-partners": {{"users": ["bob"]}},
}}
c.JupyterHub.services = [
    {{
        "name": "archive",
        "url": "http://127.0.0.1:{archive_port}",
        "command": {archive_command!r},
        "oauth_no_confirm": True,
        "display": True,
    }},
    {{
        "name": "archive-open",
        "url": "http://127.0.0.1:{open_port}",
        "command": {open_command!r},
        "oauth_no_confirm": True,
    }},
    {{"name": "test-admin", "api_token": {admin_token!r}}},
]
c.JupyterHub.load_roles = [
    # users may use the archive; what they see there is decided by their groups
    {{
        "name": "user",
        "scopes": ["self", "access:services!service=archive", "access:services!service=archive-open"],
    }},
    # the archive identifies callers with their own tokens: it needs no API scopes of its own
    {{"name": "archive-service", "services": ["archive", "archive-open"], "scopes": []}},
    {{"name": "admin", "services": ["test-admin"]}},
]
"""


def _archive_command(root: str, cache: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "surveyhub.cli",
        "archive",
        "--hub",
        "--root",
        root,
        "--cache",
        str(cache),
        *extra,
    ]


def _wait_for_service(url: str, hub: RunningHub, timeout: float = 60) -> None:
    """Until the proxy reaches the service (``tap/availability`` needs no token)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url + "tap/availability", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up:\n{hub.log()}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def hub(mock_store: ReleaseStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    if not CHP.exists():
        pytest.fail(f"configurable-http-proxy is not at {CHP}: `make test` installs it (npm)")
    workdir = tmp_path_factory.mktemp("archive-hub")
    port = free_port()
    config = workdir / "jupyterhub_config.py"
    config.write_text(
        CONFIG.format(
            port=port,
            hub_port=free_port(),
            proxy_api_port=free_port(),
            chp=str(CHP),
            password=PASSWORD,
            archive_port=free_port(),
            open_port=free_port(),
            archive_command=_archive_command(
                mock_store.url, workdir / "cache", "--db", f"sqlite:///{workdir / 'platform.sqlite'}"
            ),
            open_command=_archive_command(mock_store.url, workdir / "cache-open", "--allow-anonymous"),
            admin_token=ADMIN_TOKEN,
        )
    )
    with running_hub(config, workdir, port=port, admin_token=ADMIN_TOKEN) as running:
        _wait_for_service(running.url + "services/archive/", running)
        _wait_for_service(running.url + "services/archive-open/", running)
        yield running


@pytest.fixture(scope="module")
def archive(hub: RunningHub) -> str:
    return hub.url + "services/archive/"


@pytest.fixture(scope="module")
def alice(hub: RunningHub) -> str:
    return hub.token_for("alice", [ACCESS])


@pytest.fixture(scope="module")
def bob(hub: RunningHub) -> str:
    return hub.token_for("bob", [ACCESS])


def _get(url: str, token: str | None = None, **params: object) -> requests.Response:
    headers = {"Authorization": f"token {token}"} if token else {}
    return requests.get(url, params=params, headers=headers, timeout=60)


def _keys(response: requests.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [f"{r['release']}/{r['version']}" for r in response.json()["releases"]]


def _first_obsid(archive: str, token: str, version: str) -> int:
    """The smallest obsid of a version (the mock release has files for its first rows by obsid)."""
    body = _get(archive + f"api/DEMO/{version}/search", token, sort="obsid", limit=1).json()
    return int(body["rows"][0][[c["name"] for c in body["columns"]].index("obsid")])


def test_groups_from_the_hub_decide_the_versions(hub: RunningHub, archive: str, alice: str, bob: str) -> None:
    assert _keys(_get(archive + "api/releases", alice)) == ["DEMO/v0", "DEMO/v1", "DEMO/v2"]
    assert _keys(_get(archive + "api/releases", bob)) == ["DEMO/v1", "DEMO/v2"]
    assert _get(archive + "api/releases", alice).json()["user"] == "alice"
    bearer = requests.get(archive + "api/releases", headers={"Authorization": f"Bearer {bob}"}, timeout=60)
    assert _keys(bearer) == ["DEMO/v1", "DEMO/v2"]
    # a change of groups on the hub reaches the archive, through a new token at once (the cache is per token)
    assert hub.api("POST", "groups/lamost-wg/users", json={"users": ["bob"]}).status_code == 200
    try:
        assert _keys(_get(archive + "api/releases", hub.token_for("bob", [ACCESS]))) == [
            "DEMO/v0",
            "DEMO/v1",
            "DEMO/v2",
        ]
    finally:
        assert hub.api("DELETE", "groups/lamost-wg/users", json={"users": ["bob"]}).status_code == 200


def test_another_groups_version_answers_like_a_missing_one(archive: str, alice: str, bob: str) -> None:
    obsid = _first_obsid(archive, alice, "v0")
    assert _get(archive + f"api/DEMO/v0/spectra/{obsid}/fits", alice).status_code == 200
    for path in (
        "api/DEMO/{v}/search",
        f"api/DEMO/{{v}}/spectra/{obsid}/fits",
        f"DEMO/{{v}}/lrs/spectrum/fits?obsid={obsid}",
        "scs/DEMO/{v}/lrs?RA=10&DEC=10&SR=0.1",
    ):
        hidden = _get(archive + path.format(v="v0"), bob)
        absent = _get(archive + path.format(v="v9"), bob)
        assert hidden.status_code == absent.status_code == 404, (path, hidden.text)
        assert hidden.text.replace("v0", "vX") == absent.text.replace("v9", "vX")
        assert b"SIMPLE" not in hidden.content


def test_tap_schema_and_queries_are_per_caller(archive: str, alice: str, bob: str) -> None:
    def tap(token: str) -> pyvo.dal.TAPService:
        session = requests.Session()
        session.headers["Authorization"] = f"token {token}"
        return pyvo.dal.TAPService(archive + "tap", session=session)

    assert "demo_v0.lrs" in {t.name for t in tap(alice).tables}
    bobs = {t.name for t in tap(bob).tables}
    assert "demo_v1.lrs" in bobs
    assert not any(name.startswith("demo_v0") for name in bobs)
    schema = tap(bob).run_sync("SELECT table_name FROM tap_schema.tables").to_table()
    assert not any(str(name).startswith("demo_v0") for name in schema["table_name"])

    def error(table: str) -> str:
        response = _get(
            archive + "tap/sync",
            bob,
            REQUEST="doQuery",
            LANG="ADQL",
            QUERY=f"SELECT obsid FROM {table}",  # noqa: S608 - the test's own ADQL
        )
        assert response.status_code == 400
        status = [
            i
            for i in votable_parse(io.BytesIO(response.content)).resources[0].infos
            if i.name == "QUERY_STATUS"
        ]
        assert status[0].value == "ERROR"
        assert b"<TR>" not in response.content
        return str(status[0].content)

    assert "unknown table" in error("demo_v0.lrs")
    assert error("demo_v0.lrs").replace("v0", "vX") == error("demo_v9.lrs").replace("v9", "vX")


def test_tokens_without_the_access_scope_are_refused(hub: RunningHub, archive: str) -> None:
    other = hub.token_for("alice", ["read:users:name!user=alice"])
    refused = _get(archive + "api/releases", other)
    assert refused.status_code == 403
    assert "does not grant archive access" in refused.json()["error"]
    assert "releases" not in refused.json()
    # a token for the other instance does not open this one
    elsewhere = hub.token_for("alice", ["access:services!service=archive-open"])
    assert _get(archive + "api/releases", elsewhere).status_code == 403
    assert _keys(_get(hub.url + "services/archive-open/api/releases", elsewhere))[0] == "DEMO/v0"
    assert _get(archive + "api/releases", "not-a-hub-token").status_code == 401
    assert _get(archive + "api/releases").status_code == 401  # no anonymous access on this instance


def test_refused_posts_leave_the_proxys_connections_usable(archive: str, alice: str) -> None:
    """A refusal comes before a TAP body is read, so the service closes that connection: it must say so,
    or the proxy's keep-alive pool hands the closing connection to the next request (a 503)."""
    query = {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": "SELECT TOP 1 obsid FROM demo_v1.lrs"}
    with ThreadPoolExecutor(4) as pool:  # callers at once: the pool reuses a connection as soon as it is free
        codes = list(
            pool.map(
                lambda _: requests.post(archive + "tap/sync", data=query, timeout=30).status_code, range(200)
            )
        )
    assert set(codes) == {401}, f"{codes.count(503)} of {len(codes)} answered 503"
    answer = requests.post(
        archive + "tap/sync", data=query, headers={"Authorization": f"token {alice}"}, timeout=30
    )
    assert answer.status_code == 200


def test_token_in_the_url_for_vo_clients(archive: str, hub: RunningHub, bob: str) -> None:
    session = requests.Session()
    session.params = {"token": bob}  # what a LAMOST script or a VO client given a URL does
    service = pyvo.dal.TAPService(archive + "tap", session=session)
    counts = service.run_sync("SELECT COUNT(*) AS n FROM demo_v1.lrs").to_table()
    assert int(counts["n"][0]) > 0
    obsid = _first_obsid(archive, bob, "v1")
    fits = requests.get(archive + f"DEMO/v1/lrs/spectrum/fits?obsid={obsid}&token={bob}", timeout=60)
    assert fits.status_code == 200
    assert fits.content[:2] == b"\x1f\x8b"
    info = _get(archive + f"api/DEMO/v1/spectra/{obsid}/info", bob).json()
    ssa = pyvo.dal.SSAService(archive + "ssa/DEMO/v1", session=session)
    records = ssa.search(pos=(info["ra"], info["dec"]), diameter=0.05)
    assert obsid in {int(r["obsid"]) for r in records}
    link = records[0].getdataurl()
    assert link.startswith(f"{hub.url}services/archive/")
    assert requests.get(link, timeout=60).status_code == 200  # the link carries the caller's token
    # the URL is logged (a refusal is logged as a warning), the token in it is not
    assert (
        requests.get(archive + f"DEMO/v0/lrs/spectrum/fits?obsid={obsid}&token={bob}", timeout=60).status_code
        == 404
    )
    line = f"GET /services/archive/DEMO/v0/lrs/spectrum/fits?obsid={obsid}&token=[secret]"
    deadline = time.monotonic() + 10  # tornado writes the access log after it has sent the answer
    while line not in (log := hub.log()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert line in log
    assert bob not in log


def test_absolute_urls_point_through_the_proxy(archive: str, hub: RunningHub, bob: str) -> None:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {bob}"
    public = f"{hub.url}services/archive/tap"
    capabilities = session.get(archive + "tap/capabilities", timeout=30)
    assert f'<accessURL use="base">{public}</accessURL>' in capabilities.text
    service = pyvo.dal.TAPService(archive + "tap", session=session)
    job = service.submit_job("SELECT TOP 3 obsid FROM demo_v1.lrs ORDER BY obsid")
    assert job.url.startswith(f"{public}/async/")
    job.run().wait(timeout=60)
    assert len(job.fetch_result().to_table()) == 3
    assert f'href="{job.url}"' in session.get(archive + "tap/async", timeout=30).text
    job.delete()


def test_async_jobs_work_with_the_query_token_alone(archive: str, bob: str) -> None:
    """TOPCAT and LAMOST scripts put ``?token=`` on the base URL only: UWS redirects and links keep it."""
    query = {"QUERY": "SELECT TOP 2 obsid FROM demo_v1.lrs ORDER BY obsid", "LANG": "ADQL", "PHASE": "RUN"}
    made = requests.post(archive + f"tap/async?token={bob}", data=query, timeout=60)  # follows the 303
    assert made.status_code == 200, made.text
    assert f"token={bob}" in made.url
    job_url = made.url.split("?", 1)[0]
    done = requests.get(f"{job_url}?token={bob}&WAIT=30&PHASE=EXECUTING", timeout=60)
    href = done.text.split('xlink:href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert f"token={bob}" in href
    result = votable_parse(io.BytesIO(requests.get(href, timeout=60).content)).get_first_table().to_table()
    assert len(result) == 2
    listing = requests.get(archive + f"tap/async?token={bob}", timeout=30).text
    assert f"{job_url}?token={bob}" in listing.replace("&amp;", "&")
    gone = requests.post(f"{job_url}?token={bob}", data={"ACTION": "DELETE"}, timeout=30)
    assert gone.status_code == 200
    assert f"token={bob}" in gone.url


def test_browser_logged_in_to_the_hub_goes_through_oauth(hub: RunningHub, archive: str) -> None:
    browser = hub.login("alice", PASSWORD)
    page = browser.get(archive + "api/releases", headers={"Accept": "text/html,*/*"}, timeout=60)
    visited = [urlparse(r.url).path for r in page.history]
    assert visited == [
        "/services/archive/api/releases",
        "/hub/api/oauth2/authorize",
        "/services/archive/oauth_callback",
    ]
    assert page.status_code == 200, hub.log()[-3000:]
    assert page.json()["user"] == "alice"
    assert _keys(page) == ["DEMO/v0", "DEMO/v1", "DEMO/v2"]
    # the OAuth cookie now identifies the browser, without a new round trip to the hub's login
    again = browser.get(archive + "api/DEMO/v0/search", params={"limit": 1}, timeout=60)
    assert again.status_code == 200
    assert not again.history
    # a cookie is not enough for a request that changes something: it needs the XSRF token too
    query = {"QUERY": "SELECT TOP 1 obsid FROM demo_v0.lrs"}
    forged = browser.post(archive + "tap/async", data=query, timeout=60)
    assert forged.status_code == 401
    xsrf = browser.cookies.get("_xsrf", path="/services/archive/")
    made = browser.post(archive + "tap/async", data=query, headers={"X-XSRFToken": xsrf}, timeout=60)
    assert [r.status_code for r in made.history] == [303], (made.status_code, made.text, hub.log()[-3000:])
    assert made.status_code == 200
    assert "ownerId>alice</" in made.text


def test_browser_without_a_hub_session_is_sent_to_the_login(archive: str) -> None:
    page = requests.get(
        archive + "api/releases", headers={"Accept": "text/html"}, allow_redirects=False, timeout=30
    )
    assert page.status_code == 302
    target = page.headers["Location"]
    assert target.startswith("/hub/api/oauth2/authorize?")
    assert "client_id=service-archive" in target
    assert "redirect_uri=%2Fservices%2Farchive%2Foauth_callback" in target
    assert "code_challenge=" in target
    assert "state=" in target


def test_anonymous_callers_see_public_versions_when_allowed(hub: RunningHub, alice: str) -> None:
    open_archive = hub.url + "services/archive-open/"
    assert _keys(_get(open_archive + "api/releases")) == ["DEMO/v2"]
    assert _get(open_archive + "api/releases").json()["user"] is None
    assert _get(open_archive + "api/DEMO/v0/search").status_code == 404
    assert _get(open_archive + "api/DEMO/v2/search", limit=1).status_code == 200
    # logged-in callers still get their own versions, and a wrong token is still refused
    token = hub.token_for("alice", ["access:services!service=archive-open"])
    assert _keys(_get(open_archive + "api/releases", token)) == ["DEMO/v0", "DEMO/v1", "DEMO/v2"]
    assert _get(open_archive + "api/releases", alice).status_code == 403
    assert _get(open_archive + "api/releases", "not-a-hub-token").status_code == 401


def test_hub_mode_outside_a_hub_says_what_is_missing(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "surveyhub.cli", "archive", "--hub", "--root", str(tmp_path)],
        env={"PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert "JUPYTERHUB_SERVICE_URL" in run.stderr


def test_taplint_through_the_proxy(hub: RunningHub) -> None:
    """STILTS checks every URL the service writes (capabilities, UWS jobs, results) under the prefix."""
    # anonymous, on the instance that allows it: taplint cannot send a hub token
    report = taplint_report(f"{hub.url}services/archive-open/tap")
    assert "Totals: Errors: 0; Warnings: 0" in report, report[-4000:]
