"""LAMOST header keywords of every era, and the one era-independent name each of them has here.

LAMOST renamed some header keywords between data releases (``SN_G`` became ``SNRG``, ``OBJSOURC`` became
``TSOURCE``, ``FIBERTYP`` became ``FIB_TYPE``, ...) and writes "no value" as ``-9999``, ``-999``, ``99``
(magnitudes) or ``'NULL'``/``'-'``/``'.'``/blank, depending on the keyword and the era. Code that reads
spectra of several releases should not care: :func:`canonical_meta` turns the cards of any era into one
dictionary of lower-case names (the LAMOST catalog column names where a catalog column exists), typed
values, and ``None`` for every missing value. The FITS writer goes the other way with :func:`card_name`,
:func:`missing_value` and the comments kept here, so files it writes carry the keywords of the era they
imitate.

Everything lives in one table, :data:`TABLE` (parsed into :data:`KEYWORDS`), so that a new era or a new
keyword is one more row, not one more ``if``. Its columns:

``name``
    the canonical, era-independent name;
``pilot``, ``DR2-DR8``, ``DR9+``
    the card name in each era (``-``: the era has no such card). The eras are those of the file layouts:
    the DR1 pilot 5 x 3904 image, the DR2-DR8 5 x 3909 image (and the DR7 MRS files, which share its
    keywords), and the DR9+ ``COADD`` tables;
``type``
    ``int``, ``float``, ``str`` or ``bool``: values are coerced to it, so that e.g. ``X_VALUE``, written
    as a number in one era and as a string in another, is a float in both;
``dec``
    decimals the writer uses for floats (when they keep the value exact), as LAMOST writes them;
``miss``
    what the writer puts in place of ``None`` (``-`` for the type's default: ``-9999``, a blank string,
    or an undefined value for booleans); the reader also takes it as "missing";
``core``
    ``core`` marks the names every reader result carries (``None`` when the file has no such card) and
    every written file has, so that spectra of all eras have the same keys: they are the header cards
    behind the LRS catalog columns;
``comment``
    the card comment, as in the real files.

The era-dependent renames, in short: ``snru..snrz`` <- ``SN_U..SN_Z`` (pilot) / ``SNRU..SNRZ``;
``tsource`` <- ``OBJSOURC`` / ``TSOURCE``; ``tcomment`` <- ``T_INFO`` / ``TCOMMENT``;
``tfrom`` <- ``T_FROM`` / ``TFROM``; ``fibertype`` <- ``FIBERTYP`` / ``FIB_TYPE``;
``fibermask`` <- ``FIBERMAS`` / ``FIB_MASK``; ``designation`` <- ``DESIG``; ``offsets`` <- ``OFFSET``;
``offsets_v`` <- ``OFFSET_V``; ``mag_ps_g..mag_ps_y`` <- ``MAG_PS_G..MAG_PS_Y`` (DR9+); ``magtype`` and
``mag1..mag7`` <- ``MAGTYPE``, ``MAG1..MAG7`` (up to DR8).

Two names are derived rather than read: ``obsdate`` (``YYYY-MM-DD``, the date part of ``DATE-OBS``) and,
when ``MAGTYPE`` spells one band per magnitude (``'ugrizjh'``, ``'g'``), ``mag_<band>`` for each of them.
Cards not in the table keep their own name, lower-cased with ``-`` turned into ``_`` (``EXPID01`` ->
``expid01``); cards that describe the FITS structure (``NAXIS1``, ``TTYPE1``, ``EXTNAME``, ...) are left out,
because they say nothing about the spectrum (DR9 primaries even keep stale ``NAXIS1``/``NAXIS2``).

>>> cards = [("SN_G", 10.56), ("OBJSOURC", "PILOT   "), ("T_INFO", "NULL"), ("MAGTYPE", "ugrizjh"),
...          ("MAG1", 99.0), ("MAG2", 17.4), ("DATE-OBS", "2011-10-27T20:02")]
>>> meta = canonical_meta(cards)
>>> meta["snrg"], meta["tsource"], meta["tcomment"], meta["obsid"], meta["obsdate"]
(10.56, 'PILOT', None, None, '2011-10-27')
>>> meta["mag_u"], meta["mag_g"]
(None, 17.4)
>>> card_name("fibertype", "dr2-dr8"), card_name("fibertype", "dr9+"), card_name("snrg", "dr1-pilot")
('FIBERTYP', 'FIB_TYPE', 'SN_G')
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Era = Literal["dr1-pilot", "dr2-dr8", "dr9+"]
ERAS: tuple[Era, ...] = ("dr1-pilot", "dr2-dr8", "dr9+")

#: The mapping. Sections (``[...]``) are the ``COMMENT --------...`` groups of the real headers, in order.
TABLE = """
# name     pilot    DR2-DR8  DR9+     type  dec miss  core comment
[FILE INFORMATION]
filename   FILENAME FILENAME FILENAME str   -   -     -    -
obsid      -        OBSID    OBSID    int   -   -     core Unique number ID of this spectrum
author     AUTHOR   AUTHOR   AUTHOR   str   -   -     -    Who compiled the information
data_v     -        DATA_V   DATA_V   str   -   -     core Data release version
n_exten    N_EXTEN  N_EXTEN  N_EXTEN  int   -   -     -    The extension number
exten0     EXTEN0   EXTEN0   -        str   -   -     -    -
norm       -        -        NORM     int   -   -     -    1 if there exists a normalized spectrum
origin     ORIGIN   ORIGIN   ORIGIN   str   -   -     -    Organization responsible for creating this file
date       DATE     DATE     DATE     str   -   -     -    Time when this HDU is created (UTC)
[TELESCOPE PARAMETERS]
telescop   TELESCOP TELESCOP TELESCOP str   -   -     -    GuoShouJing Telescope
longitud   LONGITUD LONGITUD LONGITUD float 2   -     -    [deg] Longitude of site
latitude   LATITUDE LATITUDE LATITUDE float 2   -     -    [deg] Latitude of site
focus      FOCUS    FOCUS    FOCUS    int   -   -     -    [mm] Telescope focus
campro     CAMPRO   CAMPRO   CAMPRO   str   -   -     -    Camera program name
camver     CAMVER   CAMVER   CAMVER   str   -   -     -    Camera program version
[OBSERVATION PARAMETERS]
date_obs   DATE-OBS DATE-OBS DATE-OBS str   -   -     core The observation median UTC
date_beg   DATE-BEG DATE-BEG DATE-BEG str   -   -     -    The observation start local time
date_end   DATE-END DATE-END DATE-END str   -   -     -    The observation end local time
lmjd       LMJD     LMJD     LMJD     int   -   -     core Local Modified Julian Day
mjd        MJD      MJD      MJD      int   -   -     core Modified Julian Day
lmjmlist   LMJMLIST LMJMLIST LMJMLIST str   -   -     -    Local Modified Julian Minute list
planid     PLANID   PLANID   PLANID   str   -   -     core Plan ID in use
ra         RA       RA       RA       float 6   -     core [deg] Right ascension of object
dec        DEC      DEC      DEC      float 6   -     core [deg] Declination of object
ra_obs     -        RA_OBS   RA_OBS   float 6   -     core [deg] Right ascension during observing
dec_obs    -        DEC_OBS  DEC_OBS  float 6   -     core [deg] Declination during observing
offsets    -        OFFSET   OFFSET   bool  -   -     core Whether there's a offset during observing
offsets_v  -        OFFSET_V OFFSET_V float 2   -     core Offset value in arcsecond
gl         GL       GL       GL       float 6   -     -    [deg] Galactic longitude of object
gb         GB       GB       GB       float 6   -     -    [deg] Galactic latitude of object
designation DESIG  DESIG    DESIG    str   -   -     core Designation of LAMOST target
fiberid    FIBERID  FIBERID  FIBERID  int   -   -     core Fiber ID of Object
cell_id    CELL_ID  CELL_ID  CELL_ID  str   -   -     -    Fiber Unit ID on the focal plane
x_value    X_VALUE  X_VALUE  X_VALUE  float 10  -     -    [mm] X coordinate of object on the focal plane
y_value    Y_VALUE  Y_VALUE  Y_VALUE  float 10  -     -    [mm] Y coordinate of object on the focal plane
objname    OBJNAME  OBJNAME  OBJNAME  str   -   -     -    Name of object
objtype    OBJTYPE  OBJTYPE  OBJTYPE  str   -   -     core Object type from input catalog
tsource    OBJSOURC TSOURCE  TSOURCE  str   -   -     core Name of input catalog
tcomment   T_INFO   TCOMMENT TCOMMENT str   -   '-'   core Target information
tfrom      T_FROM   TFROM    TFROM    str   -   '-'   core Target catalog
fibertype  FIBERTYP FIBERTYP FIB_TYPE str   -   -     core Fiber type of object
fibermask  -        FIBERMAS FIB_MASK int   -   -     core Bitmask of warning values, 0 means all is well
magtype    MAGTYPE  MAGTYPE  -        str   -   -     -    Magnitude type of object
mag1       MAG1     MAG1     -        float 2   99    -    [mag] Mag1 of object
mag2       MAG2     MAG2     -        float 2   99    -    [mag] Mag2 of object
mag3       MAG3     MAG3     -        float 2   99    -    [mag] Mag3 of object
mag4       MAG4     MAG4     -        float 2   99    -    [mag] Mag4 of object
mag5       MAG5     MAG5     -        float 2   99    -    [mag] Mag5 of object
mag6       MAG6     MAG6     -        float 2   99    -    [mag] Mag6 of object
mag7       MAG7     MAG7     -        float 2   99    -    [mag] Mag7 of object
mag_ps_g   -        -        MAG_PS_G float 2   -999  core [mag] Magnitude of object
mag_ps_r   -        -        MAG_PS_R float 2   -999  core [mag] Magnitude of object
mag_ps_i   -        -        MAG_PS_I float 2   -999  core [mag] Magnitude of object
mag_ps_z   -        -        MAG_PS_Z float 2   -999  core [mag] Magnitude of object
mag_ps_y   -        -        MAG_PS_Y float 2   -999  core [mag] Magnitude of object
obs_type   OBS_TYPE OBS_TYPE OBS_TYPE str   -   -     -    The type of target (OBJ, FLAT, ARC or BIAS)
obscomm    OBSCOMM  OBSCOMM  OBSCOMM  str   -   -     -    Science or Test
radecsys   RADECSYS RADECSYS RADECSYS str   -   -     -    Equatorial coordinate system
equinox    EQUINOX  EQUINOX  EQUINOX  float 2   -     -    Equinox in years
lamplist   LAMPLIST LAMPLIST LAMPLIST str   -   -     -    Arc lamp emission line list
skylist    SKYLIST  SKYLIST  SKYLIST  str   -   -     -    Sky emission line list
nexp       NEXP     NEXP     NEXP     int   -   -     -    Number of valid exposures
nexp_b     NEXP_B   NEXP_B   NEXP_B   int   -   -     -    Number of valid blue exposures
nexp_r     NEXP_R   NEXP_R   NEXP_R   int   -   -     -    Number of valid red exposures
combin_b   COMBIN_B COMBIN_B COMBIN_B bool  -   -     -    Whether the combined data of B band exists
combin_r   COMBIN_R COMBIN_R COMBIN_R bool  -   -     -    Whether the combined data of R band exists
expt_b     EXPT_B   EXPT_B   EXPT_B   float 2   -     -    [s] Blue exposure duration time
expt_r     EXPT_R   EXPT_R   EXPT_R   float 2   -     -    [s] Red exposure duration time
exptime    EXPTIME  EXPTIME  EXPTIME  float 2   -     -    [s] Minimum of exposure time for all cameras
bestexp    BESTEXP  BESTEXP  BESTEXP  int   -   -     -    LMJM of the best exposure
scamean    SCAMEAN  SCAMEAN  SCAMEAN  float 2   -     -    [ADU] Mean level of scatter light
[SPECTROGRAPH PARAMETERS]
spid       SPID     SPID     SPID     int   -   -     core Spectrograph ID
spra       SPRA     SPRA     SPRA     float 7   -     -    [deg] Average RA of this spectrograph
spdec      SPDEC    SPDEC    SPDEC    float 7   -     -    [deg] Average DEC of this spectrograph
slit_mod   SLIT_MOD SLIT_MOD SLIT_MOD str   -   -     -    Slit mode, x1, x2/3 or x1/2
[WEATHER CONDITION]
tempccdb   TEMPCCDB TEMPCCDB TEMPCCDB float 2   -     -    [deg] The temperature of blue CCD
tempccdr   TEMPCCDR TEMPCCDR TEMPCCDR float 2   -     -    [deg] The temperature of red CCD
seeing     SEEING   SEEING   SEEING   float 2   -     -    [arcsec] Seeing during exposure
moonpha    MOONPHA  MOONPHA  MOONPHA  float 2   -     -    [day] Moon phase for a 29.53 days period
temp_air   TEMP_AIR TEMP_AIR TEMP_AIR float 2   -     -    [deg] Temperature outside dome
temp_fp    TEMP_FP  TEMP_FP  TEMP_FP  float 2   -     -    [degree celsius] Temperature of the focalplane
dewpoint   DEWPOINT DEWPOINT DEWPOINT float 2   -     -    [deg]
dust       DUST     DUST     DUST     str   -   -     -    Reservation
humidity   HUMIDITY HUMIDITY HUMIDITY float 2   -     -    -
windd      WINDD    WINDD    WINDD    float 2   -     -    [deg] Wind direction
winds      WINDS    WINDS    WINDS    float 2   -     -    [m/s] Wind speed
skylevel   SKYLEVEL SKYLEVEL SKYLEVEL str   -   -     -    Reservation
[DATA REDUCTION PARAMETERS]
extract    EXTRACT  EXTRACT  EXTRACT  str   -   -     -    Extraction method
sflatten   SFLATTEN SFLATTEN SFLATTEN bool  -   -     -    Super flat has been applied
pcaskysb   PCASKYSB PCASKYSB PCASKYSB bool  -   -     -    PCA sky-subtraction has been applied
nskies     NSKIES   NSKIES   NSKIES   int   -   -     -    Sky fiber number
skychi2    SKYCHI2  SKYCHI2  SKYCHI2  float 1   -     -    Mean chi^2 of sky-subtraction
schi2min   SCHI2MIN SCHI2MIN SCHI2MIN float 1   -     -    Minimum chi^2 of sky-subtraction
schi2max   SCHI2MAX SCHI2MAX SCHI2MAX float 1   -     -    Maximum chi^2 of sky-subtraction
nstd       NSTD     NSTD     NSTD     int   -   -     -    Number of (good) standard stars
fstar      FSTAR    FSTAR    FSTAR    str   -   -     -    FiberID of flux standard stars
fcby       FCBY     FCBY     FCBY     str   -   -     -    Standard stars origin (auto, manual or catalog)
helio      HELIO    HELIO    HELIO    bool  -   -     -    Heliocentric correction
helio_rv   HELIO_RV HELIO_RV HELIO_RV float 5   -     -    [km/s] Heliocentric correction
vacuum     VACUUM   VACUUM   VACUUM   bool  -   -     -    Wavelengths are in vacuum
nworder    NWORDER  NWORDER  NWORDER  int   -   -     -    Number of linear-log10 coefficients
wfittype   WFITTYPE WFITTYPE WFITTYPE str   -   -     -    Linear-log10 dispersion
coeff0     COEFF0   COEFF0   COEFF0   float 4   -     -    Central wavelength (log10) of first pixel
coeff1     COEFF1   COEFF1   COEFF1   float 4   -     -    Log10 dispersion per pixel
wat0_001   WAT0_001 WAT0_001 WAT0_001 str   -   -     -    -
wat1_001   WAT1_001 WAT1_001 WAT1_001 str   -   -     -    -
crval1     CRVAL1   CRVAL1   CRVAL1   float 4   -     -    Central wavelength (log10) of first pixel
cd1_1      CD1_1    CD1_1    CD1_1    float 4   -     -    Log10 dispersion per pixel
crpix1     CRPIX1   CRPIX1   CRPIX1   int   -   -     -    Starting pixel (1-indexed)
ctype1     CTYPE1   CTYPE1   CTYPE1   str   -   -     -    -
dc_flag    DC-FLAG  DC-FLAG  DC-FLAG  int   -   -     -    Log-linear flag
[SPECTRA ANALYSIS RESULTS]
verspipe   VERSPIPE VERSPIPE VERSPIPE str   -   -     core Version of Pipeline
class      CLASS    CLASS    CLASS    str   -   -     core Class of object
subclass   SUBCLASS SUBCLASS SUBCLASS str   -   -     core Subclass of object
z          Z        Z        Z        float 8   -     core Redshift of object
z_err      Z_ERR    Z_ERR    Z_ERR    float 8   -     core Redshift error of object
zflag      ZFLAG    ZFLAG    ZFLAG    str   -   -     -    Which method computes the redshift
snru       SN_U     SNRU     SNRU     float 2   -     core SNR of u filter
snrg       SN_G     SNRG     SNRG     float 2   -     core SNR of g filter
snrr       SN_R     SNRR     SNRR     float 2   -     core SNR of r filter
snri       SN_I     SNRI     SNRI     float 2   -     core SNR of i filter
snrz       SN_Z     SNRZ     SNRZ     float 2   -     core SNR of z filter
[EXTENSION]
snr        SNR      SNR      SNR      float 2   -     -    Signal to noise ratio
lmjm       LMJM     LMJM     LMJM     int   -   -     -    Local Modified Julian Minute
"""

#: Numbers LAMOST writes for "no value" under any keyword.
MISSING_NUMBERS: frozenset[float] = frozenset({-9999.0, -999.0})
#: Strings LAMOST writes for "no value" (compared after stripping, case-insensitively).
MISSING_STRINGS: frozenset[str] = frozenset({"NULL", "", "-", "."})

#: Cards that describe the FITS structure of an HDU, not the spectrum: never part of ``meta``.
STRUCTURAL = re.compile(
    r"^(SIMPLE|BITPIX|NAXIS\d*|EXTEND|XTENSION|PCOUNT|GCOUNT|TFIELDS|BSCALE|BZERO|BUNIT|EXTNAME|EXTVER|"
    r"CHECKSUM|DATASUM|COMMENT|HISTORY|END|T(TYPE|FORM|UNIT|DIM|NULL|SCAL|ZERO|DISP)\d+|)$"
)

#: Letters ``MAGTYPE`` may spell bands with (one per magnitude): ``'ugrizjh'``, ``'g'``; not ``'fibermagr'``.
BAND_LETTERS = frozenset("ugrizyjhk")
#: Names computed from other cards, never read from or written to a card of their own.
DERIVED: frozenset[str] = frozenset({"obsdate"} | {f"mag_{band}" for band in BAND_LETTERS})

_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}


@dataclass(frozen=True, slots=True)
class Keyword:
    """One row of :data:`TABLE`: a canonical name and how each era writes it."""

    name: str
    cards: dict[str, str | None]  # era -> card name (None: no such card in that era)
    type: type
    decimals: int | None
    missing: Any  # what stands for None when written; also read as missing
    core: bool
    section: str
    comment: str

    @property
    def newest_card(self) -> str:
        """The card name of the newest era that has one: the name used outside the row's own eras."""
        return next(card for card in reversed(self.cards.values()) if card)


