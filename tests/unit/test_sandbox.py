"""The sandboxed DuckDB: no way out, limits that hold, and results that stream."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from surveyhub.archive.sandbox import QueryError, QueryTimeout, Sandbox


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_parquet('/tmp/*.parquet')",
        "SELECT * FROM '/etc/passwd'",
        "COPY (SELECT 1) TO '/tmp/surveyhub-sandbox-escape.csv'",
        "ATTACH '/tmp/surveyhub-sandbox-escape.db'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "SELECT * FROM glob('/etc/*')",
    ],
)
def test_escapes_fail_inside_duckdb(sandbox: Sandbox, sql: str) -> None:
    with pytest.raises(QueryError):
        sandbox.execute(sql, {})
    assert not Path("/tmp/surveyhub-sandbox-escape.csv").exists()
    assert not Path("/tmp/surveyhub-sandbox-escape.db").exists()


def test_registered_relations_are_private_to_their_query(sandbox: Sandbox) -> None:
    table = pa.table({"a": np.arange(10)})
    with sandbox.cursor({"t": table}) as (_, names):
        hidden = names["t"]
    with pytest.raises(QueryError):
        sandbox.execute(f'SELECT * FROM "{hidden}"', {})  # noqa: S608 - gone once its query ended


def test_time_limit_stops_a_runaway_query(sandbox: Sandbox) -> None:
    with pytest.raises(QueryTimeout, match=r"limit of 0\.5 s"):
        sandbox.execute("SELECT count(*) FROM range(100000000000) a, range(1000) b", {}, timeout_s=0.5)


def test_row_limit_sets_overflow(sandbox: Sandbox) -> None:
    result = sandbox.execute("SELECT * FROM range(1000)", {}, max_rows=10)
    assert result.table.num_rows == 10
    assert result.overflow
    assert not sandbox.execute("SELECT * FROM range(10)", {}, max_rows=10).overflow


def test_large_results_stream_in_bounded_memory(sandbox: Sandbox) -> None:
    stream = sandbox.open_stream(
        "SELECT range AS i, CAST(range AS DOUBLE) / 2 AS x FROM range(5000000)",
        {},
        names=["i", "x"],
        max_rows=4_000_000,
    )
    base = pa.total_allocated_bytes()
    peak, rows, total = 0, 0, 0.0
    for batch in stream:
        rows += batch.num_rows
        total += float(np.sum(batch.column("x").to_numpy()))
        peak = max(peak, pa.total_allocated_bytes() - base)
    assert rows == 4_000_000
    assert stream.overflow()
    assert stream.schema.names == ["i", "x"]
    assert total == pytest.approx(0.5 * (4_000_000 - 1) * 4_000_000 / 2)
    assert peak < 16 * 2**20  # 4M rows of two 8-byte columns would be 64 MB
