"""``map_spectra`` converts a partition to float64 arrays in blocks: the spectra must be the same."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from surveyhub.analysis.spectra import _map_partition, iter_spectra, spectra_of
from surveyhub.releases.grid import LRS_NPIX


def _partition(rows: int, seed: int = 3) -> pd.DataFrame:
    """A partition as lsdb hands it over: Arrow list columns on the grid, bad pixels here and there."""
    rng = np.random.default_rng(seed)
    flux = rng.normal(10, 2, (rows, LRS_NPIX)).astype(np.float32)
    ivar = rng.uniform(0, 4, (rows, LRS_NPIX)).astype(np.float32)
    ivar[rng.random((rows, LRS_NPIX)) < 0.01] = 0
    andmask = (rng.random((rows, LRS_NPIX)) < 0.02).astype(np.int32)
    columns = {
        "obsid": pa.array(np.arange(rows, dtype=np.int64) + 1000),
        "class": pa.array(rng.choice(["STAR", "GALAXY"], rows)),
        **{
            name: pa.array(list(values), type=pa.list_(pa.from_numpy_dtype(values.dtype)))
            for name, values in (("flux", flux), ("ivar", ivar), ("andmask", andmask))
        },
    }
    return pa.table(columns).to_pandas(types_mapper=pd.ArrowDtype)


def test_blocks_give_the_spectra_of_the_whole_partition() -> None:
    frame = _partition(600)  # two whole blocks of 256 and a partial one
    whole = spectra_of(frame)
    blocked = list(iter_spectra(frame, block=256))
    assert len(blocked) == len(whole) == 600
    for a, b in zip(whole, blocked, strict=True):
        assert a.row == b.row
        assert a.flux.dtype == b.flux.dtype == np.float64
        np.testing.assert_array_equal(a.flux, b.flux)
        np.testing.assert_array_equal(a.ivar, b.ivar)
        np.testing.assert_array_equal(a.mask, b.mask)
    assert [s.row["obsid"] for s in blocked] == list(range(1000, 1600))


def test_map_partition_keeps_rows_in_order_across_blocks() -> None:
    frame = _partition(300, seed=5)
    frame.index = pd.Index(np.arange(300)[::-1] * 7, name="_healpix_29")
    result = _map_partition(frame, lambda s: float(s.flux[~s.mask].sum()), {"value": "float64"}, "andmask")
    expected = [float(s.flux[~s.mask].sum()) for s in spectra_of(frame)]
    assert list(result.index) == list(frame.index)
    assert result["obsid"].tolist() == frame["obsid"].tolist()
    np.testing.assert_array_equal(result["value"].to_numpy(), expected)
