"""The JupyterLab extension's import benchmark (issue 5): imports against a plain fsspec copy.

An import of ``BENCH_LAB_SPECTRA`` spectra (1,000 by default, one FITS file each) from a mock release into a
``file://`` space and into an ``s3://`` space (moto's server), through the real engine the server extension
runs (:class:`surveyhub_lab.imports.ImportManager`, talking to a real ``surveyhub archive``), against the
plainest fsspec copy of the same files to the same storage in the same run:

- ``file://``: ``LocalFileSystem.copy(sources, targets)`` (``shutil.copyfile`` per file);
- ``s3://``: ``S3FileSystem.put(sources, targets)`` (s3fs's own concurrent upload).

The import does more than the copy: it asks the archive who may read what, looks the obsids up in the
version's index, fetches their catalog rows, checks sizes and quota, hashes every file, makes each appear
under its final name only once verified, saves its state, and writes the manifest. The ratio is the plain
copy's time over the import's (1.0: as fast; the target is at least 0.8), end to end and for the copying
phase alone. Runs alternate (plain, import, plain, import, ...) so drift on a shared machine hits both.

Into ``file://`` the plain copy is ``shutil.copyfile``, which Linux does in the kernel (``sendfile``): the
bytes never reach Python and nothing checks them. To show how much of the gap any verified copy must pay,
the bench also times a bare verified loop (read, sha256, write, read back) beside it.

Environment: ``BENCH_LAB_SPECTRA`` (1000), ``BENCH_LAB_REPEATS`` (5), ``BENCH_DIR`` (a temp dir, removed
at the end unless given).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import fsspec
from surveyhub_lab.archive_client import ArchiveClient
from surveyhub_lab.imports import ImportManager
from surveyhub_lab.spaces import Spaces

from bench.workdir import work_dir
from surveyhub.releases.mock.release import build_mock_release
from surveyhub.releases.registry import ReleaseStore, ReleaseVersion
from tests.support.archive import ALICE, archive_server
from tests.support.s3 import moto_server, s3_options

RELEASE, VERSION = "BENCH", "v0"


def _sources(store: str, n: int) -> tuple[list[int], list[str]]:
    """The first ``n`` LRS obsids of v0 that have files, and those files."""
    import pyarrow.dataset as pds

    version = ReleaseVersion(ReleaseStore(store), RELEASE, VERSION)
    info = version.manifest.catalogs["lrs"]
    index = pds.dataset(version.path(info.path, f"lrs_{info.index}", "dataset", "index"), format="parquet")
    obsids = sorted(index.to_table(columns=["obsid"])["obsid"].to_pylist())
    located = version.locate_spectra(obsids)
    found = [
        (o, version.path(located[o].relpath))
        for o in obsids
        if Path(version.path(located[o].relpath)).exists()
    ]
    if len(found) < n:
        raise RuntimeError(f"the mock release has {len(found)} LRS files, fewer than {n}")
    return [o for o, _ in found[:n]], [p for _, p in found[:n]]


def _plain_copy(kind: str, sources: list[str], space_url: str, options: dict[str, Any], run: str) -> float:
    """Seconds for the plain fsspec copy of ``sources`` into ``<space>/<run>/``."""
    fs, root = fsspec.core.url_to_fs(space_url, **options)
    targets = [f"{root.rstrip('/')}/{run}/{Path(s).name}" for s in sources]
    start = time.perf_counter()
    if kind == "file":
        fs.makedirs(f"{root.rstrip('/')}/{run}", exist_ok=True)
        fs.copy(sources, targets)
    else:
        fs.put(sources, targets)
    return time.perf_counter() - start


async def _import(
    archive_url: str, store: str, space_url: str, options: dict[str, Any], obsids: list[int], run: str
) -> tuple[float, float]:
    """Seconds for the engine's import (end to end, and its copying phase alone)."""
    manager = ImportManager(
        archive=ArchiveClient(archive_url, ALICE),
        spaces=Spaces(space_url, {}, options),
        store_url=store,
    )
    # The server reads its earlier imports once, when the panel first lists them (the Imports tab does
    # on opening), not on each click: a fresh engine per run would charge that to every import.
    await manager.load()
    start = time.perf_counter()
    job = await manager.create(
        {"release": RELEASE, "version": VERSION, "obsids": obsids, "destination": {"folder": run}}
    )
    await manager.wait(job.id)
    total = time.perf_counter() - start
    if job.status != "completed" or len(job.done) != len(obsids):
        raise RuntimeError(f"the import did not complete: {job.status} {job.error}")
    copying = (job.run_ended or 0.0) - job.run_started
    await manager.shutdown()
    return total, copying


