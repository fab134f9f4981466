"""Write spectra as LAMOST FITS files: the release store keeps the released files in LAMOST's own layouts.

The mock generator writes whole releases with this module (about 10,000 files in minutes), and existing
LAMOST scripts read what it writes, so the files must look like LAMOST's and be cheap to make. Two choices
follow from that:

* Headers are built from ``meta`` (canonical names, see :mod:`surveyhub.releases.keywords`) with the card
  names of the era a layout belongs to (``FIBERTYP``/``MAGTYPE`` for the DR2-DR8 image, ``FIB_TYPE``/
  ``MAG_PS_G`` for DR9+ tables), LAMOST's card order, section comments and card comments, and ``None`` as
  the era's missing value. A name an era has no card for is still written, under its newest card name, so
  that nothing given is lost.
* The bytes are assembled here (80-character cards, 2880-byte blocks, big-endian data) rather than through
  astropy's HDU objects, whose per-card verification costs several times more than the file itself. Strings
  too long for one card go through astropy's ``Card`` (``CONTINUE`` cards); every file written here is read
  back by astropy in the tests.

Files are written atomically: to a hidden temporary name in the target directory, then renamed, so that a
file appears under its final name only when complete (a reader walking the store never sees half a file).
A path ending in ``.gz`` is gzip-compressed. fsspec URLs (``s3://``, ``memory://``) are written to a
temporary key and moved.

>>> import numpy as np, tempfile, pathlib
>>> from surveyhub.releases.spectrum import read_spectrum
>>> flux = np.ones(3909)
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = write_lrs_fits(pathlib.Path(tmp) / "spec-58397-EG014118N254444M01_sp03-031.fits",
...                           {"flux": flux, "ivar": flux}, layout="lrs-image", meta={"snrg": 12.5})
...     spec = read_spectrum(path)
>>> spec.layout, spec.meta["snrg"], spec.meta["filename"], spec.meta["fibertype"]
('lrs-image', 12.5, 'spec-58397-EG014118N254444M01_sp03-031.fits', None)
"""

from __future__ import annotations

import datetime as dt
import gzip
import math
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from contextlib import suppress
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any, Literal

import numpy as np
from astropy.io import fits

from surveyhub.releases import grid
from surveyhub.releases.keywords import DERIVED, KEYWORDS, STRUCTURAL, Era
from surveyhub.releases.spectrum import EXPOSURE_NAME, GRID_RTOL, Spectrum

LrsLayout = Literal["lrs-coadd", "lrs-image"]
ArraysLike = Spectrum | Mapping[str, Any]

#: gzip level: 6 compresses LAMOST floats within 1% of level 9 at about twice the speed.
COMPRESSLEVEL = 6
_BLOCK = 2880
_CARD = 80
_KEYWORD = re.compile(r"^[A-Z0-9_-]{1,8}$")
#: Values every written file has unless ``meta`` says otherwise: the site and the pipeline's name.
DEFAULTS: dict[str, Any] = {
    "author": "LAMOST Pipeline",
    "origin": "NAOC-LAMOST",
    "telescop": "LAMOST",
    "longitud": 117.58,
    "latitude": 40.39,
    "helio": True,
}
#: Cards the writer derives from the data it writes; values of these names in ``meta`` are ignored.
_WAVELENGTH_CARDS = (
    "nworder",
    "wfittype",
    "coeff0",
    "coeff1",
    "wat0_001",
    "wat1_001",
    "crval1",
    "cd1_1",
    "crpix1",
    "ctype1",
    "dc_flag",
)
_COMPUTED = frozenset({"filename", "n_exten", "exten0", "norm", "vacuum", *_WAVELENGTH_CARDS})
_STRUCTURE_COMMENTS = {
    "XTENSION": "Binary table written by surveyhub",
    "BITPIX": "Required value",
    "NAXIS": "Number of array dimensions",
    "NAXIS1": "Number of bytes per row",
    "NAXIS2": "Number of rows",
    "PCOUNT": "Normally 0 (no varying arrays)",
    "GCOUNT": "Required value",
    "TFIELDS": "Number of columns in table",
    "EXTNAME": "The extension name",
}


