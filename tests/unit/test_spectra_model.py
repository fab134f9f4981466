"""Properties of the mock LAMOST spectra: what a user of a mock release could check on real data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from surveyhub.releases.grid import lrs_wavelength, mrs_wavelength
from surveyhub.releases.mock.spectra_model import (
    LRSBatch,
    MRSArm,
    PixelMask,
    synthesize_lrs,
    synthesize_mrs,
)

C_KMS = 299_792.458

STAR_A = {"cls": "STAR", "subclass": "A0", "teff": 9600.0, "logg": 4.1, "feh": 0.0}
STAR_G = {"cls": "STAR", "subclass": "G2", "teff": 5800.0, "logg": 4.4, "feh": 0.0}
STAR_K = {"cls": "STAR", "subclass": "K3", "teff": 4600.0, "logg": 4.6, "feh": 0.0}
STAR_M = {"cls": "STAR", "subclass": "dM3"}
GALAXY_SF = {"cls": "GALAXY", "subclass": "STARFORMING"}
GALAXY_OLD = {"cls": "GALAXY", "subclass": ""}
QSO = {"cls": "QSO", "subclass": ""}
UNKNOWN = {"cls": "Unknown", "subclass": ""}


def lrs(seed: int, rows: list[dict[str, Any]], **kwargs: Any) -> LRSBatch:
    """Synthesise one spectrum per row; rows give cls/subclass and any of teff, logg, feh, z, snrg, mag_g."""
    defaults = {"teff": np.nan, "logg": np.nan, "feh": np.nan, "z": 0.0, "snrg": 50.0, "mag_g": 16.0}
    full = [{**defaults, **row} for row in rows]

    def col(name: str) -> np.ndarray:
        return np.array([row[name] for row in full])

    return synthesize_lrs(
        np.random.default_rng(seed),
        cls=col("cls"),
        subclass=col("subclass"),
        teff=col("teff").astype(float),
        logg=col("logg").astype(float),
        feh=col("feh").astype(float),
        z=col("z").astype(float),
        snrg=col("snrg").astype(float),
        mag_g=col("mag_g").astype(float),
        **kwargs,
    )


def g_band_snr(batch: LRSBatch, i: int) -> float:
    w = batch.wavelength
    sel = (w >= 4000) & (w <= 5500) & (batch.ivar[i] > 0)
    return float(np.median(batch.flux[i, sel] * np.sqrt(batch.ivar[i, sel])))


def line_depth(batch: LRSBatch, i: int, center: float, core: float = 2.0) -> float:
    """1 - (flux in the line core) / (median flux 60-100 A either side): the depth a by-eye reader sees.

    Dead pixels (ivar 0, flux 0) are bridged by interpolation, as a reader's eye would.
    """
    w, good = batch.wavelength, batch.ivar[i] > 0
    f = np.interp(w, w[good], batch.flux[i, good])
    side = (np.abs(w - center) > 60) & (np.abs(w - center) < 100)
    in_core = np.abs(w - center) < core
    return float(1.0 - np.mean(f[in_core]) / np.median(f[side]))


MIXED = [STAR_A, STAR_G, STAR_K, STAR_M, {**GALAXY_SF, "z": 0.1}, {**QSO, "z": 1.5}, UNKNOWN]


def test_same_seed_gives_the_same_arrays_and_another_seed_does_not() -> None:
    a, b, c = lrs(3, MIXED), lrs(3, MIXED), lrs(4, MIXED)
    for name in ("flux", "ivar", "andmask", "ormask", "normalization"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.flux, c.flux)


def test_shapes_and_dtypes_follow_the_lrs_grid() -> None:
    batch = lrs(0, MIXED)
    n, npix = len(MIXED), 3909
    np.testing.assert_array_equal(batch.wavelength, lrs_wavelength())
    assert len(batch) == n
    for name, dtype in [
        ("flux", np.float32),
        ("ivar", np.float32),
        ("normalization", np.float32),
        ("andmask", np.int32),
        ("ormask", np.int32),
    ]:
        arr = getattr(batch, name)
        assert arr.shape == (n, npix), name
        assert arr.dtype == dtype, name
        assert np.all(np.isfinite(arr)), name


def test_a_custom_grid_such_as_the_dr1_pilot_one_is_honoured() -> None:
    batch = lrs(0, [STAR_G], wavelength=lrs_wavelength(3904))
    assert batch.flux.shape == (1, 3904)


@pytest.mark.parametrize("snrg", [3.0, 10.0, 30.0, 120.0])
def test_g_band_median_snr_is_the_requested_one(snrg: float) -> None:
    rows = [{**row, "snrg": snrg} for row in MIXED]
    batch = lrs(11, rows)
    for i, row in enumerate(rows):
        measured = g_band_snr(batch, i)
        assert measured == pytest.approx(snrg, rel=0.2), (row, measured)


def test_a_star_has_deep_balmer_lines_and_a_k_star_deep_metal_lines() -> None:
    batch = lrs(5, [{**STAR_A, "snrg": 300.0}, {**STAR_K, "snrg": 300.0}])
    a, k = 0, 1
    for balmer in (6564.61, 4862.68):
        assert line_depth(batch, a, balmer) > 0.4
        assert line_depth(batch, a, balmer) > line_depth(batch, k, balmer) + 0.15
    for metal in (3934.78, 3969.59, 5174.13, 5185.05, 5891.58, 5897.56):
        assert line_depth(batch, k, metal, core=1.0) > line_depth(batch, a, metal, core=1.0) + 0.2, metal
    assert line_depth(batch, k, 3934.78) > 0.5  # Ca II K


def test_star_forming_galaxy_shows_redshifted_halpha_and_nothing_at_rest() -> None:
    z = 0.1
    batch = lrs(2, [{**GALAXY_SF, "z": z, "snrg": 30.0, "mag_g": 17.0}])
    w, f = batch.wavelength, batch.flux[0]
    pull = (f - batch.normalization[0]) * np.sqrt(batch.ivar[0])  # excess over the continuum, in sigma
    expected = 6564.61 * (1 + z)
    window = np.abs(w - expected) < 15  # [N II] 6585 lands 23 A redder
    peak = w[window][np.argmax(f[window])]
    assert abs(peak - expected) < 3.0
    assert np.max(pull[window]) > 10
    assert np.max(pull[np.abs(w - 6564.61) < 5]) < 5


def test_qso_at_z_2_2_shows_civ_and_ciii_where_redshift_puts_them() -> None:
    z = 2.2
    batch = lrs(8, [{**QSO, "z": z, "snrg": 30.0, "mag_g": 17.5}])
    w, norm, good = batch.wavelength, batch.normalization[0], batch.ivar[0] > 0
    smooth = np.convolve(np.interp(w, w[good], batch.flux[0, good]), np.ones(9) / 9, mode="same")
    for rest in (1549.06, 1908.73):
        expected = rest * (1 + z)
        window = np.abs(w - expected) < 80
        peak = w[window][np.argmax(smooth[window])]
        assert abs(peak - expected) < 15, rest
        at_peak = np.argmin(np.abs(w - expected))
        assert smooth[at_peak] > 1.3 * norm[at_peak], rest


def test_red_tail_is_zero_filled_and_flagged_nodata() -> None:
    batch = lrs(1, MIXED * 3)
    for i in range(len(batch)):
        nodata = (batch.andmask[i] & PixelMask.NODATA) != 0
        ntail = int(np.argmin(nodata[::-1]))  # trailing run of NODATA
        assert 5 <= ntail <= 40
        assert np.all(batch.flux[i, -ntail:] == 0)
        assert np.all(batch.ivar[i, -ntail:] == 0)
        assert np.all(batch.ormask[i, -ntail:] & PixelMask.NODATA)


def test_ivar_is_positive_except_where_andmask_says_why() -> None:
    batch = lrs(6, MIXED * 4)
    dead = batch.ivar == 0
    assert np.all(batch.andmask[dead] != 0)
    assert np.all(batch.ivar[batch.andmask == 0] > 0)
    # ANDMASK (bad in every exposure) is a subset of ORMASK (bad in at least one)
    assert np.all((batch.andmask & ~batch.ormask) == 0)
    # a few bad-CCD and sky-line pixels, not a masked spectrum
    assert 0 < np.mean(batch.ormask != 0) < 0.1


def test_ivar_describes_the_noise_that_was_added() -> None:
    # Unknown spectra are featureless: flux - continuum is the noise (away from telluric bands).
    rows = [{**UNKNOWN, "snrg": 20.0, "mag_g": 17.0}] * 40
    batch = lrs(9, rows)
    w = batch.wavelength
    sel = (w > 4000) & (w < 6800)
    clean = (batch.ormask[:, sel] == 0) & (batch.ivar[:, sel] > 0)
    pulls = ((batch.flux - batch.normalization)[:, sel] * np.sqrt(batch.ivar[:, sel]))[clean]
    assert np.std(pulls) == pytest.approx(1.0, abs=0.06)
    assert abs(np.mean(pulls)) < 0.05


def test_sky_lines_raise_brightsky_and_inflate_the_noise_for_faint_objects() -> None:
    batch = lrs(4, [{**UNKNOWN, "snrg": 3.0, "mag_g": 19.0}] * 10)
    w = batch.wavelength
    at_5577 = np.argmin(np.abs(w - 5578.9))
    assert np.all(batch.ormask[:, at_5577] & PixelMask.BRIGHTSKY)
    away = (w > 5450) & (w < 5540)
    assert np.all(batch.ivar[:, at_5577] < 0.2 * np.median(batch.ivar[:, away], axis=1))


def test_brighter_magnitude_gives_proportionally_more_flux() -> None:
    batch = lrs(7, [{**STAR_G, "mag_g": 13.0}, {**STAR_G, "mag_g": 16.0}])
    ratio = np.median(batch.normalization[0] / batch.normalization[1])
    assert ratio == pytest.approx(10 ** (0.4 * 3.0), rel=0.25)  # calibration residuals differ per spectrum
    assert np.median(batch.flux[0]) > 10 * np.median(batch.flux[1])
    assert np.all(batch.normalization > 0)
    # 1e-17 erg/s/cm2/A: a g = 16 G star has f_lambda(4700 A) ~ 1.5e-15
    at_4700 = np.argmin(np.abs(batch.wavelength - 4700))
    assert 50 < batch.normalization[1, at_4700] < 400


def test_missing_catalog_values_still_give_finite_spectra() -> None:
    rows = [
        {**STAR_M, "snrg": -9999.0, "mag_g": 99.0},
        {"cls": "STAR", "subclass": "WD", "snrg": np.nan, "mag_g": 18.0},
        {**GALAXY_OLD, "z": -9999.0, "snrg": 5.0, "mag_g": -9999.0},
        {"cls": "", "subclass": "", "snrg": 2.0},
    ]
    batch = lrs(0, rows)
    assert np.all(np.isfinite(batch.flux))
    assert np.all(np.isfinite(batch.ivar))
    assert np.all(batch.normalization > 0)


# ----------------------------------------------------------------------------------------------------
# MRS


def mrs(seed: int = 0, **overrides: Any) -> dict[str, MRSArm]:
    params: dict[str, Any] = {
        "teff": np.array([5800.0, 4500.0, 9000.0, 6200.0]),
        "logg": np.array([4.4, 2.5, 4.0, 4.2]),
        "feh": np.array([0.0, -0.5, 0.0, np.nan]),
        "rv": np.array([0.0, -40.0, 15.0, 120.0]),
        "snr": np.array([60.0, 30.0, 100.0, 15.0]),
        "n_exposures": np.array([7, 3, 1, 5]),
    }
    params.update(overrides)
    return synthesize_mrs(np.random.default_rng(seed), **params)


def test_mrs_coadd_is_the_inverse_variance_mean_of_its_exposures() -> None:
    arms = mrs()
    assert set(arms) == {"B", "R"}
    for arm, a in arms.items():
        np.testing.assert_array_equal(a.wavelength, mrs_wavelength(arm))
        n, npix = a.flux.shape
        assert npix == mrs_wavelength(arm).shape[0]
        assert a.exposure_flux.shape == (n, int(a.n_exposures.max()), npix)
        ivar = a.exposure_ivar.astype(np.float64)
        wsum = ivar.sum(axis=1)
        mean = np.divide((ivar * a.exposure_flux).sum(axis=1), wsum, out=np.zeros_like(wsum), where=wsum > 0)
        np.testing.assert_allclose(a.flux, mean, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(a.ivar, wsum, rtol=1e-5)
        for i, nexp in enumerate(a.n_exposures):  # padding exposures are empty
            assert np.all(a.exposure_ivar[i, nexp:] == 0)
            assert np.all(a.exposure_flux[i, nexp:] == 0)
            # each exposure is noisier than the coadd it goes into
            good = a.ivar[i] > 0
            assert np.all(np.median(a.exposure_ivar[i, :nexp][:, good], axis=1) <= np.median(a.ivar[i, good]))
        assert np.all(a.andmask[a.ivar == 0] != 0)
        assert np.all((a.andmask & ~a.ormask) == 0)


def test_mrs_blue_arm_snr_is_the_requested_one_and_cosmic_rays_are_rejected() -> None:
    arms = mrs(1)
    b = arms["B"]
    for i, snr in enumerate([60.0, 30.0, 100.0, 15.0]):
        good = b.ivar[i] > 0
        assert np.median(b.flux[i, good] * np.sqrt(b.ivar[i, good])) == pytest.approx(snr, rel=0.15)
    hit = (b.exposure_pixmask & PixelMask.BADPROFILE) != 0
    assert hit.any()
    assert np.all(b.exposure_ivar[hit] == 0)


def test_mrs_halpha_sits_at_the_radial_velocity() -> None:
    rv = 300.0
    arms = mrs(2, teff=np.array([8000.0]), logg=np.array([4.0]), feh=np.array([0.0]), rv=np.array([rv]),
               snr=np.array([200.0]), n_exposures=np.array([4]))  # fmt: skip
    r = arms["R"]
    near = np.abs(r.wavelength - 6570.0) < 15
    good = r.ivar[0] > 0
    smooth = np.convolve(np.interp(r.wavelength, r.wavelength[good], r.flux[0, good]), np.ones(5) / 5, "same")
    found = r.wavelength[near][np.argmin(smooth[near])]
    assert found == pytest.approx(6564.61 * (1 + rv / C_KMS), abs=0.3)


def test_mrs_is_deterministic() -> None:
    a, b = mrs(5), mrs(5)
    for arm in "BR":
        np.testing.assert_array_equal(a[arm].flux, b[arm].flux)
        np.testing.assert_array_equal(a[arm].exposure_pixmask, b[arm].exposure_pixmask)
