"""What the archive serves for one spectrum, and for many: LAMOST's CSV, spectrum plots, catalog info, tars.

These functions back the URLs of the LAMOST data-release sites that existing user scripts call
(``.../spectrum/fits2csv?obsid=``, ``.../spectrum/png?obsid=``, ``.../spectrum/info``), the panel's
thumbnails and previews, and bulk downloads. They take a :class:`~surveyhub.releases.spectrum.Spectrum`
(whatever file layout it came from) or a catalog row, and return bytes, so the web layer stays a thin
shell and everything here can be tested without a server.

- :func:`spectrum_csv`: LAMOST's ``fits2csv`` table, ``Wavelength,Flux,FluxSmooth7,FluxSmooth15``;
- :func:`spectrum_png` and :func:`line_markers`: the spectrum plot (full size or thumbnail), with the main
  lines marked at the catalog redshift;
- :class:`PngCache`: rendered plots kept on disk, because a panel asks for the same thumbnails again and
  again;
- :func:`spectrum_info`: a catalog row as JSON-ready values;
- :func:`stream_tar`: many files as one tar, produced chunk by chunk while it is sent.

A small spectrum with one masked pixel (``ivar == 0``, flux 0): the smoothed columns leave it out instead
of averaging its zero in, and the windows are cut short at the ends (pixel 0: the mean of pixels 0-3):

>>> wave = np.linspace(5000.0, 5010.0, 11)
>>> flux = np.arange(1.0, 12.0)
>>> flux[5] = 0.0
>>> spec = Spectrum(wavelength=wave, flux=flux, ivar=np.where(flux > 0, 1.0, 0.0))
>>> rows = spectrum_csv(spec).decode().splitlines()
>>> rows[:3]
['Wavelength,Flux,FluxSmooth7,FluxSmooth15', '5000.0000,1.0,2.5,4.285714', '5001.0000,2.0,3.0,4.875']
>>> rows[6]  # the masked pixel: the mean of its six good neighbours 3, 4, 5, 7, 8, 9
'5005.0000,0.0,6.0,6.0'

Line markers at a galaxy's redshift, limited to the plotted range (names use Greek letters, H-alpha is
``"H\N{GREEK SMALL LETTER ALPHA}"``):

>>> [(name, round(w, 1)) for name, w in line_markers("GALAXY", 0.1, (5400.0, 6000.0))]
[('[O III]', 5456.3), ('[O III]', 5509.1), ('Mg b', 5685.6), ('Mg b', 5691.5), ('Mg b', 5703.5)]

Catalog rows become JSON-ready: numpy scalars turn into Python numbers, NaN into ``None``, while LAMOST's
``-9999`` sentinels stay as LAMOST publishes them:

>>> spectrum_info({"obsid": np.int64(101013), "teff": np.float32("nan"), "logg": np.float64(-9999.0)})
{'obsid': 101013, 'teff': None, 'logg': -9999.0}

Files streamed as one tar, with a manifest at the end:

>>> import io, tarfile
>>> data = b"SIMPLE  =" + bytes(100)
>>> chunks = stream_tar([("fits/20111024/F5902/spec-55859-F5902_sp01-013.fits.gz", lambda: data, len(data))],
...                     mtime=0)
>>> with tarfile.open(fileobj=io.BytesIO(b"".join(chunks)), mode="r|*") as tar:
...     for member in tar:
...         print(member.name, member.size, member.mtime)
spec-55859-F5902_sp01-013.fits.gz 109 0
manifest.csv 131 0
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import io
import itertools
import math
import os
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np

from surveyhub.releases.spectrum import Spectrum

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "CSV_HEADER",
    "PNG_SIZES",
    "PngCache",
    "SourceSizeMismatch",
    "TarEntry",
    "line_markers",
    "smooth_flux",
    "spectrum_csv",
    "spectrum_info",
    "spectrum_png",
    "stream_tar",
]

# --- CSV ----------------------------------------------------------------------------------------------------

#: The header line of LAMOST's ``fits2csv``: scripts written against the LAMOST sites look columns up by it.
CSV_HEADER = "Wavelength,Flux,FluxSmooth7,FluxSmooth15"
#: Boxcar widths (pixels) of the two smoothed columns.
SMOOTH_WIDTHS = (7, 15)
#: A wavelength step this many times the median step splits a spectrum into separately smoothed and plotted
#: segments: the gap between the MRS blue (4900-5370 A) and red (6300-6850 A) arms is ~7000 median steps.
_SEGMENT_GAP = 5.0


def good_pixels(spec: Spectrum) -> np.ndarray:
    """Pixels with a measurement: ``ivar > 0`` and finite flux.

    ``ivar == 0`` is how LAMOST flags what it could not measure (the ends of the spectrum, bad columns, the
    dichroic region of pilot spectra, pixels masked in every exposure); their flux is 0 or garbage (the
    pilot sample swings by hundreds there), so neither the smoothing nor the plot's y range may use it.
    """
    return (spec.ivar > 0) & np.isfinite(spec.flux)


def smooth_flux(flux: np.ndarray, width: int, good: np.ndarray | None = None) -> np.ndarray:
    """The flux averaged over a centred window of ``width`` pixels, counting only ``good`` pixels.

    LAMOST does not document how its ``fits2csv`` smooths at the ends or over masked pixels, so these are
    our choices, and why:

    - a *boxcar* (moving average), because that is what the column names say and what scripts written
      against LAMOST's CSV assume;
    - masked pixels are left out of every window (normalised convolution: sum of good flux / number of good
      pixels), because their zeros or garbage would drag the curve around every bad column and at the
      ends;
    - at the ends the window is cut short (the mean of the pixels that exist), so the first and last pixels
      get a value of the same kind as the others, not a zero-padded dip;
    - a window without a single good pixel gets the plain mean of its finite flux (0 in the zero-filled
      red tail), so the column is always a number and CSV readers need no NaN handling.

    >>> smooth_flux(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), 3).tolist()
    [1.5, 2.0, 3.0, 4.0, 4.5]
    >>> smooth_flux(np.array([1.0, 0.0, 1.0]), 3, good=np.array([True, False, True])).tolist()
    [1.0, 1.0, 1.0]
    """
    if width < 1 or width % 2 == 0:
        raise ValueError(f"the smoothing width must be a positive odd number of pixels, not {width}")
    values = np.asarray(flux, dtype=np.float64)
    finite = np.isfinite(values)
    good = finite if good is None else np.asarray(good, dtype=bool) & finite
    kernel, half, n = np.ones(width), width // 2, values.size
    if n == 0:
        return values.copy()

    def window_sum(x: np.ndarray) -> np.ndarray:
        # "full" then the centred slice: a window cut short at the ends, for any length (mode="same"
        # returns the kernel's length when the spectrum is shorter than the kernel)
        return np.convolve(x, kernel, mode="full")[half : half + n]

    total = window_sum(np.where(good, values, 0.0))
    count = window_sum(good.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        smoothed = total / count
        empty = count == 0
        if np.any(empty):
            plain = window_sum(np.where(finite, values, 0.0)) / window_sum(finite.astype(np.float64))
            smoothed[empty] = plain[empty]
    return smoothed


def _segments(wavelength: np.ndarray) -> list[slice]:
    """Runs of pixels without a wavelength gap: one for LRS, one per arm for MRS.

    Smoothing across the MRS arm gap would average 5350 A with 6300 A, and a plotted line would bridge it;
    gaps are found in the data rather than from ``spec.arms`` so spectra built in memory behave the same.
    """
    n = wavelength.size
    if n < 3:
        return [slice(0, n)]
    with np.errstate(invalid="ignore", divide="ignore"):
        steps = np.diff(np.log(wavelength))
    median = float(np.median(steps))
    if not median > 0:
        return [slice(0, n)]
    edges = [0, *(np.flatnonzero(steps > _SEGMENT_GAP * median) + 1).tolist(), n]
    return [slice(a, b) for a, b in itertools.pairwise(edges)]


def _smoothed(spec: Spectrum, width: int, good: np.ndarray) -> np.ndarray:
    out = np.empty(spec.npix, dtype=np.float64)
    for seg in _segments(spec.wavelength):
        out[seg] = smooth_flux(spec.flux[seg], width, good[seg])
    return out


def spectrum_csv(spec: Spectrum) -> bytes:
    """LAMOST's ``fits2csv``: ``Wavelength,Flux,FluxSmooth7,FluxSmooth15``, one row per pixel.

    Wavelength is vacuum Angstrom with 4 decimals (1e-8 relative, far below a pixel); flux is written as the
    shortest text that reads back as the file's float32 exactly; the smoothed columns (see
    :func:`smooth_flux`) are rounded to float32 the same way. For MRS the rows are the blue coadd then the
    red one, in wavelength order, each arm smoothed on its own. Lines end in ``\\n``.
    """
    good = good_pixels(spec)
    columns = [
        [format(w, ".4f") for w in spec.wavelength.tolist()],
        [str(f) for f in spec.flux.astype(np.float32)],
    ]
    for width in SMOOTH_WIDTHS:
        columns.append([str(f) for f in _smoothed(spec, width, good).astype(np.float32)])
    rows = map(",".join, zip(*columns, strict=True))
    return "\n".join([CSV_HEADER, *rows, ""]).encode("ascii")


# --- line markers -------------------------------------------------------------------------------------------


class _Line(NamedTuple):
    name: str
    rest: float  # vacuum Angstrom
    emission: bool


# Rest wavelengths in vacuum (LAMOST wavelengths are vacuum): optical lines converted from their standard air
# values with Morton (2000), UV lines as in the SDSS line list.
_BALMER_ABS = (
    _Line("H\N{GREEK SMALL LETTER EPSILON}", 3971.19, False),
    _Line("H\N{GREEK SMALL LETTER DELTA}", 4102.89, False),
    _Line("H\N{GREEK SMALL LETTER GAMMA}", 4341.69, False),
    _Line("H\N{GREEK SMALL LETTER BETA}", 4862.68, False),
    _Line("H\N{GREEK SMALL LETTER ALPHA}", 6564.61, False),
)
_STELLAR_METALS = (
    _Line("Ca II K", 3934.77, False),
    _Line("Ca II H", 3969.59, False),
    _Line("G band", 4305.61, False),
    _Line("Mg b", 5168.76, False),
    _Line("Mg b", 5174.12, False),
    _Line("Mg b", 5185.04, False),
    _Line("Na D", 5891.58, False),
    _Line("Na D", 5897.55, False),
)
_CA_TRIPLET = (
    _Line("Ca II", 8500.36, False),
    _Line("Ca II", 8544.44, False),
    _Line("Ca II", 8664.52, False),
)
_NARROW_EMISSION = (
    _Line("[O II]", 3727.09, True),
    _Line("[O II]", 3729.88, True),
    _Line("[Ne III]", 3869.86, True),
    _Line("H\N{GREEK SMALL LETTER DELTA}", 4102.89, True),
    _Line("H\N{GREEK SMALL LETTER GAMMA}", 4341.69, True),
    _Line("H\N{GREEK SMALL LETTER BETA}", 4862.68, True),
    _Line("[O III]", 4960.29, True),
    _Line("[O III]", 5008.24, True),
    _Line("H\N{GREEK SMALL LETTER ALPHA}", 6564.61, True),
    _Line("[N II]", 6549.86, True),
    _Line("[N II]", 6585.27, True),
    _Line("[S II]", 6718.29, True),
    _Line("[S II]", 6732.68, True),
)
_QSO_UV = (
    _Line("Ly\N{GREEK SMALL LETTER ALPHA}", 1215.67, True),
    _Line("N V", 1240.81, True),
    _Line("C IV", 1549.48, True),
    _Line("C III]", 1908.73, True),
    _Line("Mg II", 2799.49, True),
    _Line("[Ne V]", 3426.84, True),
)
_LINES: dict[str, tuple[_Line, ...]] = {
    "STAR": _BALMER_ABS + _STELLAR_METALS + _CA_TRIPLET,
    "GALAXY": _STELLAR_METALS + _NARROW_EMISSION,
    # broad-line QSOs: [N II] and [S II] are lost in the wings of H-alpha, so they are not marked
    "QSO": _QSO_UV + tuple(line for line in _NARROW_EMISSION if line.name not in ("[N II]", "[S II]")),
}
_CLASS_ALIASES = {"GALAXY": "GALAXY", "GAL": "GALAXY", "QSO": "QSO", "QUASAR": "QSO"}


def _redshift(z: Any) -> float | None:
    """A usable redshift, or None for missing ones (None, NaN, LAMOST's -9999, anything with 1+z <= 0)."""
    if z is None or isinstance(z, bool):
        return None
    try:
        value = float(z)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > -1.0 else None


def _line_set(klass: str | None) -> str:
    return _CLASS_ALIASES.get(str(klass or "").strip().upper(), "STAR")


def line_markers(
    klass: str | None, z: float | None, wavelength_range: tuple[float, float]
) -> list[tuple[str, float]]:
    """The lines to mark on a plot: ``(name, observed vacuum wavelength)`` inside ``wavelength_range``.

    ``klass`` is the LAMOST class: ``GALAXY`` gets the galaxy absorption features (Ca II H&K, G band, Mg b,
    Na D) and the narrow emission lines ([O II], [Ne III], Balmer, [O III], H-alpha, [N II], [S II]); ``QSO``
    the broad UV lines (Ly-alpha, N V, C IV, C III], Mg II, [Ne V]) and the optical emission lines; anything
    else (``STAR``, ``Unknown``, ``None``, or ``"LRS"``/``"MRS"`` for spectra without a class, which are
    mostly stars) the stellar absorption lines: Balmer, Ca II H&K, G band, Mg b, Na D and the Ca II triplet.

    Rest wavelengths are shifted by ``1 + z``. A galaxy or QSO without a usable redshift (None, NaN, -9999)
    gets no markers: at rest they would sit where the lines are not. A star without one is drawn at rest,
    which is within a few Angstrom of where stellar lines are.

    The result is sorted by wavelength; close lines (doublets, the Mg b triplet) are separate entries.
    """
    line_set = _line_set(klass)
    shift = _redshift(z)
    if shift is None:
        if line_set != "STAR":
            return []
        shift = 0.0
    low, high = sorted(float(w) for w in wavelength_range)
    markers = []
    for line in _LINES[line_set]:
        observed = line.rest * (1.0 + shift)
        if low <= observed <= high:
            markers.append((line.name, observed))
    return sorted(markers, key=lambda marker: marker[1])


# --- PNG ----------------------------------------------------------------------------------------------------

PngSize = Literal["full", "thumb"]
#: Pixel sizes (width, height) of the two renderings.
PNG_SIZES: dict[str, tuple[int, int]] = {"full": (1000, 500), "thumb": (240, 120)}
_DPI = 100
#: Matplotlib's object-oriented API is safe for separate figures, but fonts, text layout and mathtext caches
#: are shared module state. Rendering is CPU-bound under the GIL anyway, so one lock costs (almost) no
#: throughput and rules out the rare corrupted glyph or crash under a multi-threaded server.
_RENDER_LOCK = threading.Lock()

_FLUX_COLOR = "#1b2a49"
_MASKED_COLOR = "#c9c9c9"
_SMOOTH_COLOR = "#f28e2b"
_EMISSION_COLOR = "#c0392b"
_ABSORPTION_COLOR = "#2471a3"


def _number(value: Any) -> float | None:
    """A header or catalog number to show, or None for missing ones (None, NaN, LAMOST's -9999/-999)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number not in (-9999.0, -999.0) else None


def _title(spec: Spectrum) -> tuple[str, str]:
    """The two title lines: who (designation, obsid, kind) and what (class, z, SNR)."""
    meta = spec.meta
    first = [str(meta.get("designation") or spec.source or "LAMOST spectrum")]
    if meta.get("obsid") is not None:
        first.append(f"obsid {meta['obsid']}")
    first.append(spec.kind)
    second = []
    klass = " ".join(str(meta[k]) for k in ("class", "subclass") if meta.get(k) not in (None, ""))
    if klass:
        second.append(klass)
    z = _redshift(meta.get("z"))
    if z is not None:
        text = f"z = {z:.6f}" if abs(z) < 0.1 else f"z = {z:.4f}"
        z_err = _number(meta.get("z_err"))
        second.append(text + (f" ± {z_err:.6f}" if z_err is not None and abs(z) < 0.1 else ""))
    snr = [(band, _number(meta.get(f"snr{band}"))) for band in "gr"]
    if any(value is not None for _, value in snr):
        second.append("SNR " + "  ".join(f"{band} {value:.2f}" for band, value in snr if value is not None))
    return "  ·  ".join(first), "  ·  ".join(second)


def _y_limits(
    values: np.ndarray, good: np.ndarray, percentiles: tuple[float, float], headroom: float
) -> tuple[float, float]:
    """A y range from percentiles of the good pixels, so cosmic rays and dead-pixel spikes run off the plot
    instead of flattening the spectrum (with too few good pixels: of all finite ones). ``headroom`` adds
    that fraction of the range at the top, where the line labels go, so they do not hide the data."""
    finite = np.isfinite(values)
    chosen = values[good & finite] if np.count_nonzero(good & finite) >= 10 else values[finite]
    if chosen.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(chosen, percentiles))
    span = high - low
    if not span > 0:
        span = max(abs(high) * 0.2, 1.0)
        low, high = low - span / 2, high + span / 2
    return low - 0.06 * span, high + (0.06 + headroom) * span


def _label_clusters(markers: list[tuple[str, float]], min_gap: float) -> list[tuple[list[str], float]]:
    """Lines closer than ``min_gap`` (data units) share one label ("[N II] H-alpha", "Mg b"), so labels of
    doublets and blends do not print over each other; each label sits at its lines' mean wavelength."""
    clusters: list[list[tuple[str, float]]] = []
    for name, wave in sorted(markers, key=lambda m: m[1]):
        if clusters and wave - clusters[-1][-1][1] < min_gap:
            clusters[-1].append((name, wave))
        else:
            clusters.append([(name, wave)])
    return [
        (list(dict.fromkeys(name for name, _ in cluster)), float(np.mean([w for _, w in cluster])))
        for cluster in clusters
    ]


def _draw_markers(ax: Axes, markers: list[tuple[str, float]], emission: set[str], px_per_unit: float) -> None:
    """Dashed lines at the markers, labelled at the top of the axes (emission red, absorption blue)."""
    for name, wave in markers:
        color = _EMISSION_COLOR if name in emission else _ABSORPTION_COLOR
        ax.axvline(wave, color=color, linewidth=0.7, linestyle=(0, (3, 3)), alpha=0.55, zorder=1)
    for names, wave in _label_clusters(markers, min_gap=11.0 / px_per_unit):
        ax.text(
            wave,
            0.985,
            " ".join(names),
            transform=ax.get_xaxis_transform(),
            rotation=90,
            ha="center",
            va="top",
            fontsize=7,
            color=_EMISSION_COLOR if any(name in emission for name in names) else _ABSORPTION_COLOR,
            bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.7},
            zorder=4,
        )


