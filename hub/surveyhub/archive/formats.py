"""Query results as files: JSON, CSV, VOTable (TABLEDATA, BINARY2), Parquet and FITS, streamed.

Searches and TAP queries can return millions of rows. They reach this module as an iterator of
``pyarrow.RecordBatch`` (one schema) and leave it as a generator of ``bytes`` chunks that the tornado
handler writes and flushes one by one, so that neither the archive nor the client holds the whole result:
the first rows reach the client while the query is still producing the last ones, and a result bigger
than the server's memory is no problem.

Speed comes from never touching a cell in Python. Every batch is turned into text (or bytes) a whole
column at a time with Arrow compute kernels and numpy: numbers are cast to their shortest round-trip text
by Arrow, strings are escaped with substring replacements that only run when a byte scan of the column
finds something to escape, and the cells of a row are glued together by ``binary_join_element_wise``
whose output buffer *is* the chunk to send. BINARY2 and FITS rows are assembled the same way from
big-endian numpy views. Measured on a ten-column catalog result (one core): about 1.2 million rows a
second in CSV and JSON, 1.5 million in VOTable TABLEDATA, 3 million in BINARY2 and FITS, 4 million in
Parquet; spectra (3909-pixel arrays) at about 10 million values a second as text, 100 million in the
binary formats. Batches are cut into slices of at most :data:`SLICE_ROWS` rows and :data:`SLICE_BYTES`
bytes, so memory stays at a few tens of MB whatever the size of the result or of its batches.

What each format does with the awkward values, and why:

* Columns carry their documentation: unit, UCD and description (:class:`ColumnMeta`, or the release's
  :class:`surveyhub.releases.columns.Column`) become VOTable ``FIELD`` attributes, JSON column entries,
  Parquet field metadata and FITS ``TUNITn``/``TUCDn``/``TCOMMn`` cards, so a result downloaded today
  still says what its numbers mean. CSV has no place for them (its header is the names only).
* Nulls are written the way each format says "no value", never as an invented sentinel: an empty
  ``TD`` and a BINARY2 null flag, ``null`` in JSON, an empty CSV field, a ``TNULLn`` that the data is
  checked not to use in FITS. NaN and infinities stay numbers where the format has them (VOTable ``NaN``,
  ``+Inf``; CSV ``NaN``, ``Infinity``); strict JSON has none, so they become ``null`` there.
* Strings are declared ``unicodeChar`` in VOTable because VOTable 1.4's ``char`` is ASCII only and a
  streamed column cannot be scanned before its header is written; a column known to be ASCII may say
  ``datatype="char"`` in its :class:`ColumnMeta` (non-ASCII characters are then written as ``?``). XML
  cannot carry most control characters at all, not even as character references, so TABLEDATA replaces
  them with U+FFFD; BINARY2, JSON, CSV, Parquet and FITS keep them.
* Arrays (spectra on the release's wavelength grid) stay arrays: VOTable ``arraysize``, JSON arrays,
  CSV fields holding a JSON array, Parquet lists and fixed-length FITS vector columns.
* TAP's ``MAXREC`` overflow is known only once the rows are out, so ``overflow`` may be a callable that
  is asked after the last row; VOTable then closes the table with ``<INFO name="QUERY_STATUS"
  value="OVERFLOW"/>`` after it (as TAP 1.1 allows), JSON ends with ``"overflow": true``, Parquet adds
  ``overflow=true`` to the file's key-value metadata and FITS an ``OVERFLOW`` card.

FITS is the one format that cannot be sent as it is produced: its header states the row count and the
width of every string and array column before the first row. The rows are therefore spooled first (Arrow
IPC in a ``SpooledTemporaryFile``: memory up to :data:`FITS_SPOOL_MEMORY`, then a temporary file), while
the widths are measured; the file is sent when the result is complete.

>>> import json
>>> import pyarrow as pa
>>> batch = pa.record_batch({"obsid": [1247301001, 1247301002], "teff": [5750.5, float("nan")]})
>>> meta = [ColumnMeta("obsid", ucd="meta.id;meta.main"), ColumnMeta("teff", unit="K")]
>>> doc = json.loads(b"".join(stream_result([batch], batch.schema, meta, "json")))
>>> doc["rows"], doc["columns"][1]["unit"], doc["overflow"]
([[1247301001, 5750.5], [1247301002, None]], 'K', False)
>>> content_type("votable/b2"), extension("parquet"), output_format("text/csv;header=present").name
('application/x-votable+xml', 'parquet', 'csv')
"""

from __future__ import annotations

import base64
import io
import json
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = [
    "FITS_SPOOL_MEMORY",
    "FORMATS",
    "ColumnMeta",
    "FormatError",
    "OutputFormat",
    "content_type",
    "error_content_type",
    "error_document",
    "extension",
    "output_format",
    "stream_result",
]

#: Chunks are coalesced to at least this many bytes (fewer, bigger writes for tornado and the socket)...
MIN_CHUNK = 64 * 1024
#: ... and split to at most this many, so that one chunk never holds much of a big result.
MAX_CHUNK = 1024 * 1024
#: Incoming batches are cut into slices of at most this many rows and bytes before conversion: the text
#: of a slice is built in memory, so this bounds the memory a batch of any size needs.
SLICE_ROWS = 65_536
SLICE_BYTES = 16 * 1024 * 1024
#: Parquet row groups are written when this many bytes (or rows) of batches are waiting.
PARQUET_ROW_GROUP_BYTES = 16 * 1024 * 1024
PARQUET_ROW_GROUP_ROWS = 262_144
#: FITS spools its rows in memory up to this size, then in a temporary file.
FITS_SPOOL_MEMORY = 8 * 1024 * 1024

VOTABLE_NS = "http://www.ivoa.net/xml/VOTable/v1.3"  # VOTable 1.4 kept the 1.3 namespace
VOTABLE_XSD = "http://www.ivoa.net/xml/VOTable/VOTable-1.4.xsd"


class FormatError(ValueError):
    """An output format nobody knows; the message lists the ones accepted."""


class ColumnLike(Protocol):
    """Anything documenting a column like :class:`ColumnMeta` (e.g. the release catalogs' ``Column``)."""

    name: str
    unit: str
    ucd: str
    description: str


@dataclass(frozen=True, slots=True)
class ColumnMeta:
    """What a result column means: the documentation that travels with the values into every format.

    ``datatype`` is an optional VOTable datatype to declare instead of the one the Arrow type implies:
    ``"char"`` for a string column known to be ASCII (smaller BINARY2, what older clients expect), or a
    numeric type (``"float"``, ``"short"``...) to which the values are then cast in every format.
    """

    name: str
    unit: str = ""
    ucd: str = ""
    description: str = ""
    datatype: str | None = None
    utype: str = ""  # data-model role, e.g. SSA's "ssa:Access.Reference" (VOTable FIELD utype)

    @classmethod
    def of(cls, column: ColumnMeta | ColumnLike | Mapping[str, Any] | str) -> ColumnMeta:
        """A ColumnMeta from another column description: the release's ``Column``, a dict or a name."""
        if isinstance(column, ColumnMeta):
            return column
        if isinstance(column, str):
            return cls(column)
        if isinstance(column, Mapping):
            get = column.get
        else:

            def get(key: str, default: Any = None) -> Any:
                return getattr(column, key, default)

        return cls(
            name=str(get("name")),
            unit=get("unit") or "",
            ucd=get("ucd") or "",
            description=get("description") or "",
            datatype=get("datatype") or None,
            utype=get("utype") or "",
        )


