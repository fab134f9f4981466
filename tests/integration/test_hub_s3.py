"""Cloud space on S3: each server's keys reach its user's prefix and its teams' prefixes, nothing else.

The hub's IAM-user broker issues the keys at spawn against moto's server with IAM enforced (the
checks AWS and Ceph RGW make on IAM users' inline policies); the user's code reaches S3 exactly as a
notebook would, with fsspec and the storage options from the environment.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest

from surveyhub.releases.registry import ReleaseStore
from tests.support.lab import Kernel
from tests.support.platform import Platform, reachable_dir, running_platform
from tests.support.s3 import BUCKET, IAMServer, iam_enforcing_server

pytestmark = [
    pytest.mark.xdist_group("hub"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the hub's isolation needs root"),
]


@pytest.fixture(scope="module")
def iam_server() -> Iterator[IAMServer]:
    with iam_enforcing_server() as server:
        admin = server.client("s3")
        admin.put_object(Bucket=BUCKET, Key="users/bob/secret.txt", Body=b"bob's")
        admin.put_object(Bucket=BUCKET, Key="teams/other/plan.txt", Body=b"other team's")
        yield server


@pytest.fixture(scope="module")
def platform(platform_store: ReleaseStore, iam_server: IAMServer) -> Iterator[Platform]:
    cloud = {
        "user_url": f"s3://{BUCKET}/users/{{username}}/",
        "team_url": f"s3://{BUCKET}/teams/{{team}}/",
        "s3_endpoint": iam_server.endpoint,
        "credentials": {
            "kind": "iam-user",
            "access_key_id": iam_server.admin["aws_access_key_id"],
            "secret_access_key": iam_server.admin["aws_secret_access_key"],
        },
    }
    base = reachable_dir("surveyhub-hub-s3-")
    with running_platform(
        base, platform_store.url.removeprefix("file://"), cloud=cloud, gateway={"enabled": False}
    ) as p:
        p.add_user("alice", ["lamost-wg"])
        p.add_user("bob", ["lamost-partners"])
        assert p.hub.api("POST", "groups/astro", json={"users": ["alice"]}).status_code == 201
        assert p.hub.api("PUT", "groups/astro/properties", json={"surveyhub_team": True}).status_code == 200
        p.spawn("alice")
        p.spawn("bob")
        yield p


FS = (
    "import fsspec, json, os\n"
    "options = json.loads(os.environ['SURVEYHUB_CLOUD_STORAGE_OPTIONS'])\n"
    "fs = fsspec.filesystem('s3', skip_instance_cache=True, use_listings_cache=False, **options)\n"
)


def _raised(kernel: Kernel, code: str) -> str:
    return kernel.raised(FS + code)


def test_servers_reach_their_own_prefix_and_teams_only(platform: Platform) -> None:
    with platform.kernel("alice") as alice, platform.kernel("bob") as bob:
        env = json.loads(alice.check("import os, json; print(json.dumps(dict(os.environ)))").splitlines()[-1])
        assert env["SURVEYHUB_CLOUD_URL"] == f"s3://{BUCKET}/users/alice/"
        assert env["AWS_ACCESS_KEY_ID"]
        assert "surveyhub-alice" not in env["AWS_ACCESS_KEY_ID"]  # a key, not a name
        assert (
            alice.check(
                FS + "fs.pipe(os.environ['SURVEYHUB_CLOUD_URL'] + 'picks.csv', b'obsid\\n1\\n')\n"
                "print(fs.cat(os.environ['SURVEYHUB_CLOUD_URL'] + 'picks.csv').decode().split()[1])"
            ).strip()
            == "1"
        )
        teams = json.loads(env["SURVEYHUB_TEAMS"])
        assert teams == {"astro": f"s3://{BUCKET}/teams/astro/"}
        alice.check(FS + f"fs.pipe({teams['astro'] + 'notes.txt'!r}, b'team')")
        assert _raised(alice, f"fs.cat('{BUCKET}/users/bob/secret.txt')") == "PermissionError"
        assert _raised(alice, f"fs.pipe('{BUCKET}/users/bob/mine.txt', b'x')") == "PermissionError"
        assert _raised(alice, f"fs.cat('{BUCKET}/teams/other/plan.txt')") == "PermissionError"
        assert _raised(bob, f"fs.cat('{BUCKET}/users/alice/picks.csv')") == "PermissionError"
        assert _raised(bob, f"fs.cat('{BUCKET}/teams/astro/notes.txt')") == "PermissionError"
        assert bob.check(FS + f"print(fs.cat('{BUCKET}/users/bob/secret.txt').decode())").strip() == "bob's"


def test_stopping_a_server_revokes_its_keys(platform: Platform, iam_server: IAMServer) -> None:
    """carl's own server (not one the other test uses: xdist may run the two in either order)."""
    platform.add_user("carl", ["lamost-partners"])
    platform.spawn("carl")
    iam = iam_server.client("iam")
    keys = iam.list_access_keys(UserName="surveyhub-carl")["AccessKeyMetadata"]
    assert len(keys) == 1
    assert platform.hub.api("DELETE", "users/carl/server").status_code in (202, 204)
    for _ in range(100):
        if not iam.list_access_keys(UserName="surveyhub-carl")["AccessKeyMetadata"]:
            break
        time.sleep(0.2)
    assert iam.list_access_keys(UserName="surveyhub-carl")["AccessKeyMetadata"] == []
