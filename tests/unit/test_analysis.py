"""surveyhub.analysis against independent computations on a real mock release.

The references read the release's Parquet files with pyarrow alone (no lsdb, no Dask) and compute in
plain numpy and astropy, so an error in the partitioning, the join, the masks or the reduction shows as a
difference. The worker test runs a real two-process Dask cluster and kills one worker mid-job.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import astropy.units as u
import numpy as np
import pandas as pd
import pyarrow.dataset as pds
import pytest
from astropy.coordinates import SkyCoord

from surveyhub import analysis as sa
from surveyhub.analysis import results
from surveyhub.releases.registry import ReleaseStore, ReleaseVersion

WHERE = "snrg > 3"
CLASSES = ("STAR", "GALAXY", "QSO")


@pytest.fixture(scope="module")
def version(tmp_path_factory: pytest.TempPathFactory) -> ReleaseVersion:
    from surveyhub.releases.mock.release import build_mock_release

    root = tmp_path_factory.mktemp("analysis-store")
    build_mock_release(str(root), "DEMO", 600, fits_files=60, seed=11, log=lambda _: None)
    return ReleaseStore(str(root)).version("DEMO", "v0", {"lamost-wg"})


def _parquet(version: ReleaseVersion, relpath: str) -> pd.DataFrame:
    """A HATS catalog's rows read straight from its Parquet files."""
    return pds.dataset(version.path(relpath, "dataset"), format="parquet").to_table().to_pandas()


@pytest.fixture(scope="module")
def reference(version: ReleaseVersion) -> pd.DataFrame:
    """Selected catalog rows with their spectra as numpy arrays, without lsdb or Dask."""
    rows = _parquet(version, "catalogs/lrs/lrs")
    rows = rows[(rows["snrg"] > 3) & rows["class"].isin(CLASSES)]
    spectra = _parquet(version, "spectra/spectra")[["obsid", "flux", "ivar", "andmask"]]
    joined = spectra.merge(rows[["obsid", "class", "snrg", "ra", "dec"]], on="obsid")
    assert len(joined) >= 40  # enough spectra for the stacks to mean something
    return joined


def _arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flux = np.stack([np.asarray(f, dtype=np.float64) for f in frame["flux"]])
    ivar = np.stack([np.asarray(v, dtype=np.float64) for v in frame["ivar"]])
    good = (ivar > 0) & (np.stack([np.asarray(m) for m in frame["andmask"]]) == 0)
    return flux, ivar, good


def _numpy_stack(frame: pd.DataFrame, *, normalize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    flux, ivar, good = _arrays(frame)
    if normalize:
        medians = np.array([np.median(f[g]) for f, g in zip(flux, good, strict=True)])
        flux, ivar = flux / medians[:, None], ivar * medians[:, None] ** 2
    w = np.where(good, ivar, 0.0)
    total = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (w * flux).sum(axis=0) / total, np.nan), total


def _query(version: ReleaseVersion, **kwargs: object) -> sa.Query:
    return sa.Query(version, where=WHERE, classes=CLASSES, **kwargs)  # type: ignore[arg-type]


def test_stack_by_class_equals_numpy(version: ReleaseVersion, reference: pd.DataFrame) -> None:
    stack = sa.stack_spectra(_query(version).open_spectra(), by="class", progress=False)
    assert stack.labels == sorted(reference["class"].unique())
    assert stack.flux.shape == (len(stack.labels), len(sa.WAVELENGTH))
    for label, n in zip(stack.labels, stack.count, strict=True):
        group = reference[reference["class"] == label]
        flux, ivar = _numpy_stack(group)
        assert n == len(group)
        np.testing.assert_allclose(stack[label], flux, rtol=1e-10, equal_nan=True)
        np.testing.assert_allclose(stack.ivar[stack.labels.index(label)], ivar, rtol=1e-10)
    assert np.isfinite(stack["STAR"]).mean() > 0.95  # masks leave most pixels of a big group


def test_stack_in_parameter_bins_with_normalisation(version: ReleaseVersion, reference: pd.DataFrame) -> None:
    edges = [3, 10, 20, 1000]
    stack = sa.stack_spectra(
        _query(version).open_spectra(), by="snrg", bins=edges, normalize="median", progress=False
    )
    assert stack.labels == ["[3, 10)", "[10, 20)", "[20, 1000)"]
    for i, (low, high) in enumerate(itertools.pairwise(edges)):
        group = reference[(reference["snrg"] >= low) & (reference["snrg"] < high)]
        assert stack.count[i] == len(group) > 0
        np.testing.assert_allclose(stack.flux[i], _numpy_stack(group, normalize=True)[0], rtol=1e-9)