# --- cards -------------------------------------------------------------------------------------------------


def _float_text(value: float | np.floating, decimals: int | None) -> str:
    """LAMOST's fixed decimals when they keep the value exactly, else the shortest exact form.

    "Exactly" is judged at the value's own precision: a float32 SNR of 5.56 (as a catalog column holds
    it) is written ``5.56``, not ``5.559999942779541``.
    """
    kind = type(value) if isinstance(value, np.floating) else float
    if not math.isfinite(value):
        raise ValueError(f"FITS headers cannot hold {value}")
    if decimals is not None:
        text = f"{float(value):.{decimals}f}"
        if kind(text) == value and len(text) <= 20:
            return text
    text = (str(value) if isinstance(value, np.floating) else repr(value)).upper()
    return text if ("." in text or "E" in text) else text + ".0"


def card(keyword: str, value: Any, comment: str = "", decimals: int | None = None) -> str:
    """One header card (80 characters, or a multiple of 80 for long strings), in FITS fixed format."""
    if value is None:
        text = " " * 20  # an undefined value: FITS' own "no value"
    elif isinstance(value, bool | np.bool_):
        text = f"{'T' if value else 'F':>20}"
    elif isinstance(value, int | np.integer):
        text = f"{int(value):>20}"
    elif isinstance(value, float | np.floating):
        text = f"{_float_text(value, decimals):>20}"
    elif isinstance(value, str):
        if not (value.isascii() and value.isprintable()):
            raise ValueError(f"{keyword}: FITS header strings must be printable ASCII, got {value!r}")
        quoted = "'" + value.replace("'", "''").ljust(8) + "'"
        text = f"{quoted:<20}"
        if len(text) > 70:
            return fits.Card(keyword, value, comment).image
    else:
        raise TypeError(f"{keyword}: cannot write a {type(value).__name__} in a FITS header")
    image = f"{keyword:<8}= {text}"
    if comment:
        image = f"{image} / {comment}"
    return image[:_CARD].ljust(_CARD)


def _comment_card(text: str) -> str:
    return f"COMMENT {text}"[:_CARD].ljust(_CARD)


def _header_bytes(cards: Iterable[str]) -> bytes:
    text = "".join(cards) + "END".ljust(_CARD)
    return _pad(text.encode("ascii"), b" ")


def _pad(data: bytes, fill: bytes) -> bytes:
    return data + fill * (-len(data) % _BLOCK)


def lamost_cards(
    values: Mapping[str, Any], era: Era, *, core: bool = True, sections: bool = True
) -> list[str]:
    """Header cards for ``values`` (canonical names) in LAMOST's order, with the card names of ``era``.

    With ``core``, the names marked ``core`` in the keyword table are written even when absent (as the
    era's missing value), as LAMOST's own files always have them. Names outside the table follow, under
    their own upper-case name; derived names (``obsdate``, ``mag_<band>``) are not written, they are
    recomputed from their sources when read.
    """
    cards: list[str] = []
    section = None
    for keyword in KEYWORDS.values():
        present = keyword.name in values
        value = values.get(keyword.name)
        name = keyword.cards[era]
        if name is None:  # not a card of this era: written only to keep what meta has
            if not present or (value is None and keyword.core):  # (the reader restores core names)
                continue
            name = keyword.newest_card
        elif not present and not (core and keyword.core):
            continue
        if sections and keyword.section != section and keyword.section != "EXTENSION":
            section = keyword.section
            cards.append(_comment_card(f"--------{section}"))
        written = keyword.missing if value is None else value
        cards.append(card(name, written, keyword.comment, keyword.decimals))
    for key, value in values.items():
        name = key.upper()
        if key in KEYWORDS or key in DERIVED or STRUCTURAL.match(name):
            continue
        if not _KEYWORD.match(name):
            raise ValueError(f"meta key {key!r} cannot be a FITS keyword (at most 8 of A-Z 0-9 _ -)")
        cards.append(card(name, value))
    return cards


