"""TAP over the release store: one schema per readable version, ADQL through the sandbox, TAP_SCHEMA.

Each release version the caller may read is a TAP schema named ``<release>_<version>`` in lower case
(``demo_v2``, ``dr10_v1_1``), holding its catalogs (``demo_v2.lrs``, ``demo_v2.stellar``, ...). The
caller's own TAP_SCHEMA lists exactly those, with every column's unit, UCD and description from the
release manifests, so neither the schema nor an error message shows a version the caller may not read.

A query is translated (:mod:`surveyhub.archive.adql`) against that set of tables, each under a relation
name made for this query alone; the spatial constraints the translator reports become HEALPix row
ranges of the serving copies, so only candidate rows are handed to DuckDB, which runs the exact test.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from surveyhub.archive import adql
from surveyhub.archive.engine import ArchiveEngine
from surveyhub.archive.formats import ColumnMeta
from surveyhub.archive.healpix_ranges import cone_ranges, polygon_ranges, rows_in_ranges
from surveyhub.archive.sandbox import QueryError, ResultStream
from surveyhub.archive.serving import ServingCatalog
from surveyhub.releases.registry import ReleaseVersion

#: MAXREC when the caller gives none, and the most a caller may ask for.
DEFAULT_MAXREC = 100_000
#: LAMOST's own table names (its SQL examples use them) -> our catalog names.
LAMOST_TABLES = {"combined": "lrs", "catalogue": "lrs", "med_combined": "mrs", "stellar": "stellar"}
UPLOAD_SCHEMA = "tap_upload"


class TapError(ValueError):
    """A TAP request that cannot be answered; the message is for the user (sent as QUERY_STATUS=ERROR)."""


def schema_name(version: ReleaseVersion) -> str:
    """The TAP schema of a version: ``<release>_<version>``, lower case, ``.`` and ``-`` as ``_``."""
    return re.sub(r"[^a-z0-9_]", "_", f"{version.release}_{version.version}".lower())


def _duck_type(t: pa.DataType) -> str:
    """The TAP (VODataService TAPType) type of an Arrow type, as TAP_SCHEMA and /tables declare it."""
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _duck_type(t.value_type)
    for check, name in (
        (pa.types.is_int8, "SMALLINT"),
        (pa.types.is_int16, "SMALLINT"),
        (pa.types.is_uint8, "SMALLINT"),
        (pa.types.is_int32, "INTEGER"),
        (pa.types.is_uint16, "INTEGER"),
        (pa.types.is_integer, "BIGINT"),
        (pa.types.is_float32, "REAL"),
        (pa.types.is_floating, "DOUBLE"),
        (pa.types.is_boolean, "BOOLEAN"),
    ):
        if check(t):
            return name
    return "VARCHAR"


def _arraysize(t: pa.DataType) -> str | None:
    if (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
    ):
        return "*"
    return None


#: TAP_SCHEMA as TAP 1.1 defines it: table -> (column, Arrow type, description).
TAP_SCHEMA_COLUMNS: dict[str, list[tuple[str, pa.DataType, str]]] = {
    "schemas": [
        ("schema_name", pa.string(), "schema name for reference to tap_schema.schemas"),
        ("utype", pa.string(), "lists the utypes of schemas"),
        ("description", pa.string(), "describes schemas in the tableset"),
        ("schema_index", pa.int32(), "recommended sort order when listing schemas"),
    ],
    "tables": [
        ("schema_name", pa.string(), "the schema this table belongs to"),
        ("table_name", pa.string(), "the fully qualified table name"),
        ("table_type", pa.string(), "one of: table view"),
        ("utype", pa.string(), "lists the utype of tables in the tableset"),
        ("description", pa.string(), "describes tables in the tableset"),
        ("table_index", pa.int32(), "recommended sort order when listing tables"),
    ],
    "columns": [
        ("table_name", pa.string(), "the table this column belongs to"),
        ("column_name", pa.string(), "the column name"),
        ("utype", pa.string(), "lists the utypes of columns in the tableset"),
        ("ucd", pa.string(), "lists the UCDs of columns in the tableset"),
        ("unit", pa.string(), "lists the unit used for column values in the tableset"),
        ("description", pa.string(), "describes the columns in the tableset"),
        ("datatype", pa.string(), "lists the ADQL datatype of columns in the tableset"),
        ("arraysize", pa.string(), "lists the size of variable-length columns in the tableset"),
        ("size", pa.int32(), "deprecated in TAP 1.1: see arraysize"),
        ("xtype", pa.string(), "a DALI or custom extended type annotation"),
        ("principal", pa.int32(), "a principal column; 1 means 1, 0 means 0"),
        ("indexed", pa.int32(), "an indexed column; 1 means 1, 0 means 0"),
        ("std", pa.int32(), "a standard column; 1 means 1, 0 means 0"),
        ("column_index", pa.int32(), "recommended sort order when listing columns of a table"),
    ],
    "keys": [
        ("key_id", pa.string(), "unique key to join to tap_schema.key_columns"),
        ("from_table", pa.string(), "the table with the foreign key"),
        ("target_table", pa.string(), "the table with the primary key"),
        ("utype", pa.string(), "lists the utype of keys in the tableset"),
        ("description", pa.string(), "describes keys in the tableset"),
    ],
    "key_columns": [
        ("key_id", pa.string(), "key to join to tap_schema.keys"),
        ("from_column", pa.string(), "column in the from_table"),
        ("target_column", pa.string(), "column in the target_table"),
    ],
}
INDEXED = {"obsid", "ra", "dec", "source_id"}
#: Column names that are ADQL reserved words, declared delimited (TAP 1.1 §4.3: TAP_SCHEMA.columns "size").
RESERVED = {"size"}


def declared_name(name: str) -> str:
    """A column name as TAP_SCHEMA and /tables declare it (delimited when it is an ADQL reserved word)."""
    return f'"{name}"' if name.lower() in RESERVED else name


PRINCIPAL = {"obsid", "ra", "dec", "class", "subclass", "designation", "z", "source_id"}


@dataclass
class TapTable:
    """One queryable table: its TAP name, the data behind it, and its documented columns."""

    name: str  # schema.table
    version: ReleaseVersion | None
    catalog: str
    description: str
    columns: list[ColumnMeta]
    types: dict[str, str]
    serving: ServingCatalog | None = None
    data: pa.Table | None = None  # uploads and TAP_SCHEMA tables


@dataclass
class TapQuery:
    """A translated query ready to run, with the relations to register."""

    translation: adql.Translation
    relations: dict[str, Any]
    columns: list[ColumnMeta]
    tables: list[TapTable] = field(default_factory=list)


def catalog_tables(engine: ArchiveEngine, groups: Iterable[str]) -> list[TapTable]:
    """The tables of every version ``groups`` may read (serving copies opened on first use)."""
    out: list[TapTable] = []
    for version in engine.versions(groups):
        schema = schema_name(version)
        for name, info in version.manifest.catalogs.items():
            cat = engine.catalog(version, name)
            metas = [ColumnMeta(c.name, c.unit, c.ucd, c.description) for c in info.columns]
            types = {f.name: _duck_type(f.type) for f in cat.schema if not f.name.startswith("_")}
            out.append(TapTable(f"{schema}.{name}", version, name, info.title, metas, types, serving=cat))
    return out


def tap_schema_tables(tables: Sequence[TapTable]) -> list[TapTable]:
    """TAP_SCHEMA (schemas, tables, columns, keys, key_columns) describing ``tables`` and itself."""
    meta_tables = [
        TapTable(
            f"tap_schema.{name}",
            None,
            name,
            f"TAP_SCHEMA {name}: the tables and columns you may query",
            [ColumnMeta(c, "", "", d) for c, _, d in cols],
            {c: _duck_type(t) for c, t, _ in cols},
        )
        for name, cols in TAP_SCHEMA_COLUMNS.items()
    ]
    arrow_types = {f"tap_schema.{n}": {c: t for c, t, _ in cols} for n, cols in TAP_SCHEMA_COLUMNS.items()}
    described = list(tables) + meta_tables
    schemas = list(dict.fromkeys(t.name.split(".")[0] for t in described))
    rows: dict[str, dict[str, list[Any]]] = {
        n: {c: [] for c, _, _ in cols} for n, cols in TAP_SCHEMA_COLUMNS.items()
    }
    for i, schema in enumerate(schemas):
        for key, value in (
            ("schema_name", schema),
            ("utype", None),
            ("description", _schema_text(schema, tables)),
            ("schema_index", i),
        ):
            rows["schemas"][key].append(value)
    for i, t in enumerate(described):
        for key, value in (
            ("schema_name", t.name.split(".")[0]),
            ("table_name", t.name),
            ("table_type", "table"),
            ("utype", None),
            ("description", t.description),
            ("table_index", i),
        ):
            rows["tables"][key].append(value)
        fields = arrow_types.get(t.name) or ({f.name: f.type for f in t.serving.schema} if t.serving else {})
        for j, meta in enumerate(m for m in t.columns if m.name in t.types):
            arrow = fields.get(meta.name, pa.string())
            values = {
                "table_name": t.name,
                "column_name": declared_name(meta.name),
                "utype": None,
                "ucd": meta.ucd or None,
                "unit": meta.unit or None,
                "description": meta.description or None,
                "datatype": t.types[meta.name],
                "arraysize": _arraysize(arrow),
                "size": None,
                "xtype": None,
                "principal": int(meta.name in PRINCIPAL),
                "indexed": int(meta.name in INDEXED and t.serving is not None),
                "std": int(t.name.startswith("tap_schema.")),
                "column_index": j,
            }
            for key, value in values.items():
                rows["columns"][key].append(value)
    for t in meta_tables:
        schema = pa.schema([pa.field(c, typ) for c, typ, _ in TAP_SCHEMA_COLUMNS[t.catalog]])
        t.data = pa.Table.from_pydict(rows[t.catalog], schema=schema)
    return meta_tables


def _schema_text(schema: str, tables: Sequence[TapTable]) -> str:
    if schema == "tap_schema":
        return "The tables and columns you may query"
    if schema == UPLOAD_SCHEMA:
        return "Tables uploaded with this query"
    for t in tables:
        if t.version is not None and t.name.startswith(schema + "."):
            return t.version.manifest.title
    return ""


def upload_table(name: str, table: pa.Table) -> TapTable:
    """A TAP_UPLOAD table given with the query."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
        raise TapError(f"UPLOAD: {name!r} is not a valid table name (letters, digits and _)")
    table = table.rename_columns([c.lower() for c in table.column_names])
    types = {f.name: _duck_type(f.type) for f in table.schema}
    ra = next((c for c in ("ra", "raj2000", "ra_icrs") if c in types), None)
    dec = next((c for c in ("dec", "dej2000", "de_icrs", "dec_icrs") if c in types), None)
    meta = [ColumnMeta(c) for c in table.column_names]
    result = TapTable(
        f"{UPLOAD_SCHEMA}.{name.lower()}", None, name, "uploaded table", meta, types, data=table
    )
    result.ra, result.dec = ra, dec  # type: ignore[attr-defined]
    return result


