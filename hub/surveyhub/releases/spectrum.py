"""One LAMOST spectrum in memory, and the reader of every LAMOST file layout.

LAMOST has shipped its 1D spectra in five on-disk layouts (DR1 pilot image, DR2-DR8 image, DR9+ ``COADD``
table, and two MRS table layouts) with keyword names that changed between eras. Everything downstream of
the release store (the archive's spectrum URLs, the columnar spectra, notebooks) wants one thing: arrays on
a vacuum wavelength axis plus era-independent metadata. :func:`read_spectrum` gives exactly that, whatever
the file, and it picks the layout from the file's *structure* (a 5 x N primary image, a ``COADD`` table, or
``COADD_B``/``COADD_R`` tables), never from ``DATA_V``: the release name in a file has been wrong before
(a "dr8" file in DR9 layout is among the samples).

A spectrum built in memory, written as a DR9+ file and read back:

>>> import tempfile, pathlib
>>> from surveyhub.releases.fits_writer import write_lrs_fits
>>> from surveyhub.releases.grid import lrs_wavelength
>>> wave = lrs_wavelength()
>>> spec = Spectrum(wavelength=wave, flux=np.linspace(1, 2, wave.size), ivar=np.full(wave.size, 4.0),
...                 meta={"obsid": 101013, "class": "STAR", "subclass": "A2"})
>>> with tempfile.TemporaryDirectory() as tmp:
...     back = read_spectrum(write_lrs_fits(pathlib.Path(tmp) / "spec-55859-F5902_sp01-013.fits.gz", spec))
>>> back.layout, back.source, back.meta["obsid"], back.meta["subclass"], back.meta["snrg"]
('lrs-coadd', 'spec-55859-F5902_sp01-013.fits.gz', 101013, 'A2', None)
>>> bool(np.array_equal(back.flux, spec.flux)), bool(np.array_equal(back.wavelength, wave))
(True, True)
>>> round(float(back.wavelength[0]), 2), back.normalization is None
(3699.99, True)

Anything that is not a LAMOST spectrum raises :class:`SpectrumReadError`, naming the file:

>>> read_spectrum(b"hello")
Traceback (most recent call last):
...
surveyhub.releases.spectrum.SpectrumReadError: <bytes>: not a FITS file (it starts with b'hello')
"""

from __future__ import annotations

import gzip
import io
import os
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import IO, Any, Literal, get_args

import numpy as np
from astropy.io import fits

from surveyhub.releases import grid
from surveyhub.releases.keywords import canonical_meta

Kind = Literal["LRS", "MRS"]
Layout = Literal["dr1-pilot", "lrs-image", "lrs-coadd", "mrs-pixel-rows", "mrs-vector-rows"]
LAYOUTS: tuple[str, ...] = get_args(Layout)

#: LAMOST fluxes are in units of 1e-17 erg/s/cm2/A (relative calibration).
FLUX_UNIT = "1e-17 erg / (s cm2 Angstrom)"
#: A stored wavelength column closer than this (relative) to the grid its header or arm defines is taken as
#: that grid, exactly: float32 columns carry the grid to ~7e-7, and the exact grid is what lets spectra of
#: different files share one wavelength axis.
GRID_RTOL = 2e-6
#: What a 5 x N image row must look like to be a wavelength (DR2-DR8) rather than the pilot's normalised flux.
_WAVELENGTH_RANGE = (1000.0, 100000.0)
#: Extension names of single MRS exposures: arm, dash, LMJM (``B-84107311``).
EXPOSURE_NAME = re.compile(r"^[BR]-\S+$")