OverflowFlag = bool | Callable[[], bool]


class _Writer(Protocol):
    def __call__(self, result: _Result) -> Iterator[bytes]: ...


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """One output format: its canonical name, MIME type, file extension and writer."""

    name: str
    content_type: str
    extension: str
    writer: _Writer


# --------------------------------------------------------------------------------------------------
# Column plans: every Arrow type is reduced to a few canonical ones the writers know.

Kind = Literal["bool", "int", "float", "string", "list"]

_VOTABLE_TYPE: dict[pa.DataType, str] = {
    pa.bool_(): "boolean",
    pa.uint8(): "unsignedByte",
    pa.int16(): "short",
    pa.int32(): "int",
    pa.int64(): "long",
    pa.float32(): "float",
    pa.float64(): "double",
}
_ARROW_TYPE: dict[str, pa.DataType] = {v: k for k, v in _VOTABLE_TYPE.items()}
_STRING_DATATYPES = ("unicodeChar", "char")


@dataclass(frozen=True, slots=True)
class _Field:
    """A result column as the writers see it: its documentation, canonical type and conversion."""

    name: str
    unit: str
    ucd: str
    description: str
    kind: Kind
    arrow_type: pa.DataType  # the type of the converted arrays
    datatype: str  # VOTable datatype
    arraysize: str | None
    xtype: str | None
    convert: Callable[[pa.Array], pa.Array]
    utype: str = ""

    @property
    def element_type(self) -> pa.DataType:
        """The type of the values of a list column (the column's own type otherwise)."""
        return self.arrow_type.value_type if self.kind == "list" else self.arrow_type


def _scalar_target(t: pa.DataType) -> pa.DataType | None:
    """The canonical type of a boolean or numeric type (VOTable has no int8, uint16... nor half floats)."""
    if pa.types.is_boolean(t):
        return pa.bool_()
    if pa.types.is_integer(t):
        return {
            pa.int8(): pa.int16(),
            pa.uint8(): pa.uint8(),
            pa.int16(): pa.int16(),
            pa.uint16(): pa.int32(),
            pa.int32(): pa.int32(),
        }.get(t, pa.int64())  # uint64 is cast safely: values beyond int64 raise rather than wrap
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return pa.float32()
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return pa.float64()
    return None


def _kind_of(t: pa.DataType) -> Kind:
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_floating(t):
        return "float"
    return "int"


def _cast(target: pa.DataType) -> Callable[[pa.Array], pa.Array]:
    def convert(arr: pa.Array) -> pa.Array:
        if isinstance(arr, pa.DictionaryArray):
            arr = arr.dictionary_decode()
        return arr if arr.type == target else pc.cast(arr, target)

    return convert


def _bytes_to_str(arr: pa.Array) -> pa.Array:
    """Binary to text: by a validating cast when it is UTF-8, else decoded with replacement per value."""
    try:
        return pc.cast(pc.cast(arr, pa.binary()), pa.string())
    except pa.ArrowInvalid:
        return pa.array(
            [None if v is None else v.decode("utf-8", "replace") for v in arr.to_pylist()], pa.string()
        )


def _to_json_text(arr: pa.Array) -> pa.Array:
    """Types no format has a place for (structs, maps, nested lists) as JSON text, value by value."""
    return pa.array(
        [None if v is None else json.dumps(v, default=str, ensure_ascii=False) for v in arr.to_pylist()],
        pa.string(),
    )


def _timestamp_text(arr: pa.Array) -> pa.Array:
    """DALI timestamps: ISO 8601 in UTC without a zone (tz-aware values are stored in UTC already)."""
    t = arr.type
    if t.tz is not None:
        arr = pc.cast(arr, pa.timestamp(t.unit))
    return pc.strftime(arr, format="%Y-%m-%dT%H:%M:%S")


def _string_plan(t: pa.DataType) -> tuple[Callable[[pa.Array], pa.Array], str | None] | None:
    """How a non-numeric scalar type becomes text, and its VOTable xtype."""
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return _cast(pa.string()), None
    if pa.types.is_null(t):
        return (lambda arr: pa.nulls(len(arr), pa.string())), None
    if (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
        or pa.types.is_binary_view(t)
    ):
        return _bytes_to_str, None
    if pa.types.is_timestamp(t):
        return _timestamp_text, "timestamp"
    if pa.types.is_date(t):
        return _cast(pa.string()), "timestamp"
    if pa.types.is_time(t) or pa.types.is_duration(t):
        return _cast(pa.string()), None
    return None


def _plan_field(field: pa.Field, meta: ColumnMeta) -> _Field:
    """How one column is written. Decided once from the schema, because every format's header (VOTable
    FIELDs, FITS TFORMs, JSON columns) is written before the first value is seen."""
    t = field.type
    if pa.types.is_dictionary(t):
        inner = _plan_field(pa.field(field.name, t.value_type), meta)

        def decode(arr: pa.Array, inner: _Field = inner) -> pa.Array:
            return inner.convert(arr.dictionary_decode() if isinstance(arr, pa.DictionaryArray) else arr)

        return replace(inner, convert=decode)
    doc = {
        "name": meta.name,
        "unit": meta.unit,
        "ucd": meta.ucd,
        "description": meta.description,
        "utype": meta.utype,
    }
    hint = meta.datatype
    scalar = _scalar_target(t)
    if scalar is not None:
        if hint in _ARROW_TYPE and hint != "boolean":
            scalar = _ARROW_TYPE[hint]
        return _Field(
            **doc,
            kind=_kind_of(scalar),
            arrow_type=scalar,
            datatype=_VOTABLE_TYPE[scalar],
            arraysize=None,
            xtype=None,
            convert=_cast(scalar),
        )
    is_list = pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t)
    is_list = is_list or pa.types.is_large_list_view(t)
    if is_list or pa.types.is_fixed_size_list(t):
        element = _scalar_target(t.value_type)
        if element is not None:
            if hint in _ARROW_TYPE and (hint == "boolean") == (element == pa.bool_()):
                element = _ARROW_TYPE[hint]
            if pa.types.is_fixed_size_list(t):
                target, arraysize = pa.list_(element, t.list_size), str(t.list_size)
            else:
                target, arraysize = pa.list_(element), "*"
            return _Field(
                **doc,
                kind="list",
                arrow_type=target,
                datatype=_VOTABLE_TYPE[element],
                arraysize=arraysize,
                xtype=None,
                convert=_cast(target),
            )
    text = _string_plan(t)
    convert, xtype = text if text is not None else (_to_json_text, None)
    datatype = hint if hint in _STRING_DATATYPES else "unicodeChar"
    if xtype == "timestamp":  # DALI timestamps are ASCII ``char``
        datatype = "char"
    return _Field(
        **doc,
        kind="string",
        arrow_type=pa.string(),
        datatype=datatype,
        arraysize="*",
        xtype=xtype,
        convert=convert,
    )


