# ruff: noqa: S608 - these tests build ADQL text on purpose: it is the input under test, not SQL we run
"""ADQL -> DuckDB: answers checked against brute force, geometry against astropy, refusals one by one.

Every translated query runs on a real in-memory DuckDB holding two small tables (LAMOST-like ``lrs`` with
positions clustered where the tests look: across RA = 0/360, around the north pole and in a 10-degree
field, and ``stellar``), and is compared with the same answer computed with pandas and astropy. The
relations also carry private columns (``secret``, ``flag``) that the ADQL side must never see.
"""

from __future__ import annotations

import math

import astropy.units as u
import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from astropy.coordinates import SkyCoord

from surveyhub.archive.adql import (
    FUNCTIONS,
    LANGUAGE_FEATURES,
    AdqlError,
    Box,
    Circle,
    Polygon,
    SpatialConstraint,
    TableInfo,
    Translation,
    translate,
)
from surveyhub.archive.sandbox import Sandbox

N_ROWS = 2000
NULL_POSITIONS = (5, 6, 7)
LRS_COLUMNS = {
    "obsid": "BIGINT",
    "ra": "DOUBLE",
    "dec": "DOUBLE",
    "class": "VARCHAR",
    "snrg": "DOUBLE",
    "z": "DOUBLE",
}
STELLAR_COLUMNS = {"obsid": "BIGINT", "teff": "DOUBLE", "logg": "DOUBLE", "flag": "INTEGER"}


# ----------------------------------------------------------------------------------------------------
# Data: a DuckDB with the tables, the same rows in pandas for brute force
# ----------------------------------------------------------------------------------------------------


