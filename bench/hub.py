"""The hub benchmark (issue: the hub).

Figures, each beside a baseline measured in the same run on the same machine:

1. Spawn-to-ready of a platform server (``surveyhub.hub.configure``: system account, groups, release
   links, cloud and team folders, credentials, environment) against a bare JupyterHub with
   SimpleLocalProcessSpawner running the same ``jupyterhub-singleuser`` from the same environment. Time
   from the spawn request to the server answering ``api/status`` through the proxy; a user's first spawn
   (account made then) and a second one, ``BENCH_HUB_SPAWNS`` users each. Target: ratio under 1.15.
2. ``BENCH_HUB_CONCURRENT`` users (20) logging in through the login form and spawning at once on the
   platform: all must succeed; p50/p95/max time to ready.

Environment: ``BENCH_HUB_SPAWNS`` (5), ``BENCH_HUB_CONCURRENT`` (20).
"""

from __future__ import annotations

import os
import secrets
import statistics
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from surveyhub.releases.mock.release import build_mock_release
from tests.support.jupyterhub import CHP, RunningHub, free_port, running_hub
from tests.support.platform import PASSWORD, reachable_dir, running_platform

ADMIN_TOKEN = secrets.token_hex(24)  # the bare hub's admin service


def _ready(
    hub: RunningHub, name: str, session: requests.Session | None = None, timeout: float = 300
) -> float:
    """Start ``name``'s server; seconds until it answers through the proxy."""
    start = time.perf_counter()
    if session is None:
        answer = hub.api("POST", f"users/{name}/server")
    else:
        xsrf = session.cookies.get("_xsrf", path="/hub/") or ""
        answer = session.post(
            f"{hub.url}hub/api/users/{name}/server", headers={"X-XSRFToken": xsrf}, timeout=60
        )
    if answer.status_code not in (201, 202):
        raise RuntimeError(f"spawn of {name} refused: {answer.status_code} {answer.text}")
    token = hub.token_for(name, [f"access:servers!user={name}"], note="bench")
    deadline = start + timeout
    while time.perf_counter() < deadline:
        try:
            status = requests.get(
                f"{hub.url}user/{name}/api/status", headers={"Authorization": f"token {token}"}, timeout=10
            )
            if status.status_code == 200:
                return time.perf_counter() - start
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{name}'s server was not ready within {timeout} s")


def _stop(hub: RunningHub, name: str) -> None:
    hub.api("DELETE", f"users/{name}/server")
    for _ in range(300):
        if hub.api("GET", f"users/{name}").json()["server"] is None:
            return
        time.sleep(0.1)


def _spawn_series(hub: RunningHub, prefix: str, n: int) -> tuple[list[float], list[float]]:
    """First and second spawn-to-ready of ``n`` users, one at a time (after one uncounted warm-up spawn,
    so neither hub pays for the machine's cold file cache)."""
    warm = f"{prefix}warm"
    assert hub.api("POST", f"users/{warm}").status_code in (201, 409)
    _ready(hub, warm)
    _stop(hub, warm)
    first, again = [], []
    for i in range(n):
        name = f"{prefix}{i}"
        assert hub.api("POST", f"users/{name}").status_code in (201, 409)
        first.append(_ready(hub, name))
        _stop(hub, name)
        again.append(_ready(hub, name))
        _stop(hub, name)
    return first, again


def _bare_config(workdir: Path, port: int) -> Path:
    """A bare JupyterHub: SimpleLocalProcessSpawner, the same single-user server and environment."""
    config = workdir / "jupyterhub_config.py"
    config.write_text(
        textwrap.dedent(
            f"""
            c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
            c.JupyterHub.hub_bind_url = "http://127.0.0.1:{free_port()}"
            c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
            c.ConfigurableHTTPProxy.command = [{str(CHP)!r}]
            c.JupyterHub.authenticator_class = "dummy"
            c.DummyAuthenticator.allow_all = True
            c.JupyterHub.spawner_class = "simple"
            c.SimpleLocalProcessSpawner.home_dir_template = {str(workdir / "homes" / "{username}")!r}
            c.Spawner.cmd = [{str(Path(sys.executable).with_name("jupyterhub-singleuser"))!r}]
            c.Spawner.args = ["--allow-root"] if {os.geteuid() == 0} else []
            c.Spawner.default_url = "/lab"
            c.Spawner.start_timeout = 300
            c.JupyterHub.services = [{{"name": "bench-admin", "api_token": {ADMIN_TOKEN!r}}}]
            c.JupyterHub.load_roles = [{{"name": "admin", "services": ["bench-admin"]}}]
            """
        )
    )
    return config


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _concurrent(hub: RunningHub, n: int) -> list[float]:
    """``n`` users log in (the real form) and spawn at once; seconds to ready for each."""
    names = [f"crowd{i}" for i in range(n)]

    def one(name: str) -> float:
        session = hub.login(name, PASSWORD)
        return _ready(hub, name, session=session)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, names))


def main() -> None:
    """Run the benchmark and print its figures."""
    spawns = int(os.environ.get("BENCH_HUB_SPAWNS", "5"))
    crowd = int(os.environ.get("BENCH_HUB_CONCURRENT", "20"))
    base = reachable_dir("surveyhub-bench-hub-")
    store = base / "store"
    build_mock_release(str(store), "DEMO", 600, fits_files=60, seed=3, log=lambda _: None)

    bare_dir = base / "bare"
    bare_dir.mkdir()
    port = free_port()
    with running_hub(_bare_config(bare_dir, port), bare_dir, port=port, admin_token=ADMIN_TOKEN) as bare:
        bare_first, bare_again = _spawn_series(bare, "bare", spawns)

    (base / "platform").mkdir()
    with running_platform(base / "platform", str(store), users={"start_timeout_s": 300}) as platform:
        for i in range(spawns):
            platform.add_user(f"plat{i}", ["lamost-wg"])
        plat_first, plat_again = _spawn_series(platform.hub, "plat", spawns)
        for i in range(crowd):
            platform.add_user(f"crowd{i}", ["lamost-partners"])
        start = time.perf_counter()
        crowd_times = _concurrent(platform.hub, crowd)
        crowd_wall = time.perf_counter() - start

    bare_all, plat_all = bare_first + bare_again, plat_first + plat_again
    print("\n== hub: spawn-to-ready (s), one at a time ==")
    print(f"{'':24}{'platform':>10}{'bare':>10}{'ratio':>8}")
    for label, ours, theirs in (
        ("first spawn, median", plat_first, bare_first),
        ("second spawn, median", plat_again, bare_again),
        ("all spawns, median", plat_all, bare_all),
    ):
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"{label:24}{a:>10.2f}{b:>10.2f}{a / b:>8.2f}")
    print("target: ratio under 1.15")
    print(f"\n== hub: {crowd} users log in and spawn at once (platform) ==")
    print(
        f"all {len(crowd_times)} ready; p50 {statistics.median(crowd_times):.1f} s, "
        f"p95 {_percentile(crowd_times, 0.95):.1f} s, max {max(crowd_times):.1f} s, wall {crowd_wall:.1f} s"
    )
    subprocess.run(["rm", "-rf", str(base)], check=False)


if __name__ == "__main__":
    main()