def _field_metadata(field: pa.Field) -> ColumnMeta:
    """Documentation a field carries itself (e.g. read back from a Parquet file this module wrote)."""
    md = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in (field.metadata or {}).items()}
    return ColumnMeta(field.name, md.get("unit", ""), md.get("ucd", ""), md.get("description", ""))


def _plan(
    schema: pa.Schema, columns: Sequence[ColumnMeta | ColumnLike | Mapping[str, Any] | str]
) -> list[_Field]:
    """One plan per schema field; documentation is found by column name, so a catalog's whole column
    list can be passed for a query that selects a few of its columns."""
    by_name: dict[str, ColumnMeta] = {}
    for column in columns:
        meta = ColumnMeta.of(column)
        by_name.setdefault(meta.name, meta)
    plans = []
    for field in schema:
        meta = by_name.get(field.name) or _field_metadata(field)
        plans.append(_plan_field(field, meta))
    return plans


@dataclass(slots=True)
class _Result:
    """Everything a writer needs; ``overflowed()`` may only be asked once the rows are exhausted."""

    batches: Iterable[pa.RecordBatch | pa.Table]
    schema: pa.Schema
    fields: list[_Field]
    info: Mapping[str, str]
    overflow: OverflowFlag
    query_status: str
    serialization: str = "TABLEDATA"

    def overflowed(self) -> bool:
        return bool(self.overflow() if callable(self.overflow) else self.overflow)

    def raw_slices(self) -> Iterator[pa.RecordBatch]:
        """The incoming batches cut to bounded slices (a caller may send one huge batch)."""
        for item in self.batches:
            for batch in item.to_batches() if isinstance(item, pa.Table) else (item,):
                n = batch.num_rows
                if n == 0:
                    continue
                per_row = max(1, batch.nbytes // n)
                step = max(1, min(SLICE_ROWS, SLICE_BYTES // per_row))
                for start in range(0, n, step):
                    yield batch.slice(start, step)

    def slices(self) -> Iterator[list[pa.Array]]:
        """The slices' columns converted to the canonical types of :attr:`fields`."""
        for batch in self.raw_slices():
            yield [f.convert(batch.column(i)) for i, f in enumerate(self.fields)]


# --------------------------------------------------------------------------------------------------
# Vectorised helpers over Arrow buffers.


def _offsets(arr: pa.Array) -> np.ndarray:
    """The n+1 offsets of a string, binary or list array, as stored (not rebased)."""
    buf = arr.buffers()[1]
    if buf is None:  # an empty array may come without offsets
        return np.zeros(len(arr) + 1, np.int32)
    return np.frombuffer(buf, dtype=np.int32, count=len(arr) + 1, offset=arr.offset * 4)


def _data(arr: pa.Array) -> np.ndarray:
    """The value bytes a string or binary array refers to, as a uint8 numpy view."""
    offsets = _offsets(arr)
    buf = arr.buffers()[2]
    if buf is None or offsets[-1] == offsets[0]:
        return np.zeros(0, np.uint8)
    return np.frombuffer(buf, dtype=np.uint8)[offsets[0] : offsets[-1]]


def _joined_bytes(arr: pa.Array) -> memoryview:
    """All values of a string/binary array without nulls, concatenated: just its data buffer."""
    if len(arr) == 0:
        return memoryview(b"")
    offsets = _offsets(arr)
    buf = arr.buffers()[2]
    if buf is None:
        return memoryview(b"")
    return memoryview(buf)[int(offsets[0]) : int(offsets[-1])]


def _byte_table(chars: Iterable[int]) -> np.ndarray:
    table = np.zeros(256, bool)
    table[list(chars)] = True
    return table


def _present(arr: pa.Array, table: np.ndarray) -> set[int]:
    """Which of the bytes flagged in ``table`` occur in the string array (one vectorised pass)."""
    data = _data(arr)
    hits = table[data]
    if not hits.any():
        return set()
    return set(np.unique(data[hits]).tolist())


def _fixed_binary(mat: np.ndarray) -> pa.Array:
    """An (n, w) uint8 matrix as a binary array of n values of w bytes, without copying."""
    n, w = mat.shape
    offsets = np.arange(0, (n + 1) * w, w, dtype=np.int32) if w else np.zeros(n + 1, np.int32)
    mat = np.ascontiguousarray(mat)
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(mat)])


def _var_binary(offsets: np.ndarray, data: np.ndarray) -> pa.Array:
    """A binary array from rebased int32 offsets and a contiguous uint8 payload."""
    n = len(offsets) - 1
    data = np.ascontiguousarray(data)
    return pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)]
    )