class SpectrumReadError(ValueError):
    """A file that cannot be read as a LAMOST spectrum; the message names the file and what is wrong."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


@dataclass(eq=False)
class Spectrum:
    """A LAMOST spectrum: arrays on a vacuum wavelength axis (Angstrom) and canonical metadata.

    Arrays are converted on construction (wavelength float64; flux, ivar and normalization float32; masks
    int32, zeros when not given) and must all have the same length. For MRS the top-level arrays are the
    blue coadd followed by the red one, ``arms`` holds each coadd and ``exposures`` each single exposure;
    both are empty for LRS. ``extras`` keeps rows a layout has beyond the standard ones (the DR1 pilot's
    continuum-normalised flux, ``extras["subcontinuum"]``), rather than passing them off as something else.
    """

    wavelength: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    andmask: np.ndarray | None = None
    ormask: np.ndarray | None = None
    normalization: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    kind: Kind = "LRS"
    layout: Layout = "lrs-coadd"
    source: str = ""
    arms: dict[str, Spectrum] = field(default_factory=dict)
    exposures: dict[str, Spectrum] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.wavelength = np.asarray(self.wavelength, dtype=np.float64)
        self.flux = np.asarray(self.flux, dtype=np.float32)
        self.ivar = np.asarray(self.ivar, dtype=np.float32)
        npix = self.wavelength.shape[0] if self.wavelength.ndim == 1 else -1
        self.andmask = _mask(self.andmask, npix)
        self.ormask = _mask(self.ormask, npix)
        if self.normalization is not None:
            self.normalization = np.asarray(self.normalization, dtype=np.float32)
        arrays = {
            "wavelength": self.wavelength,
            "flux": self.flux,
            "ivar": self.ivar,
            "andmask": self.andmask,
            "ormask": self.ormask,
            "normalization": self.normalization,
        }
        shapes = {name: a.shape for name, a in arrays.items() if a is not None}
        if len(set(shapes.values())) != 1 or self.wavelength.ndim != 1:
            raise ValueError(f"spectrum arrays must be 1-D and of one length, got {shapes}")
        if self.kind not in ("LRS", "MRS"):
            raise ValueError(f"kind must be 'LRS' or 'MRS', not {self.kind!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, not {self.layout!r}")

    @property
    def npix(self) -> int:
        """Number of pixels of the top-level arrays."""
        return int(self.wavelength.shape[0])

    def to_specutils(self) -> Any:
        """The spectrum as a ``specutils`` spectrum (``Spectrum``, or ``Spectrum1D`` before specutils 2).

        Flux in :data:`FLUX_UNIT`, an ``InverseVariance`` uncertainty, ``mask = andmask != 0`` (pixels bad in
        every exposure) and a copy of ``meta``; the analysis tools of the astropy ecosystem take it as is.
        """
        from astropy import units as u
        from astropy.nddata import InverseVariance

        try:
            from specutils import Spectrum as SpecutilsSpectrum
        except ImportError:  # specutils < 2
            from specutils import Spectrum1D as SpecutilsSpectrum

        unit = u.Unit(FLUX_UNIT)
        return SpecutilsSpectrum(
            flux=self.flux * unit,
            spectral_axis=self.wavelength * u.AA,
            uncertainty=InverseVariance(self.ivar, unit=unit**-2),
            mask=self.andmask != 0,
            meta=dict(self.meta),
        )


def _mask(values: Any, npix: int) -> np.ndarray:
    if values is None:
        return np.zeros(max(npix, 0), dtype=np.int32)
    values = np.asarray(values)
    if values.dtype.kind == "f":  # DR2-DR8 images and DR9+ tables store masks as float32
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    return values.astype(np.int32)


# --- reading -----------------------------------------------------------------------------------------------

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]


def read_spectrum(source: Source) -> Spectrum:
    """Read a LAMOST spectrum file of any layout.

    ``source`` is a path (``.fits`` or ``.fits.gz``; gzip is recognised by its content, not the name), an
    fsspec URL (``s3://...``), the file's bytes, or a binary file object (an open file, an fsspec file).
    Raises :class:`SpectrumReadError` for anything that is not a complete LAMOST spectrum; a missing path
    raises ``FileNotFoundError`` as usual.
    """
    raw, name = _read_bytes(source)
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise SpectrumReadError(name, f"truncated or corrupt gzip data ({exc})") from exc
    if not raw.startswith(b"SIMPLE  ="):
        raise SpectrumReadError(name, f"not a FITS file (it starts with {bytes(raw[:16])!r})")
    # astropy only warns about a truncated file and reads on; _check_complete refuses it. The warnings are
    # not silenced here: warnings.catch_warnings is process-wide, and spectra are read in threads.
    try:
        with fits.open(io.BytesIO(raw), memmap=False, lazy_load_hdus=False) as hdul:
            _check_complete(hdul, raw, name)
            return _read_hdul(hdul, name)
    except SpectrumReadError:
        raise
    except (OSError, ValueError, TypeError, KeyError, IndexError, EOFError, Warning) as exc:
        # (Warning: where warnings are turned into errors, astropy's truncation warning is one)
        raise SpectrumReadError(name, f"corrupt FITS file ({type(exc).__name__}: {exc})") from exc


def _read_bytes(source: Source) -> tuple[bytes, str]:
    """The whole file in memory (spectra are < 2 MB) and a name for messages: one code path for all inputs."""
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source), "<bytes>"
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        if "://" in path:
            import fsspec

            with fsspec.open(path, "rb") as f:
                return f.read(), PurePosixPath(path).name
        with open(path, "rb") as f:
            return f.read(), os.path.basename(path)
    if hasattr(source, "read"):
        data = source.read()
        label = getattr(source, "path", None) or getattr(source, "name", None) or "<file object>"
        if not isinstance(data, bytes | bytearray):
            raise TypeError(f"{label}: read_spectrum needs a binary file object, got {type(data).__name__}")
        return bytes(data), PurePosixPath(str(label)).name
    raise TypeError(f"read_spectrum cannot read a {type(source).__name__}")


def _check_complete(hdul: fits.HDUList, raw: bytes, name: str) -> None:
    """Refuse files that end early: astropy reads what it can of them and only warns, or drops HDUs.

    Even a file missing only the padding of its last block is refused: FITS files are whole 2880-byte
    blocks, and a short one is an interrupted copy, whatever else it lost.
    """
    size, end = len(raw), 0
    for i, hdu in enumerate(hdul):
        info = hdul.fileinfo(i)
        end = info["datLoc"] + info["datSpan"]
        if end > size:
            raise SpectrumReadError(
                name, f"truncated file: HDU {i} ({hdu.name}) ends at byte {end}, the file has {size}"
            )
    if raw[end:].strip(b"\0 "):  # not padding: a partial HDU that astropy dropped
        raise SpectrumReadError(name, f"corrupt or truncated HDU after HDU {len(hdul) - 1} (byte {end} on)")
    n_exten = hdul[0].header.get("N_EXTEN")
    if isinstance(n_exten, int) and not isinstance(n_exten, bool) and n_exten > len(hdul):
        raise SpectrumReadError(
            name, f"truncated file: N_EXTEN says {n_exten} HDUs, the file has {len(hdul)}"
        )


def _read_hdul(hdul: fits.HDUList, name: str) -> Spectrum:
    tables = {hdu.name.upper(): hdu for hdu in hdul[1:]}
    if "COADD_B" in tables or "COADD_R" in tables:
        return _read_mrs(hdul, name)
    if "COADD" in tables:
        return _read_lrs_coadd(hdul[0].header, tables["COADD"], name)
    if hdul[0].header.get("NAXIS", 0) > 0:
        return _read_lrs_image(hdul[0], name)
    names = [hdu.name for hdu in hdul]
    raise SpectrumReadError(
        name,
        f"not a LAMOST spectrum layout: no 5 x N primary image, no COADD, COADD_B or COADD_R table {names}",
    )


def _snap(wavelength: np.ndarray, coeff0: Any, coeff1: Any) -> np.ndarray:
    """The exact log-linear grid when the stored (float32) wavelengths are that grid, else them as float64."""
    wavelength = np.asarray(wavelength, dtype=np.float64)
    if not isinstance(coeff0, int | float) or not isinstance(coeff1, int | float) or coeff1 == 0:
        return wavelength
    exact = grid.loglinear_wavelength(float(coeff0), float(coeff1), wavelength.size)
    if np.all(np.abs(wavelength / exact - 1.0) < GRID_RTOL):
        return exact
    return wavelength


def _looks_like_wavelength(row: np.ndarray) -> bool:
    low, high = _WAVELENGTH_RANGE
    return bool(np.all(np.isfinite(row)) and np.all(np.diff(row) > 0) and row[0] > low and row[-1] < high)


def _read_lrs_image(hdu: fits.PrimaryHDU, name: str) -> Spectrum:
    data = hdu.data
    if data is None or data.ndim != 2 or data.shape[0] != 5 or data.shape[1] < 2:
        shape = "no data" if data is None else " x ".join(map(str, data.shape))
        raise SpectrumReadError(name, f"primary image has shape {shape}; a LAMOST LRS image is 5 x N")
    meta = canonical_meta(hdu.header)
    flux, ivar, row2, andmask, ormask = (np.asarray(row, dtype=np.float64) for row in data)
    coeff0, coeff1 = meta.get("coeff0", meta.get("crval1")), meta.get("coeff1", meta.get("cd1_1"))
    extras: dict[str, np.ndarray] = {}
    if _looks_like_wavelength(row2):
        layout: Layout = "lrs-image"
        wavelength = _snap(row2, coeff0, coeff1)
    else:  # the DR1 pilot: row 2 is the continuum-normalised flux, the grid is in COEFF0/COEFF1 only
        if not isinstance(coeff0, int | float) or not isinstance(coeff1, int | float):
            raise SpectrumReadError(
                name, "row 2 of the 5 x N image is not a wavelength and the header has no COEFF0/COEFF1"
            )
        layout = "dr1-pilot"
        wavelength = grid.loglinear_wavelength(float(coeff0), float(coeff1), data.shape[1])
        extras["subcontinuum"] = row2.astype(np.float32)
    return Spectrum(
        wavelength=wavelength,
        flux=flux,
        ivar=ivar,
        andmask=andmask,
        ormask=ormask,
        meta=meta,
        kind="LRS",
        layout=layout,
        source=name,
        extras=extras,
    )


def _column(hdu: fits.BinTableHDU, names: dict[str, str], column: str, vector: bool) -> np.ndarray:
    values = hdu.data[names[column]]
    return np.asarray(values[0]).ravel() if vector else np.asarray(values)


def _table_arrays(hdu: Any, name: str) -> tuple[dict[str, np.ndarray | None], bool]:
    """The arrays of one spectrum table, by increasing wavelength, and whether it is one row of vectors.

    Two table shapes exist: one row per pixel with scalar columns (MRS up to DR9 v0) and one row of vector
    columns (LRS DR9+, MRS after). Wavelength comes as WAVELENGTH or LOGLAM; single MRS exposures have a
    PIXMASK instead of ANDMASK/ORMASK, which is both for one exposure. Red MRS exposures are stored with
    decreasing wavelength.
    """
    label = hdu.name or "table"
    if not isinstance(hdu, fits.BinTableHDU):
        raise SpectrumReadError(name, f"HDU {label} is not a binary table")
    names = {column.name.upper(): column.name for column in hdu.columns}
    wanted = ["FLUX", "IVAR"]
    wanted.append("WAVELENGTH" if "WAVELENGTH" in names or "LOGLAM" not in names else "LOGLAM")
    wanted += ["PIXMASK"] if "PIXMASK" in names and "ANDMASK" not in names else ["ANDMASK", "ORMASK"]
    missing = [column for column in wanted if column not in names]
    if missing:
        if "WAVELENGTH" in missing:
            missing[missing.index("WAVELENGTH")] = "WAVELENGTH (or LOGLAM)"
        raise SpectrumReadError(name, f"table {label} lacks column(s) {', '.join(missing)}")
    nrows = hdu.data.shape[0] if hdu.data is not None else 0
    if nrows == 0:
        raise SpectrumReadError(name, f"table {label} has no rows")
    vector = nrows == 1 and int(np.prod(hdu.data[names["FLUX"]].shape[1:], dtype=np.int64)) > 1
    arrays = {column: _column(hdu, names, column, vector) for column in wanted}
    if "NORMALIZATION" in names:
        arrays["NORMALIZATION"] = _column(hdu, names, "NORMALIZATION", vector)
    lengths = {column: a.shape for column, a in arrays.items()}
    if len(set(lengths.values())) != 1 or arrays["FLUX"].ndim != 1:
        detail = ", ".join(f"{column} {shape}" for column, shape in lengths.items())
        raise SpectrumReadError(name, f"table {label} has columns of different lengths: {detail}")
    if "LOGLAM" in arrays:
        wavelength = np.power(10.0, arrays["LOGLAM"].astype(np.float64))
    else:
        wavelength = arrays["WAVELENGTH"].astype(np.float64)
    andmask = arrays.get("ANDMASK", arrays.get("PIXMASK"))
    ormask = arrays.get("ORMASK", arrays.get("PIXMASK"))
    result: dict[str, np.ndarray | None] = {
        "wavelength": wavelength,
        "flux": arrays["FLUX"],
        "ivar": arrays["IVAR"],
        "andmask": andmask,
        "ormask": ormask,
        "normalization": arrays.get("NORMALIZATION"),
    }
    steps = np.diff(wavelength)
    if not np.all(steps > 0):
        order = slice(None, None, -1) if np.all(steps < 0) else np.argsort(wavelength, kind="stable")
        result = {key: None if a is None else a[order] for key, a in result.items()}
    return result, vector


def _normalization(values: np.ndarray | None, meta: Mapping[str, Any]) -> np.ndarray | None:
    """The normalised flux, or None where the file has none: no column, ``NORM = 0``, or all -9999."""
    if values is None or meta.get("norm") == 0 or np.all(values == -9999):
        return None
    return values


def _read_lrs_coadd(header: fits.Header, hdu: Any, name: str) -> Spectrum:
    meta = canonical_meta(header)
    arrays, _ = _table_arrays(hdu, name)
    coeff0 = meta.get("coeff0") if meta.get("coeff0") is not None else grid.LRS_COEFF0
    coeff1 = meta.get("coeff1") if meta.get("coeff1") is not None else grid.LRS_COEFF1
    arrays["wavelength"] = _snap(arrays["wavelength"], coeff0, coeff1)
    arrays["normalization"] = _normalization(arrays["normalization"], meta)
    return Spectrum(**arrays, meta=meta, kind="LRS", layout="lrs-coadd", source=name)


def _mrs_part(hdu: Any, name: str, primary: dict[str, Any], layout: Layout | None) -> Spectrum:
    """One MRS table (a coadd or an exposure) as a Spectrum whose meta is the primary's plus its own."""
    arrays, vector = _table_arrays(hdu, name)
    meta = {**primary, **canonical_meta(hdu.header, core=False)}
    arm = hdu.name.upper().removeprefix("COADD_")[:1]
    if arm in grid.MRS_ARMS and grid.MRS_ARMS[arm][2] == arrays["wavelength"].size:
        coeff0, coeff1, _ = grid.MRS_ARMS[arm]
        arrays["wavelength"] = _snap(arrays["wavelength"], coeff0, coeff1)
    arrays["normalization"] = _normalization(arrays["normalization"], meta)
    layout = layout or ("mrs-vector-rows" if vector else "mrs-pixel-rows")
    return Spectrum(**arrays, meta=meta, kind="MRS", layout=layout, source=name)


def _read_mrs(hdul: fits.HDUList, name: str) -> Spectrum:
    primary = canonical_meta(hdul[0].header)
    tables = {hdu.name.upper(): hdu for hdu in hdul[1:]}
    arms: dict[str, Spectrum] = {}
    layout: Layout | None = None
    for arm in ("B", "R"):
        if f"COADD_{arm}" in tables:
            arms[arm] = _mrs_part(tables[f"COADD_{arm}"], name, primary, layout)
            layout = arms[arm].layout
    exposures: dict[str, Spectrum] = {}
    for hdu in hdul[1:]:
        extname = str(hdu.header.get("EXTNAME", "")).strip()
        if EXPOSURE_NAME.match(extname):
            exposures[extname] = _mrs_part(hdu, name, primary, layout)
    parts = sorted(arms.values(), key=lambda s: s.wavelength[0])
    norms = [part.normalization for part in parts]
    return Spectrum(
        wavelength=np.concatenate([p.wavelength for p in parts]),
        flux=np.concatenate([p.flux for p in parts]),
        ivar=np.concatenate([p.ivar for p in parts]),
        andmask=np.concatenate([p.andmask for p in parts]),
        ormask=np.concatenate([p.ormask for p in parts]),
        normalization=None if any(n is None for n in norms) else np.concatenate(norms),
        meta=primary,
        kind="MRS",
        layout=layout or "mrs-pixel-rows",
        source=name,
        arms=arms,
        exposures=exposures,
    )