# --- data --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _grid(coeff0: float, coeff1: float, npix: int) -> np.ndarray:
    return grid.loglinear_wavelength(coeff0, coeff1, npix)


def _loglinear(wavelength: np.ndarray, meta: Mapping[str, Any]) -> tuple[float, float] | None:
    """COEFF0/COEFF1 of ``wavelength`` if it is a log-linear grid (a header must not claim a false grid)."""
    candidates = []
    if isinstance(meta.get("coeff0"), float) and isinstance(meta.get("coeff1"), float):
        candidates.append((meta["coeff0"], meta["coeff1"]))
    candidates.append((grid.LRS_COEFF0, grid.LRS_COEFF1))
    candidates += [(c0, c1) for c0, c1, _ in grid.MRS_ARMS.values()]
    for coeff0, coeff1 in candidates:
        exact = _grid(coeff0, coeff1, wavelength.size)
        if np.all(np.abs(wavelength / exact - 1.0) < GRID_RTOL):
            return coeff0, coeff1
    return None


def _wavelength_cards(solution: tuple[float, float] | None) -> dict[str, Any]:
    if solution is None:
        return {}
    coeff0, coeff1 = solution
    return {
        "nworder": 2,
        "wfittype": "LOG-LINEAR",
        "coeff0": coeff0,
        "coeff1": coeff1,
        "wat0_001": "system=linear",
        "wat1_001": "wtype=linear label=Wavelength units=Angstroms",
        "crval1": coeff0,
        "cd1_1": coeff1,
        "crpix1": 1,
        "ctype1": "LINEAR",
        "dc_flag": 1,
    }


def _arrays(obj: ArraysLike, default_wavelength: np.ndarray | None) -> Spectrum:
    """A Spectrum from a Spectrum or a mapping of arrays (``wavelength`` defaulting to a LAMOST grid)."""
    if isinstance(obj, Spectrum):
        return obj
    if "flux" not in obj or "ivar" not in obj:
        raise ValueError("spectrum arrays need at least 'flux' and 'ivar'")
    wavelength = obj.get("wavelength")
    if wavelength is None:
        if default_wavelength is None:
            raise ValueError("spectrum arrays need a 'wavelength'")
        wavelength = default_wavelength[: len(obj["flux"])]
    return Spectrum(
        wavelength=wavelength,
        flux=obj["flux"],
        ivar=obj["ivar"],
        andmask=obj.get("andmask"),
        ormask=obj.get("ormask"),
        normalization=obj.get("normalization"),
        meta=dict(obj.get("meta") or {}),
    )


def _float32_exact(name: str, values: np.ndarray) -> np.ndarray:
    """Masks as float32, as LAMOST stores them; refused where float32 would change a bit pattern."""
    as_float = values.astype(">f4")
    if not np.array_equal(as_float.astype(np.int64), values):
        raise ValueError(f"{name} values cannot be stored exactly in LAMOST's float32 columns (above 2**24)")
    return as_float


