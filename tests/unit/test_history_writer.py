"""The archive's history writer: records queued off the request path are all there once flushed."""

from __future__ import annotations

import threading
from pathlib import Path

from surveyhub.archive.database import PlatformDatabase


def test_flush_waits_for_every_queued_record(tmp_path: Path) -> None:
    db = PlatformDatabase.connect(f"sqlite:///{tmp_path / 'platform.sqlite'}")

    def queue_some(owner: str) -> None:
        for i in range(100):
            db.record_later(owner, "search", {"i": i}, rows=i)

    writers = [threading.Thread(target=queue_some, args=(name,)) for name in ("alice", "bob")]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    db.flush_history(timeout=30)
    with db.session() as s:  # straight from the table: flush must have waited for the commits
        from sqlalchemy import func, select

        from surveyhub.archive.database import QueryRecord

        counts = dict(s.execute(select(QueryRecord.owner, func.count()).group_by(QueryRecord.owner)).all())
    assert counts == {"alice": 100, "bob": 100}


def test_a_bad_record_loses_only_itself_and_the_writer_goes_on(tmp_path: Path) -> None:
    db = PlatformDatabase.connect(f"sqlite:///{tmp_path / 'platform.sqlite'}")
    db.record_later("alice", "search", {"n": 1})
    db.record_later(None, "search", {"n": 2})  # type: ignore[arg-type] - owner is NOT NULL: its commit fails
    db.record_later("alice", "search", {"n": 3})
    db.flush_history(timeout=30)
    db.record_later("alice", "search", {"n": 4})
    db.flush_history(timeout=30)
    assert sorted(r.query for r in db.history("alice", [])) == ['{"n": 1}', '{"n": 3}', '{"n": 4}']
