"""A mock LAMOST survey: plates of 4000 fibres and the catalog rows they yield.

The rows are what LAMOST's pipelines publish, drawn so that their columns agree with each other as in the
real catalogs: obsid from the plan sequence, spectrograph and fibre; the designation from the position;
the plan ID from the plate centre and its magnitude range; LMJD, MJD and the observation date from one
night; classes in LAMOST's mix with MK subclasses from the effective temperature; SNR from the magnitude.
Release versions nest by observation date: the oldest plates are public (v2), newer ones reach partners
(v1), the newest only the working group (v0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from astropy.time import Time

from surveyhub.releases.layout import designations, make_obsid
from surveyhub.releases.mock.footprint import plate_centres, scatter_in_plate

SPECTROGRAPHS = 16
FIBRES_PER_SPECTROGRAPH = 250
C_KMS = 299_792.458

#: Fractions of plates (oldest first) in each release level: 2 = public (v2), 1 = partners (v1), 0 = v0 only.
LEVEL_FRACTIONS = (0.6, 0.2, 0.2)

_CLASS_MIX = (("STAR", 0.90), ("GALAXY", 0.05), ("QSO", 0.02), ("Unknown", 0.03))
#: MK subclasses by effective temperature (lower bin edges in K).
_MK_EDGES = np.array(
    [
        0,
        3300,
        3500,
        3700,
        3900,
        4200,
        4500,
        4800,
        5100,
        5400,
        5700,
        5950,
        6250,
        6600,
        7000,
        7400,
        8000,
        9000,
        10000,
        15000,
        30000,
    ]
)
_MK_TYPES = np.array(
    [
        "M5",
        "M4",
        "M2",
        "M0",
        "K7",
        "K5",
        "K3",
        "K1",
        "G8",
        "G5",
        "G2",
        "F9",
        "F5",
        "F2",
        "F0",
        "A7",
        "A5",
        "A2",
        "A0",
        "B6",
        "O",
    ]
)
_GALAXY_SUBCLASSES = (("Starforming", 0.45), ("Starburst", 0.1), ("AGN", 0.1), ("", 0.35))
_TSOURCES = ("LEGAS_SSY", "JF_LEGAS_S", "LSS-GAC", "KEPLER", "M31", "LEGAS_GAC", "HPMS", "MRS_TD_T")
_TFROMS = ("NAOC", "YNAO", "SHAO", "NJU", "PMO", "XAO", "BNU", "PI")
#: Survey start: the first night of the regular survey (2012-09-28, MJD 56198).
SURVEY_START_LMJD = 56199


@dataclass(frozen=True)
class Plates:
    """The plates of a mock survey, oldest first."""

    planid: np.ndarray  # str
    sequence: np.ndarray  # plan sequence number (the obsid prefix)
    ra: np.ndarray
    dec: np.ndarray
    lmjd: np.ndarray
    brightness: np.ndarray  # "B", "M", "F" (LRS) or "T" (MRS time-domain)
    level: np.ndarray  # release level, see LEVEL_FRACTIONS
    nobj: np.ndarray  # objects observed on the plate

    def __len__(self) -> int:
        return int(self.planid.size)


def _weighted_choice(rng: np.random.Generator, table: tuple[tuple[str, float], ...], n: int) -> np.ndarray:
    names = np.array([name for name, _ in table], dtype=object)
    p = np.array([w for _, w in table], dtype=np.float64)
    return names[rng.choice(len(names), size=n, p=p / p.sum())]


def _observing_nights(rng: np.random.Generator, n: int, nights_per_plate: float) -> np.ndarray:
    """Sorted LMJDs in LAMOST's observing seasons (September to June), a few plates a night."""
    span = int(max(n * nights_per_plate, 1)) + 60
    days = SURVEY_START_LMJD + np.arange(int(span * 1.3) + 30)
    months = Time(days - 1, format="mjd").datetime64.astype("datetime64[M]").astype(int) % 12 + 1
    season = days[(months <= 6) | (months >= 9)]
    return np.sort(rng.choice(season[: max(span, 1)], size=n, replace=True))