def _vector_table(
    extname: str, spec: Spectrum, header_values: Mapping[str, Any], era: Era, *, normalization: bool
) -> bytes:
    """A one-row BINTABLE of vector columns FLUX, IVAR, WAVELENGTH, ANDMASK, ORMASK (and NORMALIZATION).

    With ``normalization`` the column is written even for a spectrum without one, as -9999 everywhere,
    the way LAMOST's DR9+ LRS files do; otherwise only when the spectrum has it.
    """
    columns = {
        "FLUX": spec.flux.astype(">f4"),
        "IVAR": spec.ivar.astype(">f4"),
        "WAVELENGTH": spec.wavelength.astype(">f4"),
        "ANDMASK": _float32_exact("ANDMASK", spec.andmask),
        "ORMASK": _float32_exact("ORMASK", spec.ormask),
    }
    if spec.normalization is not None or normalization:
        norm = spec.normalization if spec.normalization is not None else np.full(spec.npix, -9999.0)
        columns["NORMALIZATION"] = norm.astype(">f4")
    cards = [
        card("XTENSION", "BINTABLE", _STRUCTURE_COMMENTS["XTENSION"]),
        card("BITPIX", 8, _STRUCTURE_COMMENTS["BITPIX"]),
        card("NAXIS", 2, _STRUCTURE_COMMENTS["NAXIS"]),
        card("NAXIS1", 4 * spec.npix * len(columns), _STRUCTURE_COMMENTS["NAXIS1"]),
        card("NAXIS2", 1, _STRUCTURE_COMMENTS["NAXIS2"]),
        card("PCOUNT", 0, _STRUCTURE_COMMENTS["PCOUNT"]),
        card("GCOUNT", 1, _STRUCTURE_COMMENTS["GCOUNT"]),
        card("TFIELDS", len(columns), _STRUCTURE_COMMENTS["TFIELDS"]),
        card("EXTNAME", extname, _STRUCTURE_COMMENTS["EXTNAME"]),
        *lamost_cards(header_values, era, core=False, sections=False),
    ]
    for i, column in enumerate(columns, start=1):
        cards.append(card(f"TTYPE{i}", column))
    for i in range(1, len(columns) + 1):
        cards.append(card(f"TFORM{i}", f"{spec.npix}E"))
    data = b"".join(a.tobytes() for a in columns.values())
    return _header_bytes(cards) + _pad(data, b"\0")


def _primary_values(meta: Mapping[str, Any], computed: Mapping[str, Any]) -> dict[str, Any]:
    """Header values: writer-computed ones over ``meta`` over :data:`DEFAULTS` (and ``DATE`` = now)."""
    values: dict[str, Any] = {
        **DEFAULTS,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
    }
    values.update((k, v) for k, v in meta.items() if k not in _COMPUTED)
    if values.get("date_obs") is None and isinstance(meta.get("obsdate"), str):
        values["date_obs"] = meta["obsdate"]  # a date alone is a valid DATE-OBS
    values.update(computed)
    return values


def _primary_header(values: Mapping[str, Any], era: Era, structure: list[str]) -> bytes:
    return _header_bytes([*structure, *lamost_cards(values, era)])


def _file_name(path: str | os.PathLike[str]) -> str:
    """FILENAME as LAMOST writes it: the file's name without ``.gz``."""
    return PurePosixPath(os.fspath(path).replace("\\", "/")).name.removesuffix(".gz")


# --- encoders ----------------------------------------------------------------------------------------------