def _list_parts(arr: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Rebased offsets and the values a (fixed-size) list array's rows refer to."""
    n = len(arr)
    if pa.types.is_fixed_size_list(arr.type):
        size = arr.type.list_size
        return np.arange(n + 1, dtype=np.int64) * size, arr.values.slice(arr.offset * size, n * size)
    offsets = _offsets(arr).astype(np.int64)
    values = arr.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    return offsets - offsets[0], values


def _pad_rows(flat: np.ndarray, offsets: np.ndarray, width: int, fill: Any) -> np.ndarray:
    """(n, width) matrix of the rows ``flat[offsets[i]:offsets[i+1]]``, each padded with ``fill``."""
    n = len(offsets) - 1
    lengths = np.diff(offsets)
    if n and width and (lengths == width).all():
        return flat[: n * width].reshape(n, width)
    out = np.full((n, width), fill, dtype=flat.dtype)
    total = int(offsets[-1])
    if total:
        dest = np.arange(total) + np.repeat(np.arange(n) * width - offsets[:-1], lengths)
        out.reshape(-1)[dest] = flat[:total]
    return out


def _numbers(arr: pa.Array, fill: Any, dtype: str) -> np.ndarray:
    """A numeric array as numpy of ``dtype`` (big-endian for the binary formats), nulls as ``fill``."""
    if arr.null_count:
        arr = arr.fill_null(fill)
    return arr.to_numpy(zero_copy_only=False).astype(dtype, copy=False)


def _bool_bytes(arr: pa.Array, null: int) -> np.ndarray:
    """Booleans as the bytes both VOTable and FITS use: ``T``, ``F`` and ``null`` for missing."""
    values = arr.fill_null(False).to_numpy(zero_copy_only=False)
    out = np.where(values, np.uint8(84), np.uint8(70))
    if arr.null_count:
        out[arr.is_null().to_numpy(zero_copy_only=False)] = null
    return out


def _ascii(arr: pa.Array) -> pa.Array:
    """Strings restricted to ASCII (``?`` for anything else), for columns declared VOTable ``char``."""
    if len(arr) == 0 or _data(arr).max(initial=0) < 0x80:
        return arr
    return pa.array(
        [None if v is None else v.encode("ascii", "replace").decode() for v in arr.to_pylist()], pa.string()
    )


def _rechunk(pieces: Iterable[bytes | memoryview], max_chunk: int = MAX_CHUNK) -> Iterator[bytes]:
    """Chunks between MIN_CHUNK and ``max_chunk`` bytes (the last may be smaller) from pieces of any size.

    When ``pieces`` fails, what it produced so far is still sent before the exception goes on: a writer
    ends its document with an error trailer before failing, and that trailer must reach the client.
    """
    pending = bytearray()
    try:
        for piece in pieces:
            size = len(piece)
            if not size:
                continue
            if not pending and size >= MIN_CHUNK:
                view = memoryview(piece)
                for start in range(0, size, max_chunk):
                    part = view[start : start + max_chunk]
                    if len(part) < MIN_CHUNK:
                        pending += part
                    else:
                        yield bytes(part)
                continue
            pending += piece
            if len(pending) >= MIN_CHUNK:
                view = memoryview(pending)
                for start in range(0, len(pending), max_chunk):
                    yield bytes(view[start : start + max_chunk])
                view.release()
                pending = bytearray()
    except Exception:
        if pending:
            yield bytes(pending)
        raise
    if pending:
        yield bytes(pending)


# --------------------------------------------------------------------------------------------------
# Cell text: one Arrow string array per column, in the syntax of a text format.

_XML_FORBIDDEN = "[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]"
_XML_SPECIAL = _byte_table([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x0D, 0x26, 0x3C, 0x3E, 0xEF])
_JSON_SPECIAL = _byte_table([*range(0x20), 0x22, 0x5C])
_JSON_SHORT = {0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r"}
_QUOTE = _byte_table([0x22])


def _xml_escape(arr: pa.Array, replacement: str = "\ufffd") -> pa.Array:
    """Strings as XML character data; characters XML 1.0 cannot carry become ``replacement``."""
    found = _present(arr, _XML_SPECIAL)
    if not found:
        return arr
    if 0x26 in found:
        arr = pc.replace_substring(arr, "&", "&amp;")
    if 0x3C in found:
        arr = pc.replace_substring(arr, "<", "&lt;")
    if 0x3E in found:
        arr = pc.replace_substring(arr, ">", "&gt;")
    if 0x0D in found:  # a literal CR would be read back as LF
        arr = pc.replace_substring(arr, "\r", "&#13;")
    if found - {0x09, 0x0A, 0x0D, 0x26, 0x3C, 0x3E}:
        arr = pc.replace_substring_regex(arr, _XML_FORBIDDEN, replacement)
    return arr


def _json_escape(arr: pa.Array) -> pa.Array:
    """Strings as JSON string literals (quotes included)."""
    found = _present(arr, _JSON_SPECIAL)
    if 0x5C in found:
        arr = pc.replace_substring(arr, "\\", "\\\\")
    if 0x22 in found:
        arr = pc.replace_substring(arr, '"', '\\"')
    for byte in sorted(found - {0x22, 0x5C}):
        arr = pc.replace_substring(arr, chr(byte), _JSON_SHORT.get(byte, f"\\u{byte:04x}"))
    return pc.binary_join_element_wise('"', arr, '"', "")


def _csv_escape(arr: pa.Array) -> pa.Array:
    """Strings as RFC 4180 quoted fields: always quoted, so that an empty string differs from a null."""
    if _present(arr, _QUOTE):
        arr = pc.replace_substring(arr, '"', '""')
    return pc.binary_join_element_wise('"', arr, '"', "")


@dataclass(frozen=True, slots=True)
class _Syntax:
    """How a text format writes values."""

    null: str
    true: str
    false: str
    nan: str
    posinf: str
    neginf: str
    string: Callable[[pa.Array], pa.Array]
    list_open: str
    list_sep: str
    list_close: str
    element_null: str  # for elements of arrays; floats are NaN there already
    point: bool = False  # whether integral floats get a ".0" (or readers would take them for integers)


_VOTABLE = _Syntax("", "T", "F", "NaN", "+Inf", "-Inf", _xml_escape, "", " ", "", "0")
_JSON = _Syntax("null", "true", "false", "null", "null", "null", _json_escape, "[", ",", "]", "null", True)
_CSV = _Syntax(
    "", "true", "false", "NaN", "Infinity", "-Infinity", _csv_escape, '"[', ",", ']"', "null", True
)
_CSV_ELEMENTS = _JSON  # arrays in CSV are JSON arrays in a quoted field


def _float_text(arr: pa.Array, syntax: _Syntax) -> pa.Array:
    """Floats as their shortest round-trip text (Arrow's cast), non-finite values in the syntax's words.

    The fixes touch only the values that need them (``replace_with_mask``): they are rare, and a pass
    over every value would cost as much as the cast itself on a column of spectra.
    """
    text = pc.cast(arr, pa.string())
    finite = pc.is_finite(arr)
    if pc.all(finite).as_py() is False:
        odd = pc.invert(finite).fill_null(False)
        values = arr.filter(odd)
        special = pc.if_else(
            pc.is_nan(values), syntax.nan, pc.if_else(pc.greater(values, 0), syntax.posinf, syntax.neginf)
        )
        text = pc.replace_with_mask(text, odd, special)
    if syntax.point:
        # Arrow writes 5.0 as "5" and -0.0 as "-0": pandas would read a column of those as integers and
        # json.loads("-0") is the integer 0. Integral values not in exponent form get their ".0".
        integral = pc.and_(pc.equal(arr, pc.trunc(arr)), finite).fill_null(False)
        if pc.any(integral).as_py():
            picked = text.filter(integral)
            exponent = pc.match_substring(picked, "e")
            fixed = pc.if_else(exponent, picked, pc.binary_join_element_wise(picked, ".0", ""))
            text = pc.replace_with_mask(text, integral, fixed)
    return text


def _scalar_text(arr: pa.Array, kind: Kind, syntax: _Syntax) -> pa.Array:
    """Text of a column of scalars; nulls stay null (the caller decides how a null cell reads)."""
    if kind == "bool":
        return pc.if_else(arr, syntax.true, syntax.false)
    if kind == "int":
        return pc.cast(arr, pa.string())
    if kind == "float":
        return _float_text(arr, syntax)
    return syntax.string(arr)


def _list_text(arr: pa.Array, field: _Field, syntax: _Syntax) -> pa.Array:
    """Arrays as one text cell each: the elements' text joined by the syntax's separator."""
    offsets, values = _list_parts(arr)
    element_kind = _kind_of(field.element_type)
    element_syntax = _CSV_ELEMENTS if syntax is _CSV else syntax
    if element_kind == "float" and values.null_count:
        values = values.fill_null(float("nan"))
    text = _scalar_text(values, element_kind, element_syntax)
    if text.null_count:
        text = text.fill_null(element_syntax.element_null)
    mask = arr.is_null() if arr.null_count else None
    lists = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), text, mask=mask)
    joined = pc.binary_join(lists, syntax.list_sep)
    if mask is not None and syntax is _VOTABLE and field.arraysize != "*":
        # An empty cell cannot stand for a fixed-size array (votlint: wrong number of elements), and
        # TABLEDATA has no null array: NaN for every element (the VOTable way), 0 for integers.
        fill = "NaN" if element_kind == "float" else syntax.element_null
        joined = pc.if_else(mask, syntax.list_sep.join([fill] * int(field.arraysize or 0)), joined)
    if syntax.list_open or syntax.list_close:
        joined = pc.binary_join_element_wise(syntax.list_open, joined, syntax.list_close, "")
    return joined