def _planids(ra: np.ndarray, dec: np.ndarray, l: np.ndarray, b: np.ndarray, suffix: np.ndarray) -> np.ndarray:  # noqa: E741
    """LAMOST-style plan IDs: region prefix, the centre as HHMMSS[N|S]DDMMSS, brightness and a number."""
    ra_h = ra / 15.0
    hh = np.floor(ra_h).astype(int)
    mm = np.floor((ra_h - hh) * 60).astype(int)
    ss = np.floor(((ra_h - hh) * 60 - mm) * 60).astype(int)
    ad = np.abs(dec)
    dd = np.floor(ad).astype(int)
    dm = np.floor((ad - dd) * 60).astype(int)
    ds = np.floor(((ad - dd) * 60 - dm) * 60).astype(int)
    anticentre = (np.abs(b) < 30) & (np.abs(l - 180.0) < 60)
    prefix = np.where(suffix == "T", "TD", np.where(anticentre, "GAC", np.where(np.abs(b) >= 30, "EG", "HD")))
    ns = np.where(dec < 0, "S", "N")
    return np.array(
        [
            f"{p}{h:02d}{m:02d}{s:02d}{n}{d:02d}{e:02d}{t:02d}{x}01"
            for p, h, m, s, n, d, e, t, x in zip(prefix, hh, mm, ss, ns, dd, dm, ds, suffix, strict=True)
        ],
        dtype=object,
    )


