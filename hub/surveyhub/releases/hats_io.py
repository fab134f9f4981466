"""Writing catalogs as HATS collections: the catalog, its margin cache and an obsid index.

We let hats-import do the partitioning (it is the tool the HATS world uses for surveys of billions of rows,
and lsdb reads what it writes), and we ask it for small row groups sorted by ``_healpix_29`` so that a cone
search reads only the partitions, and inside them only the row groups, that can hold matches.

The obsid index is the one part written here: hats-import's index pipeline refuses to run on Python 3.11
with a dask newer than 2025.3 (it guards against a dask-expr slowdown), and our stack needs newer dask.
The index we write has the same on-disk form as hats-import's (an ``index`` catalog with ``obsid``,
``Norder``, ``Npix`` plus extra columns, sorted by obsid, listed in ``collection.properties`` as
``all_indexes``), so ``lsdb.open_catalog(...).id_search(...)`` and hats read it as their own. Its extra
columns hold what builds a spectrum's file name, so finding a file by obsid reads the index alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import hats
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
import pyarrow.parquet as pq
from hats.catalog import CatalogType, TableProperties
from hats.catalog.dataset.collection_properties import CollectionProperties
from hats.io import file_io
from hats.io.parquet_metadata import write_parquet_metadata
from hats_import.catalog.file_readers import InputReader


class _QuietCollectionLookups(logging.Filter):
    """Drop hats' root-logger warning that it found a collection where it looked for a catalog.

    hats logs it each time a collection path is opened, which is how every release catalog is opened.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "found collection" not in record.getMessage()


logging.getLogger().addFilter(_QuietCollectionLookups())

#: Margin width for cross-matching: a few arcseconds more than any match radius users ask for.
MARGIN_ARCSEC = 10.0
#: Rows per Parquet row group in catalogs: small enough that a cone reads little, large enough to scan fast.
CATALOG_ROW_GROUP_ROWS = 8192
#: Rows per row group in the spectra store (each row carries ~32 kB of arrays).
SPECTRA_ROW_GROUP_ROWS = 256
#: Most spectra per HEALPix partition of the spectra store. A partition is one Dask task of
#: ``surveyhub.analysis``: 5,000 spectra are ~240 MB of arrays as read and ~310 MB of float64 flux and ivar,
#: so a 2 GiB worker holds one with room, and a version of 100,000 spectra makes ~40 tasks, enough to keep
#: every worker busy to the end. (At the catalogs' 300,000-500,000, one partition would be 15-25 GB.)
SPECTRA_PIXEL_THRESHOLD = 5_000
#: Rows per index file row group.
INDEX_ROW_GROUP_ROWS = 16384