def _candidate_rows(cat: ServingCatalog, shape: Any) -> np.ndarray:
    """Rows of a serving copy that can lie in ``shape`` (a superset; the SQL keeps the exact test)."""
    if isinstance(shape, adql.Circle):
        ranges = cone_ranges(shape.ra, shape.dec, max(shape.radius, 1e-9))
    elif isinstance(shape, adql.Box):
        ranges = polygon_ranges(np.array(shape.vertices()))
    elif isinstance(shape, adql.Polygon) and shape.is_convex:
        ranges = polygon_ranges(np.array(shape.vertices))
    else:
        circle = shape.bounding_circle()
        ranges = cone_ranges(circle.ra, circle.dec, circle.radius)
    spans = rows_in_ranges(cat.hpx, ranges)
    if spans.size == 0:
        return np.empty(0, np.int64)
    return np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in spans])


def prepare(query: str, tables: Sequence[TapTable], *, aliases: Mapping[str, str] | None = None) -> TapQuery:
    """Translate ADQL against ``tables`` and choose the rows each used table contributes."""
    token = uuid.uuid4().hex[:12]
    infos: dict[str, adql.TableInfo] = {}
    by_relation: dict[str, TapTable] = {}
    for i, t in enumerate(tables):
        relation = f"q{token}_{i}"
        ra = getattr(t, "ra", "ra" if "ra" in t.types else None)
        dec = getattr(t, "dec", "dec" if "dec" in t.types else None)
        infos[t.name] = adql.TableInfo(relation, t.types, ra, dec)
        by_relation[relation] = t
    for alias, target in (aliases or {}).items():
        if target in infos:
            infos[alias] = infos[target]
    try:
        translation = adql.translate(query, infos)
    except adql.AdqlError as exc:
        raise TapError(str(exc)) from None
    constraints: dict[str, list[Any]] = {}
    for c in translation.spatial:
        constraints.setdefault(c.relation, []).append(c.shape)
    relations: dict[str, Any] = {}
    used: list[TapTable] = []
    for relation, t in by_relation.items():
        if f'"{relation}"' not in translation.sql:
            continue
        used.append(t)
        if t.data is not None:
            relations[relation] = t.data
            continue
        assert t.serving is not None
        shapes = constraints.get(relation)
        if shapes:
            rows = _candidate_rows(t.serving, shapes[0])
            for shape in shapes[1:]:
                rows = np.intersect1d(rows, _candidate_rows(t.serving, shape), assume_unique=True)
            relations[relation] = t.serving.take(rows)
        else:
            relations[relation] = t.serving.table
    documented = {m.name: m for t in used for m in t.columns}
    columns = [documented.get(name, ColumnMeta(name)) for name in translation.columns]
    return TapQuery(translation, relations, columns, used)


