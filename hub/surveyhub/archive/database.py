"""The platform database: query history and TAP jobs (SQLite by default, PostgreSQL through SQLAlchemy).

What a researcher asked (searches, TAP queries) is kept per user with its time, row count and duration,
so it can be re-run and shared with a team; TAP async jobs live here too, so they outlive the service
process: a job that was running when the service stopped is marked ERROR with that reason at the next
start, and finished results stay.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Integer, String, Text, create_engine, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

log = logging.getLogger("surveyhub.archive")


def utcnow() -> datetime:
    """Now, in UTC (timezone-aware)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of the archive's tables."""


class QueryRecord(Base):
    """One search or TAP query a user ran."""

    __tablename__ = "query_history"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # search | tap-sync | tap-async | sql
    release: Mapped[str | None] = mapped_column(String(255), nullable=True)
    version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    query: Mapped[str] = mapped_column(Text)  # ADQL text, or the search as JSON
    started: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    rows: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="OK")
    shared_with: Mapped[list[str]] = mapped_column(JSON, default=list)  # teams (JupyterHub groups)


class TapJob(Base):
    """A TAP async job (UWS 1.1)."""

    __tablename__ = "tap_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    phase: Mapped[str] = mapped_column(String(16), default="PENDING")
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)  # the owner's groups when submitted
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    destruction: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    execution_duration: Mapped[int] = mapped_column(Integer, default=600)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    result_type: Mapped[str | None] = mapped_column(String(128), nullable=True)
    rows: Mapped[int | None] = mapped_column(Integer, nullable=True)
    overflow: Mapped[bool | None] = mapped_column(Integer, nullable=True)


@dataclass
class PlatformDatabase:
    """Access to the platform database."""

    engine: Engine

    def __post_init__(self) -> None:
        self._queue: queue.SimpleQueue[QueryRecord] = queue.SimpleQueue()
        # records queued and not yet committed (or given up on); flush_history waits for it to be 0
        self._pending = 0
        self._settled = threading.Condition()
        threading.Thread(target=self._drain, name="history-writer", daemon=True).start()

    @classmethod
    def connect(cls, url: str) -> PlatformDatabase:
        """Open (and create the tables of) the database at ``url`` (``sqlite:///path``, ``postgresql://...``)."""
        engine = create_engine(url, pool_pre_ping=True)
        Base.metadata.create_all(engine)
        return cls(engine)

    def session(self) -> Session:
        """A new ORM session (use as a context manager)."""
        return Session(self.engine, expire_on_commit=False)

    # --- history -------------------------------------------------------------------------------------

    def record_later(self, owner: str, kind: str, query: str | dict[str, Any], **fields: Any) -> None:
        """Queue a history record; a background thread commits queued records in batches.

        A commit costs milliseconds (an fsync on SQLite); searches answered in one must not wait for it.
        """
        text = query if isinstance(query, str) else json.dumps(query, sort_keys=True)
        with self._settled:
            self._pending += 1
        self._queue.put(
            QueryRecord(
                id=uuid.uuid4().hex,
                owner=owner,
                kind=kind,
                query=text,
                started=utcnow(),
                shared_with=[],
                status=fields.pop("status", "OK"),
                **fields,
            )
        )

    def _drain(self) -> None:
        while True:
            batch = [self._queue.get()]
            time.sleep(0.2)  # let a burst (a panel's pages, an import) gather into one commit
            while not self._queue.empty():
                batch.append(self._queue.get())
            try:
                self._commit(batch)
            finally:
                with self._settled:
                    self._pending -= len(batch)
                    self._settled.notify_all()

    def _commit(self, batch: list[QueryRecord]) -> None:
        """Commit a batch; if it fails, each record alone, so one bad record loses only itself.

        Never raises: a database hiccup may lose history, never the writer thread.
        """
        try:
            with self.session() as s, s.begin():
                s.add_all(batch)
            return
        except Exception:
            if len(batch) == 1:
                log.exception("history: could not record a query of %s", batch[0].owner)
                return
        for record in batch:
            self._commit([record])

    def flush_history(self, timeout: float = 5.0) -> None:
        """Wait until every history record queued so far is committed (reading right after writing)."""
        with self._settled:
            self._settled.wait_for(lambda: self._pending == 0, timeout)

    def record_query(
        self,
        owner: str,
        kind: str,
        query: str | dict[str, Any],
        *,
        release: str | None = None,
        version: str | None = None,
        duration_s: float | None = None,
        rows: int | None = None,
        status: str = "OK",
    ) -> QueryRecord:
        """Keep one query in the owner's history."""
        text = query if isinstance(query, str) else json.dumps(query, sort_keys=True)
        record = QueryRecord(
            id=uuid.uuid4().hex,
            owner=owner,
            kind=kind,
            release=release,
            version=version,
            query=text,
            duration_s=duration_s,
            rows=rows,
            status=status,
            shared_with=[],
        )
        with self.session() as s, s.begin():
            s.add(record)
        return record

    def history(self, owner: str, teams: Iterable[str] = (), limit: int = 200) -> list[QueryRecord]:
        """The owner's queries and those shared with any of ``teams``, newest first."""
        self.flush_history()
        teams = set(teams)
        with self.session() as s:
            mine = list(s.scalars(select(QueryRecord).where(QueryRecord.owner == owner)))
            shared = [
                r
                for r in s.scalars(select(QueryRecord).where(QueryRecord.owner != owner))
                if teams.intersection(r.shared_with or [])
            ]
        return sorted(mine + shared, key=lambda r: r.started, reverse=True)[:limit]

    def share(self, owner: str, record_id: str, team: str, owner_teams: Iterable[str]) -> QueryRecord:
        """Share one of the owner's queries with a team the owner belongs to."""
        if team not in set(owner_teams):
            raise PermissionError(f"team {team!r}: you are not a member")
        with self.session() as s, s.begin():
            record = s.get(QueryRecord, record_id)
            if record is None or record.owner != owner:
                raise KeyError(f"no query {record_id!r} in your history")
            record.shared_with = sorted(set(record.shared_with or []) | {team})
        return record

    def get_query(self, record_id: str, owner: str, teams: Iterable[str] = ()) -> QueryRecord:
        """One query the caller may see (their own, or shared with one of their teams)."""
        with self.session() as s:
            record = s.get(QueryRecord, record_id)
        if record is None or (
            record.owner != owner and not set(teams).intersection(record.shared_with or [])
        ):
            raise KeyError(f"no query {record_id!r} in your history")
        return record

    # --- TAP jobs ------------------------------------------------------------------------------------

    def fail_interrupted_jobs(self) -> int:
        """At start: jobs left QUEUED or EXECUTING by a stopped service end in ERROR, saying so."""
        with self.session() as s, s.begin():
            result = s.execute(
                update(TapJob)
                .where(TapJob.phase.in_(("QUEUED", "EXECUTING")))
                .values(
                    phase="ERROR", ended=utcnow(), error="the archive service restarted while this job ran"
                )
            )
        return int(result.rowcount or 0)
