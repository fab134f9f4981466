"""Opening lsdb catalogs without paying for hats' compiled kernels in every process.

hats aligns the HEALPix trees of two catalogs (every lsdb ``join``, ``crossmatch``) and filters them by
MOC (every cone search) with numba kernels declared ``@njit`` without ``cache=True``: each new Python
process compiles them again on first use, which took 11.5 s of an 11.8 s ``Query.open_spectra()`` here
(one kernel, a join of spectra with their catalog). A notebook kernel, a Voila app and the archive
service each paid that on their first query.

numba keeps compiled code on disk for dispatchers that have caching on (its own ``enable_caching``, what
``cache=True`` calls), so :func:`open_catalog` turns it on for those kernels before lsdb runs them. numba
chooses where (``numba.core.caching``): ``__pycache__`` beside hats when that is writable (root's
install), else the account's own ``~/.cache/numba``, so a user's processes share their own cache and no
account ever loads compiled code written by another. The first process of each account compiles once;
the next ones load in milliseconds (``bench/analysis.py`` prints both).
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def cache_hats_kernels() -> int:
    """Turn numba's on-disk cache on for hats' kernels (once per process); returns how many have it."""
    from hats.pixel_tree import moc_filter, pixel_alignment
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    kernels = [
        value
        for module in (pixel_alignment, moc_filter)
        for value in vars(module).values()
        if isinstance(value, Dispatcher)
    ]
    cached = 0
    for kernel in kernels:
        if isinstance(kernel._cache, NullCache):  # not cached yet (a later hats may declare cache=True)
            try:
                kernel.enable_caching()
            except RuntimeError:  # numba found no writable cache folder: compile in memory, as before
                continue
        cached += 1
    return cached


def open_catalog(path: Any, **kwargs: Any) -> Any:
    """``lsdb.open_catalog`` with hats' kernels cached on disk (see the module)."""
    import lsdb

    cache_hats_kernels()
    return lsdb.open_catalog(path, **kwargs)
