"""DuckDB with no way out: the engine that runs user SQL over the tables a caller may read.

One DuckDB database per engine is opened with external access disabled (no file, network or extension
access: ``read_csv('/etc/passwd')``, ``COPY``, ``ATTACH``, ``INSTALL``/``LOAD`` fail inside DuckDB) and its
configuration locked (``SET`` cannot undo that). Tables reach it only as Arrow objects registered on a
per-query cursor under names private to that query, so a query sees the relations its caller may read
and nothing else. Every query has a time limit (DuckDB's ``interrupt``) and a row limit.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

LOCKED_CONFIG = {
    "enable_external_access": False,
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "allow_community_extensions": False,
    "lock_configuration": True,
}


class QueryError(ValueError):
    """The query cannot run: bad SQL for the engine, over its time limit, or refused."""


class QueryTimeout(QueryError):
    """The query ran longer than its time limit and was stopped."""


@dataclass(frozen=True)
class QueryResult:
    """A query's rows as Arrow batches, and whether more rows existed than the row limit allowed."""

    table: pa.Table
    overflow: bool


class Sandbox:
    """A locked-down DuckDB database; queries run on cursors with per-query registered relations."""

    def __init__(self, threads: int = 2, memory_limit: str = "4GB") -> None:
        config: dict[str, Any] = {"threads": threads, "memory_limit": memory_limit} | LOCKED_CONFIG
        self._db = duckdb.connect(":memory:", config=config)
        self._lock = threading.Lock()

    def _new_cursor(self, relations: Mapping[str, Any]) -> duckdb.DuckDBPyConnection:
        """A cursor of the locked database with ``relations`` registered under exactly the names given."""
        with self._lock:
            cur = self._db.cursor()
        try:
            for name, obj in relations.items():
                cur.register(name, obj)
        except duckdb.Error:
            cur.close()
            raise
        return cur

    @contextmanager
    def cursor(
        self, relations: Mapping[str, Any]
    ) -> Iterator[tuple[duckdb.DuckDBPyConnection, dict[str, str]]]:
        """A cursor with ``relations`` (Arrow tables or datasets) registered under private names.

        Yields the cursor and the mapping from the given names to the private ones to put in SQL.
        """
        private = {name: f"r_{uuid.uuid4().hex[:16]}_{i}" for i, name in enumerate(relations)}
        cur = self._new_cursor({private[name]: obj for name, obj in relations.items()})
        try:
            yield cur, private
        finally:
            for name in private.values():
                with suppress(duckdb.Error):
                    cur.unregister(name)
            cur.close()

    def execute(
        self,
        sql: str,
        relations: Mapping[str, Any],
        *,
        params: list[Any] | None = None,
        max_rows: int | None = None,
        timeout_s: float = 30.0,
    ) -> QueryResult:
        """Run ``sql`` that names relations exactly as the keys of ``relations`` (already private names).

        For SQL produced by the ADQL translator, whose relation names are chosen per query and unknown to
        the user; the SQL text is used as it is (no formatting: user literals may contain braces).
        """
        cur = self._new_cursor(relations)
        try:
            return self._fetch(cur, sql, params, max_rows, timeout_s, {})
        finally:
            cur.close()

    def open_stream(
        self,
        sql: str,
        relations: Mapping[str, Any],
        *,
        names: Sequence[str] | None = None,
        max_rows: int | None = None,
        timeout_s: float = 30.0,
    ) -> ResultStream:
        """Start ``sql`` (relations under the exact names given) and return its rows as a stream.

        The rows are pulled batch by batch while the response is written, so a large result never sits
        in memory whole; the cursor stays open until the stream is exhausted or closed.
        """
        cur = self._new_cursor(relations)
        try:
            timer = threading.Timer(timeout_s, cur.interrupt)
            timer.start()
            reader = cur.sql(sql).to_arrow_reader(65536)
        except duckdb.Error as exc:
            cur.close()
            if isinstance(exc, duckdb.InterruptException):
                raise QueryTimeout(
                    f"the query ran longer than its limit of {timeout_s:g} s and was stopped"
                ) from exc
            raise QueryError(_clean(str(exc), {})) from exc
        return ResultStream(cur, reader, timer, max_rows, timeout_s, list(names) if names else None)

    def _fetch(
        self,
        cur: duckdb.DuckDBPyConnection,
        text: str,
        params: list[Any] | None,
        max_rows: int | None,
        timeout_s: float,
        private: Mapping[str, str],
    ) -> QueryResult:
        timer = threading.Timer(timeout_s, cur.interrupt)
        timer.start()
        try:
            reader = cur.sql(text, params=params or None).to_arrow_reader(65536)
            batches: list[pa.RecordBatch] = []
            rows = 0
            overflow = False
            for batch in reader:
                if max_rows is not None and rows + batch.num_rows > max_rows:
                    batches.append(batch.slice(0, max_rows - rows))
                    overflow = True
                    break
                batches.append(batch)
                rows += batch.num_rows
            return QueryResult(pa.Table.from_batches(batches, schema=reader.schema), overflow)
        except duckdb.InterruptException as exc:
            raise QueryTimeout(
                f"the query ran longer than its limit of {timeout_s:g} s and was stopped"
            ) from exc
        except duckdb.Error as exc:
            raise QueryError(_clean(str(exc), private)) from exc
        finally:
            timer.cancel()

    def run(
        self,
        sql: str,
        relations: Mapping[str, Any],
        *,
        params: list[Any] | None = None,
        max_rows: int | None = None,
        timeout_s: float = 30.0,
        rename: bool = True,
    ) -> QueryResult:
        """Run ``sql`` (which names relations by the keys of ``relations`` in ``{braces}``) and fetch rows.

        At most ``max_rows`` rows are returned; ``overflow`` says whether there were more.
        """
        with self.cursor(relations) as (cur, private):
            text = sql.format(**private) if rename else sql
            return self._fetch(cur, text, params, max_rows, timeout_s, private)