def _figure(width: int, height: int) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def spectrum_png(spec: Spectrum, *, size: PngSize = "full", lines: bool = True) -> bytes:
    """The spectrum plotted as a PNG, as on the LAMOST site's spectrum page, or as a thumbnail.

    ``full`` (1000 x 500 px): flux against vacuum wavelength with a light boxcar-smoothed curve (15 px, see
    :func:`smooth_flux`) over it; masked pixels (``ivar == 0``) in light grey instead of the flux colour; a
    y range from the 0.5-99.5 percentiles of the good pixels (outliers run off the plot instead of
    flattening it); a title with designation, obsid, class/subclass, z and SNR g/r. With ``lines`` the main
    lines (:func:`line_markers` for the spectrum's class at its catalog redshift) are dashed and labelled,
    emission red, absorption blue, in headroom kept free above the data. MRS spectra get one panel per
    arm, each with its own y range: the arms are not on one flux scale.

    ``thumb`` (240 x 120 px): no title, ticks or labels (unreadable at that size), faint unlabelled line
    markers, and the 15-pixel smoothed flux rather than the raw one: one thumbnail pixel spans ~16 LRS
    pixels, so the smoothing hides nothing visible but keeps noisy spectra from turning into a solid band.
    A render takes ~15 ms.

    Same input, same bytes: the PNG carries no time stamp or software version, so caches and ETags hold.
    """
    if size not in PNG_SIZES:
        raise ValueError(f"size must be one of {sorted(PNG_SIZES)}, not {size!r}")
    thumb = size == "thumb"
    width, height = PNG_SIZES[size]
    wave = spec.wavelength
    flux = spec.flux.astype(np.float64)
    good = good_pixels(spec)
    segments = [seg for seg in _segments(wave) if seg.stop > seg.start] or [slice(0, 0)]
    klass = spec.meta.get("class") or spec.kind
    emission = {line.name for line in _LINES[_line_set(klass)] if line.emission}
    if thumb:
        left, right, bottom, top, gap = 0.0, 1.0, 0.0, 1.0, 0.02
    else:
        left, right, bottom, top = 0.075, 0.985, 0.105, 0.855
        gap = 0.06 if len(segments) > 1 else 0.0  # room for the tick labels of each panel's own y axis
    spans = [max(float(np.ptp(wave[seg])), 1e-6) if seg.stop - seg.start > 1 else 1.0 for seg in segments]
    usable = (right - left) - gap * (len(segments) - 1)
    with _RENDER_LOCK:
        fig = _figure(width, height)
        axes: list[Axes] = []
        x0 = left
        for seg, span in zip(segments, spans, strict=True):
            w = usable * span / sum(spans)
            ax = fig.add_axes((x0, bottom, w, top - bottom))
            x0 += w + gap
            axes.append(ax)
            markers: list[tuple[str, float]] = []
            if lines and seg.stop > seg.start:
                lo, hi = float(wave[seg][0]), float(wave[seg][-1])
                markers = line_markers(klass, spec.meta.get("z"), (lo, hi))
            shown = _plot_segment(ax, wave[seg], flux[seg], good[seg], thumb)
            headroom = 0.0 if thumb or not markers else 0.25
            percentiles = (1.0, 99.0) if thumb else (0.5, 99.5)
            ax.set_ylim(*_y_limits(shown, good[seg], percentiles, headroom))
            if thumb:
                for _, w_line in markers:
                    ax.axvline(w_line, color=_ABSORPTION_COLOR, linewidth=0.5, alpha=0.3, zorder=1)
            elif markers:
                px_per_unit = w * width / max(float(wave[seg][-1] - wave[seg][0]), 1e-9)
                _draw_markers(ax, markers, emission, px_per_unit)
        if thumb:
            for ax in axes:
                ax.set_axis_off()
        else:
            _decorate(fig, axes, spec, masked=bool(np.any(~good)))
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=_DPI, facecolor="white", metadata={"Software": None})
    return buffer.getvalue()