def _median_snr(spectrum: sa.GridSpectrum) -> dict[str, float]:
    good = ~spectrum.mask
    return {"snr": float(np.median(spectrum.flux[good] * np.sqrt(spectrum.ivar[good]))), "z": 1.0}


def test_map_spectra_gives_one_value_per_spectrum(version: ReleaseVersion, reference: pd.DataFrame) -> None:
    lazy = sa.map_spectra(_query(version).open_spectra(), _median_snr, columns={"snr": "f8", "z": "f8"})
    (values,) = sa.compute(lazy, progress=False)
    values = values.set_index("obsid").sort_index()
    flux, ivar, good = _arrays(reference.set_index("obsid").sort_index())
    expected = [np.median(f[g] * np.sqrt(v[g])) for f, v, g in zip(flux, ivar, good, strict=True)]
    np.testing.assert_allclose(values["snr"].to_numpy(), expected, rtol=1e-12)
    assert list(values.index) == sorted(reference["obsid"])


def test_cone_selects_exactly_the_rows_within(version: ReleaseVersion) -> None:
    rows = _parquet(version, "catalogs/lrs/lrs")
    centre = rows.iloc[len(rows) // 2]
    cone = sa.Cone(float(centre["ra"]), float(centre["dec"]), 1800.0)
    (got,) = sa.compute(sa.Query(version, cone=cone, columns=["class"]).open_catalog(), progress=False)
    separation = SkyCoord(rows["ra"], rows["dec"], unit="deg").separation(
        SkyCoord(cone.ra, cone.dec, unit="deg")
    )
    expected = set(rows.loc[separation.arcsec < cone.radius_arcsec, "obsid"])
    assert 0 < len(expected) < len(rows)
    assert set(got["obsid"]) == expected
    assert list(got.columns) == ["obsid", "ra", "dec", "class"]


def _brute_pairs(
    left: pd.DataFrame, right: pd.DataFrame, radius: float, *, nearest: bool
) -> dict[tuple[int, int], float]:
    """Every (obsid, source_id) pair within ``radius`` arcsec, from the full separation matrix."""
    a = SkyCoord(left["ra"].to_numpy(), left["dec"].to_numpy(), unit="deg")
    b = SkyCoord(right["ra"].to_numpy(), right["dec"].to_numpy(), unit="deg")
    separations = a[:, None].separation(b[None, :]).to(u.arcsec).value
    pairs = {}
    for i, j in zip(*np.nonzero(separations <= radius), strict=True):
        if nearest and j != np.argmin(separations[i]):
            continue
        pairs[(int(left["obsid"].iloc[i]), int(right["source_id"].iloc[j]))] = float(separations[i, j])
    return pairs


@pytest.mark.parametrize(("radius", "nearest"), [(2.0, True), (10.0, False)])
def test_crossmatch_with_gaia_equals_brute_force(
    version: ReleaseVersion, radius: float, nearest: bool
) -> None:
    matched = sa.crossmatch_gaia(_query(version), radius_arcsec=radius, nearest=nearest)
    (got,) = sa.compute(matched, progress=False)
    rows = _parquet(version, "catalogs/lrs/lrs")
    rows = rows[(rows["snrg"] > 3) & rows["class"].isin(CLASSES)]
    expected = _brute_pairs(rows, _parquet(version, "catalogs/gaia/gaia"), radius, nearest=nearest)
    pairs = dict(zip(zip(got["obsid"], got["source_id"], strict=True), got["_dist_arcsec"], strict=True))
    assert len(expected) > 100
    assert pairs.keys() == expected.keys()
    np.testing.assert_allclose([pairs[k] for k in expected], list(expected.values()), atol=1e-6)
    if not nearest:
        assert got["obsid"].value_counts().max() > 1  # "all within" really finds several for some


def test_crossmatch_refuses_a_radius_wider_than_the_margin(version: ReleaseVersion) -> None:
    with pytest.raises(ValueError, match="margin cache"):
        sa.crossmatch_gaia(_query(version), radius_arcsec=30.0)


def test_results_go_to_the_cloud_space_atomically_with_their_query(
    version: ReleaseVersion, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    space = tmp_path / "cloud" / "alice"
    monkeypatch.setenv("SURVEYHUB_CLOUD_URL", f"file://{space}/")
    monkeypatch.setenv("SURVEYHUB_CLOUD_STORAGE_OPTIONS", "{}")
    query = _query(version)
    stack = sa.stack_spectra(query.open_spectra(), by="class", progress=False)
    url = sa.write_result(stack, "stacks/by-class", query=query, metadata={"by": "class"})
    assert url == f"file://{space}/stacks/by-class.parquet"
    assert sorted(p.name for p in (space / "stacks").iterdir()) == ["by-class.parquet", "by-class.query.json"]
    frame, record = sa.read_result("stacks/by-class")
    sidecar = json.loads((space / "stacks" / "by-class.query.json").read_text())
    assert record["query"] == query.to_dict() == sidecar["query"]
    assert record["query"]["expression"] == "(snrg > 3) and (`class` in ['STAR', 'GALAXY', 'QSO'])"
    assert record["metadata"] == {"by": "class"}
    assert record["rows"] == len(stack.labels)
    assert frame["label"].tolist() == stack.labels
    np.testing.assert_allclose(np.stack(frame["flux"]), stack.flux.astype(np.float32), equal_nan=True)

    before = (space / "stacks" / "by-class.parquet").read_bytes()
    with pytest.raises(FileExistsError):
        sa.write_result(stack, "stacks/by-class", query=query)

    def dies_half_way(table: object, fh: object) -> None:
        fh.write(b"PAR1 half a file")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(results.pq, "write_table", dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        sa.write_result(stack, "stacks/by-class", query=query, overwrite=True)
    with pytest.raises(OSError, match="disk full"):
        sa.write_result(stack, "stacks/new", query=query)
    # The old result is whole, the new one never appeared, and no temporary file is left behind.
    assert (space / "stacks" / "by-class.parquet").read_bytes() == before
    assert not (space / "stacks" / "new.parquet").exists()
    assert not [p.name for p in (space / "stacks").iterdir() if p.name.startswith(".")]


def _slow_snr(spectrum: sa.GridSpectrum) -> float:
    time.sleep(0.08)  # long enough that a worker can be killed while it holds a partition
    return float(np.median(spectrum.flux[~spectrum.mask] * np.sqrt(spectrum.ivar[~spectrum.mask])))


@pytest.fixture
def local_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """``connect()`` off the platform: a real LocalCluster of two worker processes."""
    import dask

    monkeypatch.delenv("DASK_GATEWAY__ADDRESS", raising=False)
    with dask.config.set({"gateway.address": None}):
        messages: list[str] = []
        client = sa.connect(workers=2, log=messages.append)
        try:
            assert "No Dask Gateway here" in messages[0]
            yield client
        finally:
            client.cluster.close()  # type: ignore[attr-defined]
            client.close()  # type: ignore[attr-defined]


def test_job_completes_when_a_worker_dies(version: ReleaseVersion, local_client: object) -> None:
    client = local_client
    spectra = _query(version).open_spectra()
    (expected,) = sa.compute(sa.map_spectra(spectra, _slow_snr), progress=False, retries=0)
    pids = client.run(os.getpid)  # type: ignore[attr-defined]
    assert len(pids) == 2

    outcome: dict[str, object] = {}

    def job() -> None:
        outcome["result"] = sa.compute(sa.map_spectra(spectra, _slow_snr), progress=False)[0]

    runner = threading.Thread(target=job)
    runner.start()
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:  # a worker inside the user's function
        processing = client.processing().items()  # type: ignore[attr-defined]
        victim = next((w for w, keys in processing if any("_map_partition" in str(k) for k in keys)), None)
        time.sleep(0.05)
    assert victim is not None, "no worker ever ran the mapped function"
    os.kill(pids[victim], signal.SIGKILL)
    runner.join(timeout=120)
    assert not runner.is_alive()
    assert victim not in client.scheduler_info()["workers"]  # type: ignore[attr-defined]
    result = outcome["result"]
    pd.testing.assert_frame_equal(
        result.sort_values("obsid").reset_index(drop=True),  # type: ignore[attr-defined]
        expected.sort_values("obsid").reset_index(drop=True),
    )
