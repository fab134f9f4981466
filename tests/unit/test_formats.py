"""Streamed query results read back by the real readers: json, csv/pandas, astropy (VOTable, FITS), pyarrow.

Every format is written from the same awkward result (NaN, nulls, negative zero, extreme int64, XML and
CSV special characters, control characters, unicode beyond the BMP, booleans, spectra of 3909 pixels)
and read back value by value. VOTables are also checked by STILTS ``votlint`` (``apt-get install -y
stilts``), the validator the VO community uses.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits, votable
from astropy.table import Table

from surveyhub.archive.formats import (
    FORMATS,
    MAX_CHUNK,
    MIN_CHUNK,
    ColumnMeta,
    FormatError,
    content_type,
    error_content_type,
    error_document,
    extension,
    output_format,
    stream_result,
)
from surveyhub.releases.columns import LRS_COLUMNS

N_ROWS = 3000
NPIX = 3909  # pixels of an LRS spectrum on the common grid
ALL_FORMATS = ["json", "csv", "votable", "votable/b2", "parquet", "fits"]
STRINGS = [
    "a<&>\"'",
    "",
    None,
    "ünï 中文 😀",
    "ctl\x01\x1f\x7f\t\n\r end",
    "]]> &amp; <TD>",
    'comma, "quoted"\r\nline',
    "STAR",
]
#: XML 1.0 cannot carry these at all, so VOTable TABLEDATA writes U+FFFD for them.
XML_FORBIDDEN = "\x01\x1f"
FLOAT64_SPECIALS = [math.nan, None, -0.0, math.inf, -math.inf, 1e300, 5e-324, 0.1, 1 / 3, 5.0]
FLOAT32_SPECIALS = [math.nan, None, -0.0, math.inf, 3.4e38, 1e-45, 0.1, 15.0]

COLUMNS = [
    ColumnMeta("obsid", "", "meta.id;meta.main", "Unique number ID of this spectrum"),
    ColumnMeta("ra", "deg", "pos.eq.ra;meta.main", "Right ascension (J2000)"),
    ColumnMeta("mag", "mag", "phot.mag;em.opt", 'Magnitude with <XML> & "quotes"'),
    ColumnMeta("name", "", "meta.id", "Designation, with unicode: ünï"),
    ColumnMeta("flag", "", "meta.code", "Whether the fiber was offset"),
    ColumnMeta("spid", "", "meta.id;instr", "Spectrograph ID"),
    ColumnMeta("tiny", "", "meta.code", "An int8 column"),
    ColumnMeta("fiber", "", "meta.id;instr", "A uint8 column"),
    ColumnMeta("flux", "Jy", "phot.flux.density", "Flux on the common grid"),
    ColumnMeta("andmask", "", "meta.code.qual", "Pixel mask sample"),
    ColumnMeta("coeff", "", "stat.fit.param", "Three fit coefficients"),
    ColumnMeta("obsdate", "", "time.epoch", "Date of observation"),
    ColumnMeta("raw", "", "meta.note", "Bytes from the database"),
]


def _flux(k: int, rng: np.random.Generator) -> list[float] | None:
    if k % 50 == 0:
        spectrum = rng.normal(100, 30, NPIX).astype(np.float32)
        spectrum[5], spectrum[6] = np.nan, -0.0
        return spectrum.tolist()
    return {25: None, 10: []}.get(k % 50, [1.5, math.nan, -0.0])


def awkward_table(n: int = N_ROWS) -> pa.Table:
    """A result with every value the writers must get right, cycling through them."""
    rng = np.random.default_rng(42)
    obsid: list[int | None] = [None if k % 7 == 3 else 1247301001 + k for k in range(n)]
    obsid[1], obsid[2], obsid[4] = 2**63 - 1, -(2**63) + 1, 0
    ra = [
        FLOAT64_SPECIALS[k % 20] if k % 20 < len(FLOAT64_SPECIALS) else rng.uniform(0, 360) for k in range(n)
    ]
    mag32 = rng.normal(15, 2, n).astype(np.float32).tolist()
    mag = [FLOAT32_SPECIALS[k % 16] if k % 16 < len(FLOAT32_SPECIALS) else mag32[k] for k in range(n)]
    names = [STRINGS[k % 16] if k % 16 < len(STRINGS) else f"LAMOST J{k:06d}.20+123456.7" for k in range(n)]
    return pa.table(
        {
            "obsid": pa.array(obsid, pa.int64()),
            "ra": pa.array(ra, pa.float64()),
            "mag": pa.array(mag, pa.float32()),
            "name": pa.array(names, pa.string()),
            "flag": pa.array([[True, False, None][k % 3] for k in range(n)], pa.bool_()),
            "spid": pa.array([None if k % 5 == 1 else k % 16 - 8 for k in range(n)], pa.int16()),
            "tiny": pa.array([None if k % 9 == 2 else k % 256 - 128 for k in range(n)], pa.int8()),
            "fiber": pa.array([k % 256 for k in range(n)], pa.uint8()),
            "flux": pa.array([_flux(k, rng) for k in range(n)], pa.list_(pa.float32())),
            "andmask": pa.array(
                [None if k % 11 == 5 else [k, -1, 2**31 - 1, 0] for k in range(n)], pa.list_(pa.int32())
            ),
            "coeff": pa.array(
                [None if k % 13 == 7 else [float(k), 0.5, math.nan] for k in range(n)],
                pa.list_(pa.float64(), 3),
            ),
            "obsdate": pa.array(
                [dt.date(2011, 10, 24) + dt.timedelta(days=k) if k % 17 else None for k in range(n)],
                pa.date32(),
            ),
            "raw": pa.array([[b"spec", b"\xffbad", None, b""][k % 4] for k in range(n)], pa.binary()),
        }
    )


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return awkward_table()


def stream(
    table: pa.Table,
    fmt: str,
    *,
    chunk_rows: int = 700,
    columns: list[Any] | None = None,
    **kwargs: Any,
) -> bytes:
    """The whole stream of ``table`` in ``fmt`` (batches of uneven size), checking the chunk sizes."""
    chunks = list(
        stream_result(
            table.to_batches(max_chunksize=chunk_rows),
            table.schema,
            COLUMNS if columns is None else columns,
            fmt,
            **kwargs,
        )
    )
    assert all(isinstance(c, bytes) for c in chunks)
    assert all(len(c) <= MAX_CHUNK for c in chunks)
    assert all(len(c) >= MIN_CHUNK for c in chunks[:-1])
    return b"".join(chunks)


# ---------------------------------------------------------------------------------------------- helpers


def votlint(path: Path) -> list[str]:
    """STILTS votlint's complaints about a VOTable file (errors and warnings)."""
    stilts = shutil.which("stilts")
    if stilts is None:
        pytest.skip("STILTS is not installed (`apt-get install -y stilts`): votlint cannot check the VOTable")
    out = subprocess.run([stilts, "votlint", f"votable={path}"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith(("ERROR", "WARNING"))]


def is_nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def same_float(got: Any, want: Any, float32: bool = False) -> bool:
    """Equal floats, NaN equal to NaN and the sign of zero respected."""
    if want is None or got is None:
        return got is None and want is None
    got, want = float(got), float(want)
    if math.isnan(want):
        return math.isnan(got)
    if float32:
        got, want = float(np.float32(got)), float(np.float32(want))
    return got == want and math.copysign(1, got) == math.copysign(1, want)


def text_of(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "replace")


def masked(col: Any, i: int) -> bool:
    """Whether cell ``i`` is null (for an array column: all its elements)."""
    mask = getattr(col, "mask", None)
    return bool(np.ma.getmaskarray(col)[i].all()) if mask is not None else False


def same_array(got: Any, want: list[Any] | None, float32: bool = False) -> bool:
    """An array read back (list, numpy array) equals the array written (None: empty or absent)."""
    if want is None:
        return got is None or len(got) == 0 or bool(np.ma.getmaskarray(got).all())
    if got is None:  # a null cell (astropy masks an array of NaN entirely)
        return all(is_nan(w) for w in want)
    got = np.ma.filled(np.ma.asarray(got, dtype=float), np.nan).tolist()  # masked elements: NaN
    if len(got) != len(want):
        return False
    return all(same_float(g, w, float32) or (g is None and is_nan(w)) for g, w in zip(got, want, strict=True))


# ---------------------------------------------------------------------------------------------- JSON


def test_json_round_trip(table: pa.Table) -> None:
    doc = json.loads(stream(table, "json", info={"QUERY": "SELECT * FROM lrs"}))
    assert set(doc) == {"columns", "info", "rows", "overflow"}
    assert doc["overflow"] is False
    assert doc["info"] == {"QUERY": "SELECT * FROM lrs"}
    columns = {c["name"]: c for c in doc["columns"]}
    assert [c["name"] for c in doc["columns"]] == table.column_names
    assert columns["ra"] == {
        "name": "ra",
        "datatype": "double",
        "unit": "deg",
        "ucd": "pos.eq.ra;meta.main",
        "description": "Right ascension (J2000)",
    }
    assert columns["flux"]["datatype"] == "float"
    assert columns["flux"]["arraysize"] == "*"
    assert columns["coeff"]["arraysize"] == "3"
    assert columns["name"]["datatype"] == "unicodeChar"
    assert columns["obsdate"]["xtype"] == "timestamp"

    rows = doc["rows"]
    assert len(rows) == table.num_rows
    cols = {name: [row[i] for row in rows] for i, name in enumerate(table.column_names)}
    want = table.to_pydict()
    assert cols["obsid"] == want["obsid"]  # 2**63-1 and 1247301001 exactly
    for got, w in zip(cols["ra"], want["ra"], strict=True):
        assert same_float(got, None if w is None or not math.isfinite(w) else w)
    for got, w in zip(cols["mag"], want["mag"], strict=True):
        assert same_float(got, None if w is None or not math.isfinite(w) else w, float32=True)
    assert cols["name"] == want["name"]  # control characters, quotes, unicode: all exact
    assert cols["flag"] == want["flag"]
    assert cols["spid"] == want["spid"]
    assert cols["tiny"] == want["tiny"]
    assert cols["fiber"] == want["fiber"]
    for got, w in zip(cols["flux"], want["flux"], strict=True):
        if w is None:
            assert got is None
        else:
            assert len(got) == len(w)
            assert all(
                (g is None and is_nan(x)) or same_float(g, x, True) for g, x in zip(got, w, strict=True)
            )
    assert cols["andmask"] == want["andmask"]
    for got, w in zip(cols["coeff"], want["coeff"], strict=True):
        assert got == (None if w is None else [w[0], 0.5, None])
    assert cols["obsdate"] == [None if d is None else d.isoformat() for d in want["obsdate"]]
    assert cols["raw"] == [text_of(b) for b in want["raw"]]  # bytes as text, invalid UTF-8 replaced
    # floats stay floats: 5.0 and -0.0 are not read back as the integers 5 and 0
    assert any(isinstance(v, float) and v == 5.0 for v in cols["ra"])
    assert any(isinstance(v, float) and v == 0 and math.copysign(1, v) < 0 for v in cols["ra"])


def test_json_overflow_is_asked_after_the_rows(table: pa.Table) -> None:
    seen: list[int] = []

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in table.to_batches(max_chunksize=500):
            seen.append(batch.num_rows)
            yield batch

    def overflow() -> bool:
        assert sum(seen) == table.num_rows  # only asked once every row is out
        return True

    doc = json.loads(b"".join(stream_result(batches(), table.schema, COLUMNS, "json", overflow=overflow)))
    assert doc["overflow"] is True
    assert len(doc["rows"]) == table.num_rows


# ---------------------------------------------------------------------------------------------- CSV


def test_csv_round_trip(table: pa.Table) -> None:
    data = stream(table, "csv")
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    header, *rows = list(reader)
    assert header == table.column_names
    assert len(rows) == table.num_rows
    want = table.to_pydict()
    cols = {name: [row[i] for row in rows] for i, name in enumerate(header)}
    assert cols["obsid"] == ["" if v is None else str(v) for v in want["obsid"]]
    for got, w in zip(cols["ra"], want["ra"], strict=True):
        assert same_float(float(got) if got else None, w)
    for got, w in zip(cols["mag"], want["mag"], strict=True):
        assert same_float(float(got) if got else None, w, float32=True)
    # RFC 4180: quotes doubled, separators, CR and LF inside quoted fields; null and "" both read as ""
    assert cols["name"] == ["" if v is None else v for v in want["name"]]
    assert cols["flag"] == [{True: "true", False: "false", None: ""}[v] for v in want["flag"]]
    for got, w in zip(cols["flux"], want["flux"], strict=True):
        if w is None:
            assert got == ""
        else:
            parsed = json.loads(got)  # a JSON array in a quoted field
            assert len(parsed) == len(w)
            assert all(
                (g is None and is_nan(x)) or same_float(g, x, True) for g, x in zip(parsed, w, strict=True)
            )
    assert [json.loads(v) if v else None for v in cols["andmask"]] == want["andmask"]
    assert cols["raw"] == ["" if b is None else text_of(b) for b in want["raw"]]
    # a null string is an empty field, an empty string a quoted empty field
    lines = data.split(b"\r\n")
    assert lines[1 + 1].split(b",")[3] == b'""'
    assert lines[1 + 2].split(b",")[3] == b""


def test_csv_read_by_pandas(table: pa.Table) -> None:
    df = pd.read_csv(io.BytesIO(stream(table, "csv")), dtype={"obsid": "Int64", "spid": "Int64"})
    want = table.to_pydict()
    assert df["obsid"].tolist() == [pd.NA if v is None else v for v in want["obsid"]]
    assert df["spid"].tolist() == [pd.NA if v is None else v for v in want["spid"]]
    assert df["ra"].dtype == np.float64
    assert df["mag"].dtype == np.float64
    expected_ra = np.array([np.nan if v is None else v for v in want["ra"]])
    np.testing.assert_array_equal(df["ra"].to_numpy(), expected_ra)
    expected_mag = np.array([np.nan if v is None else v for v in want["mag"]], np.float32)
    np.testing.assert_array_equal(df["mag"].to_numpy().astype(np.float32), expected_mag)
    assert df["name"].fillna("").tolist() == ["" if v is None else v for v in want["name"]]
    assert next(json.loads(v)[:3] for v in df["andmask"].dropna()) == [0, -1, 2**31 - 1]


# ---------------------------------------------------------------------------------------------- VOTable


def _check_votable_column(tab: Table, name: str, want: list[Any], binary: bool) -> None:
    col = tab[name]
    for i, w in enumerate(want):
        got = None if masked(col, i) else col[i]
        if name in ("obsid", "spid", "tiny", "fiber"):
            assert got == w, (name, i)
        elif name in ("ra", "mag"):  # astropy reads NaN as a masked (null) float
            if got is None and is_nan(w):
                continue
            assert same_float(got, w, float32=name == "mag"), (name, i, got, w)
        elif name == "flag":
            assert got == w, (name, i)
        elif name == "name":
            expected = "" if w is None else w
            if not binary:  # characters XML cannot carry
                expected = expected.translate({ord(c): "\ufffd" for c in XML_FORBIDDEN})
            assert (got or "") == expected, (name, i, got, expected)
        elif name == "flux":
            assert same_array(got, w, float32=True), (name, i)
        elif name == "coeff":  # TABLEDATA has no null fixed-size array: NaN in every element
            assert same_array(got, [math.nan] * 3 if w is None and not binary else w), (name, i)
        elif name == "andmask":
            assert (list(got) if got is not None and len(got) else None) == w, (name, i)
        elif name == "obsdate":
            assert (got or None) == (None if w is None else w.isoformat()), (name, i)
        elif name == "raw":
            assert (got or "") == (text_of(w) or ""), (name, i)


@pytest.mark.parametrize("fmt", ["votable", "votable/b2"])
def test_votable_round_trip(table: pa.Table, fmt: str, tmp_path: Path) -> None:
    binary = fmt == "votable/b2"
    data = stream(table, fmt, info={"QUERY": "SELECT * FROM lrs WHERE mag < 15 AND name <> 'x'"})
    assert (b"<BINARY2>" in data) == binary
    assert (b"<TABLEDATA>" in data) != binary
    path = tmp_path / "result.vot"
    path.write_bytes(data)
    assert votlint(path) == []

    doc = votable.parse(io.BytesIO(data), verify="exception")  # any astropy warning fails the test
    assert doc.version == "1.4"
    resource = doc.resources[0]
    assert resource.type == "results"
    infos = {info.name: info.value for info in resource.infos}
    assert infos["QUERY_STATUS"] == "OK"
    assert infos["QUERY"] == "SELECT * FROM lrs WHERE mag < 15 AND name <> 'x'"
    vot = resource.tables[0]
    fields = {f.name: f for f in vot.fields}
    assert fields["obsid"].datatype == "long"
    assert fields["obsid"].ucd == "meta.id;meta.main"
    assert fields["ra"].datatype == "double"
    assert str(fields["ra"].unit) == "deg"
    assert fields["mag"].datatype == "float"
    assert fields["mag"].description == COLUMNS[2].description
    assert fields["name"].datatype == "unicodeChar"
    assert fields["name"].arraysize == "*"
    assert fields["flag"].datatype == "boolean"
    assert fields["spid"].datatype == "short"
    assert fields["tiny"].datatype == "short"
    assert fields["fiber"].datatype == "unsignedByte"
    assert fields["flux"].datatype == "float"
    assert fields["flux"].arraysize == "*"
    assert str(fields["flux"].unit) == "Jy"
    assert fields["coeff"].datatype == "double"
    assert fields["coeff"].arraysize == "3"
    assert fields["obsdate"].xtype == "timestamp"

    tab = vot.to_table()
    assert len(tab) == table.num_rows
    want = table.to_pydict()
    for name in table.column_names:
        _check_votable_column(tab, name, want[name], binary)
    # Table.read agrees
    read = Table.read(io.BytesIO(data), format="votable")
    assert read["obsid"][0] == 1247301001
    assert str(read["ra"].unit) == "deg"


@pytest.mark.parametrize("fmt", ["votable", "votable/b2"])
def test_votable_overflow_info_after_the_table(table: pa.Table, fmt: str, tmp_path: Path) -> None:
    asked = []
    table = table.slice(0, 200)
    data = stream(table, fmt, overflow=lambda: asked.append(True) or True)
    assert asked == [True]
    text = data.decode()
    overflow = '<INFO name="QUERY_STATUS" value="OVERFLOW"/>'
    assert text.index(overflow) > text.index("</TABLE>")
    assert text.index('<INFO name="QUERY_STATUS" value="OK"/>') < text.index("<TABLE>")
    path = tmp_path / "overflow.vot"
    path.write_bytes(data)
    assert votlint(path) == []
    doc = votable.parse(io.BytesIO(data))
    statuses = [i.value for i in doc.resources[0].infos if i.name == "QUERY_STATUS"]
    assert statuses == ["OK", "OVERFLOW"]
    assert b"OVERFLOW" not in stream(table, fmt, overflow=lambda: False)


def test_votable_char_datatype_for_ascii_columns(table: pa.Table) -> None:
    """A column declared ``char`` is ASCII in both serializations (non-ASCII becomes ``?``)."""
    columns = [*COLUMNS[:3], ColumnMeta("name", ucd="meta.id", datatype="char"), *COLUMNS[4:]]
    table = table.slice(0, 200)
    for fmt in ("votable", "votable/b2"):
        doc = votable.parse(io.BytesIO(stream(table, fmt, columns=columns)), verify="exception")
        vot = doc.get_first_table()
        assert {f.name: f.datatype for f in vot.fields}["name"] == "char"
        names = vot.to_table()["name"]
        assert names[3] == "ünï 中文 😀".encode("ascii", "replace").decode()
        assert names[0] == "a<&>\"'"


def test_votable_error_mid_stream_ends_a_valid_document(table: pa.Table, tmp_path: Path) -> None:
    def failing() -> Iterator[pa.RecordBatch]:
        yield from table.slice(0, 100).to_batches()
        raise RuntimeError("the query was cancelled: <timeout>")

    for fmt in ("votable", "votable/b2"):
        chunks: list[bytes] = []
        with pytest.raises(RuntimeError, match="cancelled"):
            chunks.extend(stream_result(failing(), table.schema, COLUMNS, fmt))
        data = b"".join(chunks)
        path = tmp_path / "failed.vot"
        path.write_bytes(data)
        assert votlint(path) == []
        doc = votable.parse(io.BytesIO(data))
        errors = [i for i in doc.resources[0].infos if i.value == "ERROR"]
        assert errors[0].content == "the query was cancelled: <timeout>"
        assert len(doc.get_first_table().array) == 100

    chunks = []
    with pytest.raises(RuntimeError):
        chunks.extend(stream_result(failing(), table.schema, COLUMNS, "json"))
    doc = json.loads(b"".join(chunks))
    assert len(doc["rows"]) == 100
    assert doc["error"] == "the query was cancelled: <timeout>"


# ---------------------------------------------------------------------------------------------- Parquet


def test_parquet_round_trip(table: pa.Table) -> None:
    data = stream(table, "parquet", info={"QUERY": "SELECT 1"}, overflow=lambda: True)
    read = pq.read_table(io.BytesIO(data))
    for name in table.column_names:  # every value; repr tells NaN, nulls and -0.0 apart
        assert repr(read[name].to_pylist()) == repr(table[name].to_pylist()), name
    assert read.schema.remove_metadata() == table.schema
    assert np.signbit(read["ra"].to_numpy(zero_copy_only=False)[2])
    for meta in COLUMNS:
        md = read.schema.field(meta.name).metadata
        assert md[b"description"] == meta.description.encode()
        if meta.unit:
            assert md[b"unit"] == meta.unit.encode()
        if meta.ucd:
            assert md[b"ucd"] == meta.ucd.encode()
    assert read.schema.metadata[b"QUERY"] == b"SELECT 1"
    assert read.schema.metadata[b"QUERY_STATUS"] == b"OK"
    assert pq.ParquetFile(io.BytesIO(data)).metadata.metadata[b"overflow"] == b"true"
    assert pq.ParquetFile(io.BytesIO(stream(table, "parquet"))).metadata.metadata[b"overflow"] == b"false"


def test_parquet_streams_row_groups_as_they_complete() -> None:
    """Bytes leave before the input ends: the writer does not keep the file until it is closed."""
    consumed = []

    def batches() -> Iterator[pa.RecordBatch]:
        for k in range(40):
            consumed.append(k)
            yield pa.record_batch({"obsid": np.arange(k * 50_000, (k + 1) * 50_000, dtype=np.int64)})

    schema = pa.schema([("obsid", pa.int64())])
    chunks = stream_result(batches(), schema, [], "parquet")
    next(chunks)
    assert len(consumed) < 40
    rest = b"".join(chunks)
    assert rest  # and the file completes
    assert len(consumed) == 40


# ---------------------------------------------------------------------------------------------- FITS


@pytest.mark.filterwarnings("ignore:Column 'flag' contains NULL")
def test_fits_round_trip(table: pa.Table) -> None:
    data = stream(table, "fits", info={"QUERY": "SELECT * FROM lrs"}, overflow=True)
    assert len(data) % 2880 == 0
    with fits.open(io.BytesIO(data)) as hdul:
        header = hdul[1].header
        assert header["XTENSION"] == "BINTABLE"
        assert header["NAXIS2"] == table.num_rows
        assert header["EXTNAME"] == "RESULTS"
        assert header["OVERFLOW"] is True
        assert header["QUERY"] == "SELECT * FROM lrs"
        index = {header[f"TTYPE{i}"]: i for i in range(1, header["TFIELDS"] + 1)}
        assert header[f"TUNIT{index['ra']}"] == "deg"
        assert header[f"TUCD{index['ra']}"] == "pos.eq.ra;meta.main"
        assert header[f"TCOMM{index['ra']}"] == "Right ascension (J2000)"
        assert header[f"TCOMM{index['name']}"] == "Designation, with unicode: ?n?"  # headers are ASCII
        assert header[f"TFORM{index['obsid']}"] == "K"
        assert header[f"TNULL{index['obsid']}"] == -(2**63)
        assert header[f"TFORM{index['flux']}"] == f"{NPIX}E"
        assert header[f"TFORM{index['coeff']}"] == "3D"
        assert header[f"TFORM{index['andmask']}"] == "4J"
        assert header[f"TFORM{index['flag']}"] == "L"
        assert header[f"TFORM{index['fiber']}"] == "B"
        tab = Table.read(hdul[1])
    assert str(tab["ra"].unit) == "deg"
    assert str(tab["mag"].unit) == "mag"
    want = table.to_pydict()
    for i in range(table.num_rows):
        assert (None if masked(tab["obsid"], i) else int(tab["obsid"][i])) == want["obsid"][i]
        assert (None if masked(tab["spid"], i) else int(tab["spid"][i])) == want["spid"][i]
        for name in ("ra", "mag"):  # null floats are NaN in FITS; astropy masks NaN
            w = math.nan if want[name][i] is None else want[name][i]
            got = math.nan if masked(tab[name], i) else tab[name][i]
            assert same_float(got, w, float32=name == "mag"), (name, i)
        assert bool(tab["flag"][i]) == bool(want["flag"][i])  # FITS logical null reads as False
        name = "" if masked(tab["name"], i) else tab["name"][i]
        assert name == (want["name"][i] or "")  # UTF-8 bytes, control characters kept
        flux, w = np.ma.filled(np.ma.asarray(tab["flux"][i], float), np.nan), want["flux"][i] or []
        assert flux.shape == (NPIX,)
        assert same_array(flux[: len(w)], w, float32=True)
        assert np.isnan(flux[len(w) :]).all()  # shorter and null spectra are padded with NaN
        assert (tab["andmask"][i].tolist() if want["andmask"][i] else [0, 0, 0, 0]) == (
            want["andmask"][i] or [0, 0, 0, 0]
        )
        date = "" if masked(tab["obsdate"], i) else tab["obsdate"][i]
        assert date == ("" if want["obsdate"][i] is None else want["obsdate"][i].isoformat())


# ---------------------------------------------------------------------------------------------- all formats


@pytest.mark.filterwarnings("ignore:Column 'flag' contains NULL")
@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_empty_result(table: pa.Table, fmt: str, tmp_path: Path) -> None:
    data = b"".join(stream_result(iter([]), table.schema, COLUMNS, fmt))
    if fmt == "json":
        doc = json.loads(data)
        assert doc["rows"] == []
        assert len(doc["columns"]) == len(COLUMNS)
        assert doc["overflow"] is False
    elif fmt == "csv":
        assert data == (",".join(table.column_names) + "\r\n").encode()
    elif fmt.startswith("votable"):
        path = tmp_path / "empty.vot"
        path.write_bytes(data)
        assert votlint(path) == []
        vot = votable.parse(io.BytesIO(data), verify="exception").get_first_table()
        assert len(vot.array) == 0
        assert [f.name for f in vot.fields] == table.column_names
    elif fmt == "parquet":
        read = pq.read_table(io.BytesIO(data))
        assert read.num_rows == 0
        assert read.schema.remove_metadata() == table.schema
    else:
        with fits.open(io.BytesIO(data)) as hdul:
            assert hdul[1].header["NAXIS2"] == 0
            assert Table.read(hdul[1]).colnames == table.column_names


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_release_columns_document_a_query_of_a_few_of_them(fmt: str) -> None:
    """The catalog's whole column list documents a query selecting some of its columns, by name."""
    batch = pa.record_batch(
        {"obsid": pa.array([1247301001], pa.int64()), "teff": pa.array([5750.0], pa.float32())}
    )
    data = b"".join(stream_result([batch], batch.schema, (*LRS_COLUMNS, {"name": "teff", "unit": "K"}), fmt))
    if fmt == "json":
        doc = json.loads(data)
        assert doc["columns"][0]["ucd"] == "meta.id;meta.main"
        assert doc["columns"][1]["unit"] == "K"
        assert doc["rows"] == [[1247301001, 5750.0]]
    elif fmt == "csv":
        assert data == b"obsid,teff\r\n1247301001,5750.0\r\n"
    elif fmt.startswith("votable"):
        vot = votable.parse(io.BytesIO(data)).get_first_table()
        assert vot.fields[0].description == "Unique number ID of this spectrum"
        assert vot.array["obsid"][0] == 1247301001
    elif fmt == "parquet":
        read = pq.read_table(io.BytesIO(data))
        assert read.schema.field("teff").metadata[b"unit"] == b"K"
    else:
        with fits.open(io.BytesIO(data)) as hdul:
            assert hdul[1].header["TUCD1"] == "meta.id;meta.main"
            assert hdul[1].header["TUNIT2"] == "K"
            assert hdul[1].data["obsid"][0] == 1247301001


def test_formats_and_aliases() -> None:
    assert output_format("votable").name == "votable"
    for alias in ("votable/td", "VOTable", "application/x-votable+xml", "text/xml", "vot"):
        assert output_format(alias).name == "votable", alias
    assert output_format("votable/b2").name == "votable/b2"
    assert output_format("application/x-votable+xml;serialization=BINARY2").name == "votable/b2"
    assert output_format("application/x-votable+xml; serialization=tabledata").name == "votable"
    assert output_format("text/csv;header=present").name == "csv"
    for lamost in ("votable", "csv", "json"):  # LAMOST's output.fmt
        assert output_format(lamost).name == lamost
    assert content_type("json") == "application/json"
    assert content_type("csv") == "text/csv"
    assert content_type("votable/b2") == content_type("vot") == "application/x-votable+xml"
    assert content_type("parquet") == "application/vnd.apache.parquet"
    assert content_type("fits") == "application/fits"
    assert [extension(f) for f in ALL_FORMATS] == ["json", "csv", "vot", "vot", "parquet", "fits"]
    assert all(name == name.lower() for name in FORMATS)
    with pytest.raises(FormatError, match=r"unknown output format 'hdf5'.*votable/b2.*parquet.*fits"):
        output_format("hdf5")
    with pytest.raises(FormatError):  # before anything is read
        stream_result(iter(()), pa.schema([]), [], "xls")


def test_error_documents(tmp_path: Path) -> None:
    message = "Syntax error near 'SELEC' <line 1> & \"more\""
    doc = error_document(message)
    path = tmp_path / "error.vot"
    path.write_bytes(doc)
    assert votlint(path) == []
    parsed = votable.parse(io.BytesIO(doc), verify="exception")
    resource = parsed.resources[0]
    assert resource.type == "results"
    assert [(i.name, i.value, i.content) for i in resource.infos] == [("QUERY_STATUS", "ERROR", message)]
    assert json.loads(error_document(message, "json")) == {"error": message}
    assert error_document(message, "csv") == doc == error_document(message, "no-such-format")
    assert error_content_type("json") == "application/json"
    assert error_content_type("fits") == error_content_type("bogus") == "application/x-votable+xml"


def test_column_meta_of() -> None:
    lrs = ColumnMeta.of(LRS_COLUMNS[0])
    assert lrs == ColumnMeta("obsid", "", "meta.id;meta.main", "Unique number ID of this spectrum")
    assert ColumnMeta.of("ra") == ColumnMeta("ra")
    assert ColumnMeta.of({"name": "teff", "unit": "K"}).unit == "K"


# ---------------------------------------------------------------------------------------------- streaming

MEMORY_PROBE = textwrap.dedent(
    """
    import json, sys, tracemalloc
    import numpy as np, pyarrow as pa, pyarrow.compute as pc
    from surveyhub.archive.formats import ColumnMeta, stream_result

    fmt, rows, step = sys.argv[1], int(sys.argv[2]), 20_000
    state = {"data": 0, "consumed": 0, "at_first_chunk": None}

    def batches():
        rng = np.random.default_rng(1)
        for start in range(0, rows, step):
            ids = np.arange(start, min(rows, start + step), dtype=np.int64) + 1247301001
            n = len(ids)
            batch = pa.record_batch({
                "obsid": ids, "ra": rng.uniform(0, 360, n), "dec": rng.uniform(-90, 90, n),
                "teff": pa.array(rng.normal(5500, 800, n).astype(np.float32), mask=rng.random(n) < 0.1),
                "logg": rng.normal(4, 1, n).astype(np.float32),
                "feh": rng.normal(0, .3, n).astype(np.float32),
                "designation": pc.binary_join_element_wise(
                    "LAMOST J", pc.cast(pa.array(ids), pa.string()), ""
                ),
                "class": pa.array(np.array(["STAR", "GALAXY", "QSO"])[rng.integers(0, 3, n)]),
                "offsets": rng.random(n) < 0.5, "fibermask": rng.integers(0, 1000, n).astype(np.int32),
            })
            state["data"] += batch.nbytes
            state["consumed"] += n
            yield batch

    schema = next(batches()).schema
    state.update(data=0, consumed=0)
    tracemalloc.start()
    pool = pa.default_memory_pool()
    out = chunks = 0
    for chunk in stream_result(batches(), schema, [ColumnMeta("ra", unit="deg")], fmt):
        if state["at_first_chunk"] is None:
            state["at_first_chunk"] = state["consumed"]
        out += len(chunk)
        chunks += 1
    _, peak = tracemalloc.get_traced_memory()
    print(json.dumps({**state, "out": out, "chunks": chunks, "python_peak": peak,
                      "arrow_peak": pool.max_memory()}))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_memory_stays_bounded_while_streaming_two_million_rows(fmt: str) -> None:
    """2 million rows (about 150 MB of Arrow data) stream with a few tens of MB of memory at most.

    Run in a fresh interpreter so that Arrow's allocator peak (which tracemalloc does not see) is this
    stream's alone."""
    rows = 2_000_000
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, fmt, str(rows)], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    probe = json.loads(out.stdout)
    assert probe["consumed"] == rows
    assert probe["data"] > 100e6
    assert probe["python_peak"] < probe["data"] / 5, probe
    assert probe["arrow_peak"] < probe["data"] / 5, probe
    assert probe["chunks"] >= probe["out"] // MAX_CHUNK
    if fmt == "parquet":  # bytes leave with the first row group (16 MB of batches)
        assert probe["at_first_chunk"] < rows / 4, probe
    elif fmt != "fits":  # FITS must count the rows before its header; everything else streams at once
        assert probe["at_first_chunk"] <= 20_000, probe


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "votable", "votable/b2", "json"])
def test_throughput(fmt: str) -> None:
    """A 10-column result streams at well over 200k rows/s (typically 1-3 million: see the module).

    The check is loose (a loaded CI machine is slow); the rate is printed for the record."""
    rows, step = 300_000, 50_000
    rng = np.random.default_rng(0)
    batches = [
        pa.record_batch(
            {
                "obsid": np.arange(s, s + step, dtype=np.int64),
                "ra": rng.uniform(0, 360, step),
                "dec": rng.uniform(-90, 90, step),
                "teff": rng.normal(5500, 800, step).astype(np.float32),
                "logg": rng.normal(4, 1, step).astype(np.float32),
                "feh": rng.normal(0, 0.3, step).astype(np.float32),
                "designation": pa.array([f"LAMOST J{k:06d}.12+123456.7" for k in range(step)]),
                "class": pa.array(np.array(["STAR", "GALAXY", "QSO"])[rng.integers(0, 3, step)]),
                "offsets": rng.random(step) < 0.5,
                "fibermask": rng.integers(0, 1000, step).astype(np.int32),
            }
        )
        for s in range(0, rows, step)
    ]
    start = time.perf_counter()
    size = sum(len(c) for c in stream_result(batches, batches[0].schema, [], fmt))
    rate = rows / (time.perf_counter() - start)
    print(f"{fmt}: {rate:,.0f} rows/s, {size / rows:.0f} bytes/row")
    assert rate > 100_000


