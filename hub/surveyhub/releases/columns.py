"""The documented columns of every catalog a release carries.

Every column a release publishes is described once here, with its type, unit, UCD and description: the
release manifest copies these descriptions into ``release.toml`` so that researchers (and later TAP's
``tap_schema``) read what a column means from the release itself, not from a web page that may drift.
The names and meanings follow the LAMOST catalogs (DR9+ column names), so LAMOST users find what they know.

>>> [c.name for c in LRS_COLUMNS][:4]
['obsid', 'uid', 'gp_id', 'designation']
>>> column_by_name(STELLAR_COLUMNS, "teff").unit
'K'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: LAMOST's missing-value sentinel for numbers in catalogs.
MISSING = -9999.0


@dataclass(frozen=True, slots=True)
class Column:
    """One documented catalog column."""

    name: str
    dtype: str  # an Arrow/pandas type name: int64, int32, float64, float32, string, bool
    unit: str
    ucd: str
    description: str

    def to_dict(self) -> dict[str, str]:
        """The column as the plain table written into ``release.toml``."""
        return asdict(self)


def _cols(rows: list[tuple[str, str, str, str, str]]) -> tuple[Column, ...]:
    return tuple(Column(*row) for row in rows)


_IDENTITY = [
    ("obsid", "int64", "", "meta.id;meta.main", "Unique number ID of this spectrum"),
    ("uid", "string", "", "meta.id", "Unique ID of the object, shared by repeat observations of it"),
    ("gp_id", "int64", "", "meta.id.cross", "Gaia DR3 or Pan-STARRS1 ID of the object"),
    ("designation", "string", "", "meta.id", "LAMOST designation, LAMOST JHHMMSS.ss+DDMMSS.s"),
    ("obsdate", "string", "", "time.epoch;obs", "Date of observation (UTC, YYYY-MM-DD)"),
    ("lmjd", "int32", "d", "time.epoch", "Local modified Julian day of observation"),
    ("mjd", "int32", "d", "time.epoch", "Modified Julian day of observation"),
    ("planid", "string", "", "meta.id;obs.field", "Plan (plate) ID in use"),
    ("spid", "int16", "", "meta.id;instr", "Spectrograph ID (1-16)"),
    ("fiberid", "int16", "", "meta.id;instr", "Fiber ID on the spectrograph (1-250)"),
    ("ra_obs", "float64", "deg", "pos.eq.ra", "Right ascension of the fiber during observing (J2000)"),
    ("dec_obs", "float64", "deg", "pos.eq.dec", "Declination of the fiber during observing (J2000)"),
]

_SNR = [
    (f"snr{b}", "float32", "", "stat.snr;em.opt", f"Signal to noise ratio in the SDSS {b} band")
    for b in "ugriz"
]

_CLASSIFICATION = [
    ("class", "string", "", "src.class", "Spectral class from the pipeline: STAR, GALAXY, QSO or Unknown"),
    ("subclass", "string", "", "src.spType", "Spectral subclass from the pipeline (MK type for stars)"),
    ("z", "float64", "", "src.redshift", "Redshift from the pipeline (-9999 when not measured)"),
    ("z_err", "float64", "", "stat.error;src.redshift", "Uncertainty of z (-9999 when not measured)"),
]

_PHOTOMETRY = [
    ("ps_id", "int64", "", "meta.id.cross", "Pan-STARRS1 object ID (-9999 when none)"),
    *[
        (f"mag_ps_{b}", "float32", "mag", f"phot.mag;em.opt.{b.upper()}", f"Pan-STARRS1 {b} magnitude")
        for b in "grizy"
    ],
    (
        "gaia_source_id",
        "int64",
        "",
        "meta.id.cross",
        "Gaia DR3 source_id of the counterpart (-9999 when none)",
    ),
    ("gaia_g_mean_mag", "float32", "mag", "phot.mag;em.opt", "Gaia G mean magnitude of the counterpart"),
]

_TARGETING = [
    ("tsource", "string", "", "meta.note", "Name of the input catalog the target came from"),
    ("fibertype", "string", "", "meta.code;instr", "Fiber type: Obj, Sky, F-std, Unused, PosErr, Dead"),
    ("tfrom", "string", "", "meta.note", "Organization that selected the target"),
    ("tcomment", "string", "", "meta.note", "Target ID in its input catalog"),
    ("offsets", "bool", "", "meta.code", "Whether the fiber was offset during observing"),
    ("offsets_v", "float32", "arcsec", "pos.angDistance", "Offset of the fiber in arcseconds"),
    ("ra", "float64", "deg", "pos.eq.ra;meta.main", "Right ascension of the object (J2000)"),
    ("dec", "float64", "deg", "pos.eq.dec;meta.main", "Declination of the object (J2000)"),
    ("fibermask", "int32", "", "meta.code.qual", "Bitmask of fiber warnings, 0 means all is well"),
    ("with_norm_flux", "bool", "", "meta.code", "Whether the FITS file carries a normalised flux"),
]

LRS_COLUMNS: tuple[Column, ...] = _cols(_IDENTITY + _SNR + _CLASSIFICATION + _PHOTOMETRY + _TARGETING)
"""The LRS general catalog (LAMOST's ``LRS_catalogue`` / ``combined`` table)."""

_STELLAR_PARAMETERS = [
    ("teff", "float32", "K", "phys.temperature.effective", "Effective temperature from LASP"),
    ("teff_err", "float32", "K", "stat.error;phys.temperature.effective", "Uncertainty of teff"),
    ("logg", "float32", "log(cm.s**-2)", "phys.gravity", "Surface gravity from LASP"),
    ("logg_err", "float32", "log(cm.s**-2)", "stat.error;phys.gravity", "Uncertainty of logg"),
    ("feh", "float32", "dex", "phys.abund.Fe", "Metallicity [Fe/H] from LASP"),
    ("feh_err", "float32", "dex", "stat.error;phys.abund.Fe", "Uncertainty of feh"),
    ("rv", "float32", "km/s", "spect.dopplerVeloc.opt", "Heliocentric radial velocity from LASP"),
    ("rv_err", "float32", "km/s", "stat.error;spect.dopplerVeloc.opt", "Uncertainty of rv"),
    ("alpha_m", "float32", "dex", "phys.abund.X", "[alpha/M] from LASP"),
    ("alpha_m_err", "float32", "dex", "stat.error;phys.abund.X", "Uncertainty of alpha_m"),
]

STELLAR_COLUMNS: tuple[Column, ...] = LRS_COLUMNS + _cols(_STELLAR_PARAMETERS)
"""The LRS A, F, G and K type star catalog: the general columns plus LASP's stellar parameters."""

MRS_COLUMNS: tuple[Column, ...] = _cols(
    [
        *_IDENTITY,
        ("ra", "float64", "deg", "pos.eq.ra;meta.main", "Right ascension of the object (J2000)"),
        ("dec", "float64", "deg", "pos.eq.dec;meta.main", "Declination of the object (J2000)"),
        ("snr_b", "float32", "", "stat.snr", "Signal to noise ratio of the blue arm coadd"),
        ("snr_r", "float32", "", "stat.snr", "Signal to noise ratio of the red arm coadd"),
        ("nexp", "int16", "", "meta.number", "Number of single exposures coadded"),
        ("rv_br0", "float32", "km/s", "spect.dopplerVeloc.opt", "Radial velocity from both arms (LASP-MRS)"),
        ("rv_br0_err", "float32", "km/s", "stat.error;spect.dopplerVeloc.opt", "Uncertainty of rv_br0"),
        ("teff", "float32", "K", "phys.temperature.effective", "Effective temperature (LASP-MRS)"),
        ("logg", "float32", "log(cm.s**-2)", "phys.gravity", "Surface gravity (LASP-MRS)"),
        ("feh", "float32", "dex", "phys.abund.Fe", "Metallicity [Fe/H] (LASP-MRS)"),
        ("gaia_source_id", "int64", "", "meta.id.cross", "Gaia DR3 source_id of the counterpart"),
        ("gaia_g_mean_mag", "float32", "mag", "phot.mag;em.opt", "Gaia G mean magnitude of the counterpart"),
        ("tsource", "string", "", "meta.note", "Name of the input catalog the target came from"),
        ("fibertype", "string", "", "meta.code;instr", "Fiber type: Obj, Sky, F-std, Unused, PosErr, Dead"),
        ("fibermask", "int32", "", "meta.code.qual", "Bitmask of fiber warnings, 0 means all is well"),
    ]
)
"""The MRS general catalog (LAMOST's ``med_combined`` table)."""

SPECTRA_COLUMNS: tuple[Column, ...] = _cols(
    [
        ("obsid", "int64", "", "meta.id;meta.main", "Unique number ID of this spectrum"),
        ("ra", "float64", "deg", "pos.eq.ra;meta.main", "Right ascension of the object (J2000)"),
        ("dec", "float64", "deg", "pos.eq.dec;meta.main", "Declination of the object (J2000)"),
        (
            "flux",
            "list<float32>",
            "1e-17 erg/(s cm2 Angstrom)",
            "phot.flux.density;em.wl",
            "Flux on the grid",
        ),
        ("ivar", "list<float32>", "", "stat.weight;phot.flux.density", "Inverse variance of flux"),
        ("andmask", "list<int32>", "", "meta.code.qual", "AND of the pixel masks of the exposures"),
        ("ormask", "list<int32>", "", "meta.code.qual", "OR of the pixel masks of the exposures"),
    ]
)
"""The columnar LRS spectra: one row per spectrum, arrays on the release's common wavelength grid."""

GAIA_COLUMNS: tuple[Column, ...] = _cols(
    [
        ("source_id", "int64", "", "meta.id;meta.main", "Gaia-like source identifier"),
        ("ra", "float64", "deg", "pos.eq.ra;meta.main", "Right ascension at epoch 2016.0"),
        ("dec", "float64", "deg", "pos.eq.dec;meta.main", "Declination at epoch 2016.0"),
        ("pmra", "float32", "mas/yr", "pos.pm;pos.eq.ra", "Proper motion in right ascension (times cos dec)"),
        ("pmdec", "float32", "mas/yr", "pos.pm;pos.eq.dec", "Proper motion in declination"),
        ("parallax", "float32", "mas", "pos.parallax", "Parallax"),
        ("phot_g_mean_mag", "float32", "mag", "phot.mag;em.opt", "G-band mean magnitude"),
    ]
)
"""The external Gaia-like catalog shipped with a mock release for cross-matching."""


def column_by_name(columns: tuple[Column, ...], name: str) -> Column:
    """Return the column called ``name``; a KeyError names the column when it is not there."""
    for column in columns:
        if column.name == name:
            return column
    raise KeyError(f"no column {name!r}")