def _cap(
    rng: np.random.Generator, n: int, ra: float, dec: float, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Points uniform in a cone (by area), via astropy's offsets."""
    centre = SkyCoord(ra * u.deg, dec * u.deg)
    sep = np.degrees(np.arccos(1 - rng.uniform(0, 1, n) * (1 - np.cos(np.radians(radius)))))
    moved = centre.directional_offset_by(rng.uniform(0, 360, n) * u.deg, sep * u.deg)
    return moved.ra.deg, moved.dec.deg


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(20240611)
    n_sky = 1000
    ra = [rng.uniform(0, 360, n_sky)]
    dec = [np.degrees(np.arcsin(rng.uniform(-1, 1, n_sky)))]
    for n, (cra, cdec, r) in ((300, (0.2, 1.0, 3.0)), (300, (0.0, 90.0, 6.0)), (400, (150.0, 30.0, 7.0))):
        a, d = _cap(rng, n, cra, cdec, r)
        ra.append(a)
        dec.append(d)
    lrs = pd.DataFrame(
        {
            "obsid": np.arange(N_ROWS, dtype=np.int64),
            "ra": np.concatenate(ra),
            "dec": np.concatenate(dec),
            "class": rng.choice(["STAR", "GALAXY", "QSO"], N_ROWS),
            "snrg": rng.uniform(0, 100, N_ROWS),
            "z": rng.normal(0, 1, N_ROWS),
            "secret": rng.integers(0, 1000, N_ROWS),
            "flag": rng.integers(0, 2, N_ROWS).astype(np.int32),
        }
    )
    lrs.loc[list(NULL_POSITIONS), ["ra", "dec"]] = np.nan
    lrs.loc[10:29, "z"] = np.nan
    lrs.loc[30:39, "class"] = None
    stellar = pd.DataFrame(
        {
            "obsid": np.arange(0, N_ROWS, 2, dtype=np.int64),
            "teff": rng.uniform(3000, 9000, N_ROWS // 2),
            "logg": rng.uniform(0, 5, N_ROWS // 2),
            "secret": rng.integers(0, 1000, N_ROWS // 2),
        }
    )
    # a visible column whose name is also a private column of lrs, with different values
    stellar["flag"] = 1 - lrs.set_index("obsid").loc[stellar.obsid, "flag"].to_numpy()
    return {"lrs": lrs, "stellar": stellar}


@pytest.fixture(scope="module")
def con(frames: dict[str, pd.DataFrame]) -> duckdb.DuckDBPyConnection:
    db = duckdb.connect(":memory:")
    for name, frame in frames.items():
        db.register(f"{name}_frame", frame)
        db.execute(f"CREATE TABLE {name}_data AS SELECT * FROM {name}_frame")
        db.unregister(f"{name}_frame")
    db.execute("CREATE VIEW v_lrs AS SELECT * FROM lrs_data")
    db.execute("CREATE VIEW v_stellar AS SELECT * FROM stellar_data")
    db.execute("CREATE SCHEMA dr10_v0")
    db.execute("CREATE VIEW dr10_v0.lrs AS SELECT * FROM lrs_data")  # exists, but nobody may read it
    return db


@pytest.fixture(scope="module")
def lrs(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """lrs as DuckDB holds it (NULLs as NaN/None), for brute force."""
    return con.execute("SELECT * FROM lrs_data ORDER BY obsid").df()


@pytest.fixture(scope="module")
def stellar(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute("SELECT * FROM stellar_data ORDER BY obsid").df()


TABLES = {
    "dr10_v2.lrs": TableInfo("v_lrs", LRS_COLUMNS, ra="ra", dec="dec"),
    "dr10_v2.stellar": TableInfo("v_stellar", STELLAR_COLUMNS),
}


def run(
    con: duckdb.DuckDBPyConnection, adql: str, tables: dict[str, TableInfo] | None = None
) -> pd.DataFrame:
    translation = translate(adql, TABLES if tables is None else tables)
    frame = con.execute(translation.sql).df()
    assert list(frame.columns) == translation.columns
    return frame


def ids(frame: pd.DataFrame, column: str = "obsid") -> list[int]:
    return sorted(int(v) for v in frame[column])


def refused(adql: str, tables: dict[str, TableInfo] | None = None) -> AdqlError:
    with pytest.raises(AdqlError) as info:
        translate(adql, TABLES if tables is None else tables)
    return info.value


# ----------------------------------------------------------------------------------------------------
# Brute-force geometry (astropy), independent of the translator's formulas
# ----------------------------------------------------------------------------------------------------


def sky(frame: pd.DataFrame) -> tuple[SkyCoord, np.ndarray]:
    valid = frame.ra.notna().to_numpy() & frame.dec.notna().to_numpy()
    ra = np.where(valid, frame.ra.fillna(0), 0)
    dec = np.where(valid, frame.dec.fillna(0), 0)
    return SkyCoord(ra * u.deg, dec * u.deg), valid


def in_circle(frame: pd.DataFrame, ra: float, dec: float, radius: float) -> np.ndarray:
    coords, valid = sky(frame)
    return valid & (coords.separation(SkyCoord(ra * u.deg, dec * u.deg)).deg <= radius)


def in_box(frame: pd.DataFrame, ra: float, dec: float, width: float, height: float) -> np.ndarray:
    """ADQL 2.0 box: great-circle sides at right angles to the arms, via astropy's offset frame."""
    coords, valid = sky(frame)
    local = coords.transform_to(SkyCoord(ra * u.deg, dec * u.deg).skyoffset_frame())
    lon, lat = local.lon.rad, local.lat.rad
    x, y, z = np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)
    tw, th = math.tan(math.radians(width) / 2), math.tan(math.radians(height) / 2)
    return valid & (x > 0) & (np.abs(y) <= x * tw) & (np.abs(z) <= x * th)


def winding_inside(
    ra: np.ndarray, dec: np.ndarray, vertices: list[tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    """Point in spherical polygon by the winding of the bearings to the vertices (astropy)."""
    points = SkyCoord(ra * u.deg, dec * u.deg)
    bearings = [points.position_angle(SkyCoord(vra * u.deg, vdec * u.deg)).rad for vra, vdec in vertices]
    total = np.zeros(len(points))
    for i in range(len(bearings)):
        step = bearings[(i + 1) % len(bearings)] - bearings[i]
        total += (step + np.pi) % (2 * np.pi) - np.pi
    units = [SkyCoord(vra * u.deg, vdec * u.deg).cartesian.xyz.value for vra, vdec in vertices]
    centroid = np.sum(units, axis=0)
    centre = SkyCoord(x=centroid[0], y=centroid[1], z=centroid[2], representation_type="cartesian")
    near = points.separation(SkyCoord(centre.spherical.lon, centre.spherical.lat)).deg < 90
    return (np.abs(total) > np.pi) & near


def in_polygon(frame: pd.DataFrame, vertices: list[tuple[float, float]]) -> np.ndarray:
    coords, valid = sky(frame)
    verts = [(np.full(len(frame), a), np.full(len(frame), d)) for a, d in vertices]
    return valid & winding_inside(coords.ra.deg, coords.dec.deg, verts)


def circle_adql(ra: float, dec: float, r: float) -> str:
    return f"CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra}, {dec}, {r})) = 1"


def polygon_adql(vertices: list[tuple[float, float]]) -> str:
    return "POLYGON('ICRS', " + ", ".join(f"{a}, {d}" for a, d in vertices) + ")"


# ----------------------------------------------------------------------------------------------------
# Plain SQL features
# ----------------------------------------------------------------------------------------------------


def test_top_with_order_by(con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame) -> None:
    translation = translate("SELECT TOP 7 obsid, snrg FROM dr10_v2.lrs ORDER BY snrg DESC", TABLES)
    assert translation.limit == 7
    assert translation.offset is None
    assert translation.columns == ["obsid", "snrg"]
    assert translation.tables == ["dr10_v2.lrs"]
    got = con.execute(translation.sql).df()
    expected = lrs.sort_values("snrg", ascending=False).head(7)
    assert got.obsid.tolist() == expected.obsid.tolist()


def test_offset_and_top(con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame) -> None:
    translation = translate("SELECT TOP 5 obsid FROM lrs ORDER BY obsid OFFSET 10", TABLES)
    assert (translation.limit, translation.offset) == (5, 10)
    assert con.execute(translation.sql).df().obsid.tolist() == list(range(10, 15))


def test_select_distinct(con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame) -> None:
    got = run(con, "SELECT DISTINCT class FROM lrs WHERE class IS NOT NULL ORDER BY class")
    assert got["class"].tolist() == sorted(lrs["class"].dropna().unique())


def test_star_expands_to_the_visible_columns_only(con: duckdb.DuckDBPyConnection) -> None:
    translation = translate("SELECT * FROM dr10_v2.lrs", TABLES)
    assert translation.columns == list(LRS_COLUMNS)
    assert "secret" not in translation.sql
    assert run(con, "SELECT TOP 1 l.* FROM lrs AS l").columns.tolist() == list(LRS_COLUMNS)


def test_group_by_having_order_by_position(con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame) -> None:
    got = run(
        con,
        "SELECT class, COUNT(*) AS n, AVG(snrg) AS mean_snr, MIN(z), MAX(z), SUM(snrg) FROM lrs "
        "WHERE class IS NOT NULL GROUP BY class HAVING COUNT(*) > 10 ORDER BY 2 DESC",
    )
    grouped = lrs.dropna(subset=["class"]).groupby("class")
    expected = grouped.size().sort_values(ascending=False)
    assert got["class"].tolist() == expected.index.tolist()
    assert got.n.tolist() == expected.tolist()
    for _, row in got.iterrows():
        part = lrs[lrs["class"] == row["class"]]
        assert row.mean_snr == pytest.approx(part.snrg.mean())
        assert row["min"] == pytest.approx(part.z.min())
        assert row["max"] == pytest.approx(part.z.max())
        assert row["sum"] == pytest.approx(part.snrg.sum())


def test_group_by_alias_and_having_alias(con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame) -> None:
    got = run(
        con,
        "SELECT FLOOR(snrg / 10) AS bin, COUNT(*) AS n FROM lrs GROUP BY bin HAVING n > 150 ORDER BY bin",
    )
    counts = np.floor(lrs.snrg / 10).value_counts()
    expected = counts[counts > 150].sort_index()
    assert got.bin.tolist() == expected.index.tolist()
    assert got.n.tolist() == expected.tolist()


def test_count_distinct_and_all(con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame) -> None:
    got = run(con, "SELECT COUNT(DISTINCT class) AS k, COUNT(z) AS nz, COUNT(*) AS n FROM lrs")
    assert got.k[0] == lrs["class"].nunique()
    assert got.nz[0] == lrs.z.notna().sum()
    assert got.n[0] == N_ROWS


def test_inner_join_on(con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame, stellar: pd.DataFrame) -> None:
    got = run(
        con,
        "SELECT l.obsid, l.class, s.teff FROM dr10_v2.lrs AS l JOIN dr10_v2.stellar AS s "
        "ON l.obsid = s.obsid WHERE s.teff > 8500 ORDER BY l.obsid",
    )
    merged = lrs.merge(stellar, on="obsid")
    assert got.obsid.tolist() == merged[merged.teff > 8500].obsid.tolist()


def test_left_join_keeps_unmatched(con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame) -> None:
    got = run(
        con,
        "SELECT l.obsid, s.teff FROM lrs AS l LEFT OUTER JOIN stellar AS s ON l.obsid = s.obsid "
        "WHERE l.obsid < 10 ORDER BY l.obsid",
    )
    assert got.obsid.tolist() == list(range(10))
    assert got.teff.isna().tolist() == [i % 2 == 1 for i in range(10)]


def test_natural_join_uses_visible_columns_only(
    con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame, stellar: pd.DataFrame
) -> None:
    # both relations also have 'secret', and lrs has a private 'flag': only obsid may join them
    translation = translate("SELECT * FROM lrs NATURAL JOIN stellar", TABLES)
    assert translation.columns == [*LRS_COLUMNS, "teff", "logg", "flag"]
    got = con.execute(translation.sql).df()
    assert len(got) == len(lrs.merge(stellar, on="obsid"))


def test_using_and_comma_joins(
    con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame, stellar: pd.DataFrame
) -> None:
    using = run(con, "SELECT obsid, teff FROM lrs JOIN stellar USING (obsid) WHERE teff < 3100")
    expected = stellar[stellar.teff < 3100].obsid
    assert ids(using) == sorted(expected)
    comma = run(con, "SELECT l.obsid FROM lrs l, stellar s WHERE l.obsid = s.obsid AND s.teff < 3100")
    assert ids(comma) == sorted(expected)


def test_self_join_with_aliases(con: duckdb.DuckDBPyConnection) -> None:
    got = run(
        con,
        "SELECT a.obsid, b.obsid FROM lrs AS a JOIN lrs AS b ON a.obsid + 1 = b.obsid WHERE a.obsid < 3",
    )
    assert got.columns.tolist() == ["obsid", "obsid_2"]
    assert sorted(zip(got.obsid, got.obsid_2, strict=True)) == [(0, 1), (1, 2), (2, 3)]


def test_parenthesized_join(con: duckdb.DuckDBPyConnection) -> None:
    got = run(
        con,
        "SELECT a.obsid FROM (lrs AS a JOIN stellar AS b ON a.obsid = b.obsid) "
        "JOIN stellar AS c ON c.obsid = a.obsid WHERE a.obsid < 9",
    )
    assert ids(got) == [0, 2, 4, 6, 8]


def test_subqueries(con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame, stellar: pd.DataFrame) -> None:
    hot = sorted(stellar[stellar.teff > 8900].obsid)
    assert (
        ids(run(con, "SELECT obsid FROM lrs WHERE obsid IN (SELECT obsid FROM stellar WHERE teff > 8900)"))
        == hot
    )
    exists = run(
        con,
        "SELECT obsid FROM lrs AS l WHERE EXISTS "
        "(SELECT 1 FROM stellar AS s WHERE s.obsid = l.obsid AND s.teff > 8900)",
    )
    assert ids(exists) == hot
    not_in = run(con, "SELECT obsid FROM lrs WHERE obsid < 20 AND obsid NOT IN (SELECT obsid FROM stellar)")
    assert ids(not_in) == list(range(1, 20, 2))
    scalar = run(con, "SELECT obsid, (SELECT MAX(teff) FROM stellar) AS hottest FROM lrs WHERE obsid = 0")
    assert scalar.hottest[0] == pytest.approx(stellar.teff.max())
    derived = run(
        con,
        "SELECT t.c, t.n FROM (SELECT class AS c, COUNT(*) AS n FROM lrs GROUP BY class) AS t "
        "WHERE t.n > 500 ORDER BY t.c",
    )
    counts = lrs["class"].value_counts()
    assert derived.c.tolist() == sorted(counts[counts > 500].index)
    quantified = run(con, "SELECT obsid FROM stellar WHERE teff >= ALL (SELECT teff FROM stellar)")
    assert ids(quantified) == [int(stellar.loc[stellar.teff.idxmax(), "obsid"])]


def test_derived_table_column_aliases(con: duckdb.DuckDBPyConnection) -> None:
    got = run(con, "SELECT t.a, t.b FROM (SELECT obsid, class FROM lrs) AS t(a, b) WHERE t.a < 2")
    assert ids(got, "a") == [0, 1]


def test_set_operations(con: duckdb.DuckDBPyConnection) -> None:
    union = run(
        con,
        "SELECT obsid FROM lrs WHERE obsid < 3 UNION SELECT obsid FROM stellar WHERE obsid < 6 ORDER BY 1",
    )
    assert union.obsid.tolist() == [0, 1, 2, 4]
    union_all = run(
        con, "SELECT obsid FROM lrs WHERE obsid < 3 UNION ALL SELECT obsid FROM stellar WHERE obsid < 3"
    )
    assert ids(union_all) == [0, 0, 1, 2, 2]
    intersect = run(con, "SELECT obsid FROM lrs WHERE obsid < 6 INTERSECT SELECT obsid FROM stellar")
    assert ids(intersect) == [0, 2, 4]
    except_ = run(
        con, "SELECT obsid FROM lrs WHERE obsid < 6 EXCEPT SELECT obsid FROM stellar ORDER BY obsid DESC"
    )
    assert except_.obsid.tolist() == [5, 3, 1]
    top_branch = run(
        con, "(SELECT TOP 2 obsid FROM lrs ORDER BY obsid DESC) UNION (SELECT obsid FROM lrs WHERE obsid = 0)"
    )
    assert ids(top_branch) == [0, N_ROWS - 2, N_ROWS - 1]


def test_set_operation_grouping_is_kept(con: duckdb.DuckDBPyConnection) -> None:
    """INTERSECT binds tighter than UNION; explicit parentheses must survive the translation."""
    grouped = run(
        con,
        "(SELECT obsid FROM lrs WHERE obsid < 4 UNION SELECT obsid FROM stellar WHERE obsid < 8) "
        "INTERSECT SELECT obsid FROM lrs WHERE obsid > 1",
    )
    assert ids(grouped) == [2, 3, 4, 6]
    natural = run(
        con,
        "SELECT obsid FROM lrs WHERE obsid < 4 UNION SELECT obsid FROM stellar WHERE obsid < 8 "
        "INTERSECT SELECT obsid FROM lrs WHERE obsid > 1",
    )
    assert ids(natural) == [0, 1, 2, 3, 4, 6]


def test_join_without_on_is_a_cross_join(con: duckdb.DuckDBPyConnection) -> None:
    got = run(
        con, "SELECT l.obsid, s.obsid FROM lrs AS l JOIN stellar AS s WHERE l.obsid < 2 AND s.obsid < 3"
    )
    assert len(got) == 4


def test_order_by_prefers_given_names_over_generated_ones(con: duckdb.DuckDBPyConnection) -> None:
    # "count" is the generated name of COUNT(*) but also a real column of this table: the column wins
    tables = {"t": TableInfo("v_lrs", {"obsid": "BIGINT", "count": "BIGINT"})}
    con.execute("CREATE OR REPLACE VIEW v_counts AS SELECT obsid, 100 - obsid AS count FROM lrs_data")
    tables = {"t": TableInfo("v_counts", {"obsid": "BIGINT", "count": "BIGINT"})}
    got = run(con, "SELECT TOP 3 obsid, COUNT(*) FROM t GROUP BY obsid, count ORDER BY count", tables)
    assert got.obsid.tolist() == [1999, 1998, 1997]
    aliased = run(con, "SELECT TOP 2 obsid, 1 - obsid AS count FROM t ORDER BY count", tables)
    assert aliased.obsid.tolist() == [1999, 1998]


def test_long_boolean_chains_and_lists(con: duckdb.DuckDBPyConnection) -> None:
    ors = " OR ".join(f"obsid = {i}" for i in range(0, 6000, 2))
    assert len(run(con, f"SELECT obsid FROM lrs WHERE {ors}")) == 1000
    ands = " AND ".join(f"obsid <> {i}" for i in range(1000))
    assert len(run(con, f"SELECT obsid FROM lrs WHERE {ands}")) == N_ROWS - 1000
    listed = ", ".join(str(i) for i in range(0, 20000, 4))
    assert len(run(con, f"SELECT obsid FROM lrs WHERE obsid IN ({listed})")) == 500


def test_expressions(con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame) -> None:
    got = run(
        con,
        "SELECT obsid, CASE WHEN z > 0 THEN 'up' WHEN z < 0 THEN 'down' ELSE 'none' END AS sign, "
        "class || '-' || 'x' AS tag, snrg * 2 + 1 AS s2, -z AS mz, "
        "CASE class WHEN 'STAR' THEN 1 ELSE 0 END AS is_star "
        "FROM lrs WHERE snrg BETWEEN 10 AND 20 AND class LIKE 'ST%' AND z IS NOT NULL ORDER BY obsid",
    )
    mask = lrs.snrg.between(10, 20) & (lrs["class"] == "STAR") & lrs.z.notna()
    expected = lrs[mask]
    assert got.obsid.tolist() == expected.obsid.tolist()
    assert got.sign.tolist() == np.where(expected.z > 0, "up", "down").tolist()
    assert set(got.tag) == {"STAR-x"}
    np.testing.assert_allclose(got.s2, expected.snrg * 2 + 1)
    np.testing.assert_allclose(got.mz, -expected.z)
    assert set(got.is_star) == {1}


def test_null_handling_and_ilike(con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame) -> None:
    assert len(run(con, "SELECT obsid FROM lrs WHERE z IS NULL")) == lrs.z.isna().sum()
    assert len(run(con, "SELECT obsid FROM lrs WHERE class IS NULL")) == lrs["class"].isna().sum()
    assert len(run(con, "SELECT obsid FROM lrs WHERE class ILIKE 'star'")) == (lrs["class"] == "STAR").sum()
    assert (
        len(run(con, "SELECT obsid FROM lrs WHERE class NOT LIKE 'S%'"))
        == (lrs["class"].notna() & ~lrs["class"].fillna("").str.startswith("S")).sum()
    )
    got = run(con, "SELECT COALESCE(z, -99) AS zz FROM lrs WHERE obsid BETWEEN 10 AND 11")
    assert got.zz.tolist() == [-99, -99]


def test_math_functions(con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame) -> None:
    row = lrs[lrs.obsid == 100].iloc[0]
    got = run(
        con,
        "SELECT ABS(z) AS a, CEILING(z) AS c, DEGREES(z) AS dg, EXP(z) AS e, FLOOR(z) AS f, LOG(snrg) AS ln, "
        "LOG10(snrg) AS lg, MOD(obsid, 7) AS m, PI() AS p, POWER(snrg, 0.5) AS pw, RADIANS(snrg) AS rd, "
        "SQRT(snrg) AS sq, ROUND(snrg, 2) AS r2, ROUND(snrg) AS r0, TRUNCATE(snrg, 1) AS t1, "
        "TRUNCATE(-snrg) AS t0, SIN(z) AS s, COS(z) AS co, TAN(z) AS t, ASIN(z / 10) AS asn, "
        "ACOS(z / 10) AS acs, ATAN(z) AS at, ATAN2(z, snrg) AS at2, COT(z) AS ct, RAND() AS rnd, "
        "UPPER(class) AS up, LOWER(class) AS lo, LENGTH(class) AS len, CHAR_LENGTH(class) AS clen, "
        "TRIM('  x  ') AS tr, SUBSTRING(class FROM 2 FOR 2) AS sub, SUBSTRING(class, 1, 1) AS sub2, "
        "CAST(snrg AS INTEGER) AS i, CAST(obsid AS VARCHAR(10)) AS txt, "
        "CAST(obsid AS DOUBLE PRECISION) AS dbl "
        "FROM lrs WHERE obsid = 100",
    ).iloc[0]
    z, s = row.z, row.snrg
    expected = {
        "a": abs(z),
        "c": math.ceil(z),
        "dg": math.degrees(z),
        "e": math.exp(z),
        "f": math.floor(z),
        "ln": math.log(s),
        "lg": math.log10(s),
        "m": 100 % 7,
        "p": math.pi,
        "pw": math.sqrt(s),
        "rd": math.radians(s),
        "sq": math.sqrt(s),
        "r2": round(s, 2),
        "r0": round(s),
        "t1": math.trunc(s * 10) / 10,
        "t0": math.trunc(-s),
        "s": math.sin(z),
        "co": math.cos(z),
        "t": math.tan(z),
        "asn": math.asin(z / 10),
        "acs": math.acos(z / 10),
        "at": math.atan(z),
        "at2": math.atan2(z, s),
        "ct": 1 / math.tan(z),
        "len": len(row["class"]),
        "clen": len(row["class"]),
        "i": round(s),
        "dbl": 100.0,
    }
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key
    assert 0 <= got.rnd < 1
    assert got.up == row["class"].upper()
    assert got.lo == row["class"].lower()
    assert got.tr == "x"
    assert got["sub"] == row["class"][1:3]
    assert got.sub2 == row["class"][0]
    assert got.txt == "100"


def test_aliases_and_quoted_identifiers(con: duckdb.DuckDBPyConnection) -> None:
    got = run(
        con,
        'SELECT "obsid" AS "Obs ID", l."RA" AS "weird ""name""", Obsid + 1 AS next '
        'FROM "dr10_v2"."lrs" AS l WHERE "OBSID" = 3',
    )
    assert got.columns.tolist() == ["Obs ID", 'weird "name"', "next"]
    assert got["Obs ID"].tolist() == [3]
    assert got["next"].tolist() == [4]


def test_case_insensitive_names_and_unqualified_table(con: duckdb.DuckDBPyConnection) -> None:
    translation = translate("select TOP 2 OBSID from DR10_V2.LRS order by Obsid", TABLES)
    assert translation.columns == ["obsid"]
    assert translation.tables == ["dr10_v2.lrs"]
    assert con.execute(translation.sql).fetchall() == [(0,), (1,)]
    assert translate("SELECT obsid FROM lrs", TABLES).tables == ["dr10_v2.lrs"]


def test_fully_qualified_column_references(con: duckdb.DuckDBPyConnection) -> None:
    got = run(con, "SELECT dr10_v2.lrs.obsid, lrs.ra FROM dr10_v2.lrs WHERE dr10_v2.lrs.obsid = 1")
    assert got.obsid.tolist() == [1]


def test_generated_names_are_unique(con: duckdb.DuckDBPyConnection) -> None:
    translation = translate(
        "SELECT COUNT(*), COUNT(z), 1 + 1, obsid AS count FROM lrs GROUP BY obsid", TABLES
    )
    assert translation.columns == ["count_2", "count_3", "expr", "count"]
    con.execute(translation.sql).fetchall()


def test_strings_survive_exactly(con: duckdb.DuckDBPyConnection) -> None:
    text = "it''s -- not /* a */ comment; {lrs} \\ é 😀 \" ; DROP TABLE x"
    translation = translate(f"SELECT '{text}' AS s FROM lrs WHERE obsid = 0", TABLES)
    assert "DROP TABLE x" in translation.sql  # inside the literal, where it is harmless
    assert con.execute(translation.sql).fetchall() == [(text.replace("''", "'"),)]


def test_comments_are_dropped(con: duckdb.DuckDBPyConnection) -> None:
    translation = translate(
        "SELECT /* DROP */ obsid -- ; DROP TABLE v_lrs\nFROM lrs /*+ hint */ WHERE obsid = 1 -- trailing",
        TABLES,
    )
    assert "DROP" not in translation.sql
    assert "--" not in translation.sql
    assert "/*" not in translation.sql
    assert con.execute(translation.sql).fetchall() == [(1,)]


def test_quoted_identifier_and_comment_tricks(con: duckdb.DuckDBPyConnection) -> None:
    assert refused('SELECT * FROM "lrs"" ; DROP TABLE v_lrs; --"').message.startswith("unknown table")
    # an alias that looks like SQL stays one quoted identifier
    odd = translate('SELECT * FROM lrs AS "x"" JOIN read_csv(\'/etc/passwd\') ON ""1"', TABLES)
    assert len(con.execute(odd.sql).fetchall()) == N_ROWS
    sneaky = translate('SELECT obsid AS "x"" FROM v_lrs --" FROM lrs WHERE obsid = 0', TABLES)
    assert sneaky.columns == ['x" FROM v_lrs --']
    assert con.execute(sneaky.sql).fetchall() == [(0,)]
    aliased = run(con, 'SELECT "a""b".obsid FROM lrs AS "a""b" WHERE "a""b".obsid = 1')
    assert aliased.obsid.tolist() == [1]
    nested = run(con, "SELECT /* /* nested */ still a comment */ obsid FROM lrs WHERE obsid = 2")
    assert nested.obsid.tolist() == [2]
    dashes = run(con, "SELECT '--' AS a, '/*' AS b FROM lrs WHERE obsid = 2 -- ' unbalanced")
    assert (dashes.a[0], dashes.b[0]) == ("--", "/*")
    assert "only SELECT" in refused("SEL/**/ECT obsid FROM lrs").message
    assert "only SELECT" in refused("/* SELECT */ DROP TABLE lrs").message


def test_concurrent_translations_agree() -> None:
    from concurrent.futures import ThreadPoolExecutor

    queries = [
        f"SELECT TOP {n} obsid FROM lrs WHERE {circle_adql(150, 30, n / 10)} ORDER BY obsid"
        for n in range(1, 41)
    ]
    serial = [translate(q, TABLES).sql for q in queries]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda q: translate(q, TABLES).sql, queries))
    assert parallel == serial


def test_trailing_semicolon_is_tolerated(con: duckdb.DuckDBPyConnection) -> None:
    assert con.execute(translate("SELECT obsid FROM lrs WHERE obsid = 2;", TABLES).sql).fetchall() == [(2,)]


def test_correlated_subquery_cannot_reach_a_private_column(
    con: duckdb.DuckDBPyConnection, stellar: pd.DataFrame
) -> None:
    # 'flag' is visible in stellar and private in lrs: inside the subquery it must mean s.flag
    got = run(
        con,
        "SELECT s.obsid FROM stellar AS s WHERE EXISTS "
        "(SELECT 1 FROM lrs AS l WHERE l.obsid = s.obsid AND flag = 1)",
    )
    assert ids(got) == sorted(stellar[stellar.flag == 1].obsid)


def test_shadowed_alias_in_subquery(con: duckdb.DuckDBPyConnection) -> None:
    # the inner 'x' shadows the outer one, as in SQL
    got = run(
        con,
        "SELECT x.obsid FROM lrs AS x WHERE x.obsid < 4 AND x.obsid IN (SELECT x.obsid FROM stellar AS x)",
    )
    assert ids(got) == [0, 2]


def test_runs_in_the_sandbox(frames: dict[str, pd.DataFrame]) -> None:
    sandbox = Sandbox(threads=1, memory_limit="256MB")
    relations = {"lrs": pa.Table.from_pandas(frames["lrs"], preserve_index=False)}
    with sandbox.cursor(relations) as (cur, private):
        tables = {"dr10_v2.lrs": TableInfo(private["lrs"], LRS_COLUMNS, ra="ra", dec="dec")}
        translation = translate(
            f"SELECT TOP 3 obsid FROM lrs WHERE {circle_adql(150, 30, 2)} ORDER BY obsid", tables
        )
        rows = cur.execute(translation.sql).fetchall()
    expected = sorted(frames["lrs"][in_circle(frames["lrs"], 150, 30, 2)].obsid)[:3]
    assert [r[0] for r in rows] == expected


# ----------------------------------------------------------------------------------------------------
# Geometry against astropy
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ra", "dec", "radius"),
    [
        (150.0, 30.0, 2.5),  # a plain field
        (0.1, 1.0, 1.5),  # straddling RA = 0/360
        (359.5, 0.5, 2.0),  # centre just below 360
        (123.0, 89.0, 3.0),  # over the pole
        (0.0, 90.0, 5.0),  # centred on the pole
        (40.0, -20.0, 0.0),  # empty
        (10.0, 10.0, 200.0),  # more than the sky
    ],
)
def test_contains_circle(
    con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame, ra: float, dec: float, radius: float
) -> None:
    got = run(con, f"SELECT obsid FROM lrs WHERE {circle_adql(ra, dec, radius)}")
    expected = lrs[in_circle(lrs, ra, dec, radius)]
    assert ids(got) == sorted(expected.obsid)
    if 0 < radius < 90:
        assert len(expected) > 5  # the data really has points there


def test_contains_is_one_zero_or_null(con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame) -> None:
    got = run(
        con,
        "SELECT obsid, CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 150, 30, 3)) AS inside "
        "FROM lrs ORDER BY obsid",
    )
    inside = in_circle(lrs, 150, 30, 3)
    valid = lrs.ra.notna().to_numpy()
    assert got.inside[valid].astype(int).tolist() == inside[valid].astype(int).tolist()
    assert got.inside[~valid].isna().all()
    zero = run(con, "SELECT obsid FROM lrs WHERE CONTAINS(POINT('', ra, dec), CIRCLE('', 150, 30, 3)) = 0")
    one = run(con, "SELECT obsid FROM lrs WHERE 1 = CONTAINS(POINT('', ra, dec), CIRCLE('', 150, 30, 3))")
    bare = run(con, "SELECT obsid FROM lrs WHERE CONTAINS(POINT('', ra, dec), CIRCLE('', 150, 30, 3))")
    assert len(zero) + len(one) == N_ROWS - len(NULL_POSITIONS)
    assert ids(one) == ids(bare) == sorted(lrs[inside].obsid)


def test_adql21_forms_without_coordinate_system(con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame) -> None:
    expected = sorted(lrs[in_circle(lrs, 150, 30, 2)].obsid)
    for region in (
        "CIRCLE(150, 30, 2)",
        "CIRCLE(POINT(150, 30), 2)",
        "CIRCLE('ICRS', POINT('ICRS', 150, 30), 2)",
    ):
        got = run(con, f"SELECT obsid FROM lrs WHERE CONTAINS(POINT(ra, dec), {region}) = 1")
        assert ids(got) == expected, region


def test_distance_and_ordering(con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame) -> None:
    got = run(
        con,
        "SELECT TOP 20 obsid, DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 150, 30)) AS d "
        "FROM lrs ORDER BY d",
    )
    coords, valid = sky(lrs)
    sep = coords.separation(SkyCoord(150 * u.deg, 30 * u.deg)).deg
    order = np.argsort(np.where(valid, sep, np.inf))[:20]
    assert got.obsid.tolist() == lrs.obsid.to_numpy()[order].tolist()
    np.testing.assert_allclose(got.d, sep[order], rtol=0, atol=1e-9)
    four = run(con, "SELECT obsid, DISTANCE(ra, dec, 150, 30) AS d FROM lrs WHERE obsid = 1500")
    assert four.d[0] == pytest.approx(sep[1500], abs=1e-9)
    nulls = run(con, "SELECT DISTANCE(POINT('', ra, dec), POINT('', 1, 2)) AS d FROM lrs WHERE obsid = 5")
    assert nulls.d.isna().all()


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((10.0, 20.0), (10.0, 20.0)),
        ((10.0, 20.0), (10.0 + 1e-7, 20.0)),  # sub-milliarcsecond
        ((0.0, 0.0), (180.0, 0.0)),  # antipodes
        ((0.0, 0.0), (179.9999, 0.00001)),
        ((359.99, -89.99), (0.01, -89.99)),
        ((45.0, 45.0), (225.0, -45.0)),
    ],
)
def test_distance_accuracy(
    con: duckdb.DuckDBPyConnection, a: tuple[float, float], b: tuple[float, float]
) -> None:
    sql = translate(f"SELECT DISTANCE(POINT('', {a[0]}, {a[1]}), POINT('', {b[0]}, {b[1]})) AS d", TABLES).sql
    got = con.execute(sql).fetchone()[0]
    expected = SkyCoord(a[0] * u.deg, a[1] * u.deg).separation(SkyCoord(b[0] * u.deg, b[1] * u.deg)).deg
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    ("ra", "dec", "width", "height"),
    [
        (150.0, 30.0, 6.0, 4.0),
        (0.2, 1.0, 3.0, 2.0),  # across RA = 0
        (0.0, 88.0, 6.0, 6.0),  # touching the pole
        (45.0, 86.0, 10.0, 4.0),
        (150.0, 30.0, 0.0, 3.0),  # degenerate: empty
    ],
)
def test_contains_box(
    con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame, ra: float, dec: float, width: float, height: float
) -> None:
    got = run(
        con,
        "SELECT obsid FROM lrs WHERE "
        f"CONTAINS(POINT('ICRS', ra, dec), BOX('ICRS', {ra}, {dec}, {width}, {height})) = 1",
    )
    expected = lrs[in_box(lrs, ra, dec, width, height)]
    assert ids(got) == sorted(expected.obsid)
    if width > 0:
        assert len(expected) > 5


def test_box_is_not_an_ra_dec_rectangle(con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame) -> None:
    """Well inside a small equatorial box both readings agree; near the pole they must not."""
    got = set(
        ids(run(con, "SELECT obsid FROM lrs WHERE CONTAINS(POINT('', ra, dec), BOX('', 150, 30, 4, 4)) = 1"))
    )
    ra_half = 2 / math.cos(math.radians(32))  # RA half-width of the box at its top and bottom edges
    core = lrs[(abs(lrs.ra - 150) < ra_half * 0.9 * math.cos(math.radians(32))) & (abs(lrs.dec - 30) < 1.9)]
    assert set(core.obsid) <= got
    polar = set(
        ids(run(con, "SELECT obsid FROM lrs WHERE CONTAINS(POINT('', ra, dec), BOX('', 0, 88, 6, 6)) = 1"))
    )
    naive = lrs[((lrs.ra > 357) | (lrs.ra < 3)) & (lrs.dec.between(85, 91))]
    assert polar != set(naive.obsid)


def test_box_vertices_make_the_same_polygon(con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame) -> None:
    corners = Box(150.0, 30.0, 6.0, 4.0).vertices()
    as_polygon = run(
        con, f"SELECT obsid FROM lrs WHERE CONTAINS(POINT('', ra, dec), {polygon_adql(list(corners))}) = 1"
    )
    as_box = run(con, "SELECT obsid FROM lrs WHERE CONTAINS(POINT('', ra, dec), BOX('', 150, 30, 6, 4)) = 1")
    assert ids(as_polygon) == ids(as_box)


POLYGONS = {
    "convex quad": [(147.0, 27.0), (153.0, 26.0), (154.0, 33.0), (148.0, 34.0)],
    "clockwise quad": [(148.0, 34.0), (154.0, 33.0), (153.0, 26.0), (147.0, 27.0)],
    "concave notch": [(146.0, 26.0), (154.0, 26.0), (154.0, 34.0), (150.0, 29.0), (146.0, 34.0)],
    "concave arrow": [(145.0, 30.0), (150.0, 25.0), (155.0, 30.0), (150.0, 27.0)],
    "across RA 0": [(358.0, -1.0), (2.5, -1.5), (2.0, 3.0), (358.5, 2.5)],
    "around the pole": [(0.0, 85.0), (90.0, 85.0), (180.0, 85.0), (270.0, 85.0)],
    "concave at the pole": [(0.0, 84.0), (90.0, 84.0), (180.0, 84.0), (270.0, 84.0), (315.0, 88.0)],
    "triangle": [(149.0, 28.0), (152.0, 28.5), (150.0, 32.0)],
}


@pytest.mark.parametrize("name", list(POLYGONS))
def test_contains_polygon(con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame, name: str) -> None:
    vertices = POLYGONS[name]
    got = run(
        con, f"SELECT obsid FROM lrs WHERE CONTAINS(POINT('ICRS', ra, dec), {polygon_adql(vertices)}) = 1"
    )
    expected = lrs[in_polygon(lrs, vertices)]
    assert ids(got) == sorted(expected.obsid)
    assert len(expected) > 5


def test_polygon_convexity_is_detected() -> None:
    assert Polygon(tuple(POLYGONS["convex quad"])).is_convex
    assert Polygon(tuple(POLYGONS["clockwise quad"])).is_convex
    assert not Polygon(tuple(POLYGONS["concave notch"])).is_convex
    assert not Polygon(tuple(POLYGONS["concave arrow"])).is_convex


def test_polygon_of_points_and_closing_vertex(con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame) -> None:
    vertices = POLYGONS["concave notch"]
    points = ", ".join(f"POINT({a}, {d})" for a, d in vertices)
    got = run(con, f"SELECT obsid FROM lrs WHERE CONTAINS(POINT(ra, dec), POLYGON({points})) = 1")
    closed = run(
        con,
        f"SELECT obsid FROM lrs WHERE CONTAINS(POINT(ra, dec), {polygon_adql([*vertices, vertices[0]])}) = 1",
    )
    expected = sorted(lrs[in_polygon(lrs, vertices)].obsid)
    assert ids(got) == ids(closed) == expected


def test_polygon_with_column_vertices(con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame) -> None:
    """A per-row (convex) polygon around each row's position: which rows' polygons hold (150, 30)?"""
    got = run(
        con,
        "SELECT obsid FROM lrs WHERE CONTAINS(POINT('', 150, 30), "
        "POLYGON('', ra - 1, dec - 1, ra + 1, dec - 1, ra + 1, dec + 1, ra - 1, dec + 1)) = 1 "
        "AND dec BETWEEN -88 AND 88",
    )
    lrs = lrs[lrs.dec.between(-88, 88)]
    coords, valid = sky(lrs)
    ra, dec = coords.ra.deg, coords.dec.deg
    vertices = [(ra - 1, dec - 1), (ra + 1, dec - 1), (ra + 1, dec + 1), (ra - 1, dec + 1)]
    expected = valid & winding_inside(np.full(len(lrs), 150.0), np.full(len(lrs), 30.0), vertices)
    assert ids(got) == sorted(lrs[expected].obsid)
    assert expected.sum() > 5


def test_intersects(con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame) -> None:
    inside = sorted(lrs[in_circle(lrs, 150, 30, 2)].obsid)
    for adql in (
        "INTERSECTS(POINT('', ra, dec), CIRCLE('', 150, 30, 2)) = 1",
        "INTERSECTS(CIRCLE('', 150, 30, 2), POINT('', ra, dec)) = 1",
    ):
        assert ids(run(con, f"SELECT obsid FROM lrs WHERE {adql}")) == inside
    # circles of 0.5 deg around each row that meet a 1-deg circle: centres within 1.5 deg
    got = run(
        con, "SELECT obsid FROM lrs WHERE INTERSECTS(CIRCLE('', ra, dec, 0.5), CIRCLE('', 150, 30, 1)) = 1"
    )
    assert ids(got) == sorted(lrs[in_circle(lrs, 150, 30, 1.5)].obsid)
    contained = run(
        con, "SELECT obsid FROM lrs WHERE CONTAINS(CIRCLE('', ra, dec, 0.5), CIRCLE('', 150, 30, 2)) = 1"
    )
    assert ids(contained) == sorted(lrs[in_circle(lrs, 150, 30, 1.5)].obsid)


def _slerp_edges(vertices: list[tuple[float, float]], samples: int = 4000) -> np.ndarray:
    units = [SkyCoord(a * u.deg, d * u.deg).cartesian.xyz.value for a, d in vertices]
    points = []
    for i in range(len(units)):
        a, b = units[i], units[(i + 1) % len(units)]
        omega = np.arccos(np.clip(np.dot(a, b), -1, 1))
        t = np.linspace(0, 1, samples)[:, None]
        points.append((np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega))
    return np.concatenate(points)


@pytest.mark.parametrize("name", ["convex quad", "concave notch"])
def test_intersects_circle_polygon(con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame, name: str) -> None:
    vertices, radius = POLYGONS[name], 1.0
    got = set(
        ids(
            run(
                con,
                "SELECT obsid FROM lrs WHERE "
                f"INTERSECTS(CIRCLE('', ra, dec, {radius}), {polygon_adql(vertices)}) = 1",
            )
        )
    )
    swapped = set(
        ids(
            run(
                con,
                "SELECT obsid FROM lrs WHERE "
                f"INTERSECTS({polygon_adql(vertices)}, CIRCLE('', ra, dec, {radius})) = 1",
            )
        )
    )
    assert got == swapped
    coords, valid = sky(lrs)
    edge = _slerp_edges(vertices)
    xyz = coords.cartesian.xyz.value.T
    nearest = np.degrees(np.arccos(np.clip((xyz @ edge.T).max(axis=1), -1, 1)))
    expected = valid & (in_polygon(lrs, vertices) | (nearest <= radius))
    clear = np.abs(nearest - radius) > 0.01  # sampling the edges is only that precise
    assert {o for o, c in zip(lrs.obsid, clear, strict=True) if c} & got == set(lrs.obsid[expected & clear])
    assert (expected & ~in_polygon(lrs, vertices)).sum() > 5  # some rows intersect without being inside


def test_intersects_circle_box(con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame) -> None:
    box = Box(150.0, 30.0, 4.0, 3.0)
    by_box = run(
        con, "SELECT obsid FROM lrs WHERE INTERSECTS(CIRCLE('', ra, dec, 0.7), BOX('', 150, 30, 4, 3)) = 1"
    )
    by_polygon = run(
        con,
        "SELECT obsid FROM lrs WHERE "
        f"INTERSECTS(CIRCLE('', ra, dec, 0.7), {polygon_adql(list(box.vertices()))}) = 1",
    )
    assert ids(by_box) == ids(by_polygon)
    assert len(by_box) > len(lrs[in_box(lrs, 150, 30, 4, 3)])


def test_coordinates_and_selected_geometries(con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame) -> None:
    got = run(
        con,
        "SELECT COORD1(POINT('ICRS', ra, dec)) AS c1, COORD2(POINT('ICRS', ra, dec)) AS c2, "
        "COORDSYS(POINT('ICRS', ra, dec)) AS sys, POINT('ICRS', ra, dec) AS p, CIRCLE('', ra, dec, 1) AS c, "
        "POLYGON('', 1, 2, 3, 4, 5, 7) AS poly FROM lrs WHERE obsid = 42",
    ).iloc[0]
    row = lrs[lrs.obsid == 42].iloc[0]
    assert (got.c1, got.c2, got.sys) == (row.ra, row.dec, "ICRS")
    assert list(got.p) == [row.ra, row.dec]
    assert list(got.c) == [row.ra, row.dec, 1.0]
    assert list(got.poly) == [1.0, 2.0, 3.0, 4.0, 5.0, 7.0]


def test_area(con: duckdb.DuckDBPyConnection) -> None:
    got = con.execute(
        translate(
            "SELECT AREA(CIRCLE('', 10, 20, 1)) AS c, AREA(BOX('', 10, 0, 1, 1)) AS b, "
            "AREA(POLYGON('', 0, 0, 10, 0, 0, 10)) AS p",
            TABLES,
        ).sql
    ).fetchone()
    sr = (180 / math.pi) ** 2
    assert got[0] == pytest.approx(2 * math.pi * (1 - math.cos(math.radians(1))) * sr)
    assert got[1] == pytest.approx(1.0, rel=1e-3)
    # a right spherical triangle with two 10-degree legs: excess from the angles
    a = math.radians(10)
    angle = math.atan(math.tan(a) / math.sin(a))
    assert got[2] == pytest.approx((math.pi / 2 + 2 * angle - math.pi) * sr, rel=1e-9)


# ----------------------------------------------------------------------------------------------------
# Spatial constraints for partition pruning
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "shape"),
    [
        ("CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 10, 20, 0.5)) = 1", Circle(10.0, 20.0, 0.5)),
        (
            "1 = CONTAINS(POINT('ICRS', l.ra, l.dec), CIRCLE('ICRS', 10, 20, 1/60.))",
            Circle(10.0, 20.0, 1 / 60),
        ),
        ("CONTAINS(POINT(ra, dec), CIRCLE(POINT(10, -20), 2))", Circle(10.0, -20.0, 2.0)),
        ("DISTANCE(POINT('', ra, dec), POINT('', 10, 20)) < 0.25", Circle(10.0, 20.0, 0.25)),
        ("DISTANCE(POINT('', 10, 20), POINT('', l.ra, l.dec)) <= 0.25", Circle(10.0, 20.0, 0.25)),
        ("0.25 > DISTANCE(ra, dec, 10, 20)", Circle(10.0, 20.0, 0.25)),
        ("INTERSECTS(CIRCLE('', 10, 20, 1), POINT('', ra, dec)) = 1", Circle(10.0, 20.0, 1.0)),
        ("CONTAINS(POINT('', ra, dec), BOX('', 150, 30, 6, 4)) = 1", Box(150.0, 30.0, 6.0, 4.0)),
        (
            "CONTAINS(POINT('', ra, dec), POLYGON('', 1, 2, 3, 2, 3, 5)) = 1",
            Polygon(((1.0, 2.0), (3.0, 2.0), (3.0, 5.0))),
        ),
    ],
)
def test_spatial_constraint_extracted(where: str, shape: object) -> None:
    translation = translate(
        f"SELECT obsid FROM dr10_v2.lrs AS l WHERE z > 0 AND ({where}) AND snrg > 5", TABLES
    )
    assert translation.spatial == [SpatialConstraint("dr10_v2.lrs", "l", "v_lrs", shape)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT obsid FROM lrs WHERE z > 0 OR CONTAINS(POINT('', ra, dec), CIRCLE('', 10, 20, 1)) = 1",
        "SELECT obsid FROM lrs WHERE CONTAINS(POINT('', ra, dec), CIRCLE('', 10, 20, 1)) = 0",
        "SELECT obsid FROM lrs WHERE NOT CONTAINS(POINT('', ra, dec), CIRCLE('', 10, 20, 1)) = 1",
        "SELECT obsid FROM lrs WHERE CONTAINS(POINT('', snrg, z), CIRCLE('', 10, 20, 1)) = 1",
        "SELECT obsid FROM lrs WHERE CONTAINS(POINT('', dec, ra), CIRCLE('', 10, 20, 1)) = 1",
        "SELECT obsid FROM lrs WHERE CONTAINS(POINT('', ra, dec), CIRCLE('', ra, 20, 1)) = 1",
        "SELECT obsid FROM lrs WHERE DISTANCE(POINT('', ra, dec), POINT('', 10, 20)) > 1",
        "SELECT obsid FROM lrs WHERE DISTANCE(POINT('', ra, dec), POINT('', snrg, 20)) < 1",
        # lrs read twice: pruning it for one reference would be wrong for the other
        "SELECT a.obsid FROM lrs AS a JOIN lrs AS b ON a.obsid = b.obsid "
        "WHERE CONTAINS(POINT('', a.ra, a.dec), CIRCLE('', 10, 20, 1)) = 1",
        "SELECT obsid FROM lrs WHERE CONTAINS(POINT('', ra, dec), CIRCLE('', 10, 20, 1)) = 1 "
        "UNION SELECT obsid FROM lrs WHERE obsid = 1",
        # on a derived table: not a table's own columns
        "SELECT t.obsid FROM (SELECT obsid, ra, dec FROM lrs) AS t "
        "WHERE CONTAINS(POINT('', t.ra, t.dec), CIRCLE('', 10, 20, 1)) = 1",
        # on the outer query's table, from inside NOT EXISTS: pruning lrs would change the answer
        "SELECT obsid FROM lrs AS l WHERE NOT EXISTS (SELECT 1 FROM stellar AS s "
        "WHERE CONTAINS(POINT('', l.ra, l.dec), CIRCLE('', 150, 30, 1)) = 1)",
        # in HAVING, not WHERE
        "SELECT obsid FROM lrs GROUP BY obsid, ra, dec "
        "HAVING CONTAINS(POINT('', ra, dec), CIRCLE('', 10, 20, 1)) = 1",
    ],
)
def test_spatial_constraint_not_extracted(con: duckdb.DuckDBPyConnection, query: str) -> None:
    translation = translate(query, TABLES)
    assert translation.spatial == []
    con.execute(translation.sql).fetchall()


