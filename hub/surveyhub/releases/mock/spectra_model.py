"""Physically plausible mock LAMOST spectra, synthesised a batch of catalog rows at a time.

The mock release generator needs millions of spectra that *look* and *behave* like LAMOST's: a line where
the catalog's class and redshift say it is, a g-band signal-to-noise equal to the catalog's ``snrg``, a
flux level that follows the magnitude, and the warts of real files (weak blue end, noisy dichroic join,
sky-line residuals, masked pixels, the zero-filled red tail). It does not need stellar atmospheres or
population synthesis, so every ingredient here is the cheapest model that gets the *shape* right:

* **Continua.** Stars: a Planck curve at ``teff`` with blue line blanketing (cool and metal-rich stars lose
  blue flux to thousands of unresolved lines). Galaxies: an old population (a cool Planck curve with a
  4000 A break) mixed with a blue young population whose share grows from passive to starburst.
  QSOs: a power law ``f_lambda ~ lambda**alpha`` (``alpha ~ -1.5``, Vanden Berk et al. 2001) that turns
  up in the red where host light and hot dust add in.
* **Lines as a linear basis.** Every line feature (Balmer series with pressure-broadened wings, Ca II H&K,
  Mg b, Na D, the G band, the Ca triplet, a fixed weak "metal forest", TiO bands, emission lines...)
  is a row of a template matrix laid on a rest-frame log-lambda grid once (lazily, then cached). A batch's
  optical depth or emission is then one matrix product ``weights @ templates`` followed by a per-row
  shift: on a log-lambda grid a redshift is a constant shift in pixels, so one linear interpolation
  gather places every line of every spectrum at ``lambda_rest * (1 + z)``. Line strengths are smooth
  functions of ``teff``/``logg``/``feh`` (Balmer strongest near 9500 K, metal lines growing to cool and
  metal-rich stars, Na D / Mg b / the Na I 8190 doublet gravity sensitive, the Ca triplet giant
  sensitive). Absorption is applied as ``exp(-tau)`` so strong lines saturate instead of going negative.
* **Flux scale.** The model is scaled so that its synthetic AB magnitude through a g band equals the
  catalog's ``mag_g``: flux is f_lambda in 1e-17 erg/s/cm2/A. (Real LAMOST files are only *relatively*
  flux calibrated and their overall level is arbitrary; an absolute scale keeps mock releases
  self-consistent.) A smooth, random, per-spectrum calibration residual (low-order Legendre terms, a
  step at the dichroic join, a blue-end droop) mimics LAMOST's imperfect relative calibration.
* **Noise.** Noise is computed in the count domain: ``var ~ (object + sky + read noise) / (T * lambda**2)``
  with an instrument throughput ``T`` that is weak below 4000 A, dips at the 5700-5900 A dichroic
  crossover and falls beyond 8500 A (tabulated so that a bright G star reproduces the SNR-vs-wavelength
  profile of a real DR7 file). The sky has a continuum and the bright emission lines ([O I] 5577/6300/6364,
  Hg and Na light pollution at Xinglong, OH bands in the red); faint objects are sky limited, bright ones
  photon limited. A single exposure-time factor per spectrum is solved in closed form so that the median
  ``flux/sigma`` over 4000-5500 A equals ``snrg``. Sky-subtraction residuals at sky lines are extra
  Gaussian noise *included* in ``sigma``, so ``ivar = 1/sigma**2`` always describes the noise added.
* **Masks** use the LAMOST pixel mask bits (:class:`PixelMask`): ``andmask`` (bad in every exposure)
  and ``ormask`` (bad in at least one). A pixel with ``ivar == 0`` always has an ``andmask`` bit.

MRS spectra (:func:`synthesize_mrs`) are stars only, at R~7500 on the two MRS arms, with per-exposure
spectra whose inverse-variance weighted mean is the coadd. Real MRS files are not flux calibrated, so MRS
flux is in photo-electrons per (average) exposure with the arm response imprinted.

>>> rng = np.random.default_rng(7)
>>> batch = synthesize_lrs(rng, cls=np.array(["STAR", "GALAXY"]), subclass=np.array(["G2", "STARFORMING"]),
...     teff=np.array([5800.0, np.nan]), logg=np.array([4.4, np.nan]), feh=np.array([0.0, np.nan]),
...     z=np.array([1e-4, 0.1]), snrg=np.array([50.0, 10.0]), mag_g=np.array([15.0, 17.5]))
>>> batch.flux.shape, batch.flux.dtype, batch.andmask.dtype
((2, 3909), dtype('float32'), dtype('int32'))
>>> bool(batch.flux[0, 1000] > batch.flux[1, 1000])  # brighter star, more flux
True
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from surveyhub.releases.grid import lrs_wavelength, mrs_wavelength

__all__ = [
    "LINES",
    "LRSBatch",
    "MRSArm",
    "PixelMask",
    "air_to_vacuum",
    "synthesize_lrs",
    "synthesize_mrs",
]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]

C_KMS = 299_792.458
#: hc/k in Angstrom * Kelvin, for the Planck function.
HC_K = 1.438777e8
LN10 = float(np.log(10.0))

#: Instrumental Gaussian sigma in km/s: LRS R~1800 (FWHM 167 km/s), MRS R~7500 (FWHM 40 km/s).
SIGMA_LRS_KMS = 71.0
SIGMA_MRS_KMS = 17.0

#: The g band over which the catalog's ``snrg`` is measured (and the synthetic magnitude taken).
G_BAND = (4000.0, 5500.0)


class PixelMask(enum.IntFlag):
    """LAMOST pixel mask bits of the ANDMASK/ORMASK arrays (LRS) and PIXMASK (MRS exposures).

    The mock uses BADCCD for bad CCD columns, BADPROFILE for cosmic-ray hits rejected in an MRS exposure,
    BRIGHTSKY at bright sky lines and NODATA for the zero-filled red tail.
    """

    BADCCD = 1  # bad pixel on the CCD
    BADPROFILE = 2  # bad profile in extraction
    NOSKY = 4  # no sky information at this wavelength
    BRIGHTSKY = 8  # sky level too high (sky-line residuals)
    BADCENTER = 16  # fibre trace out of the CCD
    NODATA = 32  # no good data


#: Rest vacuum wavelengths (Angstrom) of the lines the model places, by name.
LINES: dict[str, float] = {
    "H_alpha": 6564.61,
    "H_beta": 4862.68,
    "H_gamma": 4341.69,
    "H_delta": 4102.89,
    "H_epsilon": 3971.20,
    "CaII_K": 3934.78,
    "CaII_H": 3969.59,
    "Mg_b1": 5168.76,
    "Mg_b2": 5174.13,
    "Mg_b3": 5185.05,
    "Na_D2": 5891.58,
    "Na_D1": 5897.56,
    "G_band": 4305.0,
    "CaT_1": 8500.36,
    "CaT_2": 8544.44,
    "CaT_3": 8664.52,
    "OII_3727": 3727.09,
    "OII_3730": 3729.88,
    "OIII_4960": 4960.30,
    "OIII_5008": 5008.24,
    "NII_6550": 6549.86,
    "NII_6585": 6585.27,
    "SII_6718": 6718.29,
    "SII_6733": 6732.67,
    "Ly_alpha": 1215.67,
    "CIV": 1549.06,
    "CIII]": 1908.73,
    "MgII": 2799.12,
}


# ----------------------------------------------------------------------------------------------------
# Result structures


@dataclass(frozen=True)
class LRSBatch:
    """Low-resolution spectra of a batch of ``n`` catalog rows on ``wavelength`` (``npix`` pixels).

    ``flux`` is f_lambda in 1e-17 erg/s/cm2/A, ``ivar`` its inverse variance (0 where unusable),
    ``andmask``/``ormask`` :class:`PixelMask` bits and ``normalization`` the continuum the model used
    (``flux / normalization`` is the continuum-normalised spectrum).
    """

    wavelength: F64
    flux: F32
    ivar: F32
    andmask: I32
    ormask: I32
    normalization: F32

    def __len__(self) -> int:
        return int(self.flux.shape[0])


@dataclass(frozen=True)
class MRSArm:
    """One MRS arm (``"B"`` or ``"R"``) of a batch of ``n`` stars.

    Coadd arrays are ``(n, npix)``: ``flux`` in photo-electrons per exposure (MRS is not flux
    calibrated), ``ivar``, ``andmask``/``ormask`` and ``normalization`` (continuum times arm response).
    Per-exposure arrays are ``(n, max_exposures, npix)`` with ``exposure_pixmask`` bits; exposures past a
    row's ``n_exposures`` are padding (flux 0, ivar 0, mask 0). ``flux`` is exactly the inverse-variance
    weighted mean of the exposures (0 where their summed ivar is 0) and ``ivar`` their summed ivar.
    """

    arm: str
    wavelength: F64
    flux: F32
    ivar: F32
    andmask: I32
    ormask: I32
    normalization: F32
    exposure_flux: F32
    exposure_ivar: F32
    exposure_pixmask: I32
    n_exposures: I32


# ----------------------------------------------------------------------------------------------------
# Small physics helpers


def air_to_vacuum(air: npt.ArrayLike) -> F64:
    """Convert air wavelengths (Angstrom) to vacuum (Morton 2000 refractive index of air).

    >>> round(float(air_to_vacuum(6562.80)), 2)
    6564.61
    """
    lam = np.asarray(air, dtype=np.float64)
    s2 = (1e4 / lam) ** 2
    n = 1.0 + 8.34254e-5 + 2.406147e-2 / (130.0 - s2) + 1.5998e-4 / (38.9 - s2)
    return lam * n


def _table(text: str, ncol: int = 2) -> F64:
    """Parse a whitespace-separated numeric table (line lists are kept compact and readable this way)."""
    return np.array(text.split(), dtype=np.float64).reshape(-1, ncol)


def _sigmoid(x: npt.ArrayLike) -> F64:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def _planck_shape(lam: npt.ArrayLike, teff: npt.ArrayLike, ref: float = 5500.0) -> F32:
    """Planck f_lambda at ``teff`` normalised to 1 at ``ref`` Angstrom, shape ``(n, npix)`` float32."""
    lam = np.asarray(lam, dtype=np.float32)
    t = np.asarray(teff, dtype=np.float32)[:, None]
    # float32 exp overflows past x ~ 88: clip, the flux there is ~0 anyway.
    x = np.minimum(np.float32(HC_K) / (lam * t), np.float32(80.0))
    xref = np.minimum(np.float32(HC_K / ref) / t, np.float32(80.0))
    return (ref / lam) ** 5 * (np.expm1(xref) / np.expm1(x))


def _throughput(lam: npt.ArrayLike) -> F64:
    """Relative LAMOST efficiency per unit f_lambda * lambda**2 (1 at 4600 A).

    Tabulated so that a bright G star gets the SNR profile of a real DR7 LRS file: the blue end is weak
    (SNR at 3800 A ~ 1/5 of the g band), the dichroic crossover near 5800 A dips, the red arm is the
    efficient one and the CCD's quantum efficiency falls beyond 8500 A.
    """
    knots = np.array(
        [
            (3600, 0.03),
            (3700, 0.05),
            (3800, 0.08),
            (3900, 0.14),
            (4000, 0.25),
            (4100, 0.38),
            (4300, 0.62),
            (4600, 1.00),
            (5000, 1.20),
            (5300, 1.30),
            (5600, 1.33),
            (5720, 1.25),
            (5790, 0.80),
            (5850, 0.60),
            (5910, 0.90),
            (6000, 1.60),
            (6300, 2.20),
            (6600, 2.50),
            (7000, 2.60),
            (7500, 2.60),
            (8100, 2.45),
            (8500, 2.00),
            (8900, 1.25),
            (9100, 0.90),
            (9300, 0.70),
        ]
    )
    return np.interp(np.asarray(lam, dtype=np.float64), knots[:, 0], knots[:, 1])


# ----------------------------------------------------------------------------------------------------
# Rest-frame template basis


@dataclass(frozen=True)
class _Templates:
    """Rows of unit-strength features on a rest-frame log-lambda grid ``10**(log0 + dlog*i)``."""

    log0: float
    dlog: float
    names: tuple[str, ...]
    data: F32  # (nrows, m)

    def index(self, names: list[str] | tuple[str, ...]) -> list[int]:
        return [self.names.index(name) for name in names]

    def evaluate(self, weights: F32, names: list[str] | tuple[str, ...], obs_loglam: F64, z: F64) -> F32:
        """``sum_k weights[:, k] * row_k(lambda_obs / (1 + z))`` for each row, shape ``(n, npix)``.

        One matrix product on the slice of the rest grid the batch needs, then a linear-interpolation
        gather that applies each spectrum's redshift as a shift in log-lambda pixels.
        """
        n = weights.shape[0]
        npix = obs_loglam.shape[0]
        if n == 0:
            return np.zeros((0, npix), dtype=np.float32)
        m = self.data.shape[1]
        base = (obs_loglam - self.log0) / self.dlog
        shift = np.log10(1.0 + np.asarray(z, dtype=np.float64)) / self.dlog
        lo = max(int(np.floor(base[0] - shift.max())) - 1, 0)
        hi = min(int(np.ceil(base[-1] - shift.min())) + 2, m)
        out = np.zeros((n, npix), dtype=np.float32)
        if hi - lo < 2:
            return out
        width = hi - lo
        amp = weights.astype(np.float32) @ self.data[self.index(names), lo:hi]  # (n, width)
        flat = amp.ravel()
        step = np.diff(base)
        start = base[0] - shift - lo
        first = np.floor(start).astype(np.intp)
        if np.allclose(step, 1.0, atol=1e-6) and first.min() >= 0 and first.max() + npix < width:
            # The observed grid has the templates' log step (the LRS and MRS grids do): every pixel of a
            # row shares the same fractional offset, and the gather is a contiguous slice per row.
            frac = (start - first).astype(np.float32)[:, None]
            idx = (np.arange(n) * width + first)[:, None] + np.arange(npix)[None, :]
            left = np.take(flat, idx)
            idx += 1
            right = np.take(flat, idx)
            right -= left
            right *= frac
            left += right
            return left
        pos = base[None, :] - shift[:, None] - lo
        i0 = np.floor(pos)
        frac2 = (pos - i0).astype(np.float32)
        i0 = i0.astype(np.intp)
        valid = (i0 >= 0) & (i0 < width - 1)
        i0 = np.clip(i0, 0, width - 2) + (np.arange(n) * width)[:, None]
        left = np.take(flat, i0)
        right = np.take(flat, i0 + 1)
        out = left + (right - left) * frac2
        out[~valid] = 0.0
        return out


class _RowBuilder:
    """Accumulates template rows on one rest-frame log-lambda grid."""

    def __init__(self, lam_min: float, lam_max: float, dlog: float) -> None:
        self.log0 = float(np.log10(lam_min))
        self.dlog = dlog
        self.m = int(np.ceil((np.log10(lam_max) - self.log0) / dlog)) + 1
        self.lam = 10.0 ** (self.log0 + dlog * np.arange(self.m))
        self.rows: dict[str, F64] = {}

    def _pix(self, lam: F64) -> F64:
        return (np.log10(lam) - self.log0) / self.dlog

    def _kms_to_pix(self, kms: float) -> float:
        return kms / (C_KMS * LN10 * self.dlog)

    def add(self, name: str, values: F64) -> None:
        self.rows[name] = self.rows.get(name, np.zeros(self.m)) + values

    def gauss(
        self,
        centers: npt.ArrayLike,
        strengths: npt.ArrayLike,
        sigma_kms: float,
        *,
        area: bool = False,
    ) -> F64:
        """Gaussians (evaluated within +-5 sigma); peak = strength, or integrated flux in A if ``area``."""
        c = np.atleast_1d(np.asarray(centers, dtype=np.float64))
        s = np.broadcast_to(np.asarray(strengths, dtype=np.float64), c.shape)
        sig = self._kms_to_pix(sigma_kms)
        half = int(np.ceil(5.0 * sig)) + 1
        p = self._pix(c)
        idx = np.rint(p).astype(np.intp)[:, None] + np.arange(-half, half + 1)[None, :]
        prof = np.exp(-0.5 * ((idx - p[:, None]) / sig) ** 2)
        amp = s / (np.sqrt(2.0 * np.pi) * c * sigma_kms / C_KMS) if area else s
        return self._accumulate(idx, prof * amp[:, None])

    def lorentz(
        self, centers: npt.ArrayLike, strengths: npt.ArrayLike, gamma_kms: float, reach: float
    ) -> F64:
        """Lorentzian wings (HWHM ``gamma_kms``), tapered smoothly to zero at ``reach`` HWHM."""
        c = np.atleast_1d(np.asarray(centers, dtype=np.float64))
        s = np.broadcast_to(np.asarray(strengths, dtype=np.float64), c.shape)
        gam = self._kms_to_pix(gamma_kms)
        half = int(np.ceil(reach * gam)) + 1
        p = self._pix(c)
        idx = np.rint(p).astype(np.intp)[:, None] + np.arange(-half, half + 1)[None, :]
        x = (idx - p[:, None]) / gam
        taper = np.clip(1.0 - (x / reach) ** 2, 0.0, None) ** 2
        return self._accumulate(idx, s[:, None] * taper / (1.0 + x * x))

    def bands(
        self, heads: npt.ArrayLike, strengths: npt.ArrayLike, scale: npt.ArrayLike, sigma_kms: float
    ) -> F64:
        """Molecular bands: a sharp head then exponential fading over ``scale`` A.

        A positive scale fades to the red (TiO, CaH: "degraded to the red"), a negative one to the
        violet (C2 Swan, CN). The edge is smoothed by the instrumental profile.
        """
        out = np.zeros(self.m)
        for head, s, sc in zip(
            np.atleast_1d(heads), np.atleast_1d(strengths), np.atleast_1d(scale), strict=True
        ):
            d = (self.lam - head) / sc
            out += np.where(d >= 0.0, s * np.exp(-np.clip(d, 0.0, 50.0)), 0.0)
        sig = self._kms_to_pix(sigma_kms)
        half = int(np.ceil(4.0 * sig)) + 1
        kern = np.exp(-0.5 * (np.arange(-half, half + 1) / sig) ** 2)
        return np.convolve(out, kern / kern.sum(), mode="same")

    def _accumulate(self, idx: npt.NDArray[np.intp], val: F64) -> F64:
        ok = (idx >= 0) & (idx < self.m)
        return np.bincount(idx[ok], weights=val[ok], minlength=self.m)[: self.m]

    def build(self) -> _Templates:
        names = tuple(self.rows)
        data = np.stack([self.rows[k] for k in names]).astype(np.float32)
        return _Templates(self.log0, self.dlog, names, data)


def _forest_lines(lam_min: float, lam_max: float, n: int, seed: int) -> tuple[F64, F64]:
    """A fixed list of weak absorption lines standing in for the thousands of real metal lines.

    Positions are denser to the blue (line blanketing), strengths exponentially distributed. The list is
    the same for every star (the same atoms everywhere), so it is drawn from a fixed seed, not the
    caller's generator.
    """
    g = np.random.default_rng(seed)
    # density ~ lambda**-2.5: sample u uniform in lambda**-1.5
    a, b = lam_min**-1.5, lam_max**-1.5
    lam = (a + (b - a) * g.random(n)) ** (-1.0 / 1.5)
    strength = g.exponential(1.0, n) * 0.035
    return lam, strength


# Strong stellar metal lines for LRS (air wavelengths, relative strengths at a K0 solar-metallicity star).
_LRS_METALS_AIR = _table(
    """
    3820.43 0.5   3829.36 0.35   3832.30 0.45   3838.29 0.5   3859.91 0.45   3944.01 0.3
    3961.52 0.3   4045.81 0.45   4063.59 0.35   4071.74 0.3   4077.71 0.3   4132.06 0.25
    4226.73 0.8   4271.76 0.35   4325.76 0.35   4383.55 0.45   4404.75 0.4   4415.12 0.3
    4528.61 0.25   4554.03 0.25   4702.99 0.3   4891.49 0.25   4920.50 0.3   4957.60 0.3
    5167.49 0.2   5227.19 0.3   5269.54 0.4   5328.04 0.35   5371.49 0.3   5397.13 0.25
    5405.77 0.25   5429.70 0.25   5446.92 0.25   5615.64 0.2   6102.72 0.2   6122.22 0.3
    6162.17 0.3   6439.08 0.25   6494.98 0.2   8688.63 0.2   8806.76 0.3
    """
)

# Gravity-sensitive alkali lines of M dwarfs (air): K I 7665/7699, Na I 8183/8195.
_ALKALI_AIR = np.array([(7664.90, 0.7), (7698.96, 0.6), (8183.26, 0.8), (8194.82, 0.9)])

# He I lines of hot stars (air).
_HEI_AIR = np.array(
    [(4026.19, 0.4), (4471.48, 0.5), (4921.93, 0.3), (5015.68, 0.2), (5875.62, 0.4), (6678.15, 0.3)]
)

# TiO band heads (air) with strengths and fading scales; CaH near 6382 and 6750 is included.
_TIO_AIR = _table(
    """
    4761.0 0.20 80.0   4954.0 0.35 90.0   5167.0 0.45 90.0   5448.0 0.40 100.0   5847.0 0.30 100.0
    6159.0 0.55 110.0   6382.0 0.20 40.0   6651.0 0.45 110.0   6750.0 0.20 60.0   7054.0 0.85 130.0
    7589.0 0.50 110.0   8432.0 0.35 110.0   8859.0 0.30 110.0
    """,
    ncol=3,
)

# C2 Swan and CN band heads (air) of carbon stars, degraded to the violet.
_CARBON_AIR = _table("3883 0.6 -60  4216 0.4 -60  4737 0.6 -90  5165 0.7 -110  5636 0.5 -110", ncol=3)

_BALMER = _table(
    """
    6564.61 1.00   4862.68 0.95   4341.69 0.90   4102.89 0.85   3971.20 0.75   3890.17 0.65
    3836.49 0.55   3798.99 0.45   3771.70 0.38   3751.22 0.32   3735.43 0.27
    """
)

# Paschen lines P10..P20 (vacuum), visible in A/F stars around the Ca triplet.
_PASCHEN = _table(
    """
    9017.4 0.30   8865.2 0.28   8752.9 0.26   8667.4 0.24   8600.8 0.22   8547.7 0.20
    8504.8 0.18   8469.6 0.16   8440.3 0.14   8415.6 0.12   8394.7 0.10
    """
)

#: The LRS rest-frame grid: from 450 A (a z~7 QSO's Lyman limit region) to 9500 A at LAMOST's 1e-4 dex.
_LRS_REST = (450.0, 9500.0, 1e-4)


@lru_cache(maxsize=1)
def _lrs_star_templates() -> _Templates:
    """Stellar optical-depth rows at LRS resolution (peak tau 1 per unit strength)."""
    b = _RowBuilder(*_LRS_REST)
    sig = float(np.hypot(SIGMA_LRS_KMS, 25.0))
    bal = _BALMER
    b.add("balmer_core", b.gauss(bal[:, 0], bal[:, 1] * 0.6, float(np.hypot(SIGMA_LRS_KMS, 60.0))))
    b.add("balmer_core", b.gauss(_PASCHEN[:, 0], _PASCHEN[:, 1], float(np.hypot(SIGMA_LRS_KMS, 60.0))))
    # Stark wings: A-star-like (HWHM ~ 10 A at H-beta) and white-dwarf-like (HWHM ~ 30 A).
    b.add("balmer_wing", b.lorentz(bal[:, 0], bal[:, 1] * 0.8, 600.0, 15.0))
    b.add("balmer_wing", b.lorentz(_PASCHEN[:, 0], _PASCHEN[:, 1] * 0.5, 300.0, 15.0))
    b.add("balmer_wing_broad", b.lorentz(bal[:, 0], bal[:, 1] * 0.7, 1800.0, 8.0))
    hk = [LINES["CaII_K"], LINES["CaII_H"]]
    b.add("cahk", b.gauss(hk, [1.6, 1.3], float(np.hypot(SIGMA_LRS_KMS, 40.0))))
    b.add("cahk", b.lorentz(hk, [0.7, 0.6], 500.0, 30.0))
    b.add("mgb", b.gauss([LINES["Mg_b1"], LINES["Mg_b2"], LINES["Mg_b3"]], [0.55, 0.7, 0.8], sig))
    b.add("mgb", b.lorentz([LINES["Mg_b1"], LINES["Mg_b2"], LINES["Mg_b3"]], [0.1, 0.12, 0.14], 200.0, 15.0))
    b.add("nad", b.gauss([LINES["Na_D2"], LINES["Na_D1"]], [0.9, 0.75], sig))
    b.add("nad", b.lorentz([LINES["Na_D2"], LINES["Na_D1"]], [0.15, 0.12], 200.0, 15.0))
    # The G band is a blend of CH lines ~ 4300-4315 A: a broad feature plus the Fe/Ca lines in it.
    b.add("gband", b.gauss(LINES["G_band"] + 3.0, 0.45, 7.0 / 4305.0 * C_KMS))
    b.add("gband", b.gauss([4300.3, 4308.9, 4314.3], [0.3, 0.35, 0.25], sig))
    cat = [LINES["CaT_1"], LINES["CaT_2"], LINES["CaT_3"]]
    b.add("cat", b.gauss(cat, [0.4, 0.8, 0.65], sig))
    b.add("cat", b.lorentz(cat, [0.08, 0.16, 0.13], 250.0, 20.0))
    b.add("metals", b.gauss(air_to_vacuum(_LRS_METALS_AIR[:, 0]), _LRS_METALS_AIR[:, 1], sig))
    b.add("alkali", b.gauss(air_to_vacuum(_ALKALI_AIR[:, 0]), _ALKALI_AIR[:, 1], float(np.hypot(sig, 60.0))))
    flam, fstr = _forest_lines(3650.0, 9200.0, 2500, seed=1800)
    b.add("forest", b.gauss(flam, fstr, sig))
    b.add("tio", b.bands(air_to_vacuum(_TIO_AIR[:, 0]), _TIO_AIR[:, 1], _TIO_AIR[:, 2], SIGMA_LRS_KMS))
    b.add("hei", b.gauss(air_to_vacuum(_HEI_AIR[:, 0]), _HEI_AIR[:, 1], float(np.hypot(sig, 60.0))))
    b.add(
        "carbon",
        b.bands(air_to_vacuum(_CARBON_AIR[:, 0]), _CARBON_AIR[:, 1], _CARBON_AIR[:, 2], SIGMA_LRS_KMS),
    )
    return b.build()


#: Galaxy emission lines: row name -> [(rest vacuum wavelength, flux relative to the row's first line)].
_GAL_EMISSION: dict[str, list[tuple[float, float]]] = {
    "em_oii": [(3727.09, 0.75), (3729.88, 1.0)],
    "em_neiii": [(3869.85, 1.0)],
    "em_hdelta": [(4102.89, 1.0)],
    "em_hgamma": [(4341.69, 1.0)],
    "em_hbeta": [(4862.68, 1.0)],
    "em_oiii": [(5008.24, 1.0), (4960.30, 1.0 / 2.98)],
    "em_hei": [(5877.25, 1.0)],
    "em_oi": [(6302.05, 1.0), (6365.54, 0.33)],
    "em_nii": [(6585.27, 1.0), (6549.86, 1.0 / 2.95)],
    "em_halpha": [(6564.61, 1.0)],
    "em_sii": [(6718.29, 1.0), (6732.67, 0.75)],
}


@lru_cache(maxsize=1)
def _lrs_galaxy_templates() -> _Templates:
    """Galaxy absorption (velocity-dispersion broadened) and emission rows at LRS resolution."""
    b = _RowBuilder(*_LRS_REST)
    sig_abs = float(np.hypot(SIGMA_LRS_KMS, 180.0))
    sig_em = float(np.hypot(SIGMA_LRS_KMS, 65.0))
    hk = [LINES["CaII_K"], LINES["CaII_H"]]
    b.add("gal_metals", b.gauss(hk, [0.55, 0.45], sig_abs))
    b.add("gal_metals", b.gauss(LINES["G_band"] + 3.0, 0.18, 8.0 / 4305.0 * C_KMS))
    b.add("gal_metals", b.gauss([LINES["Mg_b1"], LINES["Mg_b2"], LINES["Mg_b3"]], [0.15, 0.18, 0.2], sig_abs))
    b.add("gal_metals", b.gauss([LINES["Na_D2"], LINES["Na_D1"]], [0.12, 0.1], sig_abs))
    b.add("gal_metals", b.gauss(air_to_vacuum([5269.54, 5328.04, 4226.73, 4383.55]), 0.08, sig_abs))
    b.add("gal_metals", b.gauss([LINES["CaT_1"], LINES["CaT_2"], LINES["CaT_3"]], [0.06, 0.12, 0.1], sig_abs))
    b.add("gal_metals", b.gauss([2796.35, 2803.53], [0.3, 0.25], sig_abs))
    flam, fstr = _forest_lines(2500.0, 9200.0, 600, seed=1801)
    b.add("gal_metals", b.gauss(flam, fstr * 0.5, sig_abs))
    b.add("gal_balmer", b.gauss(_BALMER[:, 0], _BALMER[:, 1] * 0.3, sig_abs))
    b.add("gal_balmer", b.lorentz(_BALMER[:, 0], _BALMER[:, 1] * 0.25, 400.0, 30.0))
    for name, lines in _GAL_EMISSION.items():
        arr = np.array(lines)
        b.add(name, b.gauss(arr[:, 0], arr[:, 1], sig_em, area=True))
    # Broad-line AGN components (FWHM ~ 3000 km/s).
    b.add("em_broad_halpha", b.gauss(LINES["H_alpha"], 1.0, 1300.0, area=True))
    b.add("em_broad_hbeta", b.gauss(LINES["H_beta"], 1.0, 1300.0, area=True))
    return b.build()


#: QSO broad lines: name -> (rest vacuum wavelength, mean rest-frame EW in A), after Vanden Berk et al. 2001.
_QSO_BROAD: dict[str, tuple[float, float]] = {
    "lyb_ovi": (1033.8, 9.0),
    "lya": (1215.67, 75.0),
    "nv": (1240.14, 15.0),
    "siiv": (1399.8, 8.0),
    "civ": (1549.06, 30.0),
    "heii": (1640.42, 3.0),
    "ciii": (1908.73, 22.0),
    "mgii": (2799.12, 32.0),
    "hdelta": (4102.89, 6.0),
    "hgamma": (4341.69, 14.0),
    "hbeta": (4862.68, 46.0),
    "halpha": (6564.61, 195.0),
}
#: QSO narrow lines and pseudo-continua: name -> ([(wavelength, relative flux)], EW, sigma km/s).
_QSO_OTHER: dict[str, tuple[list[tuple[float, float]], float, float]] = {
    "nev": ([(3426.84, 1.0)], 1.2, 300.0),
    "oii": ([(3728.48, 1.0)], 1.6, 300.0),
    "neiii": ([(3869.85, 1.0)], 1.4, 300.0),
    "oiii": ([(5008.24, 1.0), (4960.30, 1.0 / 2.98)], 16.0, 300.0),
    "feii_uv": ([(2400.0, 1.0), (2950.0, 0.4)], 55.0, 12000.0),
    "balmer_cont": ([(3250.0, 1.0)], 40.0, 22000.0),
    "feii_opt": ([(4570.0, 1.0), (5250.0, 0.8)], 30.0, 4500.0),
}
#: Broad-line Gaussian sigmas (km/s): a core (FWHM 2500) and a wide (FWHM 7000) component.
_QSO_SIGMAS = {"n": 1062.0, "w": 2973.0}


@lru_cache(maxsize=1)
def _lrs_qso_templates() -> _Templates:
    """QSO emission rows (unit rest-frame integrated flux) at LRS resolution."""
    b = _RowBuilder(*_LRS_REST)
    for name, (lam, _ew) in _QSO_BROAD.items():
        for comp, sig in _QSO_SIGMAS.items():
            b.add(f"q_{name}_{comp}", b.gauss(lam, 1.0, float(np.hypot(SIGMA_LRS_KMS, sig)), area=True))
    for name, (lines, _ew, sig) in _QSO_OTHER.items():
        arr = np.array(lines)
        b.add(f"q_{name}", b.gauss(arr[:, 0], arr[:, 1], float(np.hypot(SIGMA_LRS_KMS, sig)), area=True))
    return b.build()


@lru_cache(maxsize=1)
def _forest_pattern() -> F32:
    """A fixed unit-mean random field for the Lyman-alpha forest, sliced at a random offset per QSO."""
    g = np.random.default_rng(1216)
    n = 60_000
    raw = g.standard_normal(n + 40)
    kern = np.exp(-0.5 * (np.arange(-8, 9) / 1.8) ** 2)
    field = np.convolve(raw, kern / np.sqrt((kern**2).sum()), mode="same")[20 : 20 + n]
    pattern = np.exp(1.3 * field)
    return (pattern / pattern.mean()).astype(np.float32)


# ----------------------------------------------------------------------------------------------------
# Observed-frame ingredients: sky, telluric absorption, throughput


# Night-sky emission lines (air A, relative intensity): [O I], Hg and Na lamps (Xinglong light pollution),
# and the brightest OH Meinel lines, which crowd the red end.
_SKY_LINES_AIR = _table(
    """
    4046.56 0.12   4358.33 0.20   5460.74 0.20   5577.34 1.00   5889.95 0.15   5895.92 0.12
    6300.30 0.45   6363.78 0.15   6863.96 0.10   6923.22 0.08   6939.52 0.08   7276.41 0.12
    7316.28 0.20   7340.89 0.18   7369.25 0.10   7750.64 0.20   7794.11 0.22   7821.50 0.25
    7853.10 0.12   7913.71 0.30   7964.65 0.30   7993.33 0.35   8344.60 0.40   8399.17 0.45
    8430.17 0.40   8465.36 0.45   8493.39 0.40   8505.10 0.20   8761.31 0.30   8767.90 0.35
    8778.30 0.25   8791.19 0.45   8827.10 0.55   8836.70 0.20   8867.60 0.30   8885.85 0.55
    8903.10 0.25   8919.60 0.50   8943.40 0.60   8958.10 0.60   8988.60 0.55   9001.40 0.30
    9037.90 0.50   9049.20 0.45
    """
)
#: Peak f_lambda (1e-17 units) of a relative-intensity-1 sky line at LRS resolution: [O I] 5577 at ~250 R
#: through a 3.3" fibre is ~1400 x 1e-17 erg/s/cm2 over a 1.3 A sigma.
_SKY_LINE_PEAK = 420.0


@dataclass(frozen=True)
class _Frame:
    """Per-grid observed-frame quantities, computed once per wavelength grid."""

    wavelength: F64
    loglam: F64
    eff: F32  # throughput * (lambda/4600)**2: relative counts per unit f_lambda
    sky_cont: F32  # dark-sky continuum, 1e-17 units
    sky_moon: F32  # shape of the scattered moonlight (per unit moon brightness)
    sky_lines: F32  # emission lines (1e-17 units) at unit line strength
    read_noise: F32  # read noise as an equivalent flux
    telluric: F32  # optical depth at airmass 1
    gweight_fnu: F64  # weights turning f_lambda into mean f_nu over g (AB magnitudes)
    gslice: slice  # the g-band (4000-5500 A) pixels where snrg is measured
    sky_cols: npt.NDArray[np.intp]  # columns touched by sky lines
    tell_cols: npt.NDArray[np.intp]  # columns with telluric absorption
    calib_basis: F32  # (5, npix): Legendre P1..P3, dichroic step, blue droop (calibration residuals)


def _make_frame(wave: F64) -> _Frame:
    lam = np.asarray(wave, dtype=np.float64)
    eff = _throughput(lam) * (lam / 4600.0) ** 2
    sky_cont = 6.0 + 4.0 * (lam - 4000.0) / 5000.0 + 4.0 * np.exp(-0.5 * ((lam - 5900.0) / 250.0) ** 2)
    sky_moon = (lam / 5000.0) ** -1.5
    sig_a = SIGMA_LRS_KMS / C_KMS
    centers = air_to_vacuum(_SKY_LINES_AIR[:, 0])
    sky_lines = np.zeros_like(lam)
    for c, s in zip(centers, _SKY_LINES_AIR[:, 1], strict=True):
        sel = np.abs(lam - c) < 6.0 * sig_a * c
        sky_lines[sel] += s * np.exp(-0.5 * ((lam[sel] - c) / (sig_a * c)) ** 2)
    read_noise = 2.0 / np.maximum(eff, 1e-3)
    # Telluric absorption: O2 B and A bands (sharp heads, fading to the red) and H2O bands.
    tell = np.zeros_like(lam)
    for head, s, sc, end in ((6869.1, 0.2, 12.0, 6935.0), (7596.1, 0.65, 22.0, 7710.0)):
        d = lam - head
        tell += np.where((d >= 0) & (lam < end), s * np.exp(-d / sc) + 0.1 * s, 0.0)
    for c, s, w in ((7250.0, 0.06, 45.0), (8230.0, 0.07, 60.0), (8950.0, 0.10, 50.0), (9100.0, 0.15, 60.0)):
        tell += s * np.exp(-0.5 * ((lam - c) / w) ** 2)
    kern = np.exp(-0.5 * (np.arange(-6, 7) / 1.4) ** 2)
    tell = np.convolve(tell, kern / kern.sum(), mode="same")
    gpix = np.flatnonzero((lam >= G_BAND[0]) & (lam <= G_BAND[1]))
    gslice = slice(int(gpix[0]), int(gpix[-1]) + 1) if gpix.size else slice(0, 0)
    sky_cols = np.flatnonzero(sky_lines * _SKY_LINE_PEAK > 0.05)
    # <f_nu> = int f_lambda * lambda * R dlambda / int (c / lambda) R dlambda, R a smooth g band
    resp = _sigmoid((lam - G_BAND[0]) / 40.0) * _sigmoid((G_BAND[1] - lam) / 40.0)
    dlam = np.gradient(lam)
    gweight = resp * lam * dlam / np.sum(resp * 2.99792458e18 / lam * dlam)
    x = (lam - 0.5 * (lam[0] + lam[-1])) / (0.5 * (lam[-1] - lam[0]))
    calib_basis = np.stack(
        [
            x,
            0.5 * (3 * x**2 - 1),
            0.5 * (5 * x**3 - 3 * x),
            np.tanh((lam - 5850.0) / 25.0),
            _sigmoid((3900.0 - lam) / 60.0),
        ]
    )
    f32 = np.float32
    return _Frame(
        wavelength=lam,
        loglam=np.log10(lam),
        eff=eff.astype(f32),
        sky_cont=sky_cont.astype(f32),
        sky_moon=sky_moon.astype(f32),
        sky_lines=(sky_lines * _SKY_LINE_PEAK).astype(f32),
        read_noise=read_noise.astype(f32),
        telluric=tell.astype(f32),
        gweight_fnu=gweight,
        gslice=gslice,
        sky_cols=sky_cols,
        tell_cols=np.flatnonzero(tell > 1e-4),
        calib_basis=calib_basis.astype(f32),
    )


@lru_cache(maxsize=1)
def _default_frame() -> _Frame:
    return _make_frame(lrs_wavelength())


# ----------------------------------------------------------------------------------------------------
# Catalog values -> model parameters

_SPECTRAL_TEFF = {  # Teff of type X0 and X9 (linear in between)
    "O": (45000.0, 31000.0),
    "B": (29000.0, 10500.0),
    "A": (9700.0, 7400.0),
    "F": (7200.0, 6100.0),
    "G": (5950.0, 5300.0),
    "K": (5250.0, 3950.0),
    "M": (3850.0, 2500.0),
    "L": (2400.0, 1600.0),
}


def _subclass_defaults(subclass: npt.ArrayLike) -> tuple[F64, F64, npt.NDArray[np.bool_]]:
    """Teff and log g implied by LAMOST subclasses (MK types like 'G5', 'dM2', 'gM0', 'WD', 'Carbon').

    Used where the catalog has no stellar parameters (O/B, M, white dwarfs, rows outside the AFGK
    pipeline). Returns (teff, logg, is_carbon); unknown subclasses give 5800 K, 4.3.
    """
    sub = np.asarray(subclass).astype(str)
    uniq, inv = np.unique(sub, return_inverse=True)
    teff = np.full(len(uniq), 5800.0)
    logg = np.full(len(uniq), 4.3)
    carbon = np.zeros(len(uniq), dtype=bool)
    for i, raw in enumerate(uniq):
        s = raw.strip()
        up = s.upper()
        if up.startswith("WD") or up.startswith("DA"):
            teff[i], logg[i] = 20000.0, 8.0
            continue
        if "CARBON" in up:
            teff[i], logg[i], carbon[i] = 3600.0, 1.5, True
            continue
        giant = s.startswith("g")
        body = s.lstrip("dgs") if s[:1] in ("d", "g", "s") else s
        if body[:1].upper() in _SPECTRAL_TEFF:
            t0, t9 = _SPECTRAL_TEFF[body[:1].upper()]
            digits = "".join(ch for ch in body[1:3] if ch.isdigit() or ch == ".")
            try:
                frac = min(float(digits), 9.5) / 9.0 if digits else 0.5
            except ValueError:
                frac = 0.5
            teff[i] = t0 + (t9 - t0) * frac
            logg[i] = 1.5 if giant else (4.0 if body[:1].upper() in "OB" else 4.5)
    return teff[inv], logg[inv], carbon[inv]


def _valid(x: F64, lo: float, hi: float) -> npt.NDArray[np.bool_]:
    return np.isfinite(x) & (x > lo) & (x < hi)


def _clean_mag_snr(mag: F64, snr: F64) -> tuple[F64, F64]:
    """Fill missing magnitudes/SNRs (NaN, -9999, 99...) from each other with a rough LAMOST relation."""
    good_m = _valid(mag, 5.0, 30.0)
    good_s = _valid(snr, 0.0, 5000.0)
    m = np.where(good_m, mag, np.where(good_s, 17.0 - 2.5 * np.log10(np.maximum(snr, 0.5) / 10.0), 17.0))
    s = np.where(good_s, snr, np.clip(10.0 * 10.0 ** (-0.4 * (m - 17.0)), 1.0, 300.0))
    return m, s


# ----------------------------------------------------------------------------------------------------
# Class models: each returns (model flux, continuum) in arbitrary units on the observed grid


def _star_params(
    teff: F64, logg: F64, feh: F64, subclass: npt.ArrayLike
) -> tuple[F64, F64, F64, npt.NDArray[np.bool_]]:
    t_sub, g_sub, carbon = _subclass_defaults(subclass)
    t = np.clip(np.where(_valid(teff, 1000.0, 1e6), teff, t_sub), 2300.0, 50000.0)
    g = np.clip(np.where(_valid(logg, -2.0, 10.0), logg, g_sub), -0.5, 9.0)
    f = np.clip(np.where(_valid(feh, -9.0, 3.0), feh, -0.2), -4.0, 1.0)
    return t, g, f, carbon


def _balmer_strength(t: F64) -> F64:
    """Balmer-line strength vs Teff: 1 near 9500 K (A0-A2), ~0.4 for the Sun, fading to B and M stars."""
    lt = np.log10(t) - 3.98
    return np.exp(-0.5 * (lt / np.where(lt < 0.0, 0.16, 0.22)) ** 2)


def _star_weights(t: F64, g: F64, feh: F64, carbon: npt.NDArray[np.bool_]) -> tuple[F32, list[str], F64]:
    """Optical-depth weights of the stellar template rows, and the blue-blanketing coefficient.

    Shapes follow the MK classification criteria: Balmer lines peak near 9500 K and fade to both sides;
    metal lines switch on below ~6000 K and scale with metallicity; Mg b, Na D and the Na I 8190
    doublet strengthen with gravity (dwarfs), the Ca triplet with lower gravity (giants); TiO appears
    below ~4100 K; He I above ~11000 K; white dwarfs (log g ~ 8) get very broad Balmer wings.
    """
    bal = _balmer_strength(t)
    wd = np.clip((g - 6.0) / 1.5, 0.0, 1.0)
    cool = 1.0 / (1.0 + np.exp((t - 5600.0) / 450.0))
    cooler = 1.0 / (1.0 + np.exp((t - 5000.0) / 400.0))
    m = 10.0 ** (0.8 * feh)
    dwarf = np.clip((g - 2.5) / 2.0, 0.0, 1.2)
    cols = {
        "balmer_core": bal * (1.0 - 0.5 * wd),
        "balmer_wing": bal**2 * np.clip(0.3 + 0.18 * (g - 2.0), 0.1, 0.9) * (1.0 - wd),
        "balmer_wing_broad": np.maximum(bal, 0.6) * wd * 1.6,
        "cahk": (0.08 + 1.4 * cool) * m**0.35,
        "mgb": cool * m * (0.3 + 0.7 * dwarf),
        "nad": (0.04 + cooler * (0.4 + 0.8 * dwarf)) * m**0.7,
        "gband": np.exp(-0.5 * ((t - 4900.0) / 900.0) ** 2)
        * m**0.8
        * (1.0 - 0.5 * np.clip((4000.0 - t) / 500.0, 0, 1)),
        "cat": (0.2 + 0.8 * cool) * m**0.5 * np.clip(1.4 - 0.15 * g, 0.6, 1.4),
        "metals": (0.06 + 1.1 * cool) * m,
        "alkali": 1.0 / (1.0 + np.exp((t - 4100.0) / 250.0)) * np.clip((g - 3.5), 0.0, 1.2),
        "forest": (0.05 + 1.2 * cool) * m,
        "tio": np.clip((4150.0 - t) / 550.0, 0.0, 3.0) * m**0.3 * (~carbon),
        "hei": np.clip((t - 11000.0) / 9000.0, 0.0, 1.0) * (1.0 - wd),
        "carbon": carbon * 1.5,
    }
    names = list(cols)
    weights = np.stack(
        [np.broadcast_to(np.asarray(cols[k], dtype=np.float64), t.shape) for k in names], axis=1
    )
    blanket = 1.3 / (1.0 + np.exp((t - 5200.0) / 600.0)) * m**0.5 + 0.05
    return weights.astype(np.float32), names, blanket


def _star_continuum(lam: F64, t: F64, blanket: F64) -> F32:
    cont = _planck_shape(lam, t)
    u = np.clip((4600.0 - lam) / 1000.0, 0.0, None) ** 1.3
    cont *= np.exp(-blanket[:, None].astype(np.float32) * u.astype(np.float32))
    return cont


def _stars(frame: _Frame, z: F64, teff: F64, logg: F64, feh: F64, subclass: npt.ArrayLike) -> tuple[F32, F32]:
    t, g, f, carbon = _star_params(teff, logg, feh, subclass)
    weights, names, blanket = _star_weights(t, g, f, carbon)
    cont = _star_continuum(frame.wavelength, t, blanket)
    tau = _lrs_star_templates().evaluate(weights, names, frame.loglam, z)
    return cont * np.exp(-tau), cont


def _galaxies(rng: np.random.Generator, frame: _Frame, z: F64, subclass: npt.ArrayLike) -> tuple[F32, F32]:
    """Old + young stellar continuum with absorption lines, plus emission lines by subclass.

    Subclasses containing STARBURST, STARFORM(ING), AGN or BROADLINE get emission lines (star-forming
    line ratios below the Kauffmann BPT line, Seyfert ratios for AGN, broad Balmer lines for BROADLINE);
    anything else is a passive, old galaxy.
    """
    n = len(z)
    sub = np.char.upper(np.asarray(subclass).astype(str))
    burst = np.char.find(sub, "STARBURST") >= 0
    sf = (np.char.find(sub, "STARFORM") >= 0) | burst
    broad = np.char.find(sub, "BROADLINE") >= 0
    agn = ((np.char.find(sub, "AGN") >= 0) | broad) & ~sf
    emitting = sf | agn
    u = rng.random((n, 8))
    f_young = np.where(
        burst,
        0.6 + 0.3 * u[:, 0],
        np.where(sf, 0.25 + 0.4 * u[:, 0], np.where(agn, 0.05 + 0.25 * u[:, 0], 0.08 * u[:, 0])),
    )
    ew_ha = np.where(
        burst,
        10 ** (1.7 + 0.7 * u[:, 1]),
        np.where(sf, 10 ** (1.0 + 0.8 * u[:, 1]), 10 ** (0.7 + 0.7 * u[:, 1])),
    )
    ew_ha = np.where(emitting, ew_ha, 0.0)
    decrement = 2.86 + 2.0 * u[:, 2]  # H-alpha/H-beta: case B plus dust
    log_n2 = np.where(agn, -0.2 + 0.5 * u[:, 3], -1.0 + 0.6 * u[:, 3])
    log_o3 = np.where(agn, 0.45 + 0.6 * u[:, 4], 0.61 / (log_n2 - 0.05) + 1.3 - 0.1 - 0.5 * u[:, 4])
    log_o3 = np.clip(log_o3, -1.0, 1.2)

    def cont_at(lr: F64) -> F64:
        """Each galaxy's continuum at its rest wavelengths ``lr`` (shape ``(n, k)``), 1 near 5500 A.

        Old light: a 4600 K Planck curve with the 4000 A break (Ca II H&K and metal blanketing) and a
        UV fall-off; young light: a blue power law with a small Balmer break.
        """
        x = np.minimum(HC_K / (lr * 4600.0), 80.0)
        old = (5500.0 / lr) ** 5 * (np.expm1(HC_K / (5500.0 * 4600.0)) / np.expm1(x))
        old *= 1.0 - 0.42 * _sigmoid((4000.0 - lr) / 22.0)
        old *= 1.0 - 0.5 * _sigmoid((2900.0 - lr) / 200.0)
        young = (lr / 5500.0) ** -2.2 * (1.0 - 0.3 * _sigmoid((3646.0 - lr) / 15.0))
        return (1.0 - f_young[:, None]) * old + f_young[:, None] * young

    lam_rest = frame.wavelength[None, :] / (1.0 + z[:, None])
    cont = cont_at(lam_rest).astype(np.float32)

    t = _lrs_galaxy_templates()
    # Absorption: the old population's metal lines are diluted by the young light; Balmer absorption
    # comes with the young (A-star) light.
    tau_w = np.stack([(1.0 - f_young) ** 0.8, np.minimum(f_young * 1.6, 1.0)], axis=1).astype(np.float32)
    tau = t.evaluate(tau_w, ["gal_metals", "gal_balmer"], frame.loglam, z)

    # Emission line fluxes from EW(H-alpha) x continuum and the line ratios.
    centers = {name: lines[0][0] for name, lines in _GAL_EMISSION.items()}
    names = list(centers)
    c_lines = cont_at(np.broadcast_to(np.array([centers[k] for k in names]), (n, len(names))))
    ha = ew_ha * c_lines[:, names.index("em_halpha")]
    hb = ha / decrement
    flux = {
        "em_halpha": ha,
        "em_hbeta": hb,
        "em_hgamma": hb * 0.47,
        "em_hdelta": hb * 0.26,
        "em_oiii": hb * 10**log_o3,
        "em_nii": ha * 10**log_n2,
        "em_sii": ha * np.where(agn, 0.45, 0.22 + 0.15 * u[:, 5]),
        "em_oi": ha * np.where(agn, 0.12, 0.03),
        "em_oii": hb * np.where(agn, 2.0, 1.5 + 2.0 * u[:, 6]),
        "em_neiii": hb * np.where(agn, 0.4, 0.08),
        "em_hei": ha * 0.035,
    }
    em_w = np.stack([flux[k] for k in names], axis=1)
    b_w = np.stack([ha * 3.0 * broad, hb * 3.0 * broad], axis=1)
    em = t.evaluate(
        np.concatenate([em_w, b_w], axis=1).astype(np.float32),
        [*names, "em_broad_halpha", "em_broad_hbeta"],
        frame.loglam,
        z,
    )
    return cont * np.exp(-tau) + em, cont


def _qsos(rng: np.random.Generator, frame: _Frame, z: F64) -> tuple[F32, F32]:
    """Power-law continuum, broad + narrow emission lines, Lyman-alpha forest and Lyman limit."""
    n = len(z)
    alpha = rng.normal(-1.5, 0.3, n)
    host = rng.uniform(0.05, 0.3, n)

    def cont_at(lr: F64) -> F64:
        return (lr / 3000.0) ** alpha[:, None] * (1.0 + host[:, None] * (lr / 5500.0) ** 3)

    lam_rest = frame.wavelength[None, :] / (1.0 + z[:, None])
    cont = cont_at(lam_rest).astype(np.float32)

    names: list[str] = []
    cols: list[F64] = []
    f_core = rng.uniform(0.3, 0.7, n)
    scatter = 10.0 ** rng.normal(0.0, 0.15, (n, len(_QSO_BROAD) + len(_QSO_OTHER)))
    centers = np.array([v[0] for v in _QSO_BROAD.values()] + [v[0][0][0] for v in _QSO_OTHER.values()])
    c_lines = cont_at(np.broadcast_to(centers, (n, len(centers))))
    for j, (name, (_lam, ew)) in enumerate(_QSO_BROAD.items()):
        total = ew * scatter[:, j] * c_lines[:, j]
        names += [f"q_{name}_n", f"q_{name}_w"]
        cols += [total * f_core, total * (1.0 - f_core)]
    for k, (name, (_lines, ew, _sig)) in enumerate(_QSO_OTHER.items()):
        j = len(_QSO_BROAD) + k
        names.append(f"q_{name}")
        cols.append(ew * scatter[:, j] * c_lines[:, j])
    em = _lrs_qso_templates().evaluate(np.stack(cols, axis=1).astype(np.float32), names, frame.loglam, z)
    model = cont + em

    # Lyman-alpha (and beta) forest blueward of Lyman alpha, Lyman limit below 912 A rest.
    lya_obs = 1215.67 * (1.0 + z)
    if np.any(lya_obs > frame.wavelength[0]):
        pattern = _forest_pattern()
        npix = frame.wavelength.shape[0]
        off = rng.integers(0, pattern.shape[0] - npix, n)
        field = pattern[off[:, None] + np.arange(npix)[None, :]]
        lam = frame.wavelength[None, :]
        tau_eff = 0.0018 * (lam / 1215.67) ** 3.92 * (lam < lya_obs[:, None])
        tau_eff += 0.3 * 0.0018 * (lam / 1025.72) ** 3.92 * (lam < 1025.72 * (1.0 + z[:, None]))
        tau_ll = rng.uniform(0.5, 4.0, n)[:, None] * (lam < 911.75 * (1.0 + z[:, None]))
        model = model * np.exp(-(tau_eff * field + tau_ll)).astype(np.float32)
    return model, cont


def _unknowns(rng: np.random.Generator, frame: _Frame, z: F64) -> tuple[F32, F32]:
    """Featureless smooth continua: LAMOST's 'Unknown' spectra are mostly too noisy to classify."""
    n = len(z)
    t = rng.uniform(3800.0, 9000.0, n)
    cont = _planck_shape(frame.wavelength, t)
    return cont.copy(), cont


