"""The hub without root: one trusted user's sandbox, said loudly, and still the platform's layout.

The hub runs as an ordinary system account (``runuser``), as it would for someone trying the platform on
their own machine. It cannot make accounts, so every server runs as that account; it says so in its log
and on every page, and still gives each server its releases, cloud folder and environment.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import subprocess
from collections.abc import Iterator

import pytest
import requests

from surveyhub.hub.config import SANDBOX_WARNING
from surveyhub.releases.registry import ReleaseStore
from tests.support.platform import Platform, reachable_dir, running_platform

pytestmark = [
    pytest.mark.xdist_group("hub"),
    pytest.mark.skipif(os.geteuid() != 0, reason="making the hub's own unprivileged account needs root"),
]


@pytest.fixture(scope="module")
def sandbox(platform_store: ReleaseStore) -> Iterator[tuple[Platform, str]]:
    owner = f"shsbx-{secrets.token_hex(3)}"
    base = reachable_dir("surveyhub-sandbox-")
    subprocess.run(["useradd", "--no-create-home", "--home-dir", str(base), owner], check=True)
    try:
        store = base / "store"  # a copy the sandbox's user owns (the shared one is gated for root's hub)
        shutil.copytree(platform_store.url.removeprefix("file://"), store, symlinks=True)
        with running_platform(base, str(store), as_user=owner, gateway={"enabled": False}) as platform:
            platform.add_user("alice", ["lamost-partners"])
            platform.spawn("alice")
            yield platform, owner
    finally:
        subprocess.run(["userdel", "--force", owner], capture_output=True, check=False)


def test_the_sandbox_is_announced(sandbox: tuple[Platform, str]) -> None:
    platform, _ = sandbox
    assert SANDBOX_WARNING in platform.hub.log()
    page = requests.get(f"{platform.hub.url}hub/login", timeout=30)
    assert "SINGLE-USER SANDBOX" in page.text


def test_servers_run_as_the_hubs_own_user_with_the_platform_layout(sandbox: tuple[Platform, str]) -> None:
    platform, owner = sandbox
    with platform.kernel("alice") as kernel:
        seen = json.loads(
            kernel.check(
                "import os, json\n"
                "home = os.path.expanduser('~')\n"
                "print(json.dumps([os.getuid(), sorted(os.listdir(home + '/releases/DEMO')),\n"
                "                  os.environ['SURVEYHUB_ARCHIVE_URL'], os.path.isdir(home + '/cloud')]))"
            ).splitlines()[-1]
        )
    assert seen[0] == pwd.getpwnam(owner).pw_uid
    assert seen[1] == ["v1", "v2"]  # the policy still decides what is linked, though nothing can enforce it
    assert seen[2] == f"{platform.hub.url}services/archive/"
    assert seen[3] is True