def test_spatial_constraint_in_subquery_and_join(con: duckdb.DuckDBPyConnection) -> None:
    translation = translate(
        "SELECT s.obsid FROM stellar AS s WHERE s.obsid IN (SELECT obsid FROM dr10_v2.lrs "
        "WHERE CONTAINS(POINT('', ra, dec), CIRCLE('', 150, 30, 1)) = 1)",
        TABLES,
    )
    assert translation.spatial == [SpatialConstraint("dr10_v2.lrs", "lrs", "v_lrs", Circle(150.0, 30.0, 1.0))]
    joined = translate(
        "SELECT l.obsid FROM stellar AS s LEFT JOIN lrs AS l ON s.obsid = l.obsid "
        "WHERE CONTAINS(POINT('', l.ra, l.dec), CIRCLE('', 150, 30, 1)) = 1 AND s.teff > 5000",
        TABLES,
    )
    assert [c.alias for c in joined.spatial] == ["l"]


def test_table_without_position_columns_gives_no_constraint() -> None:
    tables = {"t": TableInfo("v_lrs", LRS_COLUMNS)}
    translation = translate(
        "SELECT obsid FROM t WHERE CONTAINS(POINT('', ra, dec), CIRCLE('', 1, 2, 3)) = 1", tables
    )
    assert translation.spatial == []


