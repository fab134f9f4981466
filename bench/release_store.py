"""The release store benchmark (issue: the release store).

Figures, each beside a baseline measured in the same run:

1. Generation: rows/s of the mock catalog and FITS files/s, against astropy's own ``HDUList.writeto`` of
   the same arrays (gzip) as the baseline for files.
2. Reading every spectrum of a 10,000-spectrum version: from the FITS files one by one (the baseline,
   what a researcher does without the store) versus from the columnar store; spectra/s each and the ratio
   (the store should be at least 20x faster).
3. Bytes per spectrum: FITS (.fits.gz) and columnar store.
4. A catalog-only mock of ``BENCH_CATALOG_ROWS`` rows (10 million by default; ``--fits-files 0``): time to
   generate and partition all versions, against writing the same LRS rows as one plain Parquet file.

Environment: ``BENCH_SPECTRA`` (10000), ``BENCH_CATALOG_ROWS`` (10000000), ``BENCH_DIR`` (work folder, kept
at the end when given).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pyarrow.dataset as pds
from astropy.io import fits

from bench.workdir import work_dir
from surveyhub.releases.mock.release import build_mock_release
from surveyhub.releases.mock.survey import lrs_rows, make_plates
from surveyhub.releases.registry import ReleaseStore
from surveyhub.releases.spectrum import read_spectrum


def _size(path: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in path.glob(pattern) if p.is_file())


def _baseline_fits_writes(n: int, out: Path) -> float:
    """Seconds for astropy to write ``n`` 5 x 3909 float32 images as .fits.gz (no LAMOST headers)."""
    rng = np.random.default_rng(0)
    data = rng.normal(1.0, 0.1, size=(5, 3909)).astype(np.float32)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for i in range(n):
        fits.PrimaryHDU(data).writeto(out / f"b{i}.fits.gz", overwrite=True)
    return time.perf_counter() - start


def bench_spectra(work: Path, n_spectra: int) -> dict:
    """Figures 1-3 on a release of ``n_spectra`` spectra with files."""
    root = work / "store"
    start = time.perf_counter()
    build_mock_release(str(root), "BENCH", n_spectra, seed=1, log=lambda _: None)
    build_s = time.perf_counter() - start
    version = ReleaseStore(str(root)).version("BENCH", "v0", {"lamost-wg"})
    lrs_files = sorted(Path(version.path("fits")).rglob("spec-*.fits.gz"))
    n_files = version.manifest.counts["fits_files"]

    baseline_n = min(500, n_spectra)
    baseline_s = _baseline_fits_writes(baseline_n, work / "baseline")

    start = time.perf_counter()
    for path in lrs_files:
        spec = read_spectrum(path)
        assert spec.flux.size == 3909
    fits_s = time.perf_counter() - start

    start = time.perf_counter()
    table = pds.dataset(Path(version.path("spectra")) / "spectra" / "dataset", format="parquet").to_table(
        columns=["obsid", "flux", "ivar", "andmask", "ormask"]
    )
    flux = table["flux"].combine_chunks().flatten().to_numpy().reshape(table.num_rows, -1)
    store_s = time.perf_counter() - start
    assert table.num_rows == len(lrs_files)
    assert flux.shape[1] == 3909

    fits_bytes = _size(Path(version.path("fits")), "**/spec-*.fits.gz")
    store_bytes = _size(Path(version.path("spectra")), "**/*.parquet")
    return {
        "release_spectra": n_spectra,
        "build_seconds": round(build_s, 1),
        "build_rows_per_s": round(n_spectra / build_s, 1),
        "build_fits_files_per_s": round(n_files / build_s, 1),
        "baseline_astropy_fits_files_per_s": round(baseline_n / baseline_s, 1),
        "read_fits_spectra_per_s": round(len(lrs_files) / fits_s, 1),
        "read_columnar_spectra_per_s": round(table.num_rows / store_s, 1),
        "columnar_over_fits_ratio": round(fits_s / len(lrs_files) / (store_s / table.num_rows), 1),
        "bytes_per_spectrum_fits_gz": round(fits_bytes / len(lrs_files)),
        "bytes_per_spectrum_columnar": round(store_bytes / table.num_rows),
    }


def bench_catalog(work: Path, rows: int) -> dict:
    """Figure 4: a catalog-only mock of ``rows`` rows against one plain Parquet file of the same rows."""
    root = work / "catalog-store"
    start = time.perf_counter()
    build_mock_release(str(root), "BIG", rows, fits_files=0, seed=2, workers=2, log=lambda _: None)
    build_s = time.perf_counter() - start
    catalog_bytes = _size(root / "BIG" / "v0" / "catalogs" / "lrs", "**/*.parquet")

    rng = np.random.default_rng(2)
    plates = make_plates(rng, rows)
    start = time.perf_counter()
    chunks = np.array_split(np.arange(len(plates)), max(1, rows // 250_000))
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for which in chunks:
        table = pa.Table.from_pandas(lrs_rows(rng, plates, which), preserve_index=False)
        writer = writer or pq.ParquetWriter(work / "plain.parquet", table.schema)
        writer.write_table(table)
    writer.close()
    plain_s = time.perf_counter() - start
    return {
        "catalog_rows": rows,
        "catalog_mock_seconds": round(build_s, 1),
        "catalog_mock_rows_per_s": round(rows / build_s),
        "baseline_plain_parquet_seconds": round(plain_s, 1),
        "mock_over_plain_time_ratio": round(build_s / plain_s, 2),
        "lrs_catalog_bytes_per_row_v0": round(catalog_bytes / rows, 1),
    }


def main() -> None:
    """Run the benchmark and print its figures (also saved to bench/results/release_store.json)."""
    n_spectra = int(os.environ.get("BENCH_SPECTRA", "10000"))
    rows = int(os.environ.get("BENCH_CATALOG_ROWS", "10000000"))
    with work_dir("surveyhub-bench-") as work:
        figures = bench_spectra(work, n_spectra)
        print(json.dumps(figures, indent=2), flush=True)
        if rows:
            figures |= bench_catalog(work, rows)
            print(json.dumps(figures, indent=2), flush=True)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "release_store.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
