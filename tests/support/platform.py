"""The whole platform for tests: a real hub built by ``surveyhub.hub.configure`` with its real services.

The hub runs from the repository's own ``hub/jupyterhub_config.py`` with a settings file, exactly as an
operator runs it; only the authenticator is JupyterHub's DummyAuthenticator (allowed with
``SURVEYHUB_TESTING=1`` only) and every port is a free one. Test accounts get a prefix of their own
(``t1a2b-alice``) so runs never meet, and are deleted afterwards.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import tomli_w

from surveyhub.hub.accounts import account_name
from surveyhub.hub.config import admin_token
from surveyhub.hub.settings import Settings
from tests.support.jupyterhub import RunningHub, free_port, running_hub
from tests.support.lab import Kernel

REPO = Path(__file__).resolve().parents[2]
HUB_CONFIG = REPO / "hub" / "jupyterhub_config.py"
PASSWORD = "platform-test-password"  # noqa: S105 - the DummyAuthenticator's, tests only


def reachable_dir(prefix: str) -> Path:
    """A fresh folder under /tmp that other accounts can enter (pytest's own tmp folders are 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def platform_settings(base: Path, store_root: str, **sections: dict[str, Any]) -> dict[str, Any]:
    """A settings document with free ports, a private account prefix and the test authenticator."""
    doc: dict[str, Any] = {
        "home": str(base / "state"),
        "hub": {
            "bind_url": f"http://127.0.0.1:{free_port()}",
            "hub_port": free_port(),
            "proxy_api_port": free_port(),
            "apps_port": free_port(),
            "authenticator": "dummy",
            "admin_users": ["admin"],
            "oauth": {"password": PASSWORD},
        },
        "store": {"root": store_root},
        "users": {
            "home_root": str(base / "homes"),
            "account_prefix": f"t{secrets.token_hex(2)}-",
            "idle_timeout_s": 0,
        },
        "archive": {"port": free_port()},
        "gateway": {"api_port": free_port(), "proxy_port": free_port(), "scheduler_port": free_port()},
    }
    for name, values in sections.items():
        doc.setdefault(name, {}).update(values)
    return doc


@dataclass
class Platform:
    """A running platform: its hub, settings and helpers to act as its users."""

    hub: RunningHub
    settings: Settings
    base: Path

    def account(self, username: str) -> str:
        """The system account of a hub user."""
        return account_name(username, self.settings.users.account_prefix)

    def add_user(self, username: str, groups: list[str] = ()) -> None:  # type: ignore[assignment]
        """Create a hub user in groups (made if needed)."""
        answer = self.hub.api("POST", f"users/{username}")
        assert answer.status_code in (201, 409), answer.text
        for group in groups:
            if self.hub.api("GET", f"groups/{group}").status_code == 404:
                assert self.hub.api("POST", f"groups/{group}", json={"users": []}).status_code == 201
            answer = self.hub.api("POST", f"groups/{group}/users", json={"users": [username]})
            assert answer.status_code == 200, answer.text

    def spawn(self, username: str, timeout: float = 120) -> None:
        """Start the user's server and wait until it answers."""
        answer = self.hub.api("POST", f"users/{username}/server")
        assert answer.status_code in (201, 202, 400), answer.text
        token = self.hub.token_for(username, [f"access:servers!user={username}"], note="spawn-check")
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.hub.api("GET", f"users/{username}").json()
            if model.get("server") and not model.get("pending"):
                status = requests.get(
                    f"{self.hub.url}user/{username}/api/status",
                    headers={"Authorization": f"token {token}"},
                    timeout=10,
                )
                if status.status_code == 200:
                    return
            time.sleep(0.3)
        raise AssertionError(f"{username}'s server did not start:\n{self.hub.log()[-5000:]}")

    def kernel(self, username: str) -> Kernel:
        """A kernel in the user's server (started; use as a context manager to shut it down)."""
        token = self.hub.token_for(username, [f"access:servers!user={username}"], note="kernel")
        return Kernel(self.hub.url, username, token)


def delete_accounts(prefix: str) -> None:
    """Remove the test run's system accounts (and their private groups)."""
    import pwd

    for entry in pwd.getpwall():
        if entry.pw_name.startswith(prefix):
            subprocess.run(["userdel", "--force", entry.pw_name], capture_output=True, check=False)


@contextmanager
def running_platform(
    base: Path, store_root: str, *, as_user: str | None = None, **sections: dict[str, Any]
) -> Iterator[Platform]:
    """Run the platform's hub (with archive, dask-gateway and culler) until the block ends; ``as_user``
    runs it as that system account instead of root (the single-user sandbox)."""
    doc = platform_settings(base, store_root, **sections)
    config = base / "surveyhub.toml"
    config.write_text(tomli_w.dumps(doc))
    settings = Settings.load(config)
    token = admin_token(settings)  # made before the hub starts, as `surveyhub up` leaves it
    if as_user is not None:  # the hub's own user owns its state
        subprocess.run(["chown", "-R", f"{as_user}:", str(base)], check=True)
    port = int(doc["hub"]["bind_url"].rsplit(":", 1)[1])
    env = {"SURVEYHUB_TESTING": "1", "SURVEYHUB_CONFIG": str(config), "SURVEYHUB_HOME": settings.home}
    workdir = Path(settings.home) / "hub"
    try:
        with running_hub(
            HUB_CONFIG, workdir, port=port, env=env, admin_token=token, timeout=90, as_user=as_user
        ) as hub:
            yield Platform(hub, settings, base)
    finally:
        delete_accounts(settings.users.account_prefix)
        if os.environ.get("SURVEYHUB_KEEP_TEST_STATE") != "1":
            shutil.rmtree(base / "homes", ignore_errors=True)