def _plot_segment(ax: Axes, wave: np.ndarray, flux: np.ndarray, good: np.ndarray, thumb: bool) -> np.ndarray:
    """Draw one segment; returns the values drawn as "the spectrum", from which the y range is taken."""
    if wave.size == 0:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="grey")
        return flux
    if not np.all(good):
        # grey only at masked pixels and their neighbours (so a masked run joins the curve on both sides)
        near = ~good
        near[1:] |= ~good[:-1]
        near[:-1] |= ~good[1:]
        masked = np.where(near, flux, np.nan)
        ax.plot(wave, masked, color=_MASKED_COLOR, linewidth=0.6, zorder=2, label="masked (ivar = 0)")
    smooth = smooth_flux(flux, 15, good)
    smooth[~good] = np.nan  # no smoothed curve across masked runs
    if thumb:
        ax.plot(wave, smooth, color=_FLUX_COLOR, linewidth=0.7, zorder=3)
        shown = smooth
    else:
        shown = np.where(good, flux, np.nan)
        ax.plot(wave, shown, color=_FLUX_COLOR, linewidth=0.6, zorder=3, label="flux")
        ax.plot(
            wave, smooth, color=_SMOOTH_COLOR, linewidth=1.3, alpha=0.7, zorder=3, label="smoothed (15 px)"
        )
    lo, hi = float(wave[0]), float(wave[-1])
    if hi > lo:
        ax.set_xlim(lo, hi)
    else:  # a single wavelength: matplotlib warns about (and widens) an empty range
        ax.set_xlim(lo - 1.0, hi + 1.0)
    return shown