@pytest.mark.parametrize(
    "query",
    [
        f"SELECT obsid, ra, dec FROM lrs WHERE {circle_adql(150, 30, 3)}",
        f"SELECT obsid FROM lrs WHERE {circle_adql(0.1, 1.0, 2)} AND z > 0",
        f"SELECT obsid FROM lrs WHERE {circle_adql(123, 89, 3)}",
        "SELECT obsid FROM lrs WHERE CONTAINS(POINT('', ra, dec), BOX('', 0, 88, 6, 6)) = 1",
        "SELECT obsid FROM lrs WHERE "
        f"CONTAINS(POINT('', ra, dec), {polygon_adql(POLYGONS['concave notch'])}) = 1",
        "SELECT class, COUNT(*) FROM lrs "
        "WHERE DISTANCE(POINT('', ra, dec), POINT('', 150, 30)) < 4 GROUP BY class",
        "SELECT s.obsid, l.ra FROM stellar AS s LEFT JOIN lrs AS l ON s.obsid = l.obsid "
        "WHERE DISTANCE(l.ra, l.dec, 150, 30) < 3",
    ],
)
def test_pruning_by_the_constraint_keeps_the_answer(
    con: duckdb.DuckDBPyConnection, lrs: pd.DataFrame, query: str
) -> None:
    """The contract: dropping the relation's rows outside the bounding cone does not change the result."""
    full = translate(query, TABLES)
    assert len(full.spatial) == 1
    bound = full.spatial[0].shape.bounding_circle()
    keep = lrs[in_circle(lrs, bound.ra, bound.dec, bound.radius)]
    assert len(keep) < len(lrs) / 2
    con.register("pruned_frame", keep)
    try:
        pruned_tables = {**TABLES, "dr10_v2.lrs": TableInfo("pruned_frame", LRS_COLUMNS, ra="ra", dec="dec")}
        pruned = translate(query, pruned_tables)
        left = con.execute(full.sql).df().sort_values(full.columns).reset_index(drop=True)
        right = con.execute(pruned.sql).df().sort_values(pruned.columns).reset_index(drop=True)
        pd.testing.assert_frame_equal(left, right)
        assert len(left) > 0
    finally:
        con.unregister("pruned_frame")


