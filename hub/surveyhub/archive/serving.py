"""Serving copies: a catalog laid out for millisecond cones and obsid look-ups, without a database server.

The release store keeps catalogs as HATS Parquet (compressed, partitioned, made for scans and Dask). For
interactive queries the archive derives, once per catalog version, a *serving copy* in its own cache:

- every row in one uncompressed Arrow IPC file, sorted by ``_healpix_29``, memory-mapped (the OS page
  cache keeps what is hot; nothing is decoded per query);
- the sorted ``_healpix_29``, ``ra`` and ``dec`` columns as ``.npy`` files, memory-mapped, for the
  binary searches and the exact distance test;
- ``obsid`` sorted with its row order, for look-ups by binary search.

Releases are immutable, so a serving copy never goes stale; its folder name carries the version's
publication time, so a replaced version gets a new copy. Building it reads the HATS partitions in
HEALPix order (each is already sorted on ``_healpix_29``), so no global sort is needed.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import shutil
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

import hats
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from surveyhub.archive.healpix_ranges import angular_distance, cone_ranges, rows_in_ranges
from surveyhub.releases.registry import ReleaseVersion

HEALPIX = "_healpix_29"
_BUILD_LOCK = threading.Lock()


def serving_dir(cache_dir: str | Path, version: ReleaseVersion) -> Path:
    """The cache folder of a version's serving copies (keyed by its publication, so replacements differ)."""
    stamp = hashlib.sha256(f"{version.store.url}|{version.manifest.published}".encode()).hexdigest()[:12]
    return Path(cache_dir) / version.release / version.version / stamp


def _partition_files(version: ReleaseVersion, name: str) -> list[str]:
    """The catalog's partition files in ascending ``_healpix_29`` order."""
    collection = hats.read_hats(version.store.upath(version.catalog_url(name)))
    catalog = (
        hats.read_hats(collection.main_catalog_dir) if hasattr(collection, "main_catalog_dir") else collection
    )
    pixels = sorted(catalog.get_healpix_pixels(), key=lambda p: p.pixel << (2 * (29 - p.order)))
    fs = version.store.fs
    return [
        fs._strip_protocol(str(hats.io.paths.pixel_catalog_file(catalog.catalog_base_dir, p))) for p in pixels
    ]