@dataclass
class TapStream:
    """A TAP query under way: its rows as a stream (see :class:`~surveyhub.archive.sandbox.ResultStream`)."""

    stream: ResultStream
    columns: list[ColumnMeta]
    query: str
    started: float

    @property
    def duration_s(self) -> float:
        """Seconds since the query started."""
        return time.perf_counter() - self.started


def _tables_for(
    engine: ArchiveEngine,
    groups: Iterable[str],
    uploads: Sequence[TapTable],
    restrict_to: ReleaseVersion | None,
) -> list[TapTable]:
    tables = catalog_tables(engine, groups)
    if restrict_to is not None:
        tables = [t for t in tables if t.version is not None and t.version.key == restrict_to.key]
    tables = tables + list(uploads)
    return tables + tap_schema_tables(tables)


def _check_maxrec(engine: ArchiveEngine, maxrec: int | None) -> int:
    limit = engine.limits.max_rows
    if maxrec is None:
        return min(DEFAULT_MAXREC, limit)
    if maxrec < 0:
        raise TapError("MAXREC: must be 0 or more")
    if maxrec > limit:
        raise TapError(f"MAXREC: {maxrec} is above this service's limit of {limit} rows")
    return maxrec


def open_query(
    engine: ArchiveEngine,
    query: str,
    groups: Iterable[str],
    *,
    maxrec: int | None = None,
    uploads: Sequence[TapTable] = (),
    aliases: Mapping[str, str] | None = None,
    restrict_to: ReleaseVersion | None = None,
) -> TapStream:
    """Start ADQL for a caller in ``groups`` and return its rows as a stream (``maxrec`` at most)."""
    start = time.perf_counter()
    maxrec = _check_maxrec(engine, maxrec)
    prepared = prepare(query, _tables_for(engine, groups, uploads, restrict_to), aliases=aliases)
    try:
        stream = engine.sandbox.open_stream(
            prepared.translation.sql,
            prepared.relations,
            names=prepared.translation.columns,
            max_rows=maxrec,
            timeout_s=engine.limits.timeout_s,
        )
    except QueryError as exc:
        raise TapError(str(exc)) from None
    return TapStream(stream, prepared.columns, query, start)