def test_shapes_bounding_circles_hold_their_vertices() -> None:
    box = Box(0.0, 88.0, 6.0, 6.0)
    bound = box.bounding_circle()
    for ra, dec in box.vertices():
        sep = SkyCoord(ra * u.deg, dec * u.deg).separation(SkyCoord(bound.ra * u.deg, bound.dec * u.deg)).deg
        assert sep <= bound.radius
    poly = Polygon(tuple(POLYGONS["around the pole"]))
    assert poly.bounding_circle().dec == pytest.approx(90.0)
    assert poly.bounding_circle().radius == pytest.approx(5.0)
    assert Circle(1.0, 2.0, 3.0).bounding_circle() == Circle(1.0, 2.0, 3.0)


# ----------------------------------------------------------------------------------------------------
# Refusals: this is a security boundary
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "INSERT INTO lrs VALUES (1)",
        "UPDATE lrs SET z = 1",
        "DELETE FROM lrs",
        "CREATE TABLE x AS SELECT 1",
        "CREATE VIEW x AS SELECT * FROM lrs",
        "DROP TABLE lrs",
        "ALTER TABLE lrs ADD COLUMN x INTEGER",
        "COPY lrs TO '/tmp/x.csv'",
        "COPY (SELECT 1) TO '/tmp/x.csv'",
        "ATTACH '/tmp/x.db' AS x",
        "DETACH x",
        "INSTALL httpfs",
        "LOAD httpfs",
        "PRAGMA version",
        "SET enable_external_access = true",
        "RESET threads",
        "CALL pragma_version()",
        "EXPORT DATABASE '/tmp/x'",
        "IMPORT DATABASE '/tmp/x'",
        "EXPLAIN SELECT * FROM lrs",
        "DESCRIBE lrs",
        "SHOW TABLES",
        "SUMMARIZE lrs",
        "USE dr10_v0",
        "BEGIN TRANSACTION",
        "CHECKPOINT",
        "VACUUM",
        "FROM lrs SELECT obsid",
        "FROM lrs",
        "VALUES (1)",
        "TABLE lrs",
        "  \n -- a comment first\n DROP TABLE lrs",
    ],
)
def test_refuses_statements_other_than_select(query: str) -> None:
    error = refused(query)
    assert "only SELECT queries are allowed" in error.message


