"""The workbench benchmark (issue 7): how long one member's verdict takes to reach a teammate.

A real ``surveyhub archive`` (standalone, SQLite platform database, two members of team ``astro``) on a
small mock release. Measured in the same run:

- **baseline**: a plain authenticated GET round trip to the archive's API that touches no database
  (``api/workbench/teams``: the caller's identity and teams as JSON), and ``api/releases`` for reference;
- **poll**: one ``changes?since=N`` call with nothing new (what every open app does once a second);
- **write**: one verdict PUT (an upsert that bumps the list's change number);
- **visible, polling flat out**: from the start of alice's PUT until bob's poller, calling ``changes`` back
  to back, holds the verdict: the floor of "as they are made";
- **visible, the app's 1 s poll**: the same with bob polling every :data:`POLL_SECONDS`, as the app does,
  so what a member actually waits.

Median and p95 of each, and each one's ratio to the baseline's median.

Environment: ``BENCH_WORKBENCH_N`` (verdicts timed flat out, 300), ``BENCH_WORKBENCH_APP_N`` (verdicts at the
app's poll rate, 30), ``BENCH_DIR`` (work folder, removed at the end unless given).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from pathlib import Path

import numpy as np

from bench.workdir import work_dir
from surveyhub.apps.workbench import POLL_SECONDS
from surveyhub.releases.mock.release import build_mock_release
from tests.support.workbench import session_for, workbench_archive


def _stats(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {"median": float(np.median(ms)), "p95": float(np.percentile(ms, 95))}


def _time_calls(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def _visible_latency(url: str, list_id: str, obsids: list[int], interval: float, tag: str) -> list[float]:
    """Alice writes one verdict at a time; bob's poller notes when each first shows up in his feed."""
    alice, bob = session_for("alice"), session_for("bob")
    changes = f"{url}api/workbench/lists/{list_id}/changes"
    cursor = bob.get(changes, params={"since": 0}, timeout=30).json()["seq"]
    seen: dict[str, float] = {}
    stop = threading.Event()

    def poll() -> None:
        nonlocal cursor
        while not stop.is_set():
            got = bob.get(changes, params={"since": cursor}, timeout=30).json()
            now = time.perf_counter()
            for v in got["verdicts"]:
                seen.setdefault(v["note"], now)
            cursor = got["seq"]
            if interval:
                time.sleep(interval)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    latencies = []
    try:
        for i, obsid in enumerate(obsids):
            note = f"{tag}-{i}"
            start = time.perf_counter()
            answer = alice.put(
                f"{url}api/workbench/lists/{list_id}/items/{obsid}/verdict",
                json={"class_ok": True, "note": note},
                timeout=30,
            )
            answer.raise_for_status()
            while note not in seen:
                time.sleep(0.0005)
            latencies.append(seen[note] - start)
            # start the next write at a random point of the poll cycle, as a member's click would
            time.sleep(float(np.random.default_rng(i).uniform(0, interval)) if interval else 0.002)
    finally:
        stop.set()
        poller.join(timeout=10)
    return latencies


def main() -> None:
    """Run the benchmark and print its figures."""
    n = int(os.environ.get("BENCH_WORKBENCH_N", "300"))
    n_app = int(os.environ.get("BENCH_WORKBENCH_APP_N", "30"))
    with work_dir("surveyhub-bench-workbench-") as work:
        store = str(work / "store")
        if not (Path(store) / "DEMO" / "v1" / "release.toml").exists():
            build_mock_release(store, "DEMO", 600, fits_files=0, seed=3, log=lambda _: None)
        with workbench_archive(store, work / "archive") as url:
            alice = session_for("alice")
            rows = alice.get(
                url + "api/DEMO/v1/search", params={"columns": "obsid", "limit": 200}, timeout=60
            )
            obsids = [r[0] for r in rows.json()["rows"]]
            made = alice.post(
                url + "api/workbench/teams/astro/lists",
                json={"title": "bench", "release": "DEMO", "version": "v1", "obsids": obsids},
                timeout=60,
            )
            made.raise_for_status()
            list_id = made.json()["id"]
            # warm up: connections, the serving copies, SQLite's first pages
            _time_calls(lambda: alice.get(url + "api/releases", timeout=30), 20)
            _visible_latency(url, list_id, obsids[:20], 0.0, "warm")

            baseline = _time_calls(
                lambda: alice.get(url + "api/workbench/teams", timeout=30).raise_for_status(), n
            )
            releases = _time_calls(lambda: alice.get(url + "api/releases", timeout=30).raise_for_status(), n)
            bob = session_for("bob")
            seq = bob.get(f"{url}api/workbench/lists/{list_id}/changes", params={"since": 0}, timeout=30)
            last = seq.json()["seq"]
            poll = _time_calls(
                lambda: bob.get(
                    f"{url}api/workbench/lists/{list_id}/changes", params={"since": last}, timeout=30
                ).raise_for_status(),
                n,
            )
            writes = _time_calls(
                lambda: alice.put(
                    f"{url}api/workbench/lists/{list_id}/items/{obsids[0]}/verdict",
                    json={"class_ok": True, "note": "w"},
                    timeout=30,
                ).raise_for_status(),
                n,
            )
            flat = _visible_latency(url, list_id, [obsids[i % len(obsids)] for i in range(n)], 0.0, "flat")
            app = _visible_latency(url, list_id, obsids[:n_app], POLL_SECONDS, "app")

    base = statistics.median(baseline) * 1000
    print(f"workbench: verdict visible to a teammate (standalone archive, SQLite; n={n}, app n={n_app})")
    for name, samples in (
        ("baseline GET api/workbench/teams", baseline),
        ("GET api/releases", releases),
        ("poll changes?since (nothing new)", poll),
        ("write verdict (PUT upsert)", writes),
        ("visible, polling flat out", flat),
        (f"visible, app poll every {POLL_SECONDS:g} s", app),
    ):
        s = _stats(samples)
        print(
            f"  {name:<36} median {s['median']:8.2f} ms  p95 {s['p95']:8.2f} ms  "
            f"ratio to baseline {s['median'] / base:6.2f}"
        )


if __name__ == "__main__":
    main()