def _parse_missing(text: str, kind: type) -> Any:
    if text == "-":
        return {int: -9999, float: -9999.0, str: ""}.get(kind)
    if text.startswith("'"):
        return text.strip("'")
    return kind(text)


def _parse_table(text: str) -> dict[str, Keyword]:
    keywords: dict[str, Keyword] = {}
    section = ""
    for line in text.strip().splitlines():
        if line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        name, pilot, dr2, dr9, kind, dec, missing, core, comment = line.split(maxsplit=8)
        typ = _TYPES[kind]
        keywords[name] = Keyword(
            name=name,
            cards={
                era: None if card == "-" else card for era, card in zip(ERAS, (pilot, dr2, dr9), strict=True)
            },
            type=typ,
            decimals=None if dec == "-" else int(dec),
            missing=_parse_missing(missing, typ),
            core=core == "core",
            section=section,
            comment="" if comment == "-" else comment,
        )
    return keywords


#: Canonical name -> :class:`Keyword`, in header order.
KEYWORDS: dict[str, Keyword] = _parse_table(TABLE)
#: Card name of any era -> canonical name.
CARD_TO_NAME: dict[str, str] = {
    card: kw.name for kw in KEYWORDS.values() for card in kw.cards.values() if card
}
#: Names every :func:`canonical_meta` result carries, ``None`` when the header lacks them.
CORE_NAMES: tuple[str, ...] = (*(kw.name for kw in KEYWORDS.values() if kw.core), "obsdate")


