"""The platform's hub, for real: users log in, spawn servers, and act from inside them as themselves.

One hub built by ``surveyhub.hub.configure`` (proxy, archive, dask-gateway), three users:

- alice: group ``lamost-wg`` (reads DEMO v0, v1, v2), team ``astro``;
- bob: group ``lamost-partners`` (v1, v2), team ``astro``;
- carol: no group (v2, the public version), no team.

Every check of what a user can reach runs inside that user's server, as their own system account, so
the kernel's file permissions decide, not our code.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests

from surveyhub.releases.registry import ReleaseStore
from tests.support.lab import Kernel
from tests.support.platform import PASSWORD, Platform, reachable_dir, running_platform

pytestmark = [
    pytest.mark.xdist_group("hub"),
    pytest.mark.skipif(os.geteuid() != 0, reason="isolation needs the hub to run as root"),
]

USERS = {"alice": ["lamost-wg", "astro"], "bob": ["lamost-partners", "astro"], "carol": []}


@pytest.fixture(scope="module")
def platform(platform_store: ReleaseStore) -> Iterator[Platform]:
    base = reachable_dir("surveyhub-hub-")
    with running_platform(base, platform_store.url.removeprefix("file://")) as p:
        for name, groups in USERS.items():
            p.add_user(name, [g for g in groups if g != "astro"])
        team = p.hub.api("POST", "groups/astro", json={"users": ["alice", "bob"]})
        assert team.status_code == 201, team.text
        assert p.hub.api("PUT", "groups/astro/properties", json={"surveyhub_team": True}).status_code == 200
        for name in USERS:
            p.spawn(name)
        yield p


@pytest.fixture(scope="module")
def kernels(platform: Platform) -> Iterator[dict[str, Kernel]]:
    started = {name: platform.kernel(name).start() for name in USERS}
    yield started
    for kernel in started.values():
        kernel.shutdown()


def _json(kernel: Kernel, code: str) -> object:
    """Run a cell whose last line prints one JSON document; return it."""
    return json.loads(kernel.check(code).strip().splitlines()[-1])


def _a_fits_file(store: ReleaseStore, version: str) -> Path:
    return next(Path(store.version("DEMO", version, {"lamost-wg"}).path("fits")).rglob("*.fits.gz"))


def test_each_server_runs_as_its_own_account(platform: Platform, kernels: dict[str, Kernel]) -> None:
    for name, kernel in kernels.items():
        who = _json(kernel, "import getpass, json, os; print(json.dumps([getpass.getuser(), os.getuid()]))")
        assert who[0] == platform.account(name)
        assert who[1] != 0


def test_release_versions_listed_are_exactly_the_granted_ones(kernels: dict[str, Kernel]) -> None:
    listing = "import os, json; print(json.dumps(sorted(os.listdir(os.path.expanduser('~/releases/DEMO')))))"
    assert _json(kernels["alice"], listing) == ["v0", "v1", "v2"]
    assert _json(kernels["bob"], listing) == ["v1", "v2"]
    assert _json(kernels["carol"], listing) == ["v2"]


def test_granted_fits_reads_and_ungranted_fails(
    platform_store: ReleaseStore, kernels: dict[str, Kernel]
) -> None:
    v0_file = _a_fits_file(platform_store, "v0")
    v1_file = _a_fits_file(platform_store, "v1")
    relative = v1_file.relative_to(Path(platform_store.version("DEMO", "v1", {"lamost-wg"}).path()))
    read = (
        "from surveyhub.releases import read_spectrum; import os\n"
        f"s = read_spectrum(os.path.expanduser('~/releases/DEMO/v1/{relative}'))\n"
        "print(s.meta['obsid'], len(s.flux))"
    )
    obsid, pixels = kernels["bob"].check(read).split()
    assert int(obsid) > 0
    assert int(pixels) > 3000
    for name in ("bob", "carol"):
        result = kernels[name].raised(f"open({str(v0_file)!r}, 'rb').read(10)")
        assert result == "PermissionError", name
        # a link made by the user does not help: the lock is the version folder's permission
        result = kernels[name].raised(
            f"import os; os.symlink({str(v0_file.parents[3])!r}, os.path.expanduser('~/mine'))\n"
            "open(os.path.expanduser('~/mine/' + "
            + repr(str(v0_file.relative_to(v0_file.parents[3])))
            + "), 'rb')"
        )
        assert result == "PermissionError", name
    assert kernels["alice"].check(f"print(len(open({str(v0_file)!r}, 'rb').read(10)))").strip() == "10"


def test_releases_are_read_only(kernels: dict[str, Kernel]) -> None:
    for name, version in (("alice", "v0"), ("carol", "v2")):
        result = kernels[name].raised(
            f"import os; open(os.path.expanduser('~/releases/DEMO/{version}/extra.txt'), 'w').write('x')"
        )
        assert result == "PermissionError", name
        result = kernels[name].raised(
            f"import os; os.unlink(os.path.expanduser('~/releases/DEMO/{version}'))"
        )
        assert result == "PermissionError", name


def test_cloud_space_is_private(platform: Platform, kernels: dict[str, Kernel]) -> None:
    write = (
        "import fsspec, json, os\n"
        "url = os.environ['SURVEYHUB_CLOUD_URL'] + 'notes/first.txt'\n"
        "options = json.loads(os.environ['SURVEYHUB_CLOUD_STORAGE_OPTIONS'])\n"
        "with fsspec.open(url, 'w', auto_mkdir=True, **options) as f:\n"
        "    f.write('mine')\n"
        "print(json.dumps([url, open(os.path.expanduser('~/cloud/notes/first.txt')).read()]))"
    )
    url, text = _json(kernels["alice"], write)
    assert text == "mine"
    alice_dir = url.removeprefix("file://").rsplit("/notes/", 1)[0]
    assert Path(alice_dir, "notes", "first.txt").stat().st_uid != 0
    for name in ("bob", "carol"):
        result = kernels[name].raised(f"import os; os.listdir({alice_dir!r})")
        assert result == "PermissionError", name
        result = kernels[name].raised(f"open({alice_dir + '/notes/first.txt'!r}).read()")
        assert result == "PermissionError", name
    alice_home = platform.base / "homes" / platform.account("alice")
    result = kernels["bob"].raised(f"import os; os.listdir({str(alice_home)!r})")
    assert result == "PermissionError"


def test_tutorials_are_each_users_own_copies(platform: Platform, kernels: dict[str, Kernel]) -> None:
    shipped = sorted(p.name for p in (Path(__file__).parents[2] / "notebooks" / "tutorials").glob("*.ipynb"))
    assert shipped
    listing = "import os, json; print(json.dumps(sorted(os.listdir(os.path.expanduser('~/tutorials')))))"
    for name in USERS:
        assert _json(kernels[name], listing) == shipped, name
    # alice edits hers (she owns it); bob's copy is not hers to touch, and stays as shipped
    first = f"~/tutorials/{shipped[0]}"
    kernels["alice"].check(f"import os; open(os.path.expanduser({first!r}), 'a').write(' ')")
    alice_home = platform.base / "homes" / platform.account("alice")
    bob_home = platform.base / "homes" / platform.account("bob")
    assert (alice_home / first[2:]).stat().st_uid == (alice_home).stat().st_uid
    result = kernels["alice"].raised(f"open({str(bob_home / first[2:])!r}, 'a').write('x')")
    assert result == "PermissionError"


def test_team_folder_is_shared_by_members_only(kernels: dict[str, Kernel]) -> None:
    path = "~/teams/astro/plan.txt"
    kernels["alice"].check(f"import os; open(os.path.expanduser({path!r}), 'w').write('alice\\n')")
    # bob, a member, reads and edits alice's file (umask 002 and a set-group-id team folder)
    kernels["bob"].check(f"import os; open(os.path.expanduser({path!r}), 'a').write('bob\\n')")
    assert kernels["alice"].check(f"import os; print(open(os.path.expanduser({path!r})).read(), end='')") == (
        "alice\nbob\n"
    )
    teams = _json(kernels["alice"], "import os; print(os.environ['SURVEYHUB_TEAMS'])")
    folder = teams["astro"].removeprefix("file://")
    result = kernels["carol"].raised(f"import os; os.listdir({folder!r})")
    assert result == "PermissionError"
    assert (
        _json(
            kernels["carol"], "import os, json; print(json.dumps(os.listdir(os.path.expanduser('~/teams'))))"
        )
        == []
    )


def test_environment_needs_no_configuration(platform: Platform, kernels: dict[str, Kernel]) -> None:
    env = _json(kernels["alice"], "import os, json; print(json.dumps(dict(os.environ)))")
    assert env["SURVEYHUB_ARCHIVE_URL"] == f"{platform.hub.url}services/archive/"
    assert env["SURVEYHUB_TAP_URL"] == f"{platform.hub.url}services/archive/tap"
    assert env["SURVEYHUB_ARCHIVE_TOKEN"] == env["JUPYTERHUB_API_TOKEN"]
    assert env["DASK_GATEWAY__ADDRESS"] == f"{platform.hub.url}services/dask-gateway"
    assert env["DASK_GATEWAY__AUTH__TYPE"] == "jupyterhub"
    assert env["HOME"].endswith(platform.account("alice"))
    assert env["SURVEYHUB_RELEASES_DIR"] == env["HOME"] + "/releases"


def test_archive_answers_with_the_servers_token(kernels: dict[str, Kernel]) -> None:
    listing = (
        "import os, requests, json\n"
        "auth = {'Authorization': 'token ' + os.environ['SURVEYHUB_ARCHIVE_TOKEN']}\n"
        "r = requests.get(os.environ['SURVEYHUB_ARCHIVE_URL'] + 'api/releases', headers=auth, timeout=60)\n"
        "r.raise_for_status()\n"
        "print(json.dumps(sorted(v['release'] + '/' + v['version'] for v in r.json()['releases'])))"
    )
    assert _json(kernels["alice"], listing) == ["DEMO/v0", "DEMO/v1", "DEMO/v2"]
    assert _json(kernels["bob"], listing) == ["DEMO/v1", "DEMO/v2"]
    assert _json(kernels["carol"], listing) == ["DEMO/v2"]
    tap = (
        "import os, pyvo, requests\n"
        "s = requests.Session()\n"
        "s.headers['Authorization'] = 'token ' + os.environ['SURVEYHUB_ARCHIVE_TOKEN']\n"
        "t = pyvo.dal.TAPService(os.environ['SURVEYHUB_TAP_URL'], session=s)\n"
        "print(len(t.run_sync('SELECT TOP 5 obsid FROM demo_v1.lrs').to_table()))"
    )
    assert kernels["bob"].check(tap).strip() == "5"
    assert kernels["carol"].raised(tap) != ""  # demo_v1 is not carol's: no such table


def test_dask_gateway_cluster_runs_as_the_user(
    platform: Platform, platform_store: ReleaseStore, kernels: dict[str, Kernel]
) -> None:
    v0 = platform_store.version("DEMO", "v0", {"lamost-wg"}).path()
    code = (
        "from dask_gateway import Gateway\n"
        "import getpass, json, os\n"
        "gateway = Gateway()\n"
        "cluster = gateway.new_cluster()\n"
        "try:\n"
        "    cluster.scale(1)\n"
        "    client = cluster.get_client()\n"
        "    client.wait_for_workers(1, timeout=90)\n"
        "    who = list(client.run(getpass.getuser).values())\n"
        f"    can = list(client.run(lambda: os.access({v0!r}, os.R_OK | os.X_OK)).values())\n"
        "    print(json.dumps([who, can]))\n"
        "finally:\n"
        "    cluster.shutdown()"
    )
    who, can = _json(kernels["alice"], code)
    assert (who, can) == ([platform.account("alice")], [True])
    who, can = _json(kernels["bob"], code)
    assert (who, can) == ([platform.account("bob")], [False])
    assert os.stat("/").st_uid == 0  # dask-gateway's LocalBackend would give "/" away: ours does not


def test_real_time_collaboration_is_on(platform: Platform) -> None:
    token = platform.hub.token_for("alice", ["access:servers!user=alice"])
    answer = requests.put(
        f"{platform.hub.url}user/alice/api/collaboration/session/shared.ipynb",
        headers={"Authorization": f"token {token}"},
        json={"format": "json", "type": "notebook"},
        timeout=30,
    )
    assert answer.status_code in (200, 201), answer.text
    assert answer.json()["sessionId"]


class _FormInputs(HTMLParser):
    """The named inputs of a page's form (JupyterHub's OAuth consent page)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "input" and named.get("name") and named.get("type") != "submit":
            self.fields.append((str(named["name"]), str(named.get("value") or "")))