class ResultStream:
    """Batches of a running query, at most ``max_rows`` rows; ``overflow()`` tells, once drained, if more
    existed. Iterate it once; it closes its cursor at the end (or on :meth:`close`)."""

    def __init__(
        self,
        cursor: duckdb.DuckDBPyConnection,
        reader: pa.RecordBatchReader,
        timer: threading.Timer,
        max_rows: int | None,
        timeout_s: float,
        names: list[str] | None,
    ) -> None:
        self._cursor = cursor
        self._reader = reader
        self._timer = timer
        self._max_rows = max_rows
        self._timeout_s = timeout_s
        self._overflow = False
        self.rows = 0
        self.schema = (
            reader.schema
            if names is None
            else pa.schema([f.with_name(n) for f, n in zip(reader.schema, names, strict=True)])
        )

    def overflow(self) -> bool:
        """Whether rows were left out because of the row limit (meaningful once the stream is drained)."""
        return self._overflow

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        try:
            for batch in self._reader:
                batch = pa.RecordBatch.from_arrays(batch.columns, schema=self.schema)
                if self._max_rows is not None and self.rows + batch.num_rows > self._max_rows:
                    batch = batch.slice(0, self._max_rows - self.rows)
                    self._overflow = True
                    self.rows += batch.num_rows
                    if batch.num_rows:
                        yield batch
                    return
                self.rows += batch.num_rows
                yield batch
        except duckdb.InterruptException as exc:
            raise QueryTimeout(
                f"the query ran longer than its limit of {self._timeout_s:g} s and was stopped"
            ) from exc
        except duckdb.Error as exc:
            raise QueryError(_clean(str(exc), {})) from exc
        finally:
            self.close()

    def close(self) -> None:
        """Stop the query and free its cursor."""
        self._timer.cancel()
        with suppress(duckdb.Error):
            self._cursor.close()


def _clean(message: str, private: Mapping[str, str]) -> str:
    """DuckDB's message with our private relation names put back to the names the user wrote."""
    for name, hidden in private.items():
        message = message.replace(hidden, name)
    return message.split("\n")[0]
