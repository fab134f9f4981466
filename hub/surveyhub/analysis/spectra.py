"""Spectra on the common LRS grid, in bulk: map a function over each, stack them by class or parameter.

Every LRS spectrum in a release's columnar store is one Parquet row whose arrays share one wavelength
grid (:data:`WAVELENGTH`, 3909 pixels), so a partition of spectra becomes a 2-D numpy array without any
resampling, and a stack is a sum of arrays. Work is split by HEALPix partition: each partition is one
Dask task that returns small partial sums, and the partial sums are added in a tree, so memory per task
is one partition whatever the size of the release, and a task lost with its worker is simply run again.

The stack is the inverse-variance weighted mean on the grid; a pixel's weight is its ``ivar``, zero where
the pipeline's ``andmask`` flags it (``mask=None`` keeps those pixels):

>>> import numpy as np
>>> flux = np.array([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]])
>>> ivar = np.array([[1.0, 1.0, 0.0], [3.0, 1.0, 1.0]])
>>> wf, w = weighted_sums(flux, ivar)
>>> (wf / w).tolist(), w.tolist()
([2.5, 3.0, 5.0], [4.0, 2.0, 1.0])
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from surveyhub.analysis.query import is_lsdb
from surveyhub.releases.grid import LRS_NPIX, lrs_wavelength

#: The common LRS wavelength grid (vacuum Angstrom) every columnar spectrum is on.
WAVELENGTH = lrs_wavelength()
_ARRAY_COLUMNS = ("flux", "ivar", "andmask", "ormask")


class GridSpectrum(NamedTuple):
    """One spectrum as a user function receives it: arrays on :data:`WAVELENGTH` and its catalog row."""

    wavelength: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    mask: np.ndarray  # True where the pixel is bad (andmask set, or ivar zero)
    row: Mapping[str, Any]  # the catalog columns: obsid, class, z, snrg, ...


def grid_array(frame: pd.DataFrame, column: str, dtype: Any = np.float64) -> np.ndarray:
    """A list column of a partition as one ``(rows, 3909)`` array, checking every row is on the grid.

    ``dtype=None`` keeps the stored type (masks are only compared with zero: no conversion needed)."""
    values = pa.chunked_array(pa.array(frame[column].array)) if len(frame) else None
    if values is None or len(values) == 0:
        return np.zeros((0, LRS_NPIX), dtype=dtype)
    values = values.combine_chunks()
    lengths = values.value_lengths().to_numpy(zero_copy_only=False)
    if values.null_count or not np.all(lengths == LRS_NPIX):
        raise ValueError(f"column {column!r} holds arrays not on the {LRS_NPIX}-pixel LRS grid")
    flat = values.flatten().to_numpy(zero_copy_only=False)
    if dtype is not None:
        flat = flat.astype(dtype, copy=False)
    return flat.reshape(len(frame), LRS_NPIX)


def good_pixels(frame: pd.DataFrame, ivar: np.ndarray, mask: str | None = "andmask") -> np.ndarray:
    """Pixels to use: a positive, finite ``ivar`` and, unless ``mask`` is None, that mask's bits clear."""
    good = np.isfinite(ivar) & (ivar > 0)
    if mask is not None:
        if mask not in frame.columns:
            raise ValueError(f"no {mask!r} column in the spectra: add it to the query's arrays, or mask=None")
        good &= grid_array(frame, mask, None) == 0
    return good