def test_with_is_refused_clearly() -> None:
    assert "WITH" in refused("WITH a AS (SELECT 1) SELECT * FROM a").message


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1 FROM lrs; DROP TABLE v_lrs",
        "SELECT 1 FROM lrs; SELECT 2 FROM lrs",
        "SELECT 1 FROM lrs;; SELECT 2",
        "SELECT 1 FROM lrs /* ; */ ; DROP TABLE v_lrs",
        "SELECT 1 FROM lrs -- x\n; DROP TABLE v_lrs",
        "SELECT 'a' FROM lrs; ATTACH 'x.db'",
    ],
)
def test_refuses_multiple_statements(query: str) -> None:
    assert "only one statement" in refused(query).message


def test_semicolons_inside_strings_and_identifiers_are_fine(con: duckdb.DuckDBPyConnection) -> None:
    translation = translate("SELECT 'a;b' AS \"x;y\" FROM lrs WHERE obsid = 0", TABLES)
    assert con.execute(translation.sql).fetchall() == [("a;b",)]
    assert translation.columns == ["x;y"]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_csv_auto('/etc/passwd')",
        "SELECT * FROM read_parquet('s3://bucket/x.parquet')",
        "SELECT * FROM read_json('/etc/passwd')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM glob('/*')",
        "SELECT * FROM query('SELECT 1')",
        "SELECT * FROM duckdb_settings()",
        "SELECT * FROM range(10)",
        "SELECT * FROM lrs, read_csv('/etc/passwd') AS x",
        "SELECT * FROM lrs JOIN read_csv('/etc/passwd') AS x ON TRUE",
        "SELECT * FROM (SELECT * FROM read_csv('/etc/passwd')) AS t",
        "SELECT obsid FROM lrs WHERE obsid IN (SELECT * FROM glob('/*'))",
    ],
)
def test_refuses_table_functions(query: str) -> None:
    error = refused(query)
    assert "unknown table" in error.message
    assert "only the archive's tables" in error.message


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("SELECT * FROM '/etc/passwd'", "/etc/passwd"),
        ('SELECT * FROM "/etc/passwd"', "/etc/passwd"),
        ("SELECT * FROM 'data.parquet'", "data.parquet"),
        ('SELECT * FROM "s3://bucket/x.csv"', "s3://bucket/x.csv"),
        ("SELECT * FROM v_lrs", "v_lrs"),  # the relation behind a table is not an ADQL name
        ("SELECT * FROM lrs_data", "lrs_data"),
        ("SELECT * FROM dr10_v0.lrs", "dr10_v0.lrs"),
        ("SELECT * FROM information_schema.tables", "information_schema.tables"),
        ("SELECT * FROM duckdb_tables", "duckdb_tables"),
        ('SELECT * FROM "dr10_v2.lrs"', "dr10_v2.lrs"),  # one identifier with a dot is not schema.table
        ("SELECT * FROM dr10_v2.lrs.extra", "dr10_v2.lrs.extra"),
    ],
)
def test_refuses_unknown_tables(query: str, name: str) -> None:
    error = refused(query)
    assert error.message.startswith(f"unknown table '{name}'")
    assert error.position == (1, 15)