def encode_lrs_fits(
    spectrum_or_arrays: ArraysLike,
    *,
    layout: LrsLayout = "lrs-coadd",
    meta: Mapping[str, Any] | None = None,
    filename: str = "",
) -> bytes:
    """The bytes of an uncompressed LRS file: DR9+ ``COADD`` table or DR2-DR8 5 x N primary image.

    ``spectrum_or_arrays`` is a :class:`Spectrum` or a mapping with ``flux``, ``ivar`` and optionally
    ``wavelength`` (default: the LRS grid), ``andmask``, ``ormask``, ``normalization`` and ``meta``;
    ``meta`` given here is laid over the spectrum's. The DR2-DR8 image has no normalised flux, so a
    spectrum with one cannot be written as ``lrs-image``.
    """
    spec = _arrays(spectrum_or_arrays, grid.lrs_wavelength())
    if spec.kind != "LRS":
        raise ValueError(f"an {spec.kind} spectrum cannot be written as an LRS file")
    merged = {**spec.meta, **(meta or {})}
    wavelength_cards = _wavelength_cards(_loglinear(spec.wavelength, merged))
    if layout == "lrs-coadd":
        computed = {
            "filename": filename,
            "n_exten": 2,
            "norm": 0 if spec.normalization is None else 1,
            "vacuum": True,
            **wavelength_cards,
        }
        values = _primary_values(merged, computed)
        structure = [
            card("SIMPLE", True, "conforms to FITS standard"),
            card("BITPIX", 16, ""),
            card("NAXIS", 0, "Number of array dimensions"),
            card("EXTEND", True, ""),
        ]
        header = _primary_header(values, "dr9+", structure)
        table = _vector_table("COADD", spec, {}, "dr9+", normalization=True)
        return header + table
    if layout == "lrs-image":
        if spec.normalization is not None:
            raise ValueError("the DR2-DR8 image layout has no normalised flux: drop it or use lrs-coadd")
        computed = {
            "filename": filename,
            "n_exten": 1,
            "exten0": "Flux, Inverse, Wavelength, Andmask, Ormask",
            "vacuum": True,
            **wavelength_cards,
        }
        values = _primary_values(merged, computed)
        structure = [
            card("SIMPLE", True, "conforms to FITS standard"),
            card("BITPIX", -32, ""),
            card("NAXIS", 2, "Number of array dimensions"),
            card("NAXIS1", spec.npix, ""),
            card("NAXIS2", 5, ""),
            card("EXTEND", True, ""),
            card("EXTNAME", "Flux", "The extension name"),
        ]
        header = _primary_header(values, "dr2-dr8", structure)
        image = np.stack(
            [
                spec.flux.astype(">f4"),
                spec.ivar.astype(">f4"),
                spec.wavelength.astype(">f4"),
                _float32_exact("ANDMASK", spec.andmask),
                _float32_exact("ORMASK", spec.ormask),
            ]
        ).astype(">f4")  # np.stack returns native byte order
        return header + _pad(image.tobytes(), b"\0")
    raise ValueError(f"layout must be 'lrs-coadd' or 'lrs-image', not {layout!r}")


def _extension_values(part: Spectrum, primary: Mapping[str, Any], extname: str) -> dict[str, Any]:
    """What an extension header adds to the primary's: the part's meta that the primary does not carry."""
    values = {
        k: v
        for k, v in part.meta.items()
        if k not in _COMPUTED and k not in DERIVED and (k not in primary or primary[k] != v)
    }
    if EXPOSURE_NAME.match(extname) and values.get("lmjm") is None:
        lmjm = extname[2:]
        values["lmjm"] = int(lmjm) if lmjm.isdigit() else lmjm
    return values


def encode_mrs_fits(
    arms: Mapping[str, ArraysLike] | Spectrum,
    exposures: Mapping[str, ArraysLike] | None = None,
    meta: Mapping[str, Any] | None = None,
    *,
    filename: str = "",
) -> bytes:
    """The bytes of an uncompressed MRS file in the post-DR9 vector layout.

    Primary ``Information`` header from ``meta``, tables ``COADD_B``/``COADD_R`` from ``arms`` (keys "B",
    "R"; wavelength defaults to the arm's grid) and one table per exposure, named ``B-<lmjm>``/``R-<lmjm>``
    like LAMOST's. Each part may carry its own ``meta`` (``snr``, ``exptime``, ``lmjm``...): what differs
    from the primary's goes into its extension header. An MRS :class:`Spectrum` (as read) may be passed as
    ``arms`` alone.
    """
    if isinstance(arms, Spectrum):
        if arms.kind != "MRS":
            raise ValueError("write_mrs_fits needs MRS arms; an LRS spectrum has none")
        exposures = arms.exposures if exposures is None else exposures
        meta = {**arms.meta, **(meta or {})}
        arms = arms.arms
    exposures = exposures or {}
    unknown = sorted(set(arms) - set(grid.MRS_ARMS))
    if unknown or not arms:
        raise ValueError(f"MRS arms must be among {sorted(grid.MRS_ARMS)}, got {sorted(arms)}")
    bad = [name for name in exposures if not EXPOSURE_NAME.match(name)]
    if bad:
        raise ValueError(f"MRS exposure names look like 'B-84107311' or 'R-84107311', got {bad}")
    parts = {
        f"COADD_{arm}": _arrays(arms[arm], grid.mrs_wavelength(arm)) for arm in ("B", "R") if arm in arms
    }
    parts.update((name, _arrays(part, grid.mrs_wavelength(name[0]))) for name, part in exposures.items())
    primary_meta = dict(meta or {})
    computed = {"filename": filename, "n_exten": 1 + len(parts), "vacuum": True}
    values = _primary_values(primary_meta, computed)
    for key in ("nexp_b", "nexp_r"):
        arm = key[-1].upper()
        if key not in values:
            values[key] = sum(1 for name in exposures if name[0] == arm)
    for arm in ("B", "R"):
        values.setdefault(f"combin_{arm.lower()}", arm in arms)
    structure = [
        card("SIMPLE", True, "conforms to FITS standard"),
        card("BITPIX", 16, ""),
        card("NAXIS", 0, "Number of array dimensions"),
        card("EXTEND", True, "Extensions may be present"),
        card("EXTNAME", "Information", "The extension name"),
    ]
    chunks = [_primary_header(values, "dr9+", structure)]
    for extname, part in parts.items():
        extension = _extension_values(part, values, extname)
        chunks.append(_vector_table(extname, part, extension, "dr9+", normalization=False))
    return b"".join(chunks)