# ----------------------------------------------------------------------------------------------------
# Noise and masks


def _bad_runs(
    rng: np.random.Generator, n: int, npix: int, rate: float, max_len: int, margin: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Random runs of 1..max_len pixels (Poisson ``rate`` per spectrum) as (row, column) index arrays.

    Runs keep ``margin`` pixels away from both ends (the red end has its own zero-filled tail).
    """
    counts = rng.poisson(rate, n)
    total = int(counts.sum())
    rows = np.repeat(np.arange(n), counts)
    starts = rng.integers(margin, npix - margin - max_len, total)
    lengths = rng.integers(1, max_len + 1, total)
    offs = np.arange(max_len)
    keep = offs[None, :] < lengths[:, None]
    cols = (starts[:, None] + offs[None, :])[keep]
    return np.broadcast_to(rows[:, None], keep.shape)[keep], cols


def synthesize_lrs(
    rng: np.random.Generator,
    *,
    cls: npt.ArrayLike,
    subclass: npt.ArrayLike,
    teff: npt.ArrayLike,
    logg: npt.ArrayLike,
    feh: npt.ArrayLike,
    z: npt.ArrayLike,
    snrg: npt.ArrayLike,
    mag_g: npt.ArrayLike,
    wavelength: npt.ArrayLike | None = None,
) -> LRSBatch:
    """Synthesise LAMOST low-resolution spectra for a batch of catalog rows.

    All inputs are equal-length arrays: ``cls`` is STAR, GALAXY, QSO or Unknown (anything else is treated
    as Unknown); ``subclass`` the catalog subclass (MK type for stars, e.g. STARFORMING for galaxies);
    ``teff``/``logg``/``feh`` the stellar parameters (NaN or -9999 where absent: taken from the subclass);
    ``z`` the redshift (for stars rv/c); ``snrg`` the g-band SNR the spectrum must have; ``mag_g`` the
    g magnitude that sets the flux level. Missing ``snrg``/``mag_g`` are filled from each other.
    ``wavelength`` defaults to the common LRS grid (:func:`~surveyhub.releases.grid.lrs_wavelength`).

    The result is deterministic for a given generator state. Everything is vectorised over the batch:
    a thousand spectra take a fraction of a second.
    """
    cls_a = np.char.upper(np.char.strip(np.asarray(cls).astype(str)))
    n = cls_a.shape[0]
    sub_a = np.asarray(subclass).astype(str)

    def f64(x: npt.ArrayLike) -> F64:
        arr = np.asarray(x, dtype=np.float64).reshape(-1)
        return np.broadcast_to(arr, (n,)).copy() if arr.shape[0] == 1 and n != 1 else arr

    teff_a, logg_a, feh_a, snr_a, mag_a = f64(teff), f64(logg), f64(feh), f64(snrg), f64(mag_g)
    z_a = f64(z)
    z_a = np.where(np.isfinite(z_a) & (z_a > -0.5), z_a, 0.0)
    z_a = np.clip(z_a, -0.01, 7.0)
    mag_a, snr_a = _clean_mag_snr(mag_a, snr_a)
    frame = _default_frame() if wavelength is None else _make_frame(np.asarray(wavelength, dtype=np.float64))
    lam = frame.wavelength
    npix = lam.shape[0]

    model = np.empty((n, npix), dtype=np.float32)
    cont = np.empty((n, npix), dtype=np.float32)
    star = cls_a == "STAR"
    gal = cls_a == "GALAXY"
    qso = cls_a == "QSO"
    unk = ~(star | gal | qso)
    if star.any():
        model[star], cont[star] = _stars(
            frame, z_a[star], teff_a[star], logg_a[star], feh_a[star], sub_a[star]
        )
    if gal.any():
        model[gal], cont[gal] = _galaxies(rng, frame, z_a[gal], sub_a[gal])
    if qso.any():
        model[qso], cont[qso] = _qsos(rng, frame, z_a[qso])
    if unk.any():
        model[unk], cont[unk] = _unknowns(rng, frame, z_a[unk])

    # Relative flux-calibration residuals: low-order terms, a step at the dichroic join, a blue droop.
    coeff = np.empty((n, 5), dtype=np.float32)
    coeff[:, :3] = rng.standard_normal((n, 3)) * np.where(unk, 0.08, 0.03)[:, None]
    coeff[:, 3] = rng.normal(0.0, 0.012, n)
    coeff[:, 4] = -rng.uniform(0.0, 0.2, n)
    calib = coeff @ frame.calib_basis
    calib += 1.0
    np.maximum(calib, 0.3, out=calib)
    model *= calib
    cont *= calib
    # Telluric absorption (O2 A/B bands, H2O) in the observed frame, deeper at higher airmass.
    airmass = rng.uniform(1.0, 1.6, n).astype(np.float32)
    tc = frame.tell_cols
    model[:, tc] *= np.exp(-airmass[:, None] * frame.telluric[None, tc])

    # Flux scale from the synthetic g magnitude (AB) of the model.
    fnu = (model @ frame.gweight_fnu.astype(np.float32)).astype(np.float64) * 1e-17
    m_model = -2.5 * np.log10(np.maximum(fnu, 1e-40)) - 48.6
    scale = (10.0 ** (-0.4 * (mag_a - m_model))).astype(np.float32)
    model *= scale[:, None]
    cont *= scale[:, None]

    # Sky: dark continuum + moonlight (bright time for half the plates) + emission lines. The lines are
    # confined to a fixed set of columns, so everything about them is computed on those columns only.
    moon = rng.uniform(0.0, 20.0, n).astype(np.float32) * (rng.random(n) < 0.5)
    line_amp = rng.uniform(0.6, 1.6, n).astype(np.float32)
    cols = frame.sky_cols
    sky_line_c = line_amp[:, None] * frame.sky_lines[None, cols]
    sky_cont_c = frame.sky_cont[None, cols] + moon[:, None] * frame.sky_moon[None, cols]

    # Count-domain variance at unit exposure, then the exposure factor k that gives the requested snrg.
    var = np.maximum(model, 0.0)
    var += (frame.sky_cont + frame.read_noise)[None, :]
    var += moon[:, None] * frame.sky_moon[None, :]
    var[:, cols] += sky_line_c
    var *= (1.0 / frame.eff)[None, :]
    gm = frame.gslice
    med = np.median(model[:, gm] / np.sqrt(var[:, gm]), axis=1)
    # A spectrum with (almost) no g-band flux (a QSO beyond z~4 behind its Lyman limit) cannot meet an
    # snrg: give it the exposure that makes the whole spectrum's median SNR snrg instead.
    dark = np.flatnonzero(model[:, gm].mean(axis=1) < 0.02 * model.mean(axis=1))
    if dark.size:
        med[dark] = np.median(model[dark] / np.sqrt(var[dark]), axis=1)
    k = (snr_a / np.maximum(med, 1e-6)) ** 2
    var *= (1.0 / k).astype(np.float32)[:, None]
    # Sky-subtraction residuals: extra noise proportional to the sky-line flux, flagged BRIGHTSKY where
    # the sky is a line (> 1.25 x its continuum) and outshines the object (SDSS/LAMOST-like criterion).
    obj = np.abs(model[:, cols]) + 10.0 * np.sqrt(var[:, cols])
    resid = np.where(unk, rng.uniform(0.05, 0.12, n), rng.uniform(0.015, 0.05, n)).astype(np.float32)
    var[:, cols] += (resid[:, None] * sky_line_c) ** 2
    is_line = sky_line_c > 0.25 * sky_cont_c
    sky_c = sky_cont_c + sky_line_c
    bright_or = is_line & (sky_c > obj)
    bright_and = is_line & (sky_c > 3.0 * obj)

    # Bad CCD columns: rejected in one exposure (ormask, ivar lower) or in all (andmask, ivar 0).
    some_r, some_c = _bad_runs(rng, n, npix, 1.0, 2, 10)
    all_r, all_c = _bad_runs(rng, n, npix, 0.6, 5, 10)
    var[some_r, some_c] *= 1.6
    # The zero-filled red tail of real files: the last 5-40 pixels.
    ntail = rng.integers(5, 41, n)
    tail = np.arange(npix - 40, npix)[None, :] >= (npix - ntail)[:, None]
    andmask = np.zeros((n, npix), dtype=np.int32)
    andmask[:, cols] = bright_and * np.int32(PixelMask.BRIGHTSKY)
    andmask[all_r, all_c] |= PixelMask.BADCCD
    andmask[:, -40:] |= tail * np.int32(PixelMask.NODATA)
    ormask = andmask.copy()
    ormask[:, cols] |= bright_or * np.int32(PixelMask.BRIGHTSKY)
    ormask[some_r, some_c] |= PixelMask.BADCCD

    flux = rng.standard_normal((n, npix), dtype=np.float32)
    flux *= np.sqrt(var)
    flux += model
    ivar = np.divide(1.0, var, out=var)
    for arr in (flux, ivar):
        arr[all_r, all_c] = 0.0
        arr[:, -40:] *= ~tail
    return LRSBatch(
        wavelength=lam,
        flux=flux.astype(np.float32, copy=False),
        ivar=ivar.astype(np.float32, copy=False),
        andmask=andmask,
        ormask=ormask,
        normalization=cont,
    )


# ----------------------------------------------------------------------------------------------------
# MRS

# Lines of the MRS windows (air A, relative strength at a K0 solar star). Blue arm 4894-5378 A around Mg b,
# red arm 6292-6851 A around H-alpha.
_MRS_METALS_AIR = _table(
    """
    4903.31 0.35  4918.99 0.35  4920.50 0.55  4924.77 0.25  4938.81 0.3  4939.69 0.25  4946.39 0.3
    4957.30 0.35  4957.60 0.55  4966.09 0.35  4973.10 0.3  4982.50 0.3  4994.13 0.3  5001.86 0.35
    5006.12 0.45  5012.07 0.4  5014.94 0.3  5022.24 0.3  5041.07 0.3  5041.76 0.35  5049.82 0.4
    5051.63 0.4  5068.77 0.35  5074.75 0.3  5079.22 0.3  5079.74 0.3  5083.34 0.35  5098.70 0.3
    5110.41 0.4  5123.72 0.35  5127.36 0.35  5133.69 0.35  5139.46 0.4  5142.93 0.3  5150.84 0.35
    5151.91 0.35  5162.27 0.4  5166.28 0.4  5171.60 0.45  5191.45 0.45  5192.34 0.45  5194.94 0.4
    5198.71 0.3  5202.34 0.4  5215.18 0.3  5216.27 0.4  5225.53 0.3  5227.19 0.55  5232.94 0.55
    5242.49 0.3  5250.21 0.3  5254.96 0.3  5266.56 0.45  5269.54 0.65  5281.79 0.4  5283.62 0.4
    5302.30 0.35  5307.36 0.3  5324.18 0.45  5328.04 0.6  5339.93 0.35  5341.02 0.4  5353.37 0.3
    5364.87 0.35  5367.47 0.4  5369.96 0.4  5371.49 0.55  4923.93 0.35  5018.44 0.35  5169.03 0.35
    5197.58 0.3  5234.62 0.3  5275.99 0.3  5316.62 0.35  4981.73 0.3  4991.07 0.3  4999.50 0.3
    5064.65 0.25  5129.16 0.25  5154.07 0.25  5188.68 0.3  5210.38 0.3  5226.54 0.3  5336.79 0.25
    5204.51 0.4  5206.04 0.45  5208.42 0.5  5296.69 0.3  5298.28 0.3  5345.80 0.3  5348.31 0.3
    4904.41 0.3  4935.83 0.25  4980.17 0.3  5035.36 0.35  5080.53 0.35  5081.11 0.3  5099.93 0.3
    5115.39 0.3  5146.48 0.25  5261.70 0.35  5262.24 0.3  5264.24 0.3  5265.56 0.35  5270.27 0.4
    5349.47 0.35  4934.08 0.45  4900.12 0.3  5087.42 0.25  5200.41 0.25  6301.50 0.45  6302.49 0.4
    6311.50 0.2  6315.81 0.2  6318.02 0.3  6322.69 0.3  6330.85 0.25  6335.33 0.35  6336.82 0.35
    6344.15 0.3  6355.03 0.3  6358.69 0.3  6380.74 0.25  6393.60 0.45  6400.00 0.45  6408.02 0.3
    6411.65 0.4  6419.95 0.3  6421.35 0.4  6430.85 0.4  6469.19 0.25  6475.62 0.3  6481.87 0.3
    6494.98 0.5  6498.94 0.3  6518.37 0.3  6546.24 0.35  6569.21 0.3  6574.23 0.25  6575.02 0.3
    6592.91 0.4  6593.87 0.35  6609.11 0.3  6633.75 0.25  6663.44 0.35  6677.99 0.4  6703.57 0.25
    6705.10 0.2  6710.32 0.2  6725.36 0.2  6733.15 0.2  6750.15 0.35  6806.84 0.25  6810.26 0.25
    6820.37 0.2  6828.59 0.25  6839.83 0.25  6841.34 0.3  6843.66 0.3  6369.46 0.2  6416.92 0.25
    6432.68 0.25  6456.38 0.3  6516.08 0.3  6439.08 0.55  6449.81 0.4  6455.60 0.3  6462.57 0.55
    6471.66 0.4  6493.78 0.5  6499.65 0.4  6508.85 0.25  6572.78 0.35  6717.68 0.45  6327.60 0.25
    6482.80 0.25  6586.31 0.3  6643.63 0.4  6767.77 0.4  6772.32 0.25  6303.76 0.2  6312.24 0.2
    6336.10 0.2  6554.22 0.25  6556.06 0.25  6599.11 0.2  6743.12 0.2  6496.90 0.45  6604.60 0.3
    6696.02 0.3  6698.67 0.25  6814.94 0.25  6721.85 0.3
    """
)
# Hot-star lines: He I, Si II, C II, Mg II (air).
_MRS_HOT_AIR = _table(
    "4921.93 0.35  5015.68 0.25  6678.15 0.35  6347.11 0.3  6371.37 0.25  6578.05 0.15  6582.88 0.12"
)


@lru_cache(maxsize=2)
def _mrs_templates(arm: str) -> _Templates:
    """Stellar optical-depth rows at R~7500 around one MRS arm (with margin for radial velocities)."""
    wave = mrs_wavelength(arm)
    b = _RowBuilder(float(wave[0]) * 0.99, float(wave[-1]) * 1.01, 1e-5)
    slow = float(np.hypot(SIGMA_MRS_KMS, 6.0))  # cool slow rotators: thermal + macro turbulence
    fast = float(np.hypot(SIGMA_MRS_KMS, 60.0))  # hot stars rotate fast
    bal = _BALMER
    b.add("balmer_core", b.gauss(bal[:, 0], bal[:, 1] * 0.9, float(np.hypot(SIGMA_MRS_KMS, 30.0))))
    b.add("balmer_wing", b.lorentz(bal[:, 0], bal[:, 1] * 0.8, 600.0, 15.0))
    b.add("balmer_wing_broad", b.lorentz(bal[:, 0], bal[:, 1] * 0.7, 1800.0, 8.0))
    mgb = [LINES["Mg_b1"], LINES["Mg_b2"], LINES["Mg_b3"]]
    b.add("mgb", b.gauss(mgb, [1.0, 1.3, 1.5], slow))
    b.add("mgb", b.lorentz(mgb, [0.12, 0.15, 0.18], 120.0, 40.0))
    metals_vac = air_to_vacuum(_MRS_METALS_AIR[:, 0])
    b.add("metals_slow", b.gauss(metals_vac, _MRS_METALS_AIR[:, 1] * 1.5, slow))
    b.add("metals_fast", b.gauss(metals_vac, _MRS_METALS_AIR[:, 1] * 0.5, fast))
    lo, hi = float(wave[0]) * 0.99, float(wave[-1]) * 1.01
    flam, fstr = _forest_lines(lo, hi, 500, seed=7500 + (arm == "R"))
    b.add("forest_slow", b.gauss(flam, fstr * 1.5, slow))
    b.add("forest_fast", b.gauss(flam, fstr * 0.5, fast))
    b.add("tio", b.bands(air_to_vacuum(_TIO_AIR[:, 0]), _TIO_AIR[:, 1], _TIO_AIR[:, 2], SIGMA_MRS_KMS))
    b.add("hot", b.gauss(air_to_vacuum(_MRS_HOT_AIR[:, 0]), _MRS_HOT_AIR[:, 1], fast))
    b.add("li", b.gauss(air_to_vacuum([6707.76, 6707.91]), [0.4, 0.2], slow))
    return b.build()


def _mrs_response(lam: F64, arm: str) -> F64:
    """MRS arm response per unit f_lambda (counts), incl. the lambda**2 of photons per log pixel."""
    x = (lam - 0.5 * (lam[0] + lam[-1])) / (0.5 * (lam[-1] - lam[0]))
    peak = 0.4 if arm == "B" else 1.0
    return peak * (1.0 - 0.45 * x**2) * (lam / 5200.0) ** 2


_MRS_SKY_AIR = {"B": _table("5197.90 0.03  5200.26 0.03"), "R": _table("6300.30 0.45  6363.78 0.15")}


def _empty_mrs_arm(arm: str) -> MRSArm:
    lam = mrs_wavelength(arm)
    f2, i2 = np.zeros((0, lam.shape[0]), np.float32), np.zeros((0, lam.shape[0]), np.int32)
    f3, i3 = np.zeros((0, 0, lam.shape[0]), np.float32), np.zeros((0, 0, lam.shape[0]), np.int32)
    return MRSArm(arm, lam, f2, f2, i2, i2, f2, f3, f3, i3, np.zeros(0, np.int32))


def synthesize_mrs(
    rng: np.random.Generator,
    *,
    teff: npt.ArrayLike,
    logg: npt.ArrayLike,
    feh: npt.ArrayLike,
    rv: npt.ArrayLike,
    snr: npt.ArrayLike,
    n_exposures: npt.ArrayLike,
) -> dict[str, MRSArm]:
    """Synthesise LAMOST medium-resolution (R~7500) star spectra: both arms, coadds and exposures.

    ``teff``/``logg``/``feh`` stellar parameters (NaN filled with 5800 K, 4.3, -0.2), ``rv`` radial
    velocity in km/s, ``snr`` the median SNR of the blue-arm coadd, ``n_exposures`` the number of
    exposures of each row (an int or an array, at least 1). The red arm's SNR follows from the star's
    colour and the arm responses with the same exposure, as it does in real data.

    Each exposure sees the same star through a different transparency (its own ivar), gets its own noise
    and a few cosmic-ray hits (flagged BADPROFILE, ivar 0 in that exposure); bad CCD columns are bad in
    every exposure. The coadd is the inverse-variance weighted mean, its ANDMASK/ORMASK the AND/OR of
    the exposures' masks. Flux is in photo-electrons per exposure: MRS spectra are not flux calibrated.
    """
    t_in = np.asarray(teff, dtype=np.float64).reshape(-1)
    n = t_in.shape[0]
    t = np.clip(np.where(_valid(t_in, 1000.0, 1e6), t_in, 5800.0), 2300.0, 50000.0)
    g_in = np.asarray(logg, dtype=np.float64).reshape(-1)
    g = np.clip(np.where(_valid(g_in, -2.0, 10.0), g_in, 4.3), -0.5, 9.0)
    f_in = np.asarray(feh, dtype=np.float64).reshape(-1)
    f = np.clip(np.where(_valid(f_in, -9.0, 3.0), f_in, -0.2), -4.0, 1.0)
    rv_a = np.asarray(rv, dtype=np.float64).reshape(-1)
    rv_a = np.where(np.isfinite(rv_a) & (np.abs(rv_a) < 3000.0), rv_a, 0.0)
    snr_a = np.asarray(snr, dtype=np.float64).reshape(-1)
    snr_a = np.where(_valid(snr_a, 0.0, 5000.0), snr_a, 20.0)
    nexp = np.broadcast_to(np.asarray(n_exposures, dtype=np.int64).reshape(-1), (n,))
    nexp = np.clip(nexp, 1, None).astype(np.int32)
    nmax = int(nexp.max()) if n else 0
    if n == 0:
        return {arm: _empty_mrs_arm(arm) for arm in ("B", "R")}
    z = rv_a / C_KMS

    bal = _balmer_strength(t)
    wd = np.clip((g - 6.0) / 1.5, 0.0, 1.0)
    cool = 1.0 / (1.0 + np.exp((t - 5600.0) / 450.0))
    m = 10.0 ** (0.8 * f)
    dwarf = np.clip((g - 2.5) / 2.0, 0.0, 1.2)
    hot = np.clip((t - 6500.0) / 2000.0, 0.0, 1.0)  # fast rotators
    metal = (0.06 + 1.1 * cool) * m
    forest = (0.05 + 1.2 * cool) * m
    # Lithium: a minority of cool stars (young ones) show Li I 6708.
    li = (t < 6300.0) * np.clip((t - 4000.0) / 1500.0, 0.0, 1.0) * (rng.random(n) < 0.3)
    li = li * rng.uniform(0.2, 1.0, n)
    cols = {
        # Resolved at R~7500, the Balmer core is deep even in the Sun (H-alpha core depth ~0.7).
        "balmer_core": 2.2 * np.sqrt(bal) * (1.0 - 0.5 * wd),
        "balmer_wing": bal**2 * np.clip(0.3 + 0.18 * (g - 2.0), 0.1, 0.9) * (1.0 - wd),
        "balmer_wing_broad": np.maximum(bal, 0.6) * wd * 1.6,
        "mgb": (0.05 + cool) * m * (0.4 + 0.6 * dwarf),
        "metals_slow": metal * (1.0 - hot),
        "metals_fast": metal * hot + 0.15 * np.clip((t - 7000.0) / 3000.0, 0.0, 1.0) * m,
        "forest_slow": forest * (1.0 - hot),
        "forest_fast": forest * hot,
        "tio": np.clip((4150.0 - t) / 550.0, 0.0, 3.0) * m**0.3,
        "hot": np.clip((t - 9500.0) / 6000.0, 0.0, 1.0),
        "li": li,
    }
    names = list(cols)
    weights = np.stack([np.asarray(cols[k], dtype=np.float64) for k in names], axis=1).astype(np.float32)
    blanket = 1.3 / (1.0 + np.exp((t - 5200.0) / 600.0)) * m**0.5 + 0.05

    transp = rng.uniform(0.55, 1.05, (n, nmax))
    valid_exp = np.arange(nmax)[None, :] < nexp[:, None]
    transp = np.where(valid_exp, transp, 0.0).astype(np.float32)
    sky_frac = rng.uniform(0.005, 0.05, n).astype(np.float32)

    counts: dict[str, F32] = {}
    conts: dict[str, F32] = {}
    waves: dict[str, F64] = {}
    for arm in ("B", "R"):
        lam = mrs_wavelength(arm)
        waves[arm] = lam
        cont = _star_continuum(lam, t, blanket) * _mrs_response(lam, arm).astype(np.float32)[None, :]
        tau = _mrs_templates(arm).evaluate(weights, names, np.log10(lam), z)
        counts[arm] = cont * np.exp(-tau)
        conts[arm] = cont
    # Per exposure j with transparency e_j, at unit exposure factor: counts e_j * (C + S) with read
    # noise variance RN, rescaled to the common level: var_j = (e_j * (C + S) + RN) / e_j**2. Sky and read
    # noise are set relative to the star's level, so every term scales with the exposure factor k and
    # ivar_j(k) = ivar_j(1) / k: the coadd SNR grows as sqrt(k), which solves k in closed form.
    level = np.median(counts["B"], axis=1).astype(np.float32)
    rn = (0.002 * level)[:, None]
    totals: dict[str, F32] = {}
    for arm in ("B", "R"):
        lam = waves[arm]
        lines = np.zeros_like(lam)
        for c, s in zip(air_to_vacuum(_MRS_SKY_AIR[arm][:, 0]), _MRS_SKY_AIR[arm][:, 1], strict=True):
            lines += s * np.exp(-0.5 * ((lam - c) / (SIGMA_MRS_KMS / C_KMS * c)) ** 2)
        sky_shape = (_mrs_response(lam, arm) * (1.0 + 30.0 * lines)).astype(np.float32)
        totals[arm] = counts[arm] + (sky_frac * level)[:, None] * sky_shape[None, :]
    # The exposures are computed compactly, one row per real exposure (row-major over (star, exposure),
    # the order of ``array[valid_exp]``), then padded.
    owner = np.repeat(np.arange(n), nexp)
    ev = transp[valid_exp][:, None]
    rnv = rn[owner]
    # The median over every 3rd pixel is the median over all of them to well within a percent.
    sub_c, sub_t = counts["B"][:, ::3], totals["B"][:, ::3]
    e = transp[:, :, None]  # 0 for padding exposures, which then add nothing
    ivar1_b = (e * e / (e * sub_t[:, None, :] + rn[:, :, None])).sum(axis=1)
    snr1 = np.median(sub_c * np.sqrt(ivar1_b), axis=1)
    k = (snr_a / np.maximum(snr1, 1e-9)) ** 2
    kv = k.astype(np.float32)[owner][:, None]
    reject = int(PixelMask.BADPROFILE | PixelMask.BADCCD | PixelMask.NODATA)

    result: dict[str, MRSArm] = {}
    for arm in ("B", "R"):
        lam = waves[arm]
        npix = lam.shape[0]
        k32 = k.astype(np.float32)[:, None]
        flux_model = counts[arm] * k32
        sigma = totals[arm][owner]  # becomes the variance of the counts, then sigma, in place
        sigma *= ev
        sigma += rnv
        sigma *= kv
        iv = np.divide(ev * ev, sigma)
        np.sqrt(sigma, out=sigma)
        sigma /= ev
        flux = rng.standard_normal(iv.shape, dtype=np.float32)
        flux *= sigma
        flux += flux_model[owner]
        # Bad CCD columns (every exposure of the star) and the unusable red tail.
        bad = np.zeros((n, npix), dtype=bool)
        bad[_bad_runs(rng, n, npix, 0.5, 4, 5)] = True
        ntail = rng.integers(20, 36, n)
        tail = np.arange(npix)[None, :] >= (npix - ntail)[:, None]
        common = (bad * np.int32(PixelMask.BADCCD)) | (tail * np.int32(PixelMask.NODATA))
        pixmask = common[owner]
        # Cosmic rays: a few 1-3 pixel hits per exposure, rejected (ivar 0) in that exposure only.
        hits = rng.poisson(1.5, owner.shape[0])
        nhit = int(hits.sum())
        if nhit:
            rows = np.repeat(np.arange(owner.shape[0]), hits)
            first = rng.integers(0, npix - 3, nhit)
            length = rng.integers(1, 4, nhit)
            amp = rng.uniform(5.0, 60.0, nhit).astype(np.float32)
            for d in range(3):
                sel = d < length
                r, c = rows[sel], first[sel] + d
                pixmask[r, c] |= PixelMask.BADPROFILE
                flux[r, c] += amp[sel] * sigma[r, c]
        iv *= (pixmask & reject) == 0
        flux *= ~(bad | tail)[owner]
        # Pad to (n, max_exposures, npix); the reductions over axis 1 are the coadd. Padding masks start
        # as all bits so that they drop out of the AND, then become 0.
        exp_flux = np.zeros((n, nmax, npix), dtype=np.float32)
        exp_ivar = np.zeros((n, nmax, npix), dtype=np.float32)
        exp_mask = np.full((n, nmax, npix), -1, dtype=np.int32)
        exp_flux[valid_exp] = flux
        exp_ivar[valid_exp] = iv
        exp_mask[valid_exp] = pixmask
        andmask = np.bitwise_and.reduce(exp_mask, axis=1)
        exp_mask[~valid_exp] = 0
        ormask = np.bitwise_or.reduce(exp_mask, axis=1)
        wsum = exp_ivar.sum(axis=1)
        num = np.einsum("ijk,ijk->ik", exp_ivar, exp_flux)
        coadd = np.divide(num, wsum, out=np.zeros_like(wsum), where=wsum > 0)
        andmask[wsum == 0] |= PixelMask.NODATA
        ormask |= andmask
        result[arm] = MRSArm(
            arm=arm,
            wavelength=lam,
            flux=coadd.astype(np.float32, copy=False),
            ivar=wsum.astype(np.float32, copy=False),
            andmask=andmask.astype(np.int32, copy=False),
            ormask=ormask.astype(np.int32, copy=False),
            normalization=(conts[arm] * k32).astype(np.float32, copy=False),
            exposure_flux=exp_flux,
            exposure_ivar=exp_ivar,
            exposure_pixmask=exp_mask,
            n_exposures=nexp.copy(),
        )
    return result
