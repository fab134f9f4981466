"""``build_mock_release(columnar_spectra=..., versions=...)``: a scale run's cheaper mock.

Scale runs (bench/analysis.py) need a whole version's columnar spectra but only a sample of its FITS
files, and only the version they measure; the rows that do have files must still hold the same arrays in
both places, and a version written beside v0 still holds its subset of v0's rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from surveyhub.releases.mock.release import build_mock_release
from surveyhub.releases.registry import ReleaseStore, SpectrumNotFound

ROWS, FILES, COLUMNAR = 300, 20, 120


def test_columnar_spectra_beyond_the_files(tmp_path: Path) -> None:
    build_mock_release(
        str(tmp_path),
        "DEMO",
        ROWS,
        fits_files=FILES,
        columnar_spectra=COLUMNAR,
        versions=("v0", "v2"),
        mrs_fraction=0.0,
        seed=4,
        log=lambda _: None,
    )
    store = ReleaseStore(str(tmp_path))
    assert [v.key for v in store.versions({"lamost-wg"})] == ["DEMO/v0", "DEMO/v2"]
    v0 = ReleaseStore(str(tmp_path)).version("DEMO", "v0", {"lamost-wg"})
    assert v0.manifest.counts["columnar_spectra"] == COLUMNAR == v0.manifest.spectra["rows"]
    assert v0.manifest.counts["fits_files"] == FILES
    assert len(v0.store.fs.glob(v0.path("fits/*/*/spec-*.fits.gz"))) == FILES
    spectra = v0.open_spectra().compute().set_index("obsid")
    assert len(spectra) == COLUMNAR
    assert spectra.index.is_unique
    catalog = v0.open_catalog("lrs", columns=["obsid"]).compute()
    assert set(spectra.index) <= set(catalog["obsid"])
    with_files = 0
    for obsid in spectra.index:
        try:
            spec = v0.read_spectrum(int(obsid))
        except SpectrumNotFound:
            continue
        with_files += 1
        np.testing.assert_array_equal(np.asarray(spectra.loc[obsid, "flux"], dtype=np.float32), spec.flux)
        np.testing.assert_array_equal(np.asarray(spectra.loc[obsid, "ivar"], dtype=np.float32), spec.ivar)
        np.testing.assert_array_equal(np.asarray(spectra.loc[obsid, "andmask"]), spec.andmask)
    assert with_files == FILES
    # The nested versions count only their own rows of each.
    v2 = ReleaseStore(str(tmp_path)).version("DEMO", "v2", set())
    v2_rows = set(v2.open_catalog("lrs", columns=["obsid"]).compute()["obsid"])
    assert len(v2_rows) < ROWS
    v2_spectra = set(v2.open_spectra(columns=["obsid"]).compute()["obsid"])
    assert len(v2_spectra) == v2.manifest.counts["columnar_spectra"] > 0
    assert v2_spectra == set(spectra.index) & v2_rows
    assert v2.manifest.counts["fits_files"] <= FILES


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"fits_files": 20, "columnar_spectra": 10},
            r"columnar_spectra \(10\) must be at least the LRS rows",
        ),
        ({"versions": ["v0", "v3"]}, r"unknown mock versions \['v3'\]"),
        ({"versions": ["v1", "v2"]}, r"versions must include v0, which holds every row"),
    ],
)
def test_impossible_choices_are_refused(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_mock_release(str(tmp_path), "DEMO", 100, log=lambda _: None, **kwargs)
    assert not list(tmp_path.glob("DEMO/*"))