def weighted_sums(flux: np.ndarray, ivar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sums over spectra of ``ivar * flux`` and of ``ivar`` per pixel: the two halves of the weighted mean."""
    weights = np.where(np.isfinite(flux), ivar, 0.0)
    return np.sum(weights * np.nan_to_num(flux), axis=0), np.sum(weights, axis=0)


def median_normalise(flux: np.ndarray, ivar: np.ndarray, good: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each spectrum divided by its median good flux (ivar times its square), so bright and faint spectra
    count by shape, not brightness; spectra without a positive median get no weight."""
    masked = np.where(good, flux, np.nan)
    with np.errstate(all="ignore"):
        medians = np.nanmedian(masked, axis=1) if masked.size else np.zeros(0)
    usable = np.isfinite(medians) & (medians > 0)
    scale = np.where(usable, medians, 1.0)[:, None]
    return flux / scale, np.where(usable[:, None], ivar * scale**2, 0.0)


def spectra_of(frame: pd.DataFrame, *, mask: str | None = "andmask") -> list[GridSpectrum]:
    """The spectra of one partition as :class:`GridSpectrum` objects (what :func:`map_spectra` passes)."""
    flux = grid_array(frame, "flux")
    ivar = grid_array(frame, "ivar")
    good = good_pixels(frame, ivar, mask)
    # The catalog columns by selection, not drop(): a drop copies the frame, arrays and all.
    rows = frame[[c for c in frame.columns if c not in _ARRAY_COLUMNS]].to_dict("records")
    return [GridSpectrum(WAVELENGTH, flux[i], ivar[i], ~good[i], rows[i]) for i in range(len(frame))]


#: Spectra turned into float64 arrays at a time by :func:`iter_spectra` (the store's row group size).
BLOCK_ROWS = 256


def iter_spectra(
    frame: pd.DataFrame, *, mask: str | None = "andmask", block: int = BLOCK_ROWS
) -> Iterator[GridSpectrum]:
    """The spectra of one partition, as :func:`spectra_of` gives them, converted ``block`` rows at a time.

    A partition can hold 5,000 spectra (``SPECTRA_PIXEL_THRESHOLD``): converted at once, their float64
    flux and ivar alone take 0.3 GB per task, and allocating that much is slower than the conversion itself
    (fresh pages); a block of 256 stays small and is reused memory. The values are the same either way.
    """
    for start in range(0, len(frame), block):
        yield from spectra_of(frame.iloc[start : start + block], mask=mask)


def _map_partition(
    frame: pd.DataFrame, func: Callable[[GridSpectrum], Any], columns: Mapping[str, Any], mask: str | None
) -> pd.DataFrame:
    out: dict[str, list[Any]] = {name: [] for name in columns}
    first = next(iter(columns))
    for spectrum in iter_spectra(frame, mask=mask):
        value = func(spectrum)
        if isinstance(value, Mapping):
            for name in columns:
                out[name].append(value.get(name))
        else:
            out[first].append(value)
            for name in columns:
                if name != first:
                    out[name].append(None)
    result = pd.DataFrame({"obsid": frame["obsid"].to_numpy(np.int64)}, index=frame.index)
    for name, dtype in columns.items():
        result[name] = pd.Series(out[name], index=frame.index, dtype=dtype)
    return result


def _as_dask(spectra: Any) -> Any:
    """An lsdb catalog's Dask DataFrame (a Dask DataFrame is taken as it is)."""
    return spectra.to_dask_dataframe() if is_lsdb(spectra) else spectra


def map_spectra(
    spectra: Any,
    func: Callable[[GridSpectrum], Any],
    *,
    columns: Mapping[str, Any] | None = None,
    mask: str | None = "andmask",
) -> Any:
    """Apply ``func`` to every spectrum of ``spectra`` (from :meth:`Query.open_spectra`), lazily.

    ``func`` takes a :class:`GridSpectrum` and returns one number, or a mapping of several by name; name
    them with their dtypes in ``columns`` (default ``{"value": "float64"}``). Returns a lazy Dask
    DataFrame with ``obsid`` and those columns, one row per spectrum; compute it with
    :func:`surveyhub.analysis.compute` to see progress. ``func`` runs on the workers: define it at the top
    level of a module or notebook cell (closures over large objects ship with every task).
    """
    columns = dict(columns or {"value": "float64"})
    frame = _as_dask(spectra)
    # The output's empty prototype, so Dask never calls ``func`` on made-up data to guess it; the index
    # is the catalog's own (``_meta`` is Dask's documented prototype of a frame).
    meta = pd.DataFrame(
        {"obsid": pd.Series(dtype="int64"), **{n: pd.Series(dtype=t) for n, t in columns.items()}},
        index=frame._meta.index[:0],
    )
    return frame.map_partitions(_map_partition, func, columns, mask, meta=meta)


@dataclass
class Stack:
    """Stacked spectra: per group, the inverse-variance weighted mean flux on :data:`WAVELENGTH`.

    ``flux[i]`` is NaN where no spectrum of group ``labels[i]`` has a good pixel; ``ivar[i]`` is the sum
    of weights (the inverse variance of the mean); ``count[i]`` the spectra that went in.
    """

    labels: list[str]
    flux: np.ndarray
    ivar: np.ndarray
    count: np.ndarray
    by: str | None = None
    bins: list[float] | None = None
    wavelength: np.ndarray = field(default_factory=lambda: WAVELENGTH)

    def __getitem__(self, label: str) -> np.ndarray:
        """The stacked flux of one group."""
        return self.flux[self.labels.index(label)]

    def to_frame(self) -> pd.DataFrame:
        """One row per group (label, count, flux and ivar as lists): what :func:`write_result` writes."""
        return pd.DataFrame(
            {
                "label": self.labels,
                "count": self.count.astype(np.int64),
                "flux": list(self.flux.astype(np.float32)),
                "ivar": list(self.ivar.astype(np.float32)),
            }
        )

    def plot(self, ax: Any = None, **kwargs: Any) -> Any:
        """Plot every group's stack against wavelength (matplotlib); returns the axes."""
        import matplotlib.pyplot as plt

        ax = ax if ax is not None else plt.subplots(figsize=(10, 4))[1]
        for label, flux, n in zip(self.labels, self.flux, self.count, strict=True):
            ax.plot(self.wavelength, flux, lw=0.7, label=f"{label} ({n})", **kwargs)
        ax.set_xlabel("wavelength (vacuum Å)")
        ax.set_ylabel("weighted mean flux")
        ax.legend()
        return ax


def bin_labels(bins: Sequence[float]) -> list[str]:
    """Names of the half-open bins between consecutive edges.

    >>> bin_labels([4000, 5000, 6500.5])
    ['[4000, 5000)', '[5000, 6500.5)']
    """
    return [f"[{a:g}, {b:g})" for a, b in itertools.pairwise(bins)]


def _group_keys(frame: pd.DataFrame, by: str | None, bins: Sequence[float] | None) -> np.ndarray:
    if by is None:
        return np.full(len(frame), "all", dtype=object)
    if by not in frame.columns:
        raise ValueError(f"no column {by!r} to stack by; the spectra have {list(frame.columns)}")
    if bins is None:
        column = frame[by].astype(object)
        return column.where(column.notna(), None).to_numpy()
    values = pd.to_numeric(frame[by], errors="coerce").to_numpy(np.float64, na_value=np.nan)
    index = np.digitize(values, bins) - 1
    labels = np.array(bin_labels(bins), dtype=object)
    inside = np.isfinite(values) & (index >= 0) & (index < len(labels))
    return np.where(inside, labels[np.clip(index, 0, len(labels) - 1)], None)


Partial = dict[Any, tuple[np.ndarray, np.ndarray, int]]


def _partition_sums(
    frame: pd.DataFrame,
    by: str | None,
    bins: Sequence[float] | None,
    normalize: str | None,
    mask: str | None,
) -> Partial:
    """Per group of one partition: sum of ivar*flux, sum of ivar, number of spectra."""
    if len(frame) == 0:
        return {}
    flux = grid_array(frame, "flux")
    ivar = grid_array(frame, "ivar")
    good = good_pixels(frame, ivar, mask)
    if normalize == "median":
        flux, ivar = median_normalise(flux, ivar, good)
    elif normalize is not None:
        raise ValueError(f"normalize must be None or 'median', not {normalize!r}")
    ivar = np.where(good, ivar, 0.0)
    keys = _group_keys(frame, by, bins)
    out: Partial = {}
    for key in pd.unique(keys):
        if key is None or (isinstance(key, float) and math.isnan(key)):
            continue  # no class, or outside every bin
        rows = keys == key
        wf, w = weighted_sums(flux[rows], ivar[rows])
        out[key] = (wf, w, int(rows.sum()))
    return out


def _merge(*partials: Partial) -> Partial:
    total: Partial = {}
    for partial in partials:
        for key, (wf, w, n) in partial.items():
            if key in total:
                twf, tw, tn = total[key]
                total[key] = (twf + wf, tw + w, tn + n)
            else:
                total[key] = (wf.copy(), w.copy(), n)
    return total


def _finish(total: Partial, by: str | None, bins: Sequence[float] | None) -> Stack:
    labels = bin_labels(bins) if bins is not None else sorted(total, key=str)
    flux = np.full((len(labels), LRS_NPIX), np.nan)
    ivar = np.zeros((len(labels), LRS_NPIX))
    count = np.zeros(len(labels), dtype=np.int64)
    for i, label in enumerate(labels):
        if label in total:
            wf, w, n = total[label]
            with np.errstate(invalid="ignore", divide="ignore"):
                flux[i] = np.where(w > 0, wf / w, np.nan)
            ivar[i], count[i] = w, n
    return Stack(
        [str(label) for label in labels], flux, ivar, count, by, None if bins is None else list(bins)
    )


def stack_spectra(
    spectra: Any,
    by: str | None = None,
    *,
    bins: Sequence[float] | None = None,
    normalize: str | None = None,
    mask: str | None = "andmask",
    compute: bool = True,
    progress: bool = True,
) -> Any:
    """Stack ``spectra`` (from :meth:`Query.open_spectra`) into one mean spectrum per group.

    ``by`` names a column to group by (``"class"``, ``"subclass"``); with ``bins`` (edges) it is a numeric
    column binned into half-open intervals (``by="teff", bins=[4000, 5000, 6000]``; rows outside, or
    missing, are left out). ``normalize="median"`` divides each spectrum by its median first.

    Returns a :class:`Stack`, computed with progress shown (on the current Dask client if there is one);
    ``compute=False`` returns the lazy ``dask.delayed`` object instead, to compute with others.
    """
    import dask

    if bins is not None:
        bins = [float(b) for b in bins]
        if by is None or len(bins) < 2 or np.any(np.diff(bins) <= 0):
            raise ValueError("bins need a column (by=...) and at least two increasing edges")
    partitions = _as_dask(spectra).to_delayed()
    partials = [dask.delayed(_partition_sums)(p, by, bins, normalize, mask) for p in partitions]
    while len(partials) > 1:  # a tree, so no task adds up more than eight partials
        partials = [dask.delayed(_merge)(*partials[i : i + 8]) for i in range(0, len(partials), 8)]
    total = partials[0] if partials else dask.delayed(dict)()
    result = dask.delayed(_finish)(total, by, bins)
    if not compute:
        return result
    from surveyhub.analysis.cluster import compute as run

    return run(result, progress=progress)[0]