def _cells(arr: pa.Array, field: _Field, syntax: _Syntax) -> pa.Array:
    """One column of a slice as text cells, nulls written as the syntax's null."""
    if field.kind == "list":
        text = _list_text(arr, field, syntax)
    elif syntax is _VOTABLE and field.datatype == "char":
        text = _xml_escape(_ascii(arr), "?")
    else:
        text = _scalar_text(arr, field.kind, syntax)
    return text.fill_null(syntax.null) if text.null_count else text


def _rows_text(
    columns: list[pa.Array], fields: list[_Field], syntax: _Syntax, sep: str, head: str, tail: str
) -> memoryview:
    """The rows of a slice as ``head + cell sep cell ... + tail`` each, concatenated."""
    n = len(columns[0]) if columns else 0
    cells = [_cells(arr, f, syntax) for arr, f in zip(columns, fields, strict=True)]
    joined = pc.binary_join_element_wise(*cells, sep) if cells else pa.array([""] * n)
    return _joined_bytes(pc.binary_join_element_wise(head, joined, tail, ""))


# --------------------------------------------------------------------------------------------------
# JSON and CSV.


def _column_json(f: _Field) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": f.name, "datatype": f.datatype}
    if f.arraysize is not None:
        entry["arraysize"] = f.arraysize
    if f.xtype:
        entry["xtype"] = f.xtype
    entry.update(unit=f.unit, ucd=f.ucd, description=f.description)
    return entry


def _json_pieces(result: _Result) -> Iterator[bytes | memoryview]:
    head = {"columns": [_column_json(f) for f in result.fields]}
    if result.info:
        head["info"] = dict(result.info)
    text = json.dumps(head, ensure_ascii=False)
    yield f'{text[:-1]},\n"rows": ['.encode()
    first = True
    try:
        for columns in result.slices():
            rows = _rows_text(columns, result.fields, _JSON, ",", ",\n[", "]")
            yield rows[1:] if first else rows  # the first row has no comma before it
            first = False
    except Exception as exc:
        yield f'\n],\n"overflow": false,\n"error": {json.dumps(str(exc), ensure_ascii=False)}}}\n'.encode()
        raise
    yield f'\n],\n"overflow": {json.dumps(result.overflowed())}}}\n'.encode()


def _json_writer(result: _Result) -> Iterator[bytes]:
    return _rechunk(_json_pieces(result))


def _csv_name(name: str) -> str:
    if re.search(r'[,"\r\n]', name) or name != name.strip():
        return '"' + name.replace('"', '""') + '"'
    return name


def _csv_pieces(result: _Result) -> Iterator[bytes | memoryview]:
    yield (",".join(_csv_name(f.name) for f in result.fields) + "\r\n").encode()
    for columns in result.slices():
        yield _rows_text(columns, result.fields, _CSV, ",", "", "\r\n")


def _csv_writer(result: _Result) -> Iterator[bytes]:
    return _rechunk(_csv_pieces(result))


# --------------------------------------------------------------------------------------------------
# VOTable.

_ATTR_ENTITIES = {"\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
_XML_FORBIDDEN_RE = re.compile(_XML_FORBIDDEN)


def _xml_text(value: str) -> str:
    value = _XML_FORBIDDEN_RE.sub("\ufffd", value)
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _xml_attr(value: str) -> str:
    """A quoted XML attribute value (newlines and tabs as references, which attribute parsing keeps)."""
    value = _xml_text(value).replace('"', "&quot;")
    for char, entity in _ATTR_ENTITIES.items():
        value = value.replace(char, entity)
    return f'"{value}"'


def _info(name: str, value: str, content: str = "") -> str:
    if content:
        return f"<INFO name={_xml_attr(name)} value={_xml_attr(value)}>{_xml_text(content)}</INFO>\n"
    return f"<INFO name={_xml_attr(name)} value={_xml_attr(value)}/>\n"


def _votable_open(info: Mapping[str, str], query_status: str, message: str = "") -> str:
    infos = _info("QUERY_STATUS", query_status, message) + "".join(_info(k, str(v)) for k, v in info.items())
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<VOTABLE version="1.4" xmlns="{VOTABLE_NS}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:schemaLocation="{VOTABLE_NS} {VOTABLE_XSD}">\n'
        f'<RESOURCE type="results">\n{infos}'
    )


def _field_xml(f: _Field) -> str:
    attrs = f"name={_xml_attr(f.name)} datatype={_xml_attr(f.datatype)}"
    if f.arraysize is not None:
        attrs += f" arraysize={_xml_attr(f.arraysize)}"
    for key in ("unit", "ucd", "utype", "xtype"):
        value = getattr(f, key)
        if value:
            attrs += f" {key}={_xml_attr(value)}"
    if f.description:
        return f"<FIELD {attrs}>\n  <DESCRIPTION>{_xml_text(f.description)}</DESCRIPTION>\n</FIELD>\n"
    return f"<FIELD {attrs}/>\n"