def test_forbidden_and_missing_tables_are_refused_alike(con: duckdb.DuckDBPyConnection) -> None:
    """dr10_v0.lrs exists in the database but is not the caller's: same words as for a table that does not."""
    con.execute("SELECT COUNT(*) FROM dr10_v0.lrs").fetchall()
    exists = refused("SELECT * FROM dr10_v0.lrs")
    missing = refused("SELECT * FROM dr10_v9.lrs")
    assert exists.message.replace("dr10_v0", "X") == missing.message.replace("dr10_v9", "X")
    assert exists.position == missing.position
    only_stellar = {"dr10_v2.stellar": TABLES["dr10_v2.stellar"]}
    assert refused("SELECT * FROM dr10_v2.lrs", only_stellar).message == "unknown table 'dr10_v2.lrs'"


def test_ambiguous_and_qualified_table_names(con: duckdb.DuckDBPyConnection) -> None:
    tables = {**TABLES, "dr9.lrs": TableInfo("v_lrs", LRS_COLUMNS, ra="ra", dec="dec")}
    assert "ambiguous" in refused("SELECT * FROM lrs", tables).message
    got = con.execute(
        translate(
            "SELECT dr9.lrs.obsid, dr10_v2.lrs.obsid AS o2 FROM dr9.lrs, dr10_v2.lrs "
            "WHERE dr9.lrs.obsid = dr10_v2.lrs.obsid AND dr9.lrs.obsid < 2",
            tables,
        ).sql
    ).fetchall()
    assert sorted(got) == [(0, 0), (1, 1)]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT foo FROM lrs", "unknown column 'foo' in table 'lrs'"),
        ("SELECT lrs.foo FROM lrs", "unknown column 'foo' in table 'lrs'"),
        ("SELECT secret FROM lrs", "unknown column 'secret' in table 'lrs'"),  # private column
        ("SELECT l.flag FROM lrs AS l", "unknown column 'flag' in table 'l'"),
        ("SELECT _healpix_29 FROM lrs", "unknown column '_healpix_29'"),
        (
            "SELECT obsid FROM lrs WHERE snrgg > 1",
            "unknown column 'snrgg' in table 'lrs' (did you mean 'snrg'?)",
        ),
        ('SELECT "ra"" FROM x; --" FROM lrs', "unknown column 'ra\" FROM x; --' in table 'lrs'"),
        ("SELECT s.obsid FROM lrs", "table 's' is not in the FROM clause"),
        ("SELECT dr10_v0.lrs.obsid FROM dr10_v2.lrs", "table 'dr10_v0.lrs' is not in the FROM clause"),
        ("SELECT lrs.obsid FROM lrs AS l", "table 'lrs' is not in the FROM clause"),
        ("SELECT obsid FROM lrs, stellar", "column 'obsid' is ambiguous"),
        (
            "SELECT teff FROM lrs WHERE obsid IN (SELECT obsid FROM stellar WHERE ra > 0) AND teff > 1",
            "unknown column 'teff' in table 'lrs'",
        ),
        ("SELECT d FROM lrs WHERE DISTANCE(ra, dec, 1, 2) AS d < 1", "syntax error"),
        ("SELECT obsid AS o FROM lrs WHERE o > 1", "unknown column 'o'"),
        ("SELECT obsid FROM lrs l, lrs l", "appears twice"),
        ("SELECT obsid FROM lrs JOIN stellar USING (teff)", "USING column 'teff'"),
    ],
)
def test_refuses_unknown_columns(query: str, message: str) -> None:
    assert message in refused(query).message


@pytest.mark.parametrize(
    "function",
    [
        "current_setting('enable_external_access')",
        "getenv('HOME')",
        "system('ls')",
        "read_csv('/etc/passwd')",
        "read_blob('/etc/passwd')",
        "current_database()",
        "version()",
        "now()",
        "pg_sleep(10)",
        "sleep_ms(1000)",
        "query('SELECT 1')",
        "list_transform([1], x -> x)",
        "json_extract('{}', '$')",
        "regexp_matches(class, '.*')",
        "concat(class, 'x')",
        "nullif(z, 0)",
        '"abs"(z)',
        "main.abs(z)",
        "setseed(0.5)",
        "RAND(42)",
        "CENTROID(CIRCLE('', 1, 2, 3))",
        "REGION('CIRCLE ICRS 1 2 3')",
    ],
)
def test_refuses_functions_outside_the_allow_list(function: str) -> None:
    error = refused(f"SELECT {function} FROM lrs")
    assert "not supported" in error.message or "not part of ADQL" in error.message


def test_function_suggestions() -> None:
    assert "did you mean 'DISTANCE'" in refused("SELECT DISTANSE(1, 2, 3, 4) FROM lrs").message


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT obsid::VARCHAR FROM lrs", "'::'"),
        ("SELECT [1, 2] FROM lrs", "'['"),
        ("SELECT {'a': 1} FROM lrs", "'{'"),
        ("SELECT $1 FROM lrs", "'$1'"),
        ("SELECT ? FROM lrs", "'?'"),
        ("SELECT obsid FROM lrs WHERE class ~ 'S'", "'~'"),
        ("SELECT obsid % 2 FROM lrs", "'%'"),
        ("SELECT obsid FROM lrs WHERE z > $$1$$", "'$"),
        ("SELECT 1 @ 2", "'@'"),
        ("SELECT obsid FROM lrs WHERE class = 'a' ESCAPE '!'", "syntax error near 'ESCAPE'"),
        ("SELECT SUM(z) OVER (PARTITION BY class) FROM lrs", "window functions"),
        ("SELECT * EXCLUDE (ra) FROM lrs", "not supported"),
        ("SELECT COLUMNS('.*') FROM lrs", "not supported"),
        ("SELECT * INTO x FROM lrs", "INTO is not supported"),
        ("SELECT * FROM lrs TABLESAMPLE (10)", "SAMPLE is not supported"),
        ("SELECT * FROM lrs FOR UPDATE", "not supported"),
        ("SELECT * FROM lrs, LATERAL (SELECT 1) AS x", "LATERAL is not supported"),
        ("SELECT * FROM (VALUES (1)) AS v", "VALUES lists are not supported"),
        ("SELECT obsid FROM lrs WHERE (obsid, ra) IN (SELECT obsid, ra FROM lrs)", "not supported"),
        ("SELECT DISTINCT ON (class) class FROM lrs", "not supported"),
        ("SELECT obsid FROM lrs ASOF JOIN stellar USING (obsid)", "not supported"),
        ("SELECT l.obsid FROM lrs AS l POSITIONAL JOIN stellar", "syntax error"),
        ("SELECT obsid FROM lrs ANTI JOIN stellar USING (obsid)", "not supported"),
        ("SELECT CAST(obsid AS BLOB) FROM lrs", "is not supported"),
        ("SELECT obsid IS TRUE FROM lrs", "only IS NULL"),
    ],
)
def test_refuses_non_adql_syntax(query: str, message: str) -> None:
    assert message in refused(query).message