def _decorate(fig: Figure, axes: list[Axes], spec: Spectrum, masked: bool) -> None:
    first, second = _title(spec)
    fig.text(0.075, 0.965, first, fontsize=11, fontweight="bold", ha="left", va="top")
    fig.text(0.075, 0.915, second, fontsize=9.5, ha="left", va="top", color="#333333")
    for ax in axes:
        ax.tick_params(labelsize=8, direction="in", top=True, right=True)
        ax.grid(True, color="#eeeeee", linewidth=0.6, zorder=0)
    # LRS flux is relatively flux-calibrated in LAMOST's unit; the MRS arms are not on a common flux scale
    unit = "10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹, relative" if spec.kind == "LRS" else "relative"
    axes[0].set_ylabel(f"Flux ({unit})", fontsize=9)
    fig.text(0.53, 0.02, "Wavelength (Å, vacuum)", fontsize=9, ha="center", va="bottom")
    handles, labels = axes[0].get_legend_handles_labels()
    if not masked:
        handles = [h for h, label in zip(handles, labels, strict=True) if not label.startswith("masked")]
    fig.legend(
        handles=handles,
        loc="upper right",
        bbox_to_anchor=(0.985, 0.985),
        fontsize=7.5,
        frameon=False,
        ncol=1,
    )


