"""Where things live in a release version, and the LAMOST naming rules for spectra.

LAMOST's file names and tree are part of the survey's public interface (user scripts build them), so the
store keeps them exactly:
``fits/{YYYYMMDD}/{planid}/spec-{lmjd:05d}-{planid}_sp{spid:02d}-{fiberid:03d}.fits.gz``
(``med-`` for medium resolution).

>>> spectrum_filename(58397, "EG014118N254444M01", 3, 31)
'spec-58397-EG014118N254444M01_sp03-031.fits.gz'
>>> fits_relpath("2018-10-16", "TD230151N343645T01", 58408, 1, 15, kind="MRS")
'fits/20181016/TD230151N343645T01/med-58408-TD230151N343645T01_sp01-015.fits.gz'
>>> make_obsid(6810, 1, 15)
681001015
>>> designation(345.797708, 32.226539)
'LAMOST J230311.44+321335.5'
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

CATALOGS_DIR = "catalogs"
FITS_DIR = "fits"
SPECTRA_DIR = "spectra"


def spectrum_filename(lmjd: int, planid: str, spid: int, fiberid: int, *, kind: str = "LRS") -> str:
    """The LAMOST file name of one spectrum (gzip-compressed FITS)."""
    prefix = "med" if kind == "MRS" else "spec"
    return f"{prefix}-{int(lmjd):05d}-{planid}_sp{int(spid):02d}-{int(fiberid):03d}.fits.gz"


def fits_relpath(obsdate: str, planid: str, lmjd: int, spid: int, fiberid: int, *, kind: str = "LRS") -> str:
    """The path of a spectrum's file relative to its version: ``fits/YYYYMMDD/planid/<name>``."""
    day = obsdate.replace("-", "")
    return f"{FITS_DIR}/{day}/{planid}/{spectrum_filename(lmjd, planid, spid, fiberid, kind=kind)}"


def make_obsid(plan_sequence: ArrayLike, spid: ArrayLike, fiberid: ArrayLike) -> Any:
    """LAMOST's obsid: plan sequence * 100000 + spectrograph * 1000 + fiber (scalars or arrays)."""
    seq, sp, fib = (np.asarray(v, dtype=np.int64) for v in (plan_sequence, spid, fiberid))
    obsid = seq * 100_000 + sp * 1_000 + fib
    return int(obsid) if obsid.ndim == 0 else obsid


def designation(ra: float, dec: float) -> str:
    """The LAMOST designation 'LAMOST JHHMMSS.ss+DDMMSS.s' of a position (truncated, as IAU names are)."""
    return designations(np.array([ra]), np.array([dec]))[0]


def designations(ra: np.ndarray, dec: np.ndarray) -> list[str]:
    """Vectorised :func:`designation` for catalog generation and ingest."""
    ra_h = np.mod(np.asarray(ra, dtype=np.float64), 360.0) / 15.0
    hh = np.floor(ra_h).astype(int)
    mm = np.floor((ra_h - hh) * 60).astype(int)
    ss = np.floor(((ra_h - hh) * 60 - mm) * 6000).astype(int)  # hundredths of seconds, truncated
    dec = np.asarray(dec, dtype=np.float64)
    sign = np.where(dec < 0, "-", "+")
    ad = np.abs(dec)
    dd = np.floor(ad).astype(int)
    dm = np.floor((ad - dd) * 60).astype(int)
    ds = np.floor(((ad - dd) * 60 - dm) * 600).astype(int)  # tenths of arcseconds, truncated
    return [
        f"LAMOST J{h:02d}{m:02d}{s // 100:02d}.{s % 100:02d}{g}{d:02d}{n:02d}{t // 10:02d}.{t % 10:d}"
        for h, m, s, g, d, n, t in zip(hh, mm, ss, sign, dd, dm, ds, strict=True)
    ]
