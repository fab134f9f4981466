"""The mock release as lsdb, the registry and researchers see it (built by the real generator)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from surveyhub.releases.layout import designations, make_obsid
from surveyhub.releases.registry import ReleaseStore, SpectrumNotFound, VersionNotFound
from tests.conftest import MOCK_FITS, MOCK_ROWS

pytestmark = pytest.mark.xdist_group("mock")

WG, PARTNERS = {"lamost-wg"}, {"lamost-partners"}


def _read_all(version, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    return version.open_catalog(name, columns=columns).compute().reset_index(drop=True)


def test_versions_nest_and_policies_show(mock_store: ReleaseStore) -> None:
    assert [v.key for v in mock_store.versions(WG)] == ["DEMO/v0", "DEMO/v1", "DEMO/v2"]
    assert [v.key for v in mock_store.versions(PARTNERS)] == ["DEMO/v1", "DEMO/v2"]
    assert [v.key for v in mock_store.versions(set())] == ["DEMO/v2"]
    with pytest.raises(VersionNotFound):
        mock_store.version("DEMO", "v0", PARTNERS)
    obsids = {
        v: set(_read_all(mock_store.version("DEMO", v, WG), "lrs", ["obsid"])["obsid"])
        for v in ("v0", "v1", "v2")
    }
    assert len(obsids["v0"]) == MOCK_ROWS
    assert obsids["v2"] < obsids["v1"] < obsids["v0"]
    for v in ("v0", "v1", "v2"):
        manifest = mock_store.version("DEMO", v, WG).manifest
        assert manifest.counts["lrs_spectra"] == len(obsids[v])
        assert manifest.catalogs["lrs"].rows == len(obsids[v])


def test_catalog_rows_are_consistent_like_lamost(mock_store: ReleaseStore) -> None:
    v0 = mock_store.version("DEMO", "v0", WG)
    df = _read_all(v0, "lrs")
    assert df["obsid"].is_unique
    obsid = df["obsid"].to_numpy(np.int64)
    assert (obsid % 1000 == df["fiberid"].to_numpy(np.int64)).all()
    assert ((obsid // 1000) % 100 == df["spid"].to_numpy(np.int64)).all()
    assert df["spid"].between(1, 16).all()
    assert df["fiberid"].between(1, 250).all()
    assert list(df["designation"]) == designations(df["ra"].to_numpy(), df["dec"].to_numpy())
    assert (df["lmjd"] - df["mjd"] == 1).all()
    assert df["dec"].between(-12.6, 90).all()  # plate centres at dec >= -10, radius 2.5 deg
    per_plate = df.groupby("planid").size()
    assert per_plate.max() <= 4000
    classes = df["class"].value_counts(normalize=True)
    assert 0.85 < classes["STAR"] < 0.95
    assert 0.02 < classes["GALAXY"] < 0.09
    assert classes["QSO"] > 0.005
    stars = df[df["class"] == "STAR"]
    assert stars["subclass"].str.match(r"^(O|B|A|F|G|K|M)\d?$|^(WD|Carbon|DoubleStar)$").all()
    galaxies = df[df["class"] == "GALAXY"]
    assert (galaxies["z"] > 0).all()
    assert (df["snrg"] > 0).all()
    # Brighter objects have higher SNR.
    assert np.corrcoef(df["mag_ps_g"], np.log(df["snrg"]))[0, 1] < -0.5
    stellar = _read_all(v0, "stellar")
    assert set(stellar["obsid"]) <= set(df["obsid"])
    assert stellar["subclass"].str[0].isin(list("AFGK")).all()
    assert stellar["teff"].between(3000, 13000).all()
    assert stellar["logg"].between(-1, 6).all()


def test_cone_search_equals_brute_force(mock_store: ReleaseStore) -> None:
    v0 = mock_store.version("DEMO", "v0", WG)
    catalog = v0.open_catalog("lrs", columns=["obsid", "ra", "dec"])
    everything = catalog.compute()
    coords = SkyCoord(everything["ra"].to_numpy() * u.deg, everything["dec"].to_numpy() * u.deg)
    rng = np.random.default_rng(3)
    centres = everything.sample(12, random_state=4)
    radii = rng.choice([30.0, 600.0, 3600.0, 9000.0], size=len(centres))
    for (ra, dec), radius in zip(centres[["ra", "dec"]].to_numpy(), radii, strict=True):
        got = set(catalog.cone_search(ra, dec, radius).compute()["obsid"])
        sep = coords.separation(SkyCoord(ra * u.deg, dec * u.deg)).arcsec
        want = set(everything["obsid"][sep <= radius])
        assert got == want, (ra, dec, radius)
        assert want  # every cone is centred on a row


def test_cone_search_reads_only_partitions_that_can_match(mock_store: ReleaseStore) -> None:
    v0 = mock_store.version("DEMO", "v0", WG)
    catalog = v0.open_catalog("lrs")
    row = catalog.head(1)
    cone = catalog.cone_search(float(row["ra"].iloc[0]), float(row["dec"].iloc[0]), 60.0)
    assert cone.npartitions < max(catalog.npartitions, 2)
    # Inside a partition, rows are sorted on the HEALPix index in small row groups a reader can skip.
    path = next(iter(v0.store.fs.glob(v0.path("catalogs/lrs/lrs/dataset/**/*.parquet"))))
    meta = pq.ParquetFile(path).metadata
    assert meta.row_group(0).num_rows <= 8192
    stats = [meta.row_group(i).column(0).statistics for i in range(meta.num_row_groups)]
    assert all(a.max <= b.min for a, b in itertools.pairwise(stats))


def test_fits_files_match_their_catalog_rows(mock_store: ReleaseStore) -> None:
    v1 = mock_store.version("DEMO", "v1", PARTNERS)
    df = _read_all(v1, "lrs").set_index("obsid")
    files = v1.store.fs.glob(v1.path("fits/*/*/spec-*.fits.gz"))
    assert 0 < len(files) <= MOCK_FITS
    assert v1.manifest.counts["fits_files"] >= len(files)
    checked = 0
    for obsid in sorted(df.index)[:400]:  # files are written for the first rows by obsid
        try:
            spec = v1.read_spectrum(obsid)
        except SpectrumNotFound:
            continue
        row = df.loc[obsid]
        assert spec.meta["obsid"] == obsid
        assert spec.meta["class"] == row["class"]
        assert spec.meta["subclass"] == row["subclass"]
        assert spec.meta["planid"] == row["planid"]
        assert spec.meta["designation"] == row["designation"]
        assert spec.meta["snrg"] == pytest.approx(row["snrg"], rel=1e-3)
        assert spec.wavelength.size == 3909
        assert np.isfinite(spec.flux).all()
        checked += 1
        if checked == 20:
            break
    assert checked == 20
    with pytest.raises(SpectrumNotFound):
        v1.read_spectrum(make_obsid(99999, 1, 1))


def test_columnar_store_holds_the_same_arrays_as_the_files(mock_store: ReleaseStore) -> None:
    v2 = mock_store.version("DEMO", "v2", set())
    spectra = v2.open_spectra().compute().set_index("obsid")
    assert len(spectra) == v2.manifest.spectra["rows"] > 0
    for obsid in list(spectra.index[:10]):
        spec = v2.read_spectrum(int(obsid))
        np.testing.assert_array_equal(np.asarray(spectra.loc[obsid, "flux"], dtype=np.float32), spec.flux)
        np.testing.assert_array_equal(np.asarray(spectra.loc[obsid, "ivar"], dtype=np.float32), spec.ivar)
        np.testing.assert_array_equal(np.asarray(spectra.loc[obsid, "andmask"]), spec.andmask)


def test_mrs_files_and_gaia_catalog(mock_store: ReleaseStore) -> None:
    v0 = mock_store.version("DEMO", "v0", WG)
    mrs = _read_all(v0, "mrs")
    assert len(mrs) == v0.manifest.counts["mrs_spectra"] > 0
    obsid = int(mrs["obsid"].iloc[0])
    location = v0.locate_spectrum(obsid)
    assert location.relpath.split("/")[-1].startswith("med-")
    spec = v0.read_spectrum(obsid)
    assert spec.kind == "MRS"
    assert set(spec.arms) == {"B", "R"}
    assert spec.exposures
    gaia = _read_all(v0, "gaia")
    matched = set(gaia["source_id"]) & set(_read_all(v0, "lrs")["gaia_source_id"])
    assert len(matched) > 0.9 * (_read_all(v0, "lrs")["gaia_source_id"] > 0).sum()


def test_mock_is_deterministic_for_a_seed(tmp_path) -> None:
    from surveyhub.releases.mock.release import build_mock_release

    tables, files = [], []
    for name, fits in (("a", 5), ("b", 5), ("c", 0)):
        build_mock_release(str(tmp_path / name), "T", 500, fits_files=fits, seed=11, log=lambda _: None)
        v0 = ReleaseStore(str(tmp_path / name)).version("T", "v0", WG)
        tables.append(_read_all(v0, "lrs").sort_values("obsid").reset_index(drop=True))
        files.append(
            {p.relative_to(tmp_path / name): p.read_bytes() for p in (tmp_path / name).rglob("*.fits.gz")}
        )
    pd.testing.assert_frame_equal(tables[0], tables[1])
    pd.testing.assert_frame_equal(tables[0], tables[2])  # how many files are written does not change rows
    assert files[0] == files[1]
    assert len(files[0]) > 5
    assert not files[2]