def make_plates(
    rng: np.random.Generator, nrows: int, *, mrs: bool = False, first_sequence: int = 1
) -> Plates:
    """Enough plates, oldest first, to observe ``nrows`` objects (the last plate is cut to fit)."""
    per_plate = rng.integers(3600, 3900, size=max(nrows // 3600 + 2, 2))
    cum = np.cumsum(per_plate)
    n = int(np.searchsorted(cum, nrows) + 1)
    nobj = per_plate[:n].copy()
    nobj[-1] -= int(cum[n - 1] - nrows)
    ra, dec, l, b = plate_centres(rng, n)  # noqa: E741
    if mrs:
        brightness = np.full(n, "T", dtype=object)
    else:
        brightness = rng.choice(np.array(["B", "M", "F"], dtype=object), size=n, p=[0.35, 0.4, 0.25])
    lmjd = _observing_nights(rng, n, nights_per_plate=0.25)
    cut1 = round(n * LEVEL_FRACTIONS[0])
    cut2 = round(n * (LEVEL_FRACTIONS[0] + LEVEL_FRACTIONS[1]))
    level = np.zeros(n, dtype=np.int8)
    level[:cut1], level[cut1:cut2] = 2, 1
    level[0] = 2  # the public version is never empty
    return Plates(
        planid=_planids(ra, dec, l, b, brightness),
        sequence=first_sequence + np.arange(n),
        ra=ra,
        dec=dec,
        lmjd=lmjd,
        brightness=brightness,
        level=level,
        nobj=nobj,
    )


#: Below this many plates, versions nest by spectrograph instead of by plate (see :func:`_row_levels`).
MIN_PLATES_FOR_DATE_LEVELS = 5


def _row_levels(plates: Plates, p: np.ndarray, spid: np.ndarray) -> np.ndarray:
    """The release level of each row: its plate's, or for tiny releases its spectrograph's.

    A release of a handful of plates (tests, the 10,000-spectrum demo) would otherwise have v1 equal to v2;
    nesting by spectrograph (1-10 public, 11-13 partners, 14-16 working group only: "still in validation")
    keeps every version distinct so access rules show in every result.
    """
    if len(plates) >= MIN_PLATES_FOR_DATE_LEVELS:
        return plates.level[p]
    return np.select([spid <= 10, spid <= 13], [2, 1], 0).astype(np.int8)


def _mk_subclass(teff: np.ndarray) -> np.ndarray:
    return _MK_TYPES[np.clip(np.searchsorted(_MK_EDGES, teff, side="right") - 1, 0, len(_MK_TYPES) - 1)]


def _plate_rows(rng: np.random.Generator, plates: Plates, which: np.ndarray) -> pd.DataFrame:
    """Positions, fibres and observation identity of every object on the chosen plates."""
    nobj = plates.nobj[which]
    p = np.repeat(which, nobj)
    slots = np.concatenate(
        [rng.choice(SPECTROGRAPHS * FIBRES_PER_SPECTROGRAPH, size=k, replace=False) for k in nobj]
    )
    spid = (slots // FIBRES_PER_SPECTROGRAPH + 1).astype(np.int16)
    fiberid = (slots % FIBRES_PER_SPECTROGRAPH + 1).astype(np.int16)
    ra, dec = scatter_in_plate(rng, plates.ra[p], plates.dec[p])
    lmjd = plates.lmjd[p].astype(np.int32)
    mjd = lmjd - 1  # LAMOST observes in the local evening: the local MJD is a day ahead of the UTC MJD
    obsdate = Time(mjd.astype(np.float64), format="mjd").datetime64.astype("datetime64[D]").astype(str)
    df = pd.DataFrame(
        {
            "obsid": make_obsid(plates.sequence[p], spid, fiberid),
            "obsdate": obsdate,
            "lmjd": lmjd,
            "mjd": mjd.astype(np.int32),
            "planid": plates.planid[p],
            "spid": spid,
            "fiberid": fiberid,
            "ra": ra,
            "dec": dec,
            "_level": _row_levels(plates, p, spid),
            "_brightness": plates.brightness[p],
        }
    )
    return df.sort_values("obsid", kind="stable").reset_index(drop=True)


def _magnitudes(rng: np.random.Generator, brightness: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """g magnitudes: faint objects outnumber bright ones within each plate's magnitude range."""
    lo = np.select([brightness == "B", brightness == "M", brightness == "T"], [10.0, 14.0, 9.0], 16.0)
    hi = np.select([brightness == "B", brightness == "M", brightness == "T"], [14.5, 16.8, 15.0], 18.5)
    extragalactic = (cls == "GALAXY") | (cls == "QSO")
    lo = np.where(extragalactic, np.maximum(lo, 15.5), lo)
    hi = np.where(extragalactic, np.maximum(hi, 19.0), hi)
    # N(<m) ~ 10**(0.3 m): invert the cumulative distribution between lo and hi.
    u = rng.uniform(0.0, 1.0, brightness.size)
    a, b = 10 ** (0.3 * lo), 10 ** (0.3 * hi)
    return (np.log10(a + u * (b - a)) / 0.3).astype(np.float32)


def lrs_rows(rng: np.random.Generator, plates: Plates, which: np.ndarray) -> pd.DataFrame:
    """Catalog rows (LRS general columns, stellar parameters, and ``_`` internal columns) for some plates.

    Internal columns (``_level``, ``_brightness``) steer versions and spectra and are not published.
    """
    df = _plate_rows(rng, plates, which)
    n = len(df)
    cls = _weighted_choice(rng, _CLASS_MIX, n)
    df["class"] = cls
    star = cls == "STAR"
    giant = star & (rng.uniform(size=n) < 0.25)
    teff = np.where(giant, rng.normal(4700, 300, n), rng.normal(5800, 1100, n))
    teff = np.where(rng.uniform(size=n) < 0.04, rng.uniform(7500, 12000, n), teff)  # A and late B stars
    teff = np.clip(teff, 3100, 30000)
    logg = np.where(giant, rng.normal(2.6, 0.5, n), rng.normal(4.35, 0.25, n))
    logg = np.where(teff > 7500, rng.normal(4.0, 0.3, n), logg)
    feh = np.clip(rng.normal(-0.25, 0.3, n), -2.5, 0.6)
    alpha_m = np.clip(0.3 * np.clip(-feh, 0, 1) + rng.normal(0.0, 0.04, n), -0.2, 0.5)
    rv = rng.normal(-5.0, 45.0, n)
    z = np.full(n, -9999.0)
    z[star] = rv[star] / C_KMS
    galaxy, qso, unknown = cls == "GALAXY", cls == "QSO", cls == "Unknown"
    z[galaxy] = np.clip(rng.gamma(2.5, 0.045, galaxy.sum()), 0.005, 0.6)
    z[qso] = np.clip(rng.gamma(3.0, 0.5, qso.sum()), 0.1, 4.5)
    df["z"] = z
    df["z_err"] = np.where(unknown, -9999.0, np.where(star, 5.0 / C_KMS, 1.5e-4 * (1 + z)))
    sub = np.full(n, "", dtype=object)
    sub[star] = _mk_subclass(teff[star])
    special = star & (rng.uniform(size=n) < 0.006)
    sub[special] = rng.choice(np.array(["WD", "Carbon", "DoubleStar"], dtype=object), size=special.sum())
    sub[galaxy] = _weighted_choice(rng, _GALAXY_SUBCLASSES, int(galaxy.sum()))
    sub[unknown] = "Non"
    df["subclass"] = sub

    g = _magnitudes(rng, df["_brightness"].to_numpy(), cls)
    snrg = 250.0 * 10 ** (-0.3 * (g - 12.0)) * rng.lognormal(0.0, 0.3, n)
    snrg = np.where(unknown, rng.uniform(0.3, 3.0, n), snrg)
    snrg = np.clip(snrg, 0.2, 900.0)
    red = np.where(star, (5800.0 / teff) ** 0.8, 1.3)
    df["snru"] = (snrg * 0.22 / red).astype(np.float32)
    df["snrg"] = snrg.astype(np.float32)
    df["snrr"] = (snrg * 1.45 * red).astype(np.float32)
    df["snri"] = (snrg * 1.7 * red).astype(np.float32)
    df["snrz"] = (snrg * 1.1 * red).astype(np.float32)

    # Colours: cooler stars are redder; galaxies red, QSOs blue.
    gr = np.where(star, 0.55 * (5800.0 / teff) ** 1.8 - 0.1, np.where(galaxy, 0.8, 0.2))
    df["ps_id"] = np.where(
        rng.uniform(size=n) < 0.97, 100_000_000_000_000_000 + rng.integers(0, 10**16, n), -9999
    )
    df["mag_ps_g"] = g
    df["mag_ps_r"] = (g - gr).astype(np.float32)
    df["mag_ps_i"] = (g - 1.35 * gr).astype(np.float32)
    df["mag_ps_z"] = (g - 1.55 * gr).astype(np.float32)
    df["mag_ps_y"] = (g - 1.65 * gr).astype(np.float32)
    has_gaia = ~qso | (rng.uniform(size=n) < 0.5)
    df["gaia_source_id"] = np.where(has_gaia, rng.integers(10**17, 7 * 10**18, n), -9999)
    df["gaia_g_mean_mag"] = np.where(has_gaia, g - 0.35 * gr - 0.05, -9999.0).astype(np.float32)
    df["gp_id"] = np.where(has_gaia, df["gaia_source_id"], df["ps_id"])
    df["uid"] = [
        f"G{v:d}" if h else f"P{q:d}"
        for v, q, h in zip(df["gaia_source_id"], df["ps_id"], has_gaia, strict=True)
    ]
    df["designation"] = designations(df["ra"].to_numpy(), df["dec"].to_numpy())
    df["ra_obs"] = df["ra"]
    df["dec_obs"] = df["dec"]
    df["tsource"] = rng.choice(np.array(_TSOURCES[:-1], dtype=object), size=n)
    df["fibertype"] = "Obj"
    df["tfrom"] = rng.choice(np.array(_TFROMS, dtype=object), size=n)
    df["tcomment"] = [str(x) for x in rng.integers(10**11, 10**12, n)]
    df["offsets"] = False
    df["offsets_v"] = np.float32(0.0)
    df["fibermask"] = np.where(rng.uniform(size=n) < 0.03, 64, 0).astype(np.int32)

    # Stellar parameters as LASP measures them, for A, F, G and K stars with enough signal.
    afgk = star & np.isin(np.char.ljust(sub.astype(str), 1).astype("U1"), list("AFGK")) & (snrg >= 6)
    df["with_norm_flux"] = afgk
    noise = 1.0 / np.sqrt(np.maximum(snrg, 1.0))
    df["teff"] = np.where(afgk, teff + rng.normal(0, 150 * noise, n), -9999.0).astype(np.float32)
    df["teff_err"] = np.where(afgk, 20 + 400 * noise, -9999.0).astype(np.float32)
    df["logg"] = np.where(afgk, logg + rng.normal(0, 0.25 * noise, n), -9999.0).astype(np.float32)
    df["logg_err"] = np.where(afgk, 0.03 + 0.7 * noise, -9999.0).astype(np.float32)
    df["feh"] = np.where(afgk, feh + rng.normal(0, 0.15 * noise, n), -9999.0).astype(np.float32)
    df["feh_err"] = np.where(afgk, 0.02 + 0.4 * noise, -9999.0).astype(np.float32)
    df["rv"] = np.where(afgk, rv + rng.normal(0, 5 * noise, n), -9999.0).astype(np.float32)
    df["rv_err"] = np.where(afgk, 1.5 + 20 * noise, -9999.0).astype(np.float32)
    df["alpha_m"] = np.where(afgk, alpha_m, -9999.0).astype(np.float32)
    df["alpha_m_err"] = np.where(afgk, 0.02 + 0.2 * noise, -9999.0).astype(np.float32)
    # The truth the spectra are drawn from (stars keep their parameters even outside the AFGK catalog).
    df["_teff"] = np.where(star, teff, np.nan)
    df["_logg"] = np.where(star, logg, np.nan)
    df["_feh"] = np.where(star, feh, np.nan)
    return df


def mrs_rows(rng: np.random.Generator, plates: Plates, which: np.ndarray) -> pd.DataFrame:
    """MRS catalog rows (bright stars on time-domain plates) with ``_`` internal columns."""
    df = _plate_rows(rng, plates, which)
    n = len(df)
    cls = np.full(n, "STAR", dtype=object)
    g = _magnitudes(rng, df["_brightness"].to_numpy(), cls)
    teff = np.clip(rng.normal(5600, 900, n), 3300, 9500)
    logg = np.where(rng.uniform(size=n) < 0.3, rng.normal(2.7, 0.5, n), rng.normal(4.3, 0.25, n))
    feh = np.clip(rng.normal(-0.2, 0.3, n), -2.5, 0.6)
    rv = rng.normal(-5.0, 40.0, n)
    snr = np.clip(400.0 * 10 ** (-0.3 * (g - 10.0)) * rng.lognormal(0.0, 0.3, n), 2.0, 900.0)
    df["designation"] = designations(df["ra"].to_numpy(), df["dec"].to_numpy())
    df["ra_obs"] = df["ra"]
    df["dec_obs"] = df["dec"]
    df["snr_b"] = (snr * 0.8).astype(np.float32)
    df["snr_r"] = snr.astype(np.float32)
    df["nexp"] = rng.integers(2, 5, n).astype(np.int16)
    df["rv_br0"] = (rv + rng.normal(0, 1.0, n)).astype(np.float32)
    df["rv_br0_err"] = (0.3 + 10.0 / np.sqrt(snr)).astype(np.float32)
    df["teff"] = (teff + rng.normal(0, 80, n)).astype(np.float32)
    df["logg"] = (logg + rng.normal(0, 0.12, n)).astype(np.float32)
    df["feh"] = (feh + rng.normal(0, 0.08, n)).astype(np.float32)
    df["gaia_source_id"] = rng.integers(10**17, 7 * 10**18, n)
    df["gaia_g_mean_mag"] = (g - 0.3).astype(np.float32)
    df["gp_id"] = df["gaia_source_id"]
    df["uid"] = [f"G{v:d}" for v in df["gaia_source_id"]]
    df["tsource"] = "MRS_TD_T"
    df["fibertype"] = "Obj"
    df["fibermask"] = np.zeros(n, dtype=np.int32)
    df["_teff"], df["_logg"], df["_feh"], df["_rv"] = teff, logg, feh, rv
    return df