# --- PNG cache ----------------------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CacheKey = str | Sequence[object]


class _CacheState:
    """What all :class:`PngCache` objects on one directory share in a process: constructing one per
    request (as a web handler may) then costs no directory scan and still renders each key once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.flights: dict[str, tuple[threading.Lock, list[int]]] = {}
        self.total: int | None = None  # bytes on disk, measured on first need


_STATES: dict[str, _CacheState] = {}
_STATES_LOCK = threading.Lock()


class PngCache:
    """Rendered PNGs on disk, so a thumbnail is drawn once, not at every page view.

    The key names what was drawn: ``(release, version, obsid, size)`` (any sequence, joined with ``/``, or
    a string). Releases are immutable, so entries never go stale; where a version can be *replaced*, put
    its publication stamp in the key (as the serving copies do). Files are named by a hash of the key, so
    no key can escape the directory.

    Thread- and process-safe: files are written to a temporary name and moved into place with
    ``os.replace``, so readers see a whole PNG or none; reads check the PNG signature, so a damaged file is a
    miss, not an error. Concurrent :meth:`get_or_render` calls for one key in a process render once, also
    through different cache objects on the same directory (they share their state, so creating one per
    request is cheap; ``hits``/``misses`` count per object).

    Size is bounded: when the files exceed ``max_bytes``, the least recently *used* ones go (a hit touches
    the file's mtime; eviction removes by oldest mtime) until 90 % of the limit is left. The running total
    is kept in memory and re-measured at each eviction, so other processes' writes are accounted for then.
    """

    #: Fraction of ``max_bytes`` that an eviction leaves, so that eviction is not repeated at every write.
    LOW_WATER = 0.9
    #: Temporary files older than this (seconds) are left-overs of a crashed writer and are removed.
    STALE_TEMP = 3600.0

    def __init__(self, directory: str | os.PathLike[str], *, max_bytes: int = 256 * 2**20) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(max_bytes)
        self.hits = 0
        self.misses = 0
        with _STATES_LOCK:
            self._state = _STATES.setdefault(os.path.realpath(self.directory), _CacheState())
        self._lock = self._state.lock
        self._flights = self._state.flights

    @staticmethod
    def filename(key: CacheKey) -> str:
        """The file name of a key: a hash, so that any key text is a safe name."""
        text = key if isinstance(key, str) else "/".join(str(part) for part in key)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:40] + ".png"

    def path(self, key: CacheKey) -> Path:
        """Where the key's PNG is (or would be)."""
        return self.directory / self.filename(key)

    def get(self, key: CacheKey) -> bytes | None:
        """The cached PNG, or None; a hit marks the file as recently used."""
        path = self.path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if not data.startswith(_PNG_SIGNATURE):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return None
        with contextlib.suppress(FileNotFoundError):
            os.utime(path)
        with self._lock:
            self.hits += 1
        return data

    def put(self, key: CacheKey, data: bytes) -> None:
        """Store a PNG atomically, evicting old files when the cache is over its size."""
        if not data.startswith(_PNG_SIGNATURE):
            raise ValueError(
                "PngCache stores PNG images only: the data does not start with the PNG signature"
            )
        with self._lock:  # counted once, before any writer of this process adds its file
            if self._state.total is None:
                self._state.total = sum(size for _, size, _ in self._files())
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self.path(key))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        with self._lock:
            self._state.total += len(data)  # an over-estimate when a key is rewritten: fixed at eviction
            over = self._state.total > self.max_bytes
        if over:
            self.evict()

    def get_or_render(self, key: CacheKey, render: Callable[[], bytes]) -> bytes:
        """The cached PNG, or ``render()``'s, stored for next time; one render per key at a time."""
        data = self.get(key)
        if data is not None:
            return data
        name = self.filename(key)
        with self._lock:
            lock, users = self._flights.setdefault(name, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                data = self.get(key)  # rendered by the thread we waited for
                if data is None:
                    data = render()
                    with self._lock:
                        self.misses += 1
                    self.put(key, data)
        finally:
            with self._lock:
                users[0] -= 1
                if users[0] == 0:
                    del self._flights[name]
        return data

    def _files(self) -> Iterator[tuple[str, int, float]]:
        """(path, size, mtime) of the cached PNGs; removes stale temporary files on the way."""
        now = time.time()
        with os.scandir(self.directory) as entries:
            for entry in entries:
                try:
                    stat = entry.stat()
                except FileNotFoundError:
                    continue
                if entry.name.startswith(".tmp-"):
                    if now - stat.st_mtime > self.STALE_TEMP:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(entry.path)
                elif entry.name.endswith(".png") and entry.is_file():
                    yield entry.path, stat.st_size, stat.st_mtime

    def evict(self) -> int:
        """Remove least recently used files until the cache is under its low-water mark; bytes removed."""
        with self._lock:
            files = sorted(self._files(), key=lambda f: (f[2], f[0]))
            total = sum(size for _, size, _ in files)
            target = self.max_bytes * self.LOW_WATER if total > self.max_bytes else total
            removed = 0
            for path, size, _ in files:
                if total - removed <= target:
                    break
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                removed += size
            self._state.total = total - removed
        return removed

    @property
    def total_bytes(self) -> int:
        """The cache's size as last measured or written by this process (measured now if never)."""
        with self._lock:
            if self._state.total is None:
                self._state.total = sum(size for _, size, _ in self._files())
            return self._state.total


# --- catalog info -------------------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, str | bool):
        return str(value) if isinstance(value, np.str_) else value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, bytes | bytearray | np.bytes_):
        return bytes(value).decode("utf-8", "replace")
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas' missing values, without importing pandas
        return None
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, np.ndarray | list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if hasattr(value, "as_py"):  # pyarrow scalars
        return _json_value(value.as_py())
    if isinstance(value, np.generic):
        return _json_value(value.item())
    return str(value)