def _b2_column(arr: pa.Array, f: _Field) -> list[np.ndarray | pa.Array]:
    """A column's BINARY2 encoding: fixed-width parts as (n, w) uint8 matrices, the rest as binary arrays."""
    n = len(arr)
    if f.kind == "bool":
        return [_bool_bytes(arr, 0x3F).reshape(n, 1)]
    if f.kind in ("int", "float"):
        fill = float("nan") if f.kind == "float" else 0
        dtype = np.dtype(f.arrow_type.to_pandas_dtype()).newbyteorder(">")
        return [_numbers(arr, fill, dtype).view(np.uint8).reshape(n, dtype.itemsize)]
    if f.kind == "string":
        arr = arr.fill_null("") if arr.null_count else arr
        if f.datatype == "char":
            arr = _ascii(arr)
        offsets = _offsets(arr).astype(np.int64)
        offsets = offsets - offsets[0]
        data = _data(arr)
        if f.datatype == "char":
            counts = np.diff(offsets)
        elif data.max(initial=0) < 0x80:  # ASCII: UTF-16BE is a zero byte before each byte
            wide = np.zeros(2 * len(data), np.uint8)
            wide[1::2] = data
            counts, offsets, data = np.diff(offsets), offsets * 2, wide
        else:
            encoded = [v.encode("utf-16-be") for v in arr.to_pylist()]
            lengths = np.fromiter((len(e) for e in encoded), np.int64, n)
            offsets = np.concatenate([[0], np.cumsum(lengths)])
            data = np.frombuffer(b"".join(encoded), np.uint8)
            counts = lengths // 2
        return [counts.astype(">i4").view(np.uint8).reshape(n, 4), _var_binary(offsets, data)]
    # arrays: element count (variable size only), then the elements
    offsets, values = _list_parts(arr)
    element_kind = _kind_of(f.element_type)
    if element_kind == "bool":
        flat, width = _bool_bytes(values, 0x3F), 1
    else:
        dtype = np.dtype(f.element_type.to_pandas_dtype()).newbyteorder(">")
        fill = float("nan") if element_kind == "float" else 0
        flat, width = _numbers(values, fill, dtype).view(np.uint8), dtype.itemsize
    if f.arraysize != "*":
        return [flat.reshape(n, -1) if n else np.zeros((0, 0), np.uint8)]
    counts = np.diff(offsets).astype(">i4").view(np.uint8).reshape(n, 4)
    return [counts, _var_binary(offsets * width, flat)]


def _b2_rows(columns: list[pa.Array], fields: list[_Field]) -> memoryview | bytes:
    """The BINARY2 bytes of a slice: per row, the null flags then every field (VOTable 1.4 sec. 5.5)."""
    n = len(columns[0])
    nulls = np.zeros((n, len(columns)), bool)
    for i, arr in enumerate(columns):
        if arr.null_count:
            nulls[:, i] = arr.is_null().to_numpy(zero_copy_only=False)
    parts: list[np.ndarray | pa.Array] = [np.packbits(nulls, axis=1)]
    for arr, f in zip(columns, fields, strict=True):
        for part in _b2_column(arr, f):
            if isinstance(part, np.ndarray) and isinstance(parts[-1], np.ndarray):
                parts[-1] = np.concatenate([parts[-1], part], axis=1)  # adjacent fixed widths: one part
            else:
                parts.append(part)
    if len(parts) == 1:
        return np.ascontiguousarray(parts[0]).tobytes()
    arrays = [_fixed_binary(p) if isinstance(p, np.ndarray) else p for p in parts]
    return _joined_bytes(pc.binary_join_element_wise(*arrays, pa.scalar(b"", pa.binary())))