def canonical_name(card: str) -> str:
    """The era-independent name of a card: from the table, else lower-cased with ``-`` as ``_``."""
    card = card.strip().upper()
    return CARD_TO_NAME.get(card) or card.lower().replace("-", "_")


def card_name(name: str, era: Era) -> str | None:
    """The card a canonical name is written as in ``era`` (``None``: that era has no such card)."""
    keyword = KEYWORDS.get(name)
    if keyword is None:
        return name.upper()
    return keyword.cards[era]


def missing_value(name: str) -> Any:
    """What stands for ``None`` when ``name`` is written (``None``: an undefined card value)."""
    keyword = KEYWORDS.get(name)
    return None if keyword is None else keyword.missing


def _coerce(value: Any, kind: type) -> Any:
    """``value`` as ``kind`` when it converts exactly; otherwise unchanged, so that nothing is invented."""
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    try:
        if kind is str:
            return str(value)
        if kind is bool:
            return (
                {"T": True, "F": False}[str(value).strip().upper()] if isinstance(value, str) else bool(value)
            )
        if kind is int:
            number = float(value)
            return int(number) if number.is_integer() else value
        return float(value)
    except (TypeError, ValueError, KeyError):
        return value


def is_missing(name: str, value: Any) -> bool:
    """Whether ``value`` means "no value" for ``name`` (sentinel numbers, ``'NULL'``, ``'-'``, blank...)."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip().upper() in MISSING_STRINGS
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if math.isnan(value) or value in MISSING_NUMBERS:
        return True
    keyword = KEYWORDS.get(name)
    return keyword is not None and isinstance(keyword.missing, int | float) and value == keyword.missing


def canonical_value(name: str, value: Any) -> Any:
    """A card value typed for ``name``, with strings stripped and missing values as ``None``."""
    if isinstance(value, str):
        value = value.strip()
    elif not isinstance(value, bool | int | float | str):  # astropy's Undefined, or anything exotic
        return None
    if is_missing(name, value):
        return None
    keyword = KEYWORDS.get(name)
    if keyword is not None:
        value = _coerce(value, keyword.type)
        if is_missing(name, value):  # '-9999' written as a string
            return None
    return value


def _band_magnitudes(meta: Mapping[str, Any]) -> dict[str, Any]:
    magtype = meta.get("magtype")
    if not isinstance(magtype, str):
        return {}
    bands = magtype.strip().lower()
    if not bands or len(bands) > 7 or len(set(bands)) != len(bands) or not set(bands) <= BAND_LETTERS:
        return {}
    return {f"mag_{band}": meta.get(f"mag{i}") for i, band in enumerate(bands, start=1)}


def derived_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The derived names of :data:`DERIVED` computed from ``meta``: ``obsdate`` and ``mag_<band>``."""
    date_obs = meta.get("date_obs")
    obsdate = None
    if isinstance(date_obs, str) and re.match(r"^\d{4}-\d{2}-\d{2}", date_obs):
        obsdate = date_obs[:10]
    return {"obsdate": obsdate, **_band_magnitudes(meta)}


def canonical_meta(
    cards: Iterable[tuple[str, Any]] | Mapping[str, Any], *, core: bool = True
) -> dict[str, Any]:
    """Turn header cards of any LAMOST era into canonical names and typed values.

    ``cards`` is an astropy ``Header`` (its ``.items()``), a mapping or ``(keyword, value)`` pairs. With
    ``core`` (the default) every name of :data:`CORE_NAMES` is present, ``None`` when absent, so that
    spectra of all eras have the same keys; extension headers are read with ``core=False``.
    """
    items = cards.items() if hasattr(cards, "items") else cards
    meta: dict[str, Any] = dict.fromkeys(CORE_NAMES) if core else {}
    seen: set[str] = set()
    for card, value in items:
        card = card.strip().upper()
        if STRUCTURAL.match(card):
            continue
        name = canonical_name(card)
        if name in seen:  # a repeated card: the first one is the one FITS readers report
            continue
        seen.add(name)
        meta[name] = canonical_value(name, value)
    derived = derived_meta(meta)
    if core or derived["obsdate"] is not None:
        meta["obsdate"] = derived["obsdate"]
    meta.update((k, v) for k, v in derived.items() if k != "obsdate")
    return meta
