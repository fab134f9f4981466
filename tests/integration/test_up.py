"""``surveyhub up`` (what ``make up`` runs) for real, and the hub's idle culler.

The command starts, prints where the hub is and where the admin's password is, serves the login page,
lets the admin log in (NativeAuthenticator: real passwords, sign-up with approval), spawns a server, and
stops cleanly on Ctrl-C, taking its proxy, services and servers with it. A second run reuses the hub
database and the store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import tomli_w

from surveyhub.releases.registry import ReleaseStore
from tests.support.jupyterhub import RunningHub
from tests.support.platform import delete_accounts, platform_settings, reachable_dir, running_platform

pytestmark = [
    pytest.mark.xdist_group("hub"),
    pytest.mark.skipif(os.geteuid() != 0, reason="isolation needs the hub to run as root"),
]


def _start_up(config: Path, home: Path, log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115 - the child writes it; closed when the test process ends
    return subprocess.Popen(
        [sys.executable, "-m", "surveyhub.cli", "up", "--home", str(home), "--config", str(config)],
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def _wait_for_line(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text(errors="replace")
        if text in content:
            return content
        if proc.poll() is not None:
            raise AssertionError(f"surveyhub up exited with {proc.returncode}:\n{content}")
        time.sleep(0.3)
    raise AssertionError(f"surveyhub up never printed {text!r}:\n{log.read_text(errors='replace')}")


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    return proc.wait(timeout=90)


def _listening(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
    except requests.ConnectionError:
        return False
    return True


def _signup(hub: RunningHub, name: str, password: str) -> requests.Response:
    session = requests.Session()
    session.get(f"{hub.url}hub/signup", timeout=30)
    return session.post(
        f"{hub.url}hub/signup",
        data={
            "username": name,
            "signup_password": password,
            "signup_password_confirmation": password,
            "_xsrf": session.cookies.get("_xsrf", path="/hub/") or "",
        },
        timeout=30,
    )


def _login_status(hub: RunningHub, name: str, password: str) -> int:
    session = requests.Session()
    session.get(f"{hub.url}hub/login", timeout=30)
    answer = session.post(
        f"{hub.url}hub/login",
        data={
            "username": name,
            "password": password,
            "_xsrf": session.cookies.get("_xsrf", path="/hub/") or "",
        },
        allow_redirects=False,
        timeout=30,
    )
    return answer.status_code


def test_surveyhub_up_runs_the_platform_and_stops_cleanly(platform_store: ReleaseStore) -> None:
    base = reachable_dir("surveyhub-up-")
    doc = platform_settings(base, platform_store.url.removeprefix("file://"))
    doc["hub"]["authenticator"] = "native"
    del doc["hub"]["oauth"]
    config = base / "surveyhub.toml"
    config.write_text(tomli_w.dumps(doc))
    home = Path(doc["home"])
    log = base / "up.log"
    url = doc["hub"]["bind_url"] + "/"
    proc = None
    try:
        proc = _start_up(config, home, log)
        printed = _wait_for_line(log, "Press Ctrl-C to stop.", proc)
        assert f"surveyhub is running at {doc['hub']['bind_url']}" in printed
        assert "Reusing the release store" in printed
        password_file = home / "hub" / "admin-password"
        assert f"admin account: admin (password in {password_file})" in printed
        assert oct(password_file.stat().st_mode & 0o777) == "0o600"
        password = password_file.read_text().strip()

        hub = RunningHub(url, home / "hub", None)
        login_page = requests.get(f"{url}hub/login", timeout=30)
        assert login_page.status_code == 200
        assert 'name="password"' in login_page.text
        assert _login_status(hub, "admin", "not-the-password") == 200  # the form again, with an error
        admin = hub.login("admin", password)

        # a new user signs up, cannot log in until the admin approves them
        assert _signup(hub, "dave", "dave-strong-passphrase-1").status_code == 200
        assert _login_status(hub, "dave", "dave-strong-passphrase-1") == 200  # refused: not authorised yet
        approved = admin.get(f"{url}hub/authorize/dave", timeout=30)
        assert approved.status_code == 200
        assert _login_status(hub, "dave", "dave-strong-passphrase-1") == 302

        # the admin spawns their server from the browser session and opens JupyterLab in it
        xsrf = admin.cookies.get("_xsrf", path="/hub/") or ""
        started = admin.post(f"{url}hub/api/users/admin/server", headers={"X-XSRFToken": xsrf}, timeout=120)
        assert started.status_code in (201, 202), started.text
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            lab = admin.get(f"{url}user/admin/lab", timeout=60)
            if lab.status_code == 200 and lab.url.startswith(f"{url}user/admin/lab"):
                break
            time.sleep(1)
        else:
            raise AssertionError(f"the admin's JupyterLab never opened:\n{log.read_text(errors='replace')}")
        assert "JupyterLab" in lab.text

        assert _stop(proc) == 0
        assert "surveyhub stopped" in log.read_text()
        assert not _listening(url)
        leftovers = subprocess.run(["pgrep", "-f", str(home)], capture_output=True, text=True, check=False)
        assert leftovers.stdout.strip() == "", f"processes left running: {leftovers.stdout}"

        # a second run reuses the database (the admin's password still works) and the store
        log = base / "up-again.log"
        proc = _start_up(config, home, log)
        _wait_for_line(log, "Press Ctrl-C to stop.", proc)
        assert password_file.read_text().strip() == password
        hub.login("admin", password)
        assert _login_status(hub, "dave", "dave-strong-passphrase-1") == 302
        assert _stop(proc) == 0
    finally:
        if proc is not None and proc.poll() is None:
            try:
                _stop(proc)  # let the hub stop its proxy and services too
            except subprocess.TimeoutExpired:
                proc.kill()
        delete_accounts(doc["users"]["account_prefix"])


def test_idle_servers_are_culled(platform_store: ReleaseStore) -> None:
    base = reachable_dir("surveyhub-cull-")
    with running_platform(
        base,
        platform_store.url.removeprefix("file://"),
        users={"idle_timeout_s": 10},
        gateway={"enabled": False},
    ) as platform:
        platform.add_user("erin")
        platform.spawn("erin")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if platform.hub.api("GET", "users/erin").json()["server"] is None:
                break
            time.sleep(1)
        else:
            raise AssertionError(f"erin's idle server was not culled:\n{platform.hub.log()[-4000:]}")
        assert "Culling server erin" in platform.hub.log()
