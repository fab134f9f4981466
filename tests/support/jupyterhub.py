"""A real JupyterHub, as a subprocess, for tests: its own proxy, database, services and log.

The hub runs exactly as an operator runs it (``python -m jupyterhub -f jupyterhub_config.py``), so a test
exercises the real proxy routes, OAuth and managed services rather than a mock. The caller writes the
configuration; to drive the hub's API, that configuration registers a service holding ``admin_token``
with the ``admin`` role (Zero to JupyterHub's dev-config pattern), for example::

    c.JupyterHub.services = [{"name": "test-admin", "api_token": ADMIN_TOKEN}]
    c.JupyterHub.load_roles = [{"name": "admin", "services": ["test-admin"]}]
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.support.s3 import _free_port

#: Where ``npm install`` puts configurable-http-proxy in this project's virtualenv (``make`` does it).
CHP = Path(sys.prefix) / "node" / "node_modules" / ".bin" / "configurable-http-proxy"

__all__ = ["CHP", "RunningHub", "free_port", "running_hub"]


def free_port() -> int:
    """A TCP port free on the loopback interface now (the hub, proxy and services each need one)."""
    return _free_port()


@dataclass
class RunningHub:
    """A hub started by :func:`running_hub`."""

    url: str  #: the public URL (the proxy), ending in '/'
    workdir: Path  #: the hub's working directory (database, cookie secret, log)
    admin_token: str | None  #: the API token of the configuration's admin service, if any

    @property
    def log_path(self) -> Path:
        """The file the hub (and its proxy and managed services) log to."""
        return self.workdir / "jupyterhub.log"

    def log(self) -> str:
        """The log so far: put it in assertion messages, it says why a request was refused."""
        return self.log_path.read_text(errors="replace")

    def api(self, method: str, path: str, **kw: Any) -> requests.Response:
        """A request to ``{url}hub/api/{path}`` with the admin token."""
        if self.admin_token is None:
            raise RuntimeError("running_hub(admin_token=...) was not given: the hub API needs a token")
        headers = {"Authorization": f"token {self.admin_token}", **kw.pop("headers", {})}
        timeout = kw.pop("timeout", 30)
        url = f"{self.url}hub/api/{path.lstrip('/')}"
        return requests.request(method, url, headers=headers, timeout=timeout, **kw)

    def login(self, username: str, password: str) -> requests.Session:
        """A browser-like session logged in through the hub's real login form.

        The form is protected against cross-site posts: its ``_xsrf`` value comes from the cookie the
        login page sets, and goes back both as that cookie and as the form field, as a browser does.
        The answer is not followed (after login the hub would go on to spawn the user's server).
        """
        session = requests.Session()
        page = session.get(f"{self.url}hub/login", timeout=30)
        assert page.status_code == 200, page.text
        xsrf = session.cookies.get("_xsrf", path="/hub/")
        assert xsrf, f"the login page set no _xsrf cookie: {session.cookies}"
        answer = session.post(
            f"{self.url}hub/login",
            data={"username": username, "password": password, "_xsrf": xsrf},
            allow_redirects=False,
            timeout=30,
        )
        assert answer.status_code == 302, f"login of {username} failed ({answer.status_code}): {answer.text}"
        assert "jupyterhub-hub-login" in session.cookies, f"no hub login cookie after login of {username}"
        return session

    def token_for(self, username: str, scopes: list[str], note: str = "test") -> str:
        """A new API token of ``username`` limited to ``scopes`` (created by the admin service)."""
        response = self.api("POST", f"users/{username}/tokens", json={"scopes": scopes, "note": note})
        assert response.status_code == 201, response.text
        return str(response.json()["token"])


@contextmanager
def running_hub(
    config_file: Path,
    workdir: Path,
    *,
    port: int,
    env: dict[str, str] | None = None,
    admin_token: str | None = None,
    timeout: float = 60,
    as_user: str | None = None,
) -> Iterator[RunningHub]:
    """Run ``jupyterhub -f config_file`` in ``workdir`` until the block ends (as the system account
    ``as_user`` if given: the hub without root).

    ``port`` is the public (proxy) port that the configuration binds (``c.JupyterHub.bind_url``); the hub
    counts as up when ``{url}hub/health`` answers through the proxy. On exit the hub gets SIGTERM, which it
    passes on to its proxy and managed services, and is killed if it has not stopped after 60 s.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}/"
    hub = RunningHub(url, workdir, admin_token)
    log = open(hub.log_path, "ab")  # noqa: SIM115 - closed below, after the process ends
    become = ["runuser", "-u", as_user, "--"] if as_user else []
    proc = subprocess.Popen(
        [*become, sys.executable, "-m", "jupyterhub", "-f", str(config_file)],
        cwd=workdir,
        env=os.environ | (env or {}),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(f"{url}hub/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                state = "exited" if proc.poll() is not None else f"not healthy after {timeout:g} s"
                raise RuntimeError(f"jupyterhub {state}:\n{hub.log()}")
            time.sleep(0.2)
        yield hub
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)  # stopping every server first can take a while
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