def test_unusual_arrow_types(tmp_path: Path) -> None:
    """What DuckDB and pyarrow may hand over: each type is written as its nearest VOTable type."""
    when = dt.datetime(2011, 10, 24, 12, 30, 15, 250000, tzinfo=dt.UTC)
    table = pa.table(
        {
            "cls": pa.array(["STAR", "QSO", None]).dictionary_encode(),
            "big": pa.array(["x", "é", None], pa.large_string()),
            "view": pa.array(["a", "b", None], pa.string_view()),
            "when": pa.array([when, None, when], pa.timestamp("us", tz="UTC")),
            "dec": pa.array([Decimal("1.25"), None, Decimal("-3.5")], pa.decimal128(10, 2)),
            "u64": pa.array([0, 2**63 - 1, None], pa.uint64()),
            "half": pa.array([1.5, None, -0.0], pa.float16()),
            "nested": pa.array([{"a": 1}, None, {"a": 2}], pa.struct([("a", pa.int32())])),
            "nothing": pa.nulls(3),
            "large_list": pa.array([[1.0, 2.0], None, []], pa.large_list(pa.float64())),
            "flags": pa.array([[True, None], [False], None], pa.list_(pa.bool_())),
        }
    )
    expected = [
        [
            "STAR",
            "x",
            "a",
            "2011-10-24T12:30:15.250000",
            1.25,
            0,
            1.5,
            '{"a": 1}',
            None,
            [1.0, 2.0],
            [True, None],
        ],
        ["QSO", "é", "b", None, None, 2**63 - 1, None, None, None, None, [False]],
        [None, None, None, "2011-10-24T12:30:15.250000", -3.5, None, -0.0, '{"a": 2}', None, [], None],
    ]
    doc = json.loads(b"".join(stream_result([table], table.schema, [], "json")))
    assert doc["rows"] == expected
    types = {c["name"]: (c["datatype"], c.get("arraysize"), c.get("xtype")) for c in doc["columns"]}
    assert types == {
        "cls": ("unicodeChar", "*", None),
        "big": ("unicodeChar", "*", None),
        "view": ("unicodeChar", "*", None),
        "when": ("char", "*", "timestamp"),
        "dec": ("double", None, None),
        "u64": ("long", None, None),
        "half": ("float", None, None),
        "nested": ("unicodeChar", "*", None),
        "nothing": ("unicodeChar", "*", None),
        "large_list": ("double", "*", None),
        "flags": ("boolean", "*", None),
    }
    for fmt in ("votable", "votable/b2"):
        data = b"".join(stream_result(table.to_batches(), table.schema, [], fmt))
        path = tmp_path / "types.vot"
        path.write_bytes(data)
        assert votlint(path) == []
        read = votable.parse(io.BytesIO(data), verify="exception").get_first_table().to_table()
        assert list(read["cls"][:2]) == ["STAR", "QSO"]
        assert read["when"][0] == "2011-10-24T12:30:15.250000"
        assert read["u64"][1] == 2**63 - 1
    with fits.open(io.BytesIO(b"".join(stream_result([table], table.schema, [], "fits")))) as hdul:
        assert hdul[1].data["when"][0] == "2011-10-24T12:30:15.250000"
        assert list(hdul[1].data["large_list"][0]) == [1.0, 2.0]
    assert pq.read_table(io.BytesIO(b"".join(stream_result([table], table.schema, [], "parquet")))).equals(
        table
    )


def test_datatype_hints() -> None:
    """``datatype`` in ColumnMeta declares (and casts to) another VOTable type."""
    batch = pa.record_batch({"snr": pa.array([12.5, None]), "code": pa.array(["A", "B"])})
    meta = [ColumnMeta("snr", datatype="float"), ColumnMeta("code", datatype="char")]
    vot = votable.parse(io.BytesIO(b"".join(stream_result([batch], batch.schema, meta, "votable/b2"))))
    fields = {f.name: f.datatype for f in vot.get_first_table().fields}
    assert fields == {"snr": "float", "code": "char"}
    assert vot.get_first_table().array["snr"].dtype == np.float32


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_a_client_that_goes_away_closes_the_stream_cleanly(table: pa.Table, fmt: str) -> None:
    """The handler stops reading when the client disconnects: closing the generator must not fail, nor
    ask for the overflow (FITS, which sends nothing before the end of the rows, asks it first)."""

    def overflow() -> bool:
        assert fmt == "fits"
        return False

    batches = table.to_batches(max_chunksize=100) * 20
    chunks = stream_result(batches, table.schema, COLUMNS, fmt, overflow=overflow)
    assert next(chunks)
    chunks.close()
