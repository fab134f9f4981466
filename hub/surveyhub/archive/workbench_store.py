"""The team inspection workbench's state: target lists, their items and every member's verdicts.

It lives in the platform database (SQLite by default, PostgreSQL in production) beside the query
history, behind the archive's authenticated API (:mod:`.workbench_api`), so a team's lists are kept and
checked in one place whatever server or browser a member works from.

Two rules make concurrent work safe:

- **one row per verdict**, keyed ``(list, obsid, member)`` and written with the database's own upsert
  (``INSERT ... ON CONFLICT DO UPDATE``), so two members labelling the same item at once write two rows,
  and one member's second click replaces only their own;
- **a sequence per list**: every write first bumps the list's ``seq`` (``UPDATE ... RETURNING``), which
  takes the list row's write lock until the transaction commits. Writes to one list therefore commit in
  the order of their numbers, and a poller that asks for "changes after N" never misses one that commits
  late with a lower number (what a plain autoincrement would allow on PostgreSQL).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    event,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

#: Class names a verdict may correct to (LAMOST's pipeline classes).
CLASSES = ("STAR", "GALAXY", "QSO", "Unknown")
#: Quality flags a member may set on a spectrum.
QUALITY_FLAGS = (
    "low-snr",
    "bad-sky-subtraction",
    "fibre-cross-talk",
    "bad-flux-calibration",
    "blue-arm-bad",
    "red-arm-bad",
    "artefact",
    "blend",
)
#: The most items one list may hold (a list is stepped through by hand).
MAX_ITEMS = 5000
#: Redshift fixes farther apart than this (in z) are a disagreement.
Z_TOLERANCE = 0.01
SOURCES = ("obsids", "query", "history", "manifest")


def utcnow() -> datetime:
    """Now, in UTC (timezone-aware)."""
    return datetime.now(UTC)


class WorkbenchError(ValueError):
    """Bad input to the workbench; the message names the field and the problem."""


class NotFound(KeyError):
    """No such list or item for this caller (also when it exists but belongs to another team)."""


class Base(DeclarativeBase):
    """Declarative base of the workbench's tables (``wb_*`` in the platform database)."""


class TargetList(Base):
    """A team's list of spectra to inspect."""

    __tablename__ = "wb_lists"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    team: Mapped[str] = mapped_column(String(255), index=True)
    title: Mapped[str] = mapped_column(String(200))
    release: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # one of SOURCES
    query: Mapped[str | None] = mapped_column(Text, nullable=True)  # the query the obsids came from
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str] = mapped_column(String(255))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    n_items: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)  # last change number


class ListItem(Base):
    """One spectrum of a list, with the pipeline's catalog facts as they were when the list was made."""

    __tablename__ = "wb_items"

    list_id: Mapped[str] = mapped_column(ForeignKey("wb_lists.id", ondelete="CASCADE"), primary_key=True)
    obsid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    catalog: Mapped[str] = mapped_column(String(16))  # lrs | mrs
    catalog_class: Mapped[str | None] = mapped_column(String(32), nullable=True)
    catalog_subclass: Mapped[str | None] = mapped_column(String(64), nullable=True)
    catalog_z: Mapped[float | None] = mapped_column(Float, nullable=True)


