"""hats' numba kernels are compiled once per account, not once per process (surveyhub.releases.lsdb_open).

Each check runs in a fresh Python process, as a notebook kernel, a Voila app or a Dask worker would: the
first one joins spectra with their catalog (the kernels compile and are written to the cache), the
second does the same and must load every kernel it runs from that cache, compiling none.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from surveyhub.releases.registry import ReleaseStore

JOIN = textwrap.dedent(
    """
    import json, sys
    from surveyhub.releases.registry import ReleaseStore
    from surveyhub.releases.lsdb_open import cache_hats_kernels
    from hats.pixel_tree import moc_filter, pixel_alignment

    version = ReleaseStore(sys.argv[1]).version("DEMO", "v0", {"lamost-wg"})
    spectra = version.open_spectra(columns=["obsid", "ra", "dec"])
    joined = spectra.join(version.open_catalog("lrs"), left_on="obsid", right_on="obsid")
    spectra.cone_search(10.0, 20.0, 3600.0)
    stats = {}
    for module in (pixel_alignment, moc_filter):
        for name, kernel in vars(module).items():
            if hasattr(kernel, "stats"):
                stats[name] = {
                    "hits": sum(kernel.stats.cache_hits.values()),
                    "misses": sum(kernel.stats.cache_misses.values()),
                }
    print(json.dumps({"cached": cache_hats_kernels(), "partitions": joined.npartitions, "stats": stats}))
    """
)


def _run(store: ReleaseStore, cache: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", JOIN, store.root],
        env=os.environ | {"NUMBA_CACHE_DIR": str(cache)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_second_process_loads_hats_kernels_from_the_cache(mock_store: ReleaseStore, tmp_path: Path) -> None:
    cache = tmp_path / "numba-cache"
    first = _run(mock_store, cache)
    assert first["cached"] >= 4, first  # the alignment kernels and the MOC filter
    assert first["partitions"] > 0
    compiled = {name for name, s in first["stats"].items() if s["misses"]}
    assert {"perform_align_trees", "perform_filter_by_moc"} <= compiled, first
    assert list(cache.rglob("*.nbi")), "numba wrote no cache index"

    second = _run(mock_store, cache)
    assert second["partitions"] == first["partitions"]
    assert not [name for name, s in second["stats"].items() if s["misses"]], second  # nothing compiled
    # The entry points come from the cache (their helpers compiled into them, so are never called).
    assert second["stats"]["perform_align_trees"]["hits"] >= 1, second
    assert second["stats"]["perform_filter_by_moc"]["hits"] >= 1, second