def _verified_floor(sources: list[str], folder: Path) -> float:
    """Seconds for the least any verified copy does, with nothing else: per file, in one thread, read it,
    sha256 it, write it under its name, read it back and compare. No plan, no archive, no atomic naming,
    no state or manifest: what the import's copying could cost at best, beside the plain copy."""
    folder.mkdir(parents=True)
    start = time.perf_counter()
    for source in sources:
        with open(source, "rb") as fh:
            data = fh.read()
        hashlib.sha256(data).hexdigest()
        target = folder / Path(source).name
        with open(target, "w+b") as out:
            out.write(data)
            out.flush()
            out.seek(0)
            if out.read() != data:
                raise OSError(f"{target}: reads back different bytes")
    return time.perf_counter() - start


def _check(space_url: str, options: dict[str, Any], run: str, n: int) -> None:
    fs, root = fsspec.core.url_to_fs(space_url, **options)
    fs.invalidate_cache()
    manifest = json.loads(fs.cat_file(f"{root.rstrip('/')}/{run}/manifest.json"))
    assert len(manifest["files"]) == n, "the manifest does not list every file"


def main() -> None:
    """Run the benchmark and print its figures."""
    n = int(os.environ.get("BENCH_LAB_SPECTRA", "1000"))
    repeats = int(os.environ.get("BENCH_LAB_REPEATS", "5"))
    with work_dir("surveyhub-bench-lab-") as work:
        store = str(work / "store")
        start = time.perf_counter()
        if not (Path(store) / RELEASE / VERSION / "release.toml").exists():  # a given BENCH_DIR keeps it
            build_mock_release(store, RELEASE, n, fits_files=n, seed=5, log=lambda _: None)
        build_s = time.perf_counter() - start
        obsids, sources = _sources(store, n)
        size = sum(Path(p).stat().st_size for p in sources)
        (work / "archive").mkdir(exist_ok=True)
        figures: dict[str, dict[str, list[float]]] = {}
        with (
            archive_server(store, work / "archive", allow_anonymous=False) as archive_url,
            moto_server() as s3,
        ):
            options_s3 = s3_options(s3)
            fsspec.filesystem("s3", skip_instance_cache=True, **options_s3).mkdir("cloud")
            spaces = {
                "file": ((work / "cloud" / "users" / "alice").as_uri() + "/", {}),
                "s3": ("s3://cloud/users/alice/", options_s3),
            }
            shutil.rmtree(work / "cloud", ignore_errors=True)
            (work / "cloud" / "users" / "alice").mkdir(parents=True)
            # one import first, untimed: the archive derives its serving copies on the first search
            asyncio.run(_import(archive_url, store, *spaces["file"], obsids[:10], "warm-up"))
            for kind, (url, options) in spaces.items():
                got = figures.setdefault(kind, {"plain": [], "import": [], "copying": [], "floor": []})
                for r in range(repeats):
                    got["plain"].append(_plain_copy(kind, sources, url, options, f"plain-{r}"))
                    if kind == "file":
                        got["floor"].append(_verified_floor(sources, work / "cloud" / f"floor-{r}"))
                    total, copying = asyncio.run(
                        _import(archive_url, store, url, options, obsids, f"import-{r}")
                    )
                    _check(url, options, f"import-{r}", n)
                    got["import"].append(total)
                    got["copying"].append(copying)

    mb = size / 1e6
    print(f"\n== lab import: {n} spectra ({mb:.1f} MB) from {RELEASE}/{VERSION}, median of {repeats} ==")
    print(f"(release built in {build_s:.0f} s)")
    print(
        f"{'':10}{'plain s':>9}{'import s':>10}{'copying s':>11}{'plain MB/s':>12}{'import MB/s':>13}"
        f"{'ratio':>7}{'ratio copying':>15}"
    )
    floor: list[float] = []
    for kind, got in figures.items():
        plain, total, copying = (statistics.median(got[k]) for k in ("plain", "import", "copying"))
        floor = got["floor"] or floor
        # each import against the plain copy run just before it, so load on a shared machine cancels out
        ratio = statistics.median(p / t for p, t in zip(got["plain"], got["import"], strict=True))
        ratio_copying = statistics.median(p / c for p, c in zip(got["plain"], got["copying"], strict=True))
        print(
            f"{kind + '://':10}{plain:>9.2f}{total:>10.2f}{copying:>11.2f}"
            f"{mb / plain:>12.1f}{mb / total:>13.1f}{ratio:>7.2f}{ratio_copying:>15.2f}"
        )
    print(
        "ratio: plain copy time / import time, median over runs side by side (end to end; copying phase "
        "alone); target at least 0.8"
    )
    if floor:
        plain_file = figures["file"]["plain"]
        ratio_floor = statistics.median(p / f for p, f in zip(plain_file, floor, strict=True))
        print(
            f"verified floor (file://: read, sha256, write, read back; one thread, nothing else): "
            f"{statistics.median(floor):.2f} s, ratio {ratio_floor:.2f}: the best any verified copy reaches "
            "against an unverified in-kernel copy here"
        )


if __name__ == "__main__":
    main()
