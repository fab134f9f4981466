"""The archive benchmark (issue: the archive service), against PostgreSQL 15 + q3c on the same rows.

On a catalog-only mock of ``BENCH_ARCHIVE_ROWS`` rows (10 million by default), with q3c, the engine NOIRLab's
Astro Data Lab serves, loaded with the same LRS catalog rows as the reference in the same run:

- cone searches of 1', 10', 1 deg and 5 deg at 200 centres drawn from the catalog (all columns returned);
- obsid look-ups (all columns), and a class + SNR count;
- p50/p95/p99 of each, in-process; the 1' cone and the look-up also through the HTTP API;
- 16 concurrent clients for 20 s: 1' cones over HTTP, and over q3c (throughput, p99).

Every figure is printed beside q3c's with the ratio (ours / q3c: below 1 is faster). PostgreSQL runs as the
``postgres`` system account in a temporary cluster on a Unix socket; ``make bench`` installs Debian's
postgresql-15-q3c when it is missing (as root).

Environment: ``BENCH_ARCHIVE_ROWS`` (10000000), ``BENCH_ARCHIVE_STORE`` (reuse a store holding release BIG),
``BENCH_DIR`` (work folder, removed at the end unless it was given).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import requests

from surveyhub.archive.engine import ArchiveEngine, Limits
from surveyhub.archive.sandbox import Sandbox
from surveyhub.releases.mock.release import build_mock_release
from surveyhub.releases.registry import ReleaseStore

RADII_ARCMIN = {"1arcmin": 1.0, "10arcmin": 10.0, "1deg": 60.0, "5deg": 300.0}
CENTRES = 200
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _pct(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {
        "p50": round(float(np.percentile(ms, 50)), 3),
        "p95": round(float(np.percentile(ms, 95)), 3),
        "p99": round(float(np.percentile(ms, 99)), 3),
    }


def _time_each(items: list, fn: Callable) -> list[float]:
    out = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - start)
    return out


class Postgres:
    """A throw-away PostgreSQL 15 cluster with q3c, run as the postgres account on a Unix socket."""

    def __init__(self, work: Path) -> None:
        self.dir = work / "pg"
        self.socket = work / "pgsock"
        for d in (self.dir, self.socket):
            shutil.rmtree(d, ignore_errors=True)  # a cluster left by an interrupted run
            d.mkdir(parents=True)
            shutil.chown(d, "postgres", "postgres")
        self._as_postgres([str(PG_BIN / "initdb"), "-D", str(self.dir), "-A", "trust", "-U", "postgres"])
        conf = "\nshared_buffers = '4GB'\nwork_mem = '64MB'\nmax_connections = 50\nfsync = off\n"
        (self.dir / "postgresql.conf").write_text((self.dir / "postgresql.conf").read_text() + conf)
        self._as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.dir),
                "-o",
                f"-k {self.socket} -c listen_addresses=''",
                "-w",
                "start",
            ]
        )

    def _as_postgres(self, cmd: list[str]) -> None:
        # No pipes: the server started by pg_ctl would hold them open and the call would never return.
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *cmd],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def connect(self):
        import psycopg

        return psycopg.connect(host=str(self.socket), user="postgres", dbname="postgres", autocommit=True)

    def stop(self) -> None:
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.dir), "-m", "fast", "stop"])


_PG_TYPES = {
    "int16": "smallint",
    "int32": "integer",
    "int64": "bigint",
    "float": "real",
    "double": "double precision",
    "bool": "boolean",
    "string": "text",
    "large_string": "text",
}


def load_postgres(pg: Postgres, table: pa.Table) -> float:
    """Load the catalog rows with q3c and obsid indexes, clustered on q3c; returns seconds."""
    start = time.perf_counter()
    columns = [f for f in table.schema if not f.name.startswith("_")]
    ddl = ", ".join(f'"{f.name}" {_PG_TYPES.get(str(f.type), "text")}' for f in columns)
    with pg.connect() as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS q3c")
        conn.execute(f"CREATE TABLE lrs ({ddl})")
        names = ", ".join(f'"{f.name}"' for f in columns)
        with conn.cursor().copy(f"COPY lrs ({names}) FROM STDIN WITH (FORMAT csv)") as copy:
            for batch in table.select([f.name for f in columns]).to_batches(200_000):
                buf = io.BytesIO()
                pacsv.write_csv(
                    pa.Table.from_batches([batch]),
                    buf,
                    write_options=pacsv.WriteOptions(include_header=False),
                )
                copy.write(buf.getvalue())
        conn.execute("CREATE INDEX lrs_q3c ON lrs (q3c_ang2ipix(ra, dec))")
        conn.execute("CLUSTER lrs USING lrs_q3c")
        conn.execute("CREATE INDEX lrs_obsid ON lrs (obsid)")
        conn.execute("ANALYZE lrs")
    return time.perf_counter() - start


def _serve(store: str, work: Path) -> tuple[subprocess.Popen, str]:
    from tests.support.archive import ALICE, write_tokens
    from tests.support.s3 import _free_port

    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "surveyhub.cli",
            "archive",
            "--root",
            store,
            "--port",
            str(port),
            "--cache",
            str(work / "http-cache"),
            "--tokens",
            str(write_tokens(work / "tokens.toml")),
            "--max-radius",
            "10",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    for _ in range(600):
        try:
            requests.get(url + "api/releases", headers={"Authorization": f"token {ALICE}"}, timeout=5)
            return proc, url
        except requests.ConnectionError:
            time.sleep(0.5)
    raise RuntimeError("archive did not start")


def _load(n_clients: int, seconds: float, make: Callable[[], Callable[[int], None]]) -> dict[str, float]:
    """``n_clients`` threads calling their function for ``seconds``; throughput and p99."""
    stop = time.monotonic() + seconds
    samples: list[float] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        call = make()
        mine = []
        i = k
        while time.monotonic() < stop:
            start = time.perf_counter()
            call(i)
            mine.append(time.perf_counter() - start)
            i += n_clients
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"per_s": round(len(samples) / seconds, 1), **_pct(samples)}


def main() -> None:
    """Run and print the figures (also saved to bench/results/archive.json)."""
    from tests.support.archive import ALICE

    rows = int(os.environ.get("BENCH_ARCHIVE_ROWS", "10000000"))
    given = os.environ.get("BENCH_DIR")
    work = Path(given or tempfile.mkdtemp(prefix="surveyhub-archive-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    store_root = os.environ.get("BENCH_ARCHIVE_STORE") or str(work / "store")
    figures: dict[str, object] = {"rows": rows}
    pg = None
    server = None
    try:
        store = ReleaseStore(store_root)
        if not store.versions({"lamost-wg"}):
            start = time.perf_counter()
            build_mock_release(store_root, "BIG", rows, fits_files=0, seed=3, workers=2, log=lambda _: None)
            figures["mock_seconds"] = round(time.perf_counter() - start, 1)
        version = store.version("BIG", "v0", {"lamost-wg"})
        engine = ArchiveEngine(store, work / "cache", Limits(max_radius_deg=10))
        start = time.perf_counter()
        cat = engine.catalog(version, "lrs")
        figures["serving_copy_seconds"] = round(time.perf_counter() - start, 1)
        figures["rows"] = cat.num_rows
        rng = np.random.default_rng(9)
        picks = rng.choice(cat.num_rows, CENTRES, replace=False)
        centres = [(float(cat.ra[i]), float(cat.dec[i])) for i in picks]
        obsids = [int(o) for o in cat.table["obsid"].take(pa.array(picks)).to_pylist()]

        pg = Postgres(work)
        figures["q3c_load_seconds"] = round(load_postgres(pg, cat.table), 1)
        conn = pg.connect()

        for label, arcmin in RADII_ARCMIN.items():
            r = arcmin / 60

            def ours(c: tuple[float, float], r: float = r) -> None:
                rows_, _ = cat.cone_rows(c[0], c[1], r)
                cat.take(rows_)

            def q3c(c: tuple[float, float], r: float = r) -> None:
                conn.execute(
                    "SELECT * FROM lrs WHERE q3c_radial_query(ra, dec, %s, %s, %s)", (c[0], c[1], r)
                ).fetchall()

            ours(centres[0])
            q3c(centres[0])
            a, b = _pct(_time_each(centres, ours)), _pct(_time_each(centres, q3c))
            figures[f"cone_{label}"] = {"ours": a, "q3c": b, "ratio_p50": round(a["p50"] / b["p50"], 2)}
            print(json.dumps({f"cone_{label}": figures[f"cone_{label}"]}), flush=True)

        a = _pct(_time_each(obsids, lambda o: cat.take(cat.obsid_rows([o]))))
        b = _pct(
            _time_each(obsids, lambda o: conn.execute("SELECT * FROM lrs WHERE obsid = %s", (o,)).fetchall())
        )
        figures["obsid"] = {"ours": a, "q3c": b, "ratio_p50": round(a["p50"] / b["p50"], 2)}

        sandbox = Sandbox()
        count_sql = "SELECT count(*) FROM {t} WHERE \"class\" = 'STAR' AND snrg > 20"
        a = _pct(_time_each(list(range(20)), lambda _: sandbox.run(count_sql, {"t": cat.table})))
        b = _pct(
            _time_each(
                list(range(5)),
                lambda _: conn.execute(
                    "SELECT count(*) FROM lrs WHERE class = 'STAR' AND snrg > 20"
                ).fetchall(),
            )
        )
        figures["class_snr_count"] = {"ours": a, "q3c": b, "ratio_p50": round(a["p50"] / b["p50"], 2)}
        print(json.dumps({k: figures[k] for k in ("obsid", "class_snr_count")}), flush=True)

        server, url = _serve(store_root, work)
        session = requests.Session()
        session.headers["Authorization"] = f"token {ALICE}"
        search = url + "api/BIG/v0/search"
        session.get(search, params={"ra": centres[0][0], "dec": centres[0][1], "radius": "1arcmin"})
        http_cone = _pct(
            _time_each(
                centres,
                lambda c: session.get(
                    search, params={"ra": c[0], "dec": c[1], "radius": "1arcmin", "count": "false"}
                ).raise_for_status(),
            )
        )
        http_obsid = _pct(
            _time_each(obsids, lambda o: session.get(search, params={"obsid": o}).raise_for_status())
        )
        figures["http_cone_1arcmin"] = http_cone
        figures["http_obsid"] = http_obsid

        def http_client() -> Callable[[int], None]:
            s = requests.Session()
            s.headers["Authorization"] = f"token {ALICE}"

            def call(i: int) -> None:
                c = centres[i % len(centres)]
                s.get(
                    search, params={"ra": c[0], "dec": c[1], "radius": "1arcmin", "count": "false"}
                ).raise_for_status()

            return call

        def q3c_client() -> Callable[[int], None]:
            own = pg.connect()

            def call(i: int) -> None:
                c = centres[i % len(centres)]
                own.execute(
                    "SELECT * FROM lrs WHERE q3c_radial_query(ra, dec, %s, %s, %s)", (c[0], c[1], 1 / 60)
                ).fetchall()

            return call

        ours_load, q3c_load = _load(16, 20, http_client), _load(16, 20, q3c_client)
        figures["clients16_1arcmin"] = {
            "ours_http": ours_load,
            "q3c": q3c_load,
            "throughput_ratio": round(ours_load["per_s"] / q3c_load["per_s"], 2),
        }
        print(
            json.dumps({k: figures[k] for k in ("http_cone_1arcmin", "http_obsid", "clients16_1arcmin")}),
            flush=True,
        )
    finally:
        if server is not None:
            server.terminate()
        if pg is not None:
            pg.stop()
        if not given:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "archive.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