def _base64(pieces: Iterable[bytes | memoryview]) -> Iterator[bytes]:
    """A base64 stream of the concatenated pieces, one line per chunk (XML allows the line breaks)."""
    carry = b""
    try:
        for chunk in _rechunk(pieces, (MAX_CHUNK - 4) // 4 * 3):  # base64 makes 4 bytes of 3
            data = carry + chunk if carry else chunk
            cut = len(data) - len(data) % 3
            carry = data[cut:]
            if cut:
                yield base64.b64encode(data[:cut]) + b"\n"
    except Exception:  # the rows sent before a failure stay readable
        if carry:
            yield base64.b64encode(carry) + b"\n"
        raise
    if carry:
        yield base64.b64encode(carry) + b"\n"


def _votable_pieces(result: _Result) -> Iterator[bytes | memoryview]:
    binary = result.serialization == "BINARY2"
    head = _votable_open(result.info, result.query_status) + "<TABLE>\n"
    head += "".join(_field_xml(f) for f in result.fields)
    yield (
        head + ("<DATA><BINARY2><STREAM encoding='base64'>\n" if binary else "<DATA><TABLEDATA>\n")
    ).encode()
    close = "</STREAM></BINARY2></DATA>\n</TABLE>\n" if binary else "</TABLEDATA></DATA>\n</TABLE>\n"
    if binary:
        body = _base64(_b2_rows(columns, result.fields) for columns in result.slices())
    else:
        body = (
            _rows_text(columns, result.fields, _VOTABLE, "</TD><TD>", "<TR><TD>", "</TD></TR>\n")
            for columns in result.slices()
        )
    try:
        yield from body
    except Exception as exc:  # the table is half sent: end it as a valid document that says so
        yield (close + _info("QUERY_STATUS", "ERROR", str(exc)) + "</RESOURCE>\n</VOTABLE>\n").encode()
        raise
    trailer = _info("QUERY_STATUS", "OVERFLOW") if result.overflowed() else ""
    yield (close + trailer + "</RESOURCE>\n</VOTABLE>\n").encode()


def _votable_writer(result: _Result) -> Iterator[bytes]:
    return _rechunk(_votable_pieces(result))


def _votable_binary2_writer(result: _Result) -> Iterator[bytes]:
    result.serialization = "BINARY2"
    return _rechunk(_votable_pieces(result))


# --------------------------------------------------------------------------------------------------
# Parquet.


class _Sink(io.RawIOBase):
    """A write-only file for ParquetWriter whose contents are taken away as they are written."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def drain(self) -> list[bytes]:
        """What was written since the last drain (as written: joining would hold it twice)."""
        parts, self._parts = self._parts, []
        return parts


def _documented_schema(result: _Result) -> pa.Schema:
    fields = []
    for field, f in zip(result.schema, result.fields, strict=True):
        metadata = dict(field.metadata or {})
        for key in ("unit", "ucd", "description"):
            if getattr(f, key):
                metadata[key.encode()] = getattr(f, key).encode()
        fields.append(field.with_metadata(metadata))
    metadata = dict(result.schema.metadata or {})
    metadata.update({str(k).encode(): str(v).encode() for k, v in result.info.items()})
    metadata[b"QUERY_STATUS"] = result.query_status.encode()
    return pa.schema(fields, metadata=metadata)


def _parquet_pieces(result: _Result) -> Iterator[bytes]:
    schema = _documented_schema(result)
    sink = _Sink()
    # Dictionary encoding only for text: on measurements (high cardinality) it costs memory and time and
    # makes the file bigger than zstd alone; on class names and flags it is what makes them small.
    textual = [
        f.name
        for f in schema
        if pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or pa.types.is_dictionary(f.type)
    ]
    writer = pq.ParquetWriter(sink, schema, compression="zstd", use_dictionary=textual or False)
    pending: list[pa.RecordBatch] = []
    size = rows = 0

    def flush() -> list[bytes]:
        nonlocal size, rows
        writer.write_table(pa.Table.from_batches(pending, schema=schema), row_group_size=max(rows, 1))
        pending.clear()
        size = rows = 0
        return sink.drain()

    try:
        for batch in result.raw_slices():
            pending.append(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
            size += batch.nbytes
            rows += batch.num_rows
            if size >= PARQUET_ROW_GROUP_BYTES or rows >= PARQUET_ROW_GROUP_ROWS:
                yield from flush()
        if pending:
            yield from flush()
        overflow = result.overflowed()
        writer.add_key_value_metadata({"overflow": "true" if overflow else "false"})
    finally:
        writer.close()
    yield from sink.drain()


def _parquet_writer(result: _Result) -> Iterator[bytes]:
    return _rechunk(_parquet_pieces(result))


# --------------------------------------------------------------------------------------------------
# FITS.

_FITS_CODE = {
    pa.bool_(): "L",
    pa.uint8(): "B",
    pa.int16(): "I",
    pa.int32(): "J",
    pa.int64(): "K",
    pa.float32(): "E",
    pa.float64(): "D",
}
_FITS_BLOCK = 2880
_FITS_KEYWORD = re.compile(r"^[A-Z0-9_-]{1,8}$")
_FITS_RESERVED = re.compile(
    r"^(SIMPLE|BITPIX|NAXIS\d*|EXTEND|XTENSION|PCOUNT|GCOUNT|TFIELDS|END|EXTNAME|OVERFLOW|T[A-Z]+\d+)$"
)


@dataclass(slots=True)
class _FitsColumn:
    """What the spool pass learns about a column: the widest value and whether TNULL is needed."""

    field: _Field
    width: int = 0  # string bytes or array elements
    nulls: bool = False
    used_min: bool = False  # whether the values use the candidates for TNULL
    used_max: bool = False

    def observe(self, arr: pa.Array) -> None:
        f = self.field
        if f.kind == "string":
            self.width = max(self.width, pc.max(pc.binary_length(arr)).as_py() or 0)
        elif f.kind == "list" and f.arraysize == "*":
            self.width = max(self.width, pc.max(pc.list_value_length(arr)).as_py() or 0)
        elif f.kind == "list":
            self.width = int(f.arraysize or 0)
        elif f.kind == "int" and len(arr):
            self.nulls = self.nulls or arr.null_count > 0
            info = np.iinfo(f.arrow_type.to_pandas_dtype())
            extremes = pc.min_max(arr).as_py()
            self.used_min = self.used_min or extremes["min"] == info.min
            self.used_max = self.used_max or extremes["max"] == info.max

    @property
    def tnull(self) -> int | None:
        """A null value the column's data does not use (the type's minimum, else its maximum)."""
        if self.field.kind != "int" or not self.nulls:
            return None
        info = np.iinfo(self.field.arrow_type.to_pandas_dtype())
        if not self.used_min:
            return int(info.min)
        return None if self.used_max else int(info.max)

    @property
    def repeat(self) -> int:
        return max(self.width, 1) if self.field.kind in ("string", "list") else 1

    @property
    def tform(self) -> str:
        f = self.field
        if f.kind == "string":
            return f"{self.repeat}A"
        code = _FITS_CODE[f.element_type]
        return f"{self.repeat}{code}" if f.kind == "list" else code

    @property
    def nbytes(self) -> int:
        if self.field.kind == "string":
            return self.repeat
        return self.repeat * np.dtype(self.field.element_type.to_pandas_dtype()).itemsize

    def encode(self, arr: pa.Array) -> np.ndarray:
        """The column's cells in a slice as an (n, nbytes) big-endian uint8 matrix."""
        f, n = self.field, len(arr)
        if f.kind == "bool":
            return _bool_bytes(arr, 0).reshape(n, 1)
        if f.kind in ("int", "float"):
            fill = float("nan") if f.kind == "float" else (self.tnull or 0)
            dtype = np.dtype(f.arrow_type.to_pandas_dtype()).newbyteorder(">")
            return _numbers(arr, fill, dtype).view(np.uint8).reshape(n, dtype.itemsize)
        if f.kind == "string":
            arr = arr.fill_null("") if arr.null_count else arr
            offsets = _offsets(arr).astype(np.int64)
            return _pad_rows(_data(arr), offsets - offsets[0], self.repeat, 0)
        offsets, values = _list_parts(arr)
        if arr.null_count:  # a null array reads as all padding
            lengths = np.diff(offsets)
            lengths[arr.is_null().to_numpy(zero_copy_only=False)] = 0
            keep = np.repeat(lengths > 0, np.diff(offsets))
            values = values.filter(pa.array(keep))
            offsets = np.concatenate([[0], np.cumsum(lengths)])
        element_kind = _kind_of(f.element_type)
        if element_kind == "bool":
            flat, fill = _bool_bytes(values, 0), 0
        else:
            dtype = np.dtype(f.element_type.to_pandas_dtype()).newbyteorder(">")
            fill = float("nan") if element_kind == "float" else 0
            flat = _numbers(values, fill, dtype)
        return _pad_rows(flat, offsets, self.repeat, fill).view(np.uint8).reshape(n, self.nbytes)


def _fits_ascii(value: str) -> str:
    """FITS headers are printable ASCII."""
    return re.sub(r"[^\x20-\x7e]", "?", value)


def _fits_header(columns: list[_FitsColumn], rows: int, result: _Result, overflow: bool) -> bytes:
    from astropy.io import fits  # imported here: astropy is slow to import and only FITS needs it

    primary = fits.Header([("SIMPLE", True), ("BITPIX", 8), ("NAXIS", 0), ("EXTEND", True)])
    header = fits.Header(
        [
            ("XTENSION", "BINTABLE", "binary table extension"),
            ("BITPIX", 8, "array data type"),
            ("NAXIS", 2, "number of array dimensions"),
            ("NAXIS1", sum(c.nbytes for c in columns), "length of a row in bytes"),
            ("NAXIS2", rows, "number of rows"),
            ("PCOUNT", 0, "number of group parameters"),
            ("GCOUNT", 1, "number of groups"),
            ("TFIELDS", len(columns), "number of table fields"),
        ]
    )
    for i, c in enumerate(columns, start=1):
        f = c.field
        header[f"TTYPE{i}"] = _fits_ascii(f.name)
        header[f"TFORM{i}"] = c.tform
        if f.unit:
            header[f"TUNIT{i}"] = _fits_ascii(f.unit)
        if c.tnull is not None:
            header[f"TNULL{i}"] = c.tnull
        if f.ucd:
            header[f"TUCD{i}"] = _fits_ascii(f.ucd)
        if f.description:
            header[f"TCOMM{i}"] = _fits_ascii(f.description)
    header["EXTNAME"] = "RESULTS"
    for name, value in result.info.items():
        key = name.upper()
        if _FITS_KEYWORD.match(key) and not _FITS_RESERVED.match(key):
            header[key] = _fits_ascii(str(value))
        else:
            header.add_comment(_fits_ascii(f"{name} = {value}"))
    if result.query_status != "OK":
        header.add_comment(_fits_ascii(f"QUERY_STATUS = {result.query_status}"))
    header["OVERFLOW"] = (overflow, "rows beyond the limit were not returned")
    return primary.tostring().encode("ascii") + header.tostring().encode("ascii")