# --- writing -----------------------------------------------------------------------------------------------


def atomic_write(path: str | os.PathLike[str], data: bytes) -> str:
    """Write ``data`` to ``path`` so that the file appears there only complete; returns the path written.

    Local paths: a hidden temporary file in the same directory (created with the process umask, like any
    file), then ``os.replace``. fsspec URLs: a temporary key, then ``fs.mv``. Parent directories are made.
    The data is not fsynced: this protects readers from half files, not the store from power loss.
    """
    target = os.fspath(path)
    if "://" in target and not target.startswith("file://"):
        import fsspec

        fs, fs_path = fsspec.core.url_to_fs(target)
        parent, name = fs_path.rsplit("/", 1) if "/" in fs_path else ("", fs_path)
        temporary = f"{parent}/.{name}.{secrets.token_hex(6)}.tmp" if parent else f".{name}.tmp"
        if parent:
            fs.makedirs(parent, exist_ok=True)
        fs.pipe_file(temporary, data)
        fs.mv(temporary, fs_path)
        return target
    target = target.removeprefix("file://")
    directory, name = os.path.split(os.path.abspath(target))
    os.makedirs(directory, exist_ok=True)
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temporary, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return target


def _write(path: str | os.PathLike[str], data: bytes, compresslevel: int) -> str:
    if os.fspath(path).endswith(".gz"):
        data = gzip.compress(data, compresslevel=compresslevel, mtime=0)
    return atomic_write(path, data)


def write_lrs_fits(
    path: str | os.PathLike[str],
    spectrum_or_arrays: ArraysLike,
    *,
    layout: LrsLayout = "lrs-coadd",
    meta: Mapping[str, Any] | None = None,
    compresslevel: int = COMPRESSLEVEL,
) -> str:
    """Write an LRS spectrum file (see :func:`encode_lrs_fits`) atomically; gzip when ``path`` ends in .gz."""
    data = encode_lrs_fits(spectrum_or_arrays, layout=layout, meta=meta, filename=_file_name(path))
    return _write(path, data, compresslevel)


def write_mrs_fits(
    path: str | os.PathLike[str],
    arms: Mapping[str, ArraysLike] | Spectrum,
    exposures: Mapping[str, ArraysLike] | None = None,
    meta: Mapping[str, Any] | None = None,
    *,
    compresslevel: int = COMPRESSLEVEL,
) -> str:
    """Write an MRS spectrum file (see :func:`encode_mrs_fits`) atomically; gzip when ``path`` ends in .gz."""
    data = encode_mrs_fits(arms, exposures, meta, filename=_file_name(path))
    return _write(path, data, compresslevel)
