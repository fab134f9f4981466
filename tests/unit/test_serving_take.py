"""Rows out of a serving copy of many record batches: the same as ``Table.take``, without its copy.

At 10 million rows a serving copy holds over a thousand record batches, and ``Table.take`` concatenated
them all for every answer (a second or more for one row); ``ServingCatalog.take`` reads only the batches
that hold the rows. This checks the two agree, in the order asked for, with repeats and column subsets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from surveyhub.archive.serving import ServingCatalog


@pytest.fixture
def catalog(tmp_path: Path) -> ServingCatalog:
    n = 10_000
    rng = np.random.default_rng(4)
    table = pa.table(
        {
            "_healpix_29": np.sort(rng.integers(0, 2**40, n)),
            "ra": rng.uniform(0, 360, n),
            "dec": rng.uniform(-10, 90, n),
            "obsid": rng.permutation(n).astype(np.int64) + 100,
            "class": pa.array(rng.choice(["STAR", "GALAXY", "QSO"], n)),
        }
    )
    with pa.ipc.new_file(str(tmp_path / "rows.arrow"), table.schema) as writer:
        writer.write_table(table, max_chunksize=333)  # 31 batches of uneven size
    for column, file in (("_healpix_29", "hpx.npy"), ("ra", "ra.npy"), ("dec", "dec.npy")):
        np.save(tmp_path / file, table[column].to_numpy())
    return ServingCatalog(tmp_path)


def test_take_equals_table_take(catalog: ServingCatalog) -> None:
    assert catalog.table.column(0).num_chunks > 30
    rng = np.random.default_rng(5)
    for rows in (
        np.array([0]),
        np.array([9_999, 0, 333, 332, 5000]),  # unsorted, across batch edges
        rng.integers(0, 10_000, 500),  # with repeats
        np.arange(2_000, 2_700),  # a contiguous span, as cones give
    ):
        expected = catalog.table.take(pa.array(rows))
        assert catalog.take(rows).equals(expected.combine_chunks())
        assert catalog.take(rows, ["obsid", "class"]).equals(
            expected.select(["obsid", "class"]).combine_chunks()
        )


def test_take_nothing_keeps_the_schema(catalog: ServingCatalog) -> None:
    empty = catalog.take(np.empty(0, np.int64), ["ra", "obsid"])
    assert empty.num_rows == 0
    assert empty.column_names == ["ra", "obsid"]