def spectrum_info(row: Mapping[str, Any]) -> dict[str, Any]:
    """A catalog row (a mapping, a pandas row, a dict from Arrow) as a JSON-ready dict, in column order.

    Numpy and Arrow scalars become Python numbers, bytes become text, arrays lists, dates ISO strings. The
    catalog's values are otherwise kept *as they are*: LAMOST publishes "no value" as ``-9999`` (``99`` for
    magnitudes) in its catalogs and on its info pages, and scripts test for exactly those, so turning them
    into ``null`` would silently break them. NaN and infinities (and pandas' NA/NaT) become ``None``
    because JSON has no such numbers (``NaN`` in a response breaks every strict JSON parser).
    """
    return {str(key): _json_value(value) for key, value in row.items()}


# --- tar streams --------------------------------------------------------------------------------------------


class TarEntry(NamedTuple):
    """One file of a tar stream.

    ``source`` opens the file when its turn comes (so a thousand entries are not a thousand open files) and
    returns its bytes or a binary file object, which is closed afterwards. ``size`` is the byte count the
    tar header announces, before the data; with ``None`` the file is first spooled (memory, then disk) to
    measure it. A plain ``(name, source, size)`` tuple works too.
    """

    name: str
    source: Callable[[], IO[bytes] | bytes]
    size: int | None
    obsid: int | None = None
    mtime: float | None = None