def build_serving_copy(version: ReleaseVersion, name: str, cache_dir: str | Path) -> Path:
    """Write the serving copy of catalog ``name`` (atomically: a temp folder renamed into place)."""
    target = serving_dir(cache_dir, version) / name
    if (target / "rows.arrow").exists():
        return target
    tmp = target.with_name(f".{name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        fs = version.store.fs
        hpx, ra, dec, obsid = [], [], [], []
        writer = None
        for path in _partition_files(version, name):
            with fs.open(path, "rb") as fh:
                table = pq.read_table(fh)
            if writer is None:
                writer = pa.ipc.new_file(str(tmp / "rows.arrow"), table.schema)
            writer.write_table(table, max_chunksize=65536)
            hpx.append(table[HEALPIX].to_numpy())
            ra.append(table["ra"].to_numpy())
            dec.append(table["dec"].to_numpy())
            if "obsid" in table.column_names:
                obsid.append(table["obsid"].to_numpy())
        if writer is None:
            raise ValueError(f"{version.key} catalog {name} has no partitions")
        writer.close()
        np.save(tmp / "hpx.npy", np.concatenate(hpx).astype(np.int64))
        np.save(tmp / "ra.npy", np.concatenate(ra).astype(np.float64))
        np.save(tmp / "dec.npy", np.concatenate(dec).astype(np.float64))
        if obsid:
            ids = np.concatenate(obsid).astype(np.int64)
            order = np.argsort(ids, kind="stable")
            np.save(tmp / "obsid_sorted.npy", ids[order])
            np.save(tmp / "obsid_order.npy", order.astype(np.int64))
        with contextlib.suppress(FileExistsError, OSError):
            os.rename(tmp, target)  # another process may have finished first: then keep theirs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


class ServingCatalog:
    """A memory-mapped serving copy of one catalog of one version."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._mmap = pa.memory_map(str(folder / "rows.arrow"))
        reader = pa.ipc.open_file(self._mmap)
        self._batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
        self.table: pa.Table = pa.Table.from_batches(self._batches, reader.schema)
        #: The first row of each record batch, for finding a row's batch by binary search.
        self._starts = np.cumsum([0] + [b.num_rows for b in self._batches])[:-1]
        self.hpx = np.load(folder / "hpx.npy", mmap_mode="r")
        self.ra = np.load(folder / "ra.npy", mmap_mode="r")
        self.dec = np.load(folder / "dec.npy", mmap_mode="r")
        self.has_obsid = (folder / "obsid_sorted.npy").exists()
        if self.has_obsid:
            self.obsid_sorted = np.load(folder / "obsid_sorted.npy", mmap_mode="r")
            self.obsid_order = np.load(folder / "obsid_order.npy", mmap_mode="r")

    @classmethod
    def open(cls, version: ReleaseVersion, name: str, cache_dir: str | Path) -> ServingCatalog:
        """Open (building on first use) the serving copy of ``version``'s catalog ``name``."""
        folder = serving_dir(cache_dir, version) / name
        if not (folder / "rows.arrow").exists():
            with _BUILD_LOCK:
                build_serving_copy(version, name, cache_dir)
        return cls(folder)

    @property
    def num_rows(self) -> int:
        """Rows in the catalog."""
        return self.table.num_rows

    @property
    def schema(self) -> pa.Schema:
        """The catalog's Arrow schema (with ``_healpix_29``)."""
        return self.table.schema

    def cone_rows(self, ra: float, dec: float, radius_deg: float) -> tuple[np.ndarray, np.ndarray]:
        """Row numbers within ``radius_deg`` of (ra, dec), in index order, and their distances in degrees."""
        spans = rows_in_ranges(self.hpx, cone_ranges(ra, dec, radius_deg))
        if spans.size == 0:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        lengths = spans[:, 1] - spans[:, 0]
        rows = np.repeat(spans[:, 0] - np.r_[0, np.cumsum(lengths)[:-1]], lengths) + np.arange(lengths.sum())
        dist = angular_distance(self.ra[rows], self.dec[rows], ra, dec)
        inside = dist <= radius_deg
        return rows[inside], dist[inside]

    def obsid_rows(self, obsids: Sequence[int]) -> np.ndarray:
        """Row numbers of the given obsids (those not in the catalog are left out), in the order given."""
        if not self.has_obsid:
            raise KeyError("this catalog has no obsid column")
        wanted = np.asarray(obsids, dtype=np.int64)
        pos = np.searchsorted(self.obsid_sorted, wanted)
        pos = np.minimum(pos, self.obsid_sorted.size - 1)
        found = self.obsid_sorted[pos] == wanted if self.obsid_sorted.size else np.zeros(wanted.size, bool)
        return np.asarray(self.obsid_order[pos[found]], dtype=np.int64)

    def take(self, rows: np.ndarray, columns: Sequence[str] | None = None) -> pa.Table:
        """The given rows (and columns), in the order given, as an Arrow table.

        Each row is taken from its own record batch of the memory-mapped file. ``Table.take`` over the
        whole catalog would first concatenate every chunk of every column (a copy of the catalog, seconds
        at 10 million rows, for a one-row answer); here only the batches that hold requested rows are read.
        """
        names = list(columns) if columns else None
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return self.table.select(names or self.table.column_names).slice(0, 0)
        in_order = bool(np.all(rows[1:] >= rows[:-1]))
        order = np.arange(rows.size) if in_order else np.argsort(rows, kind="stable")
        ordered = rows if in_order else rows[order]
        batch_of = np.searchsorted(self._starts, ordered, side="right") - 1
        bounds = [0, *(np.flatnonzero(np.diff(batch_of)) + 1).tolist(), ordered.size]
        parts = []
        for lo, hi in itertools.pairwise(bounds):  # one stretch of rows per record batch
            index = int(batch_of[lo])
            batch = self._batches[index] if names is None else self._batches[index].select(names)
            local = ordered[lo:hi] - self._starts[index]
            if local[-1] - local[0] + 1 == local.size and (local.size == 1 or np.all(np.diff(local) == 1)):
                parts.append(batch.slice(int(local[0]), int(local.size)))  # a run of rows: no copy at all
            else:
                parts.append(batch.take(pa.array(local, type=pa.int64())))
        result = pa.Table.from_batches(parts)
        if not in_order:  # back to the order asked for (a small table now)
            result = result.take(pa.array(np.argsort(order, kind="stable"), type=pa.int64()))
        return result


def parquet_cone(version: ReleaseVersion, name: str, ra: float, dec: float, radius_deg: float) -> pa.Table:
    """The same cone answered straight from the release's HATS Parquet (no serving copy).

    The HEALPix ranges become a filter on ``_healpix_29`` that pyarrow pushes down to row-group
    statistics, so only partitions and row groups that can hold matches are decoded; then the exact
    distance test. This is the path for stores without a serving copy, and the tests check that both
    paths return identical rows.
    """
    import pyarrow.compute as pc
    import pyarrow.dataset as pds

    ranges = cone_ranges(ra, dec, radius_deg)
    if ranges.size == 0:
        return pa.table({})
    files = _partition_files(version, name)
    dataset = pds.dataset(files, format="parquet", filesystem=version.store.fs)
    field = pc.field(HEALPIX)
    expr = None
    for lo, hi in ranges:
        term = (field >= int(lo)) & (field < int(hi))
        expr = term if expr is None else expr | term
    table = dataset.to_table(filter=expr)
    dist = angular_distance(table["ra"].to_numpy(), table["dec"].to_numpy(), ra, dec)
    return table.filter(pa.array(dist <= radius_deg))