@contextlib.contextmanager
def dask_client(n_workers: int | None = None) -> Iterator[Any]:
    """A local Dask client for hats-import.

    Threads in one process by default: starting worker processes costs seconds that small releases (tests,
    the demo) do not win back, and the heavy parts (Parquet, numpy) release the GIL. ``n_workers > 1``
    starts worker processes for large ingests.
    """
    from dask.distributed import Client

    if n_workers and n_workers > 1:
        client = Client(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    else:
        client = Client(
            n_workers=1, threads_per_worker=os.cpu_count() or 2, processes=False, dashboard_address=":0"
        )
    try:
        yield client
    finally:
        client.close()


def import_collection(
    input_files: Sequence[str | Path],
    collection_dir: str | Path,
    name: str,
    *,
    client: Any,
    pixel_threshold: int = 500_000,
    highest_order: int = 7,
    row_group_rows: int = CATALOG_ROW_GROUP_ROWS,
    margin_arcsec: float | None = MARGIN_ARCSEC,
    index_column: str | None = "obsid",
    index_extra_columns: Sequence[str] = (),
    properties: dict[str, str] | None = None,
    file_reader: InputReader | str = "parquet",
) -> Path:
    """Import Parquet files into a HATS collection at ``collection_dir`` (which must not exist yet).

    The collection holds the catalog ``name``, its margin cache ``name_<margin>arcs`` and an index
    ``name_<column>``. Returns the collection path.
    """
    from hats_import import CollectionArguments, pipeline_with_client

    collection_dir = Path(collection_dir)
    tmp_dir = collection_dir.parent / f".tmp-{collection_dir.name}"
    args = CollectionArguments(
        output_artifact_name=collection_dir.name,
        output_path=str(collection_dir.parent),
        progress_bar=False,
        tmp_dir=str(tmp_dir),
        addl_hats_properties=properties or {},
    ).catalog(
        output_artifact_name=name,
        input_file_list=[str(f) for f in input_files],
        file_reader=file_reader,
        ra_column="ra",
        dec_column="dec",
        pixel_threshold=pixel_threshold,
        highest_healpix_order=highest_order,
        row_group_kwargs={"num_rows": row_group_rows},
        addl_hats_properties=properties or {},
    )
    if margin_arcsec:
        args = args.add_margin(margin_threshold=margin_arcsec, is_default=True)
    pipeline_with_client(args, client)
    with contextlib.suppress(FileNotFoundError):
        file_io.remove_directory(tmp_dir)
    if index_column:
        write_index(collection_dir, name, index_column, extra_columns=index_extra_columns)
    return collection_dir


def write_index(
    collection_dir: str | Path, name: str, column: str, *, extra_columns: Sequence[str] = ()
) -> Path:
    """Write the index catalog ``<name>_<column>`` of the collection's catalog ``name`` and register it."""
    collection_dir = Path(collection_dir)
    catalog = hats.read_hats(collection_dir / name)
    columns = [column, *extra_columns]
    pieces = []
    for pixel in catalog.get_healpix_pixels():
        path = hats.io.paths.pixel_catalog_file(catalog.catalog_base_dir, pixel)
        table = pq.read_table(path, columns=columns)
        n = table.num_rows
        table = table.append_column("Norder", pa.array(np.full(n, pixel.order, dtype=np.uint8)))
        table = table.append_column("Npix", pa.array(np.full(n, pixel.pixel, dtype=np.uint64)))
        pieces.append(table)
    index = pa.concat_tables(pieces).sort_by(column)
    index_name = f"{name}_{column}"
    index_dir = collection_dir / index_name
    data_dir = index_dir / "dataset" / "index"
    data_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        index,
        data_dir / "part.0.parquet",
        row_group_size=INDEX_ROW_GROUP_ROWS,
        sorting_columns=pq.SortingColumn.from_ordering(index.schema, [(column, "ascending")]),
        write_page_index=True,
    )
    write_parquet_metadata(index_dir, order_by_healpix=False)
    TableProperties(
        catalog_name=index_name,
        catalog_type=CatalogType.INDEX,
        total_rows=index.num_rows,
        primary_catalog=name,
        indexing_column=column,
        extra_columns=list(extra_columns) or None,
    ).to_properties_file(index_dir)
    props = CollectionProperties.read_from_dir(collection_dir)
    indexes = dict(props.all_indexes or {}) | {column: index_name}
    props.all_indexes = indexes
    props.default_index = props.default_index or column
    props.to_properties_file(collection_dir)
    return index_dir


def index_lookup(index_dir: str | Path, column: str, values: Sequence[int]) -> pa.Table:
    """Rows of an index catalog whose ``column`` is in ``values`` (reads only row groups that can match)."""
    dataset = pds.dataset(Path(index_dir) / "dataset" / "index", format="parquet")
    return dataset.to_table(filter=pc.field(column).isin(list(values)))


def arrow_type(dtype: str) -> pa.DataType:
    """The Arrow type of a documented column type (see :class:`surveyhub.releases.columns.Column`)."""
    if dtype.startswith("list<") and dtype.endswith(">"):
        return pa.list_(arrow_type(dtype[5:-1]))
    return {"string": pa.string(), "bool": pa.bool_()}.get(dtype) or pa.from_numpy_dtype(np.dtype(dtype))


def published_schema(columns: Sequence[Any], *, internal: Sequence[str] = ()) -> pa.Schema:
    """The Arrow schema of a catalog's documented columns, plus internal int8 columns (e.g. ``_level``)."""
    fields = [pa.field(c.name, arrow_type(c.dtype)) for c in columns]
    return pa.schema(fields + [pa.field(name, pa.int8()) for name in internal])


class LevelReader(InputReader):
    """A hats-import file reader that keeps the rows of one release level and drops internal columns.

    Mock and ingested releases write their rows once, each tagged with ``_level`` (2: in every version,
    1: in v1 and v0, 0: in v0 only), and every version is imported from the same files.
    """

    def __init__(self, min_level: int, chunksize: int = 250_000) -> None:
        self.min_level = min_level
        self.chunksize = chunksize

    def read(self, input_file: str, read_columns: Sequence[str] | None = None) -> Iterator[pa.Table]:
        """Yield tables of the rows with ``_level >= min_level``, without ``_``-prefixed columns."""
        parquet = pq.ParquetFile(str(input_file))
        for batch in parquet.iter_batches(batch_size=self.chunksize):
            table = pa.Table.from_batches([batch])
            table = table.filter(pc.greater_equal(table["_level"], self.min_level))
            keep = [n for n in table.column_names if not n.startswith("_")]
            if read_columns:
                keep = [n for n in keep if n in read_columns]
            yield table.select(keep).replace_schema_metadata()