class SourceSizeMismatch(ValueError):
    """A tar entry's data was shorter or longer than the size announced in its already-sent header."""


MANIFEST_NAME = "manifest.csv"
_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE


def _unique_name(name: str, used: set[str]) -> str:
    """The entry's base name, with ``-2``, ``-3``, ... before the extension if it is already in the tar."""
    base = PurePosixPath(name.replace("\\", "/")).name
    if base in ("", ".", ".."):
        raise ValueError(f"tar entry {name!r} has no file name")
    candidate, n = base, 1
    while candidate in used:
        n += 1
        stem, dot, ext = base.partition(".")
        candidate = f"{stem}-{n}{dot}{ext}"
    used.add(candidate)
    return candidate


@contextlib.contextmanager
def _open_source(entry: TarEntry, chunk_size: int) -> Iterator[tuple[IO[bytes], int]]:
    """The entry's data as a reader, and its size (spooled to find it out when not given)."""
    data = entry.source()
    with contextlib.ExitStack() as stack:
        if isinstance(data, bytes | bytearray | memoryview):
            reader: IO[bytes] = io.BytesIO(data)
            size = len(data) if not isinstance(data, memoryview) else data.nbytes
            if entry.size is not None and entry.size != size:
                raise SourceSizeMismatch(f"{entry.name}: {size} bytes given, {entry.size} announced")
        else:
            stack.callback(getattr(data, "close", lambda: None))
            reader, size = data, -1 if entry.size is None else int(entry.size)
            if size < 0:
                spool = stack.enter_context(tempfile.SpooledTemporaryFile(max_size=16 * chunk_size))
                while block := data.read(chunk_size):
                    spool.write(block)
                size = spool.tell()
                spool.seek(0)
                reader = spool  # type: ignore[assignment]
        yield reader, size


