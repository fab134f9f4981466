"""``surveyhub up``: run the whole platform on one machine until Ctrl-C.

It builds the demo release if the store has none, starts JupyterHub (which starts configurable-http-proxy
and its managed services: the archive, dask-gateway and the idle culler) with the hub configuration file
that production uses, creates the admin account on first run (NativeAuthenticator: its password is written
to a file only root can read), prints where everything is, and on Ctrl-C or SIGTERM stops the hub, which
stops the servers and services it started. A second run reuses the data and the hub database.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

from surveyhub.hub.config import admin_token, write_effective_settings
from surveyhub.hub.environment import internal_url
from surveyhub.hub.settings import Settings

CONFIG_FILE_TEXT = '''"""JupyterHub loads this; it only calls surveyhub.hub.configure."""

from surveyhub.hub import configure

configure(c)  # type: ignore[name-defined] # noqa: F821 - `c` is the config object JupyterHub provides
'''


def hub_config_file(settings: Settings) -> Path:
    """The repository's ``hub/jupyterhub_config.py``; an installed package writes the same three lines."""
    repo_file = Path(__file__).resolve().parents[2] / "jupyterhub_config.py"
    if repo_file.exists():
        return repo_file
    written = Path(settings.home) / "hub" / "jupyterhub_config.py"
    written.write_text(CONFIG_FILE_TEXT)
    return written


def wait_for_hub(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Until ``/hub/health`` answers; a hub that exits meanwhile is an error."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterHub exited with code {proc.returncode}: see its log above")
        try:
            if requests.get(f"{url}hub/health", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"JupyterHub did not answer at {url} within {timeout:.0f} s")


def ensure_admin_account(settings: Settings, url: str) -> tuple[str, Path | None]:
    """Sign the first admin up (NativeAuthenticator), once; returns the name and the password's file."""
    name = settings.hub.admin_users[0]
    if settings.hub.authenticator != "native":
        return name, None
    password_file = Path(settings.home) / "hub" / "admin-password"
    if password_file.exists():
        return name, password_file
    password = secrets.token_urlsafe(12)
    session = requests.Session()
    session.get(f"{url}hub/signup", timeout=10)
    xsrf = session.cookies.get("_xsrf", "")
    response = session.post(
        f"{url}hub/signup",
        data={
            "username": name,
            "signup_password": password,
            "signup_password_confirmation": password,
            "_xsrf": xsrf,
        },
        timeout=30,
    )
    # The sign-up page answers 200 whether or not it made the account: only a login proves it did.
    session.get(f"{url}hub/login", timeout=10)
    login = session.post(
        f"{url}hub/login",
        data={"username": name, "password": password, "_xsrf": session.cookies.get("_xsrf", "")},
        allow_redirects=False,
        timeout=30,
    )
    if response.status_code != 200 or login.status_code != 302:
        raise RuntimeError(
            f"could not create the admin account {name} (sign-up {response.status_code}, login "
            f"{login.status_code}): is the name taken already? Nothing was written."
        )
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    return name, password_file


def start_hub(settings: Settings, *, log_file: Path | None = None) -> subprocess.Popen[bytes]:
    """Start JupyterHub as a child process with the platform's configuration."""
    settings_file = write_effective_settings(settings)
    env = os.environ | {"SURVEYHUB_CONFIG": str(settings_file), "SURVEYHUB_HOME": settings.home}
    out = open(log_file, "ab") if log_file else None  # noqa: SIM115 - the child owns it until it exits
    return subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(hub_config_file(settings))],
        cwd=Path(settings.home) / "hub",
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT if out else None,
        preexec_fn=_stop_with_parent,
    )


def _stop_with_parent() -> None:
    """In the hub's process: get SIGTERM if ``surveyhub up`` dies (even by SIGKILL), so no hub is orphaned."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def stop_hub(proc: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """SIGTERM, which JupyterHub answers by stopping its servers, services and proxy; then wait."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def run_platform(settings: Settings, *, say: Callable[[str], None] = print) -> int:
    """Run until Ctrl-C or SIGTERM; returns the hub's exit code."""
    url = internal_url(settings.hub.bind_url)
    Path(settings.home, "hub").mkdir(parents=True, exist_ok=True)
    proc = start_hub(settings)
    stopping = {"asked": False}

    def ask_stop(signum: int, frame: object) -> None:
        stopping["asked"] = True

    previous = {sig: signal.signal(sig, ask_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        wait_for_hub(url, proc)
        admin, password_file = ensure_admin_account(settings, url)
        admin_token(settings)
        say("")
        say(f"surveyhub is running at {settings.hub.bind_url}")
        say(f"  admin account: {admin}" + (f" (password in {password_file})" if password_file else ""))
        if settings.hub.authenticator == "native":
            say(f"  new users sign up at {url}hub/signup; the admin approves them at {url}hub/authorize")
        say("  groups and teams: the hub's admin page, or `surveyhub team create|add|remove|list`")
        say(f"  archive service: {url}services/archive/   release store: {settings.store.root}")
        say("Press Ctrl-C to stop.")
        while not stopping["asked"] and proc.poll() is None:
            time.sleep(0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        code = stop_hub(proc)
        say(f"surveyhub stopped (hub exit code {code})")
    return 0 if stopping["asked"] else (proc.returncode or 1)