@pytest.mark.parametrize(
    ("query", "message", "position"),
    [
        ("SELECT obsid FROM lrs WHERE", "syntax error near 'WHERE'", (1, 23)),
        ("SELECT obsid FROM lrs WHERE z = = 1", "syntax error near '='", (1, 33)),
        ("SELECT obsid, FROM lrs", "syntax error near ','", (1, 13)),
        ("SELECT FROM lrs", "SELECT needs at least one column", None),
        ("SELECT obsid FROM lrs WHERE (z > 1", "expecting )", None),
        ("SELECT obsid FROM lrs WHERE class = 'STAR", "unterminated string", (1, 37)),
        ('SELECT "obsid FROM lrs', "unterminated quoted identifier", (1, 8)),
        ("SELECT obsid /* FROM lrs", "unterminated comment", (1, 14)),
        ("SELEC obsid FROM lrs", "only SELECT queries are allowed", (1, 1)),
        ("SELECT TOP -1 obsid FROM lrs", "syntax error", None),
        ("SELECT TOP 2.5 obsid FROM lrs", "TOP needs a non-negative whole number", None),
        ("SELECT obsid FROM lrs OFFSET 'x'", "OFFSET needs a non-negative whole number", (1, 30)),
        ("SELECT obsid FROM lrs ORDER BY 3", "ORDER BY position 3 is out of range", (1, 32)),
        ("SELECT obsid FROM lrs\nWHERE bad > 1", "unknown column 'bad'", (2, 7)),
        ("SELECT obsid FROM lrs WHERE z > 1\x00", "control character", (1, 34)),
        ("", "the query is empty", None),
        ("   -- only a comment", "the query is empty", None),
        ("SELECT 1 UNION SELECT 1, 2", "different numbers of columns", None),
        ("SELECT obsid FROM lrs UNION SELECT obsid FROM lrs ORDER BY z", "must name a result column", None),
        ("SELECT obsid FROM lrs WHERE obsid IN (SELECT obsid, z FROM lrs)", "must return one column", None),
        ("SELECT (SELECT obsid, z FROM lrs) FROM lrs", "exactly one column", None),
        ("SELECT obsid FROM lrs LEFT JOIN stellar", "needs an ON or USING condition", None),
    ],
)
def test_syntax_errors_are_helpful(query: str, message: str, position: tuple[int, int] | None) -> None:
    error = refused(query)
    assert message in error.message, error.message
    if position is not None:
        assert error.position == position
        assert f"(line {position[0]}, column {position[1]})" in str(error)


def test_output_is_checked_by_duckdbs_parser_too() -> None:
    """The last line of defence, tested directly: it must catch what a translator bug could let out."""
    from surveyhub.archive.adql import _Translator

    checker = _Translator("", TABLES)
    checker._check_output('SELECT "l"."obsid" FROM "v_lrs" AS "l" WHERE sin("l"."ra") > 0')
    for sql in (
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM lrs_data",
        'SELECT * FROM "v_lrs" AS l, "other" AS o',
        "SELECT getenv('HOME')",
        "SELECT current_setting('threads')",
        'SELECT main.sin(1) FROM "v_lrs"',
        'SELECT * FROM "v_lrs"',
        "SELECT sum(ra) OVER () FROM v_lrs",
        "SELECT list_transform([1], x -> x + 1)",
        "SELECT ?",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "SELECT 1; SELECT 2",
        "COPY (SELECT 1) TO '/tmp/x'",
        "PRAGMA version",
    ):
        with pytest.raises(AdqlError):
            checker._check_output(sql)


def test_refuses_overlong_and_deep_queries() -> None:
    assert "too long" in refused("SELECT obsid FROM lrs WHERE " + " OR ".join(["z > 1"] * 20_000)).message
    deep = "SELECT obsid FROM lrs WHERE " + "(" * 3000 + "z > 1" + ")" * 3000
    with pytest.raises(AdqlError):
        translate(deep, TABLES)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT POINT('GALACTIC', ra, dec) FROM lrs", "coordinate system 'GALACTIC' is not supported"),
        ("SELECT CIRCLE('FK5', 1, 2, 3) FROM lrs", "coordinate system 'FK5' is not supported"),
        ("SELECT POINT('', ra) FROM lrs", "POINT expects"),
        ("SELECT CIRCLE('', 1, 2) FROM lrs", "CIRCLE expects"),
        ("SELECT POLYGON('', 1, 2, 3, 4) FROM lrs", "POLYGON expects"),
        ("SELECT POLYGON('', 0, 0, 120, 0, 240, 0) FROM lrs", "hemisphere"),
        ("SELECT POLYGON('', 1, 1, 1, 1, 2, 2) FROM lrs", "three distinct vertices"),
        ("SELECT BOX('', 1, 2, 200, 1) FROM lrs", "between 0 and 180"),
        ("SELECT CIRCLE('', 1, 2, -1) FROM lrs", "must not be negative"),
        ("SELECT POINT('', 'a', 2) FROM lrs", "a number is expected"),
        ("SELECT POINT('', ra, dec) + 1 FROM lrs", "a POINT cannot be used as a value"),
        ("SELECT obsid FROM lrs WHERE POINT('', ra, dec) = POINT('', 1, 2)", "cannot be used as a value"),
        ("SELECT CONTAINS(CIRCLE('', 1, 2, 3), POINT('', ra, dec)) FROM lrs", "CONTAINS(CIRCLE, POINT)"),
        ("SELECT CONTAINS(POINT('', 1, 2), POINT('', ra, dec)) FROM lrs", "CONTAINS(POINT, POINT)"),
        (
            "SELECT INTERSECTS(BOX('', 1, 2, 3, 4), POLYGON('', 1, 2, 3, 2, 3, 5)) FROM lrs",
            "INTERSECTS(BOX, POLYGON)",
        ),
        ("SELECT INTERSECTS(CIRCLE('', 1, 2, 100), BOX('', 1, 2, 3, 4)) FROM lrs", "between 0 and 90"),
        ("SELECT CONTAINS(ra, CIRCLE('', 1, 2, 3)) FROM lrs", "a geometry"),
        ("SELECT COORD1(CIRCLE('', 1, 2, 3)) FROM lrs", "COORD1 needs a POINT"),
        ("SELECT DISTANCE(POINT('', 1, 2)) FROM lrs", "DISTANCE takes two POINTs"),
        ("SELECT AREA(POLYGON('', ra, dec, 1, 2, 3, 4)) FROM lrs", "constant vertices"),
        ("SELECT BOX('', ra, dec, 1, 1) FROM lrs", "cannot be selected"),
        ("SELECT POINT(ra, dec, 'ICRS') FROM lrs", "a number is expected here, not a string"),
    ],
)
def test_geometry_errors(query: str, message: str) -> None:
    assert message in refused(query).message


def test_icrs_variants_are_accepted(con: duckdb.DuckDBPyConnection) -> None:
    for system in ("ICRS", "icrs", "ICRS GEOCENTER", "", " ICRS "):
        sql = translate(f"SELECT COORD1(POINT('{system}', 1, 2)) AS c FROM lrs WHERE obsid = 0", TABLES).sql
        assert con.execute(sql).fetchall() == [(1.0,)]
    assert translate("SELECT POINT(NULL, ra, dec) FROM lrs", TABLES).columns == ["point"]


# ----------------------------------------------------------------------------------------------------
# The API itself
# ----------------------------------------------------------------------------------------------------


def test_translation_is_a_plain_record() -> None:
    translation = translate("SELECT TOP 1 obsid FROM lrs", TABLES)
    assert isinstance(translation, Translation)
    assert translation.sql.startswith("SELECT ")
    assert translation.spatial == []


def test_table_info_checks_its_position_columns() -> None:
    with pytest.raises(ValueError, match="ra column 'alpha'"):
        TableInfo("v", {"ra": "DOUBLE"}, ra="alpha", dec="ra")
    with pytest.raises(ValueError, match="relation"):
        TableInfo("", {"ra": "DOUBLE"})


def test_relation_names_are_quoted_and_may_be_qualified(con: duckdb.DuckDBPyConnection) -> None:
    con.execute('CREATE SCHEMA IF NOT EXISTS "odd schema"')
    con.execute('CREATE OR REPLACE VIEW "odd schema"."my view" AS SELECT * FROM lrs_data')
    tables = {"x.lrs": TableInfo("odd schema.my view", LRS_COLUMNS, ra="ra", dec="dec")}
    translation = translate("SELECT TOP 1 obsid FROM x.lrs ORDER BY obsid", tables)
    assert '"odd schema"."my view"' in translation.sql
    assert con.execute(translation.sql).fetchall() == [(0,)]


def test_feature_lists_cover_the_geometry() -> None:
    geometry = set(LANGUAGE_FEATURES["ivo://ivoa.net/std/TAPRegExt#features-adqlgeo"])
    assert {"POINT", "CIRCLE", "BOX", "POLYGON", "DISTANCE", "CONTAINS", "INTERSECTS"} <= geometry
    assert geometry <= set(FUNCTIONS)
    for name in ("LOG", "TRUNCATE", "COALESCE", "CAST", "SUBSTRING", "COUNT"):
        assert name in FUNCTIONS


@pytest.mark.parametrize(
    "name", sorted(set(FUNCTIONS) - {"CAST", "SUBSTRING", "TRIM", "COUNT", "RAND", "PI"})
)
def test_every_listed_function_translates(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Each advertised function has a working translation (examples built from its arity)."""
    examples = {
        "POINT": "POINT('ICRS', 1, 2)",
        "CIRCLE": "CIRCLE('ICRS', 1, 2, 3)",
        "BOX": "BOX('ICRS', 1, 2, 3, 4)",
        "POLYGON": "POLYGON('ICRS', 1, 2, 3, 2, 3, 5)",
        "DISTANCE": "DISTANCE(POINT('', 1, 2), POINT('', 3, 4))",
        "CONTAINS": "CONTAINS(POINT('', 1, 2), CIRCLE('', 1, 2, 3))",
        "INTERSECTS": "INTERSECTS(CIRCLE('', 1, 2, 3), CIRCLE('', 5, 2, 3))",
        "COORD1": "COORD1(POINT('', 1, 2))",
        "COORD2": "COORD2(POINT('', 1, 2))",
        "COORDSYS": "COORDSYS(POINT('', 1, 2))",
        "AREA": "AREA(CIRCLE('', 1, 2, 3))",
        "ATAN2": "ATAN2(1, 2)",
        "MOD": "MOD(7, 3)",
        "POWER": "POWER(2, 3)",
        "ROUND": "ROUND(2.567, 2)",
        "TRUNCATE": "TRUNCATE(2.567, 2)",
        "COALESCE": "COALESCE(NULL, 2)",
        "LOWER": "LOWER('AB')",
        "UPPER": "UPPER('ab')",
        "LENGTH": "LENGTH('ab')",
        "SUM": "SUM(snrg)",
        "AVG": "AVG(snrg)",
        "MIN": "MIN(snrg)",
        "MAX": "MAX(snrg)",
    }
    example = examples.get(name, f"{name}(0.5)")
    translation = translate(f"SELECT {example} AS v FROM lrs", TABLES)
    assert con.execute(translation.sql).fetchall()
