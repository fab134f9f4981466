"""The archive's search engine on the mock release: equal to brute force, fast paths equal to Parquet."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from surveyhub.archive.engine import ArchiveEngine, Limits
from surveyhub.archive.search import SearchError, parse_radius, parse_search, run_search
from surveyhub.archive.serving import parquet_cone
from surveyhub.releases.registry import ReleaseStore, VersionNotFound

pytestmark = pytest.mark.xdist_group("mock")

WG = {"lamost-wg"}


@pytest.fixture(scope="module")
def engine(mock_store: ReleaseStore, tmp_path_factory: pytest.TempPathFactory) -> ArchiveEngine:
    return ArchiveEngine(mock_store, tmp_path_factory.mktemp("archive-cache"), Limits(max_radius_deg=5.0))


@pytest.fixture(scope="module")
def lrs(mock_store: ReleaseStore) -> pd.DataFrame:
    v0 = mock_store.version("DEMO", "v0", WG)
    return v0.open_catalog("lrs").compute().reset_index(drop=True)


def _search(engine: ArchiveEngine, params: dict, version: str = "v0", groups: set = WG):
    v = engine.version("DEMO", version, groups)
    return run_search(engine, v, parse_search(params))


def test_cone_equals_brute_force_and_is_sorted_by_distance(engine: ArchiveEngine, lrs: pd.DataFrame) -> None:
    coords = SkyCoord(lrs["ra"].to_numpy() * u.deg, lrs["dec"].to_numpy() * u.deg)
    for i, radius in zip(
        range(0, 6000, 600), ["30arcsec", "5arcmin", "0.5deg", "1deg", "2.5deg"] * 2, strict=False
    ):
        centre = lrs.iloc[i]
        result = _search(
            engine,
            {
                "ra": str(centre["ra"]),
                "dec": str(centre["dec"]),
                "radius": radius,
                "limit": "100000",
                "columns": "obsid,distance_arcsec",
            },
        )
        sep = coords.separation(SkyCoord(centre["ra"] * u.deg, centre["dec"] * u.deg)).to(u.arcsec).value
        limit_arcsec = parse_radius(radius) * 3600
        want = set(lrs["obsid"][sep <= limit_arcsec])
        got = result.table.to_pandas()
        assert set(got["obsid"]) == want
        assert result.total == len(want)
        assert np.all(np.diff(got["distance_arcsec"]) >= 0)


def test_serving_copy_and_parquet_paths_return_identical_rows(
    engine: ArchiveEngine, lrs: pd.DataFrame
) -> None:
    v0 = engine.version("DEMO", "v0", WG)
    cat = engine.catalog(v0, "lrs")
    for i in range(0, 6000, 1000):
        ra, dec = float(lrs["ra"].iloc[i]), float(lrs["dec"].iloc[i])
        for radius in (1 / 60, 0.5, 2.0):
            rows, _ = cat.cone_rows(ra, dec, radius)
            fast = cat.take(rows).to_pandas().sort_values("obsid").reset_index(drop=True)
            slow = (
                parquet_cone(v0, "lrs", ra, dec, radius)
                .to_pandas()
                .sort_values("obsid")
                .reset_index(drop=True)
            )
            pd.testing.assert_frame_equal(fast, slow[fast.columns])


def test_filters_sorting_paging_and_counts_equal_pandas(engine: ArchiveEngine, lrs: pd.DataFrame) -> None:
    params = {
        "class": "STAR",
        "snrg_min": "20",
        "z_min": "-0.0001",
        "z_max": "0.0002",
        "sort": "-snrg,obsid",
        "limit": "25",
        "offset": "10",
        "columns": "obsid,snrg,z,class",
    }
    result = _search(engine, params)
    want = lrs[(lrs["class"] == "STAR") & (lrs["snrg"] >= 20) & (lrs["z"] >= -0.0001) & (lrs["z"] <= 0.0002)]
    want = want.sort_values(["snrg", "obsid"], ascending=[False, True])
    assert result.total == len(want) > 35
    assert list(result.table["obsid"].to_pylist()) == list(want["obsid"].iloc[10:35])


def test_obsid_list_and_cone_combine(engine: ArchiveEngine, lrs: pd.DataFrame) -> None:
    picked = lrs.sample(20, random_state=1)
    result = _search(engine, {"obsid": ",".join(str(o) for o in picked["obsid"]) + ",1", "limit": "100"})
    assert sorted(result.table["obsid"].to_pylist()) == sorted(picked["obsid"])
    assert result.total == 20
    first = picked.iloc[0]
    both = _search(
        engine,
        {
            "obsid": " ".join(str(o) for o in picked["obsid"]),
            "pos": f"{first['ra']} {first['dec']}",
            "radius": "1arcsec",
        },
    )
    assert both.table["obsid"].to_pylist() == [first["obsid"]]


def test_exact_fields_and_designation(engine: ArchiveEngine, lrs: pd.DataFrame) -> None:
    row = lrs.iloc[123]
    by_name = _search(engine, {"designation": row["designation"].replace("LAMOST ", "")})
    assert by_name.table["obsid"].to_pylist() == [row["obsid"]]
    by_fibre = _search(
        engine, {"planid": row["planid"], "spid": str(row["spid"]), "fiberid": str(row["fiberid"])}
    )
    assert by_fibre.table["obsid"].to_pylist() == [row["obsid"]]


def test_sexagesimal_positions_match_decimal(engine: ArchiveEngine, lrs: pd.DataFrame) -> None:
    row = lrs.iloc[42]
    coord = SkyCoord(row["ra"] * u.deg, row["dec"] * u.deg)
    text = coord.to_string("hmsdms", sep=":", precision=4)
    result = _search(engine, {"pos": text, "radius": "1arcsec"})
    assert row["obsid"] in result.table["obsid"].to_pylist()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"pos": "400 10"}, "pos: '400 10' is outside the sky"),
        ({"pos": "here"}, "pos: cannot read 'here'"),
        ({"pos": "10 10", "radius": "20deg"}, "radius: 20 deg is above the limit"),
        ({"pos": "10 10", "radius": "-1"}, "radius: '-1' must be a positive angle"),
        ({"columns": "obsid,secret"}, "columns: unknown column 'secret'"),
        ({"sort": "nope"}, "sort: unknown column 'nope'"),
        ({"class": "PLANET"}, "class: 'PLANET' is not one of"),
        ({"obsid": "12,abc"}, "obsid: 'abc' is not an obsid"),
        ({"z_min": "1", "z_max": "0"}, "z_min: 1 is above z_max 0"),
        ({"teff_min": "hot"}, "teff_min: 'hot' is not a number"),
        ({"catalog": "secret"}, "catalog: DEMO/v0 has no catalog 'secret'"),
    ],
)
def test_bad_parameters_are_named(engine: ArchiveEngine, params: dict, message: str) -> None:
    with pytest.raises(SearchError) as err:
        _search(engine, params)
    assert message in str(err.value)


def test_versions_follow_groups(engine: ArchiveEngine) -> None:
    with pytest.raises(VersionNotFound):
        engine.version("DEMO", "v0", {"lamost-partners"})
    partner = _search(engine, {"limit": "0"}, version="v1", groups={"lamost-partners"})
    public = _search(engine, {"limit": "0"}, version="v2", groups=set())
    everyone = _search(engine, {"limit": "0"})
    assert public.total < partner.total < everyone.total