def _fits_pieces(result: _Result) -> Iterator[bytes | memoryview]:
    columns = [_FitsColumn(f) for f in result.fields]
    schema = pa.schema([pa.field(f"c{i}", f.arrow_type) for i, f in enumerate(result.fields)])
    rows = 0
    with tempfile.SpooledTemporaryFile(max_size=FITS_SPOOL_MEMORY) as spool:
        with pa.ipc.new_stream(spool, schema) as spooler:
            for arrays in result.slices():
                for column, arr in zip(columns, arrays, strict=True):
                    column.observe(arr)
                spooler.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
                rows += len(arrays[0]) if arrays else 0
        overflow = result.overflowed()
        yield _fits_header(columns, rows, result, overflow)
        spool.seek(0)
        size = 0
        for batch in pa.ipc.open_stream(spool):
            if batch.num_rows:
                mats = [c.encode(arr) for c, arr in zip(columns, batch.columns, strict=True)]
                data = np.concatenate(mats, axis=1) if mats else np.zeros((batch.num_rows, 0), np.uint8)
                size += data.size
                yield memoryview(np.ascontiguousarray(data).reshape(-1))
    yield bytes(-size % _FITS_BLOCK)


def _fits_writer(result: _Result) -> Iterator[bytes]:
    return _rechunk(_fits_pieces(result))


# --------------------------------------------------------------------------------------------------
# Format names.

_VOTABLE_MIME = "application/x-votable+xml"
_JSON_FORMAT = OutputFormat("json", "application/json", "json", _json_writer)
_CSV_FORMAT = OutputFormat("csv", "text/csv", "csv", _csv_writer)
_VOTABLE_FORMAT = OutputFormat("votable", _VOTABLE_MIME, "vot", _votable_writer)
_BINARY2_FORMAT = OutputFormat("votable/b2", _VOTABLE_MIME, "vot", _votable_binary2_writer)
_PARQUET_FORMAT = OutputFormat("parquet", "application/vnd.apache.parquet", "parquet", _parquet_writer)
_FITS_FORMAT = OutputFormat("fits", "application/fits", "fits", _fits_writer)

#: Every accepted format name (lower case): canonical names, TAP RESPONSEFORMAT short names and MIME
#: types, and LAMOST's ``output.fmt`` values (votable, csv, json).
FORMATS: Mapping[str, OutputFormat] = {
    "json": _JSON_FORMAT,
    "application/json": _JSON_FORMAT,
    "csv": _CSV_FORMAT,
    "text/csv": _CSV_FORMAT,
    "votable": _VOTABLE_FORMAT,
    "votable/td": _VOTABLE_FORMAT,
    "vot": _VOTABLE_FORMAT,
    _VOTABLE_MIME: _VOTABLE_FORMAT,
    "text/xml": _VOTABLE_FORMAT,
    "votable/b2": _BINARY2_FORMAT,
    "parquet": _PARQUET_FORMAT,
    "application/vnd.apache.parquet": _PARQUET_FORMAT,
    "fits": _FITS_FORMAT,
    "application/fits": _FITS_FORMAT,
}
_SERIALIZATIONS = {"tabledata": _VOTABLE_FORMAT, "binary2": _BINARY2_FORMAT}


def output_format(fmt: str) -> OutputFormat:
    """The format named by ``fmt``: a name or alias of :data:`FORMATS`, case-insensitive, or a MIME type
    with parameters as TAP clients send them (``application/x-votable+xml;serialization=BINARY2``,
    ``text/csv;header=present``). FormatError lists the accepted names otherwise."""
    key = (fmt or "").strip().lower()
    found = FORMATS.get(key)
    if found is None and ";" in key:
        base, _, params = key.partition(";")
        found = FORMATS.get(base.strip())
        if found is _VOTABLE_FORMAT:
            for param in params.split(";"):
                name, _, value = param.partition("=")
                if name.strip() == "serialization":
                    found = _SERIALIZATIONS.get(value.strip().strip('"'))
    if found is None:
        raise FormatError(f"unknown output format {fmt!r}; accepted: {', '.join(FORMATS)}")
    return found


def content_type(fmt: str) -> str:
    """The MIME type to send a result in format ``fmt`` with."""
    return output_format(fmt).content_type


def extension(fmt: str) -> str:
    """The file name extension (without the dot) of a result in format ``fmt``."""
    return output_format(fmt).extension


def stream_result(
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    columns: Sequence[ColumnMeta | ColumnLike | Mapping[str, Any] | str],
    fmt: str,
    *,
    info: Mapping[str, str] | None = None,
    overflow: OverflowFlag = False,
    query_status: str = "OK",
) -> Iterator[bytes]:
    """Write a query result in format ``fmt`` as chunks of 64 KB to 1 MB, batch by batch.

    ``columns`` documents the result's columns (matched by name; extra entries are ignored, a column
    without one keeps the unit/UCD/description its schema field's metadata may carry). ``info`` adds
    named values (the query, the release version...) where the format has room for them; a
    ``QUERY_STATUS`` among them is taken as ``query_status``. ``overflow`` says whether the result was
    cut at a row limit; as a callable it is asked after the last row, so that a TAP MAXREC can be
    counted while streaming. The format is checked before anything is read (a
    FormatError, not a half-written response), and nothing is read from ``batches`` until the first
    chunk is asked for.
    """
    out = output_format(fmt)
    extra = {str(k): str(v) for k, v in (info or {}).items()}
    # A QUERY_STATUS given as info is the status (one QUERY_STATUS INFO per document, not two).
    query_status = extra.pop("QUERY_STATUS", query_status)
    result = _Result(
        batches=batches,
        schema=schema,
        fields=_plan(schema, columns),
        info=extra,
        overflow=overflow,
        query_status=query_status,
    )
    return out.writer(result)


def error_content_type(fmt: str = "votable") -> str:
    """The MIME type of :func:`error_document` for a request that asked for ``fmt``."""
    try:
        return "application/json" if output_format(fmt) is _JSON_FORMAT else _VOTABLE_MIME
    except FormatError:
        return _VOTABLE_MIME


def error_document(message: str, fmt: str = "votable") -> bytes:
    """The error response of the protocols: ``{"error": message}`` when JSON was asked for, else a
    VOTable whose ``QUERY_STATUS`` INFO is ``ERROR`` with the message (TAP and DALI send errors as
    VOTable whatever RESPONSEFORMAT asked for, so CSV, Parquet, FITS and unknown names get it too)."""
    try:
        if output_format(fmt) is _JSON_FORMAT:
            return (json.dumps({"error": message}, ensure_ascii=False) + "\n").encode()
    except FormatError:
        pass
    return (_votable_open({}, "ERROR", message) + "</RESOURCE>\n</VOTABLE>\n").encode()