class Verdict(Base):
    """One member's verdict on one item: the row is theirs alone, so teammates never overwrite it."""

    __tablename__ = "wb_verdicts"

    list_id: Mapped[str] = mapped_column(ForeignKey("wb_lists.id", ondelete="CASCADE"), primary_key=True)
    obsid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    member: Mapped[str] = mapped_column(String(255), primary_key=True)
    class_ok: Mapped[bool] = mapped_column(Boolean)  # the catalog class is confirmed
    corrected_class: Mapped[str | None] = mapped_column(String(32), nullable=True)
    quality_flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    z_fix: Mapped[float | None] = mapped_column(Float, nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    seq: Mapped[int] = mapped_column(BigInteger, index=True)


@dataclass(frozen=True)
class CatalogFacts:
    """What the pipeline says about one obsid (copied into the list's items)."""

    obsid: int
    catalog: str
    klass: str | None
    subclass: str | None
    z: float | None


@dataclass(frozen=True)
class VerdictInput:
    """A verdict as a member submits it, checked."""

    class_ok: bool
    corrected_class: str | None
    quality_flags: tuple[str, ...]
    z_fix: float | None
    note: str

    @classmethod
    def parse(cls, body: Any) -> VerdictInput:
        """Check a JSON body; a :class:`WorkbenchError` names the first bad field."""
        if not isinstance(body, dict):
            raise WorkbenchError("verdict: send a JSON object")
        unknown = set(body) - {"class_ok", "corrected_class", "quality_flags", "z_fix", "note"}
        if unknown:
            raise WorkbenchError(f"verdict: unknown field {sorted(unknown)[0]!r}")
        corrected = body.get("corrected_class") or None
        if corrected is not None and corrected not in CLASSES:
            raise WorkbenchError(f"corrected_class: {corrected!r} is not one of {', '.join(CLASSES)}")
        class_ok = body.get("class_ok", corrected is None)
        if not isinstance(class_ok, bool):
            raise WorkbenchError("class_ok: true or false")
        if class_ok and corrected is not None:
            raise WorkbenchError("corrected_class: a confirmed class takes no correction")
        if not class_ok and corrected is None:
            raise WorkbenchError("corrected_class: say which class it is when the catalog class is wrong")
        flags = body.get("quality_flags") or []
        if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
            raise WorkbenchError("quality_flags: a list of flag names")
        bad = [f for f in flags if f not in QUALITY_FLAGS]
        if bad:
            raise WorkbenchError(f"quality_flags: {bad[0]!r} is not one of {', '.join(QUALITY_FLAGS)}")
        z_fix = body.get("z_fix")
        if z_fix is not None:
            if isinstance(z_fix, bool) or not isinstance(z_fix, (int, float)) or not math.isfinite(z_fix):
                raise WorkbenchError(f"z_fix: {z_fix!r} is not a number")
            if not -0.1 <= z_fix <= 10:
                raise WorkbenchError(f"z_fix: {z_fix} is outside -0.1..10")
        note = body.get("note") or ""
        if not isinstance(note, str) or len(note) > 4000:
            raise WorkbenchError("note: text of at most 4000 characters")
        return cls(class_ok, corrected, tuple(sorted(set(flags))), z_fix, note)


def parse_obsids(raw: Any) -> list[int]:
    """Obsids from a JSON list (numbers or digit strings): in order, duplicates dropped, checked."""
    if not isinstance(raw, list) or not raw:
        raise WorkbenchError("obsids: give a non-empty list of obsids")
    out: list[int] = []
    seen: set[int] = set()
    for value in raw:
        text = str(value).strip()
        if isinstance(value, bool) or not text.isdigit():
            raise WorkbenchError(f"obsids: {value!r} is not an obsid (a whole number)")
        obsid = int(text)
        if obsid not in seen:
            seen.add(obsid)
            out.append(obsid)
    if len(out) > MAX_ITEMS:
        raise WorkbenchError(f"obsids: {len(out)} is above the limit of {MAX_ITEMS} per list")
    return out


def final_class(item: ListItem | dict[str, Any], verdict: Verdict | dict[str, Any]) -> str | None:
    """The class a member says the spectrum is: the catalog's when confirmed, else their correction."""
    get = (lambda o, k: o[k]) if isinstance(verdict, dict) else getattr
    if get(verdict, "class_ok"):
        return item["catalog_class"] if isinstance(item, dict) else item.catalog_class
    return get(verdict, "corrected_class")


def disagree(item: ListItem, verdicts: Sequence[Verdict]) -> list[str]:
    """Why members' verdicts on one item differ (empty when they agree or only one has spoken)."""
    if len(verdicts) < 2:
        return []
    reasons = []
    classes = {final_class(item, v) for v in verdicts}
    if len(classes) > 1:
        reasons.append("class: " + " / ".join(sorted(str(c) for c in classes)))
    fixes = [v.z_fix for v in verdicts if v.z_fix is not None]
    if fixes and max(fixes) - min(fixes) > Z_TOLERANCE:
        reasons.append(f"z: {min(fixes):g} .. {max(fixes):g}")
    return reasons


def verdict_json(v: Verdict) -> dict[str, Any]:
    """A verdict as the API sends it."""
    return {
        "obsid": int(v.obsid),
        "member": v.member,
        "class_ok": bool(v.class_ok),
        "corrected_class": v.corrected_class,
        "quality_flags": list(v.quality_flags or []),
        "z_fix": v.z_fix,
        "note": v.note or "",
        "updated": v.updated.isoformat() if v.updated else None,
        "seq": int(v.seq),
    }


def list_json(t: TargetList) -> dict[str, Any]:
    """A list's description as the API sends it."""
    return {
        "id": t.id,
        "team": t.team,
        "title": t.title,
        "release": t.release,
        "version": t.version,
        "source": t.source,
        "query": t.query,
        "description": t.description,
        "created_by": t.created_by,
        "created": t.created.isoformat() if t.created else None,
        "n_items": t.n_items,
        "seq": int(t.seq),
    }


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL (readers never wait for a writer: polls stay cheap while members write) and a busy timeout."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class WorkbenchStore:
    """The workbench's tables in the platform database. Access checks are by team: callers pass the
    teams the caller is in, and a list of any other team is :class:`NotFound` (as if it did not exist)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
            engine.dispose()  # connections opened before the listener get the pragmas too
        Base.metadata.create_all(engine)

    @classmethod
    def connect(cls, url: str) -> WorkbenchStore:
        """Open the workbench tables at ``url`` (``sqlite:///path``, ``postgresql+psycopg://...``)."""
        from sqlalchemy import create_engine

        return cls(create_engine(url, pool_pre_ping=True))

    def session(self) -> Session:
        """A new ORM session."""
        return Session(self.engine, expire_on_commit=False)

    # --- lists ------------------------------------------------------------------------------------

    def create_list(
        self,
        team: str,
        member: str,
        *,
        title: str,
        release: str,
        version: str,
        facts: Sequence[CatalogFacts],
        source: str = "obsids",
        query: str | None = None,
        description: str | None = None,
    ) -> TargetList:
        """Make a list of ``facts`` (in the given order) for ``team``."""
        title = (title or "").strip()
        if not title or len(title) > 200:
            raise WorkbenchError("title: give a title of 1 to 200 characters")
        if source not in SOURCES:
            raise WorkbenchError(f"source: {source!r} is not one of {', '.join(SOURCES)}")
        if not facts:
            raise WorkbenchError("obsids: the list has no spectra")
        record = TargetList(
            id=uuid.uuid4().hex,
            team=team,
            title=title,
            release=release,
            version=version,
            source=source,
            query=query or None,
            description=description or None,
            created_by=member,
            created=utcnow(),
            n_items=len(facts),
            seq=0,
        )
        with self.session() as s, s.begin():
            s.add(record)
            s.flush()
            s.add_all(
                ListItem(
                    list_id=record.id,
                    obsid=f.obsid,
                    position=i,
                    catalog=f.catalog,
                    catalog_class=f.klass,
                    catalog_subclass=f.subclass,
                    catalog_z=f.z,
                )
                for i, f in enumerate(facts)
            )
        return record

    def lists(self, team: str) -> list[TargetList]:
        """A team's lists, newest first."""
        with self.session() as s:
            rows = s.scalars(select(TargetList).where(TargetList.team == team))
            return sorted(rows, key=lambda t: t.created, reverse=True)

    def get_list(self, list_id: str, teams: Iterable[str]) -> TargetList:
        """One list of one of ``teams``."""
        with self.session() as s:
            record = s.get(TargetList, list_id)
        if record is None or record.team not in set(teams):
            raise NotFound(f"no target list {list_id}")
        return record

    def items(self, list_id: str) -> list[ListItem]:
        """A list's items in order."""
        with self.session() as s:
            return list(
                s.scalars(select(ListItem).where(ListItem.list_id == list_id).order_by(ListItem.position))
            )

    # --- verdicts ---------------------------------------------------------------------------------

    def record_verdict(
        self, list_id: str, obsid: int, member: str, teams: Iterable[str], verdict: VerdictInput
    ) -> Verdict:
        """Upsert ``member``'s verdict on one item; returns it with its change number."""
        teams = sorted(set(teams))
        with self.session() as s, s.begin():
            # First statement of the transaction, and the access check: bump the list's sequence (which
            # locks its row until commit, ordering this write after every earlier one).
            seq = s.execute(
                update(TargetList)
                .where(TargetList.id == list_id, TargetList.team.in_(teams))
                .values(seq=TargetList.seq + 1)
                .returning(TargetList.seq)
            ).scalar_one_or_none()
            if seq is None:
                raise NotFound(f"no target list {list_id}")
            if s.get(ListItem, (list_id, obsid)) is None:
                raise NotFound(f"no obsid {obsid} in target list {list_id}")
            values = {
                "list_id": list_id,
                "obsid": obsid,
                "member": member,
                "class_ok": verdict.class_ok,
                "corrected_class": verdict.corrected_class,
                "quality_flags": list(verdict.quality_flags),
                "z_fix": verdict.z_fix,
                "note": verdict.note,
                "updated": utcnow(),
                "seq": seq,
            }
            dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
            stmt = dialect.insert(Verdict).values(**values)
            stmt = stmt.on_conflict_do_update(
                index_elements=["list_id", "obsid", "member"],
                set_={k: stmt.excluded[k] for k in values if k not in ("list_id", "obsid", "member")},
            )
            s.execute(stmt)
        return Verdict(**values)

    def verdicts(self, list_id: str, since: int = 0) -> tuple[int, list[Verdict]]:
        """The list's current sequence number and its verdicts changed after ``since`` (all for 0)."""
        with self.session() as s:
            seq = s.scalar(select(TargetList.seq).where(TargetList.id == list_id))
            rows = list(
                s.scalars(
                    select(Verdict)
                    .where(Verdict.list_id == list_id, Verdict.seq > since)
                    .order_by(Verdict.seq)
                )
            )
        return int(seq or 0), rows

    def summary(self, list_id: str) -> dict[str, Any]:
        """Progress per member and the disagreements of one list."""
        items = self.items(list_id)
        _, verdicts = self.verdicts(list_id)
        by_item: dict[int, list[Verdict]] = {}
        for v in verdicts:
            by_item.setdefault(int(v.obsid), []).append(v)
        members: dict[str, int] = {}
        for v in verdicts:
            members[v.member] = members.get(v.member, 0) + 1
        disagreements = []
        for item in items:
            reasons = disagree(item, by_item.get(int(item.obsid), []))
            if reasons:
                disagreements.append(
                    {
                        "obsid": int(item.obsid),
                        "position": item.position,
                        "reasons": reasons,
                        "verdicts": [verdict_json(v) for v in by_item[int(item.obsid)]],
                    }
                )
        return {
            "n_items": len(items),
            "progress": {
                m: {"done": n, "total": len(items), "fraction": n / len(items) if items else 0.0}
                for m, n in sorted(members.items())
            },
            "inspected": len(by_item),
            "disagreements": disagreements,
        }

    def export_rows(self, list_id: str) -> list[dict[str, Any]]:
        """The result as rows: one per (item, member) verdict, one (no member) per item nobody judged."""
        items = self.items(list_id)
        _, verdicts = self.verdicts(list_id)
        by_item: dict[int, list[Verdict]] = {}
        for v in verdicts:
            by_item.setdefault(int(v.obsid), []).append(v)
        rows = []
        for item in items:
            mine = sorted(by_item.get(int(item.obsid), []), key=lambda v: v.member)
            contested = bool(disagree(item, mine))
            base = {
                "position": item.position,
                "obsid": int(item.obsid),
                "catalog": item.catalog,
                "catalog_class": item.catalog_class,
                "catalog_subclass": item.catalog_subclass,
                "catalog_z": item.catalog_z,
            }
            if not mine:
                rows.append(
                    base
                    | {
                        "member": None,
                        "class_ok": None,
                        "corrected_class": None,
                        "final_class": None,
                        "quality_flags": None,
                        "z_fix": None,
                        "note": None,
                        "updated": None,
                        "disagreement": False,
                    }
                )
            for v in mine:
                rows.append(
                    base
                    | {
                        "member": v.member,
                        "class_ok": bool(v.class_ok),
                        "corrected_class": v.corrected_class,
                        "final_class": final_class(item, v),
                        "quality_flags": ",".join(v.quality_flags or []),
                        "z_fix": v.z_fix,
                        "note": v.note,
                        "updated": v.updated.isoformat() if v.updated else None,
                        "disagreement": contested,
                    }
                )
        return rows


__all__ = [
    "CLASSES",
    "QUALITY_FLAGS",
    "CatalogFacts",
    "NotFound",
    "VerdictInput",
    "WorkbenchError",
    "WorkbenchStore",
    "parse_obsids",
]