def wait_for_member_share(platform: Platform, owner: str, member: str, timeout: float = 30) -> None:
    """The team-shares service extends a team share to each member within a few seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shares = platform.hub.api("GET", f"users/{member}/shared").json().get("items", [])
        if any(s["server"]["user"]["name"] == owner and s.get("user") for s in shares):  # not the group's
            return
        time.sleep(0.5)
    raise AssertionError(f"{owner}'s team share never reached {member}:\n{platform.hub.log()[-3000:]}")


def test_sharing_a_server_with_a_team(platform: Platform) -> None:
    """alice shares her server with team astro: bob (a member) gets in after consenting, carol never."""
    alice = platform.hub.login("alice", PASSWORD)
    shared = alice.post(
        f"{platform.hub.url}hub/api/shares/alice/",
        json={"group": "astro"},
        headers={"X-XSRFToken": alice.cookies.get("_xsrf", path="/hub/") or ""},
        timeout=30,
    )
    assert shared.status_code == 200, shared.text
    bob = platform.hub.login("bob", PASSWORD)
    wait_for_member_share(platform, "alice", "bob")
    consent = bob.get(f"{platform.hub.url}user/alice/lab", timeout=60)
    assert consent.status_code == 200
    assert "/hub/api/oauth2/authorize" in consent.url  # JupyterHub asks before entering another's server
    form = _FormInputs()
    form.feed(consent.text)
    lab = bob.post(consent.url, data=form.fields, timeout=60)
    assert lab.status_code == 200, lab.text[:500]
    assert lab.url.startswith(f"{platform.hub.url}user/alice/lab")
    status = bob.get(f"{platform.hub.url}user/alice/api/status", timeout=30)
    assert status.status_code == 200
    carol = platform.hub.login("carol", PASSWORD)
    assert carol.get(f"{platform.hub.url}user/alice/lab", timeout=60).status_code == 403