def stream_tar(
    entries: Iterable[TarEntry | tuple[Any, ...]],
    *,
    manifest: bool = True,
    mtime: float | None = None,
    chunk_size: int = 1 << 16,
) -> Iterator[bytes]:
    """Many files as one tar (POSIX pax), yielded in chunks of about ``chunk_size`` bytes as it is written.

    Memory stays at a few chunks whatever the number and size of the files: each file is opened when its
    turn comes and copied through in chunks. Headers come from :mod:`tarfile` (``TarInfo.tobuf``), the data
    and padding are written here, because ``TarFile.addfile`` copies a whole member before returning and so
    cannot be interleaved with sending it.

    Each member is named by the base name of the entry's name (the LAMOST file name, e.g.
    ``spec-55859-F5902_sp01-013.fits.gz``; a repeated name gets ``-2``, ``-3`` before its extension), with
    mode 0644 and the entry's ``mtime``, else the stream's ``mtime`` (default: now; pass the release's
    publication time for byte-identical archives). With ``manifest`` a ``manifest.csv`` (``obsid, filename,
    size, sha256``) ends the archive, so a download can be checked file by file.

    A tar header states the size before the data, so a source shorter or longer than announced raises
    :class:`SourceSizeMismatch`, as does any error of a source: the stream stops there, and the client gets
    a truncated (detectably broken) archive instead of a wrong file. Check the files exist before starting.
    """
    if chunk_size < _BLOCK:
        raise ValueError(f"chunk_size must be at least {_BLOCK} bytes")
    stamp = int(time.time() if mtime is None else mtime)
    out = bytearray()
    written = 0
    used: set[str] = set()
    rows: list[tuple[str, str, int, str]] = []

    def header(name: str, size: int, when: int) -> bytes:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode, info.type = size, when, 0o644, tarfile.REGTYPE
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")

    for raw in entries:
        entry = raw if isinstance(raw, TarEntry) else TarEntry(*raw)
        name = _unique_name(entry.name, used)
        when = stamp if entry.mtime is None else int(entry.mtime)
        with _open_source(entry, chunk_size) as (reader, size):
            out += header(name, size, when)
            digest = hashlib.sha256()
            copied = 0
            while copied < size:
                block = reader.read(min(chunk_size, size - copied))
                if not block:
                    raise SourceSizeMismatch(f"{entry.name}: the data ended after {copied} of {size} bytes")
                digest.update(block)
                copied += len(block)
                out += block
                if len(out) >= chunk_size:
                    written += len(out)
                    yield bytes(out)
                    out.clear()
            if reader.read(1):
                raise SourceSizeMismatch(f"{entry.name}: the data is longer than the {size} bytes announced")
        out += bytes(-size % _BLOCK)
        rows.append(("" if entry.obsid is None else str(int(entry.obsid)), name, size, digest.hexdigest()))
    if manifest:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["obsid", "filename", "size", "sha256"])
        writer.writerows(rows)
        data = text.getvalue().encode("utf-8")
        out += header(_unique_name(MANIFEST_NAME, used), len(data), stamp) + data + bytes(-len(data) % _BLOCK)
    out += bytes(2 * _BLOCK)  # end-of-archive marker
    out += bytes(-(written + len(out)) % _RECORD)  # whole records, as tarfile writes them
    yield bytes(out)
