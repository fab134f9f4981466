"""Writing LAMOST files: what is written reads back the same, with the era's keywords, atomically."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pytest
from astropy.io import fits

from surveyhub.releases.fits_writer import (
    atomic_write,
    card,
    encode_lrs_fits,
    write_lrs_fits,
    write_mrs_fits,
)
from surveyhub.releases.grid import lrs_wavelength, mrs_wavelength
from surveyhub.releases.spectrum import Spectrum, read_spectrum
from tests.support import samples

ARRAYS = ("wavelength", "flux", "ivar", "andmask", "ormask")
#: Names the writer computes from what it writes, whatever ``meta`` says.
COMPUTED = {"filename", "n_exten", "exten0", "norm"}

META: dict[str, Any] = {
    "obsid": 101013,
    "designation": "LAMOST J220917.16-020719.2",
    "ra": 332.321523,
    "dec": -2.122024,
    "ra_obs": 332.321523,
    "dec_obs": -2.122024,
    "planid": "F5902",
    "lmjd": 55859,
    "mjd": 55858,
    "spid": 1,
    "fiberid": 13,
    "date_obs": "2011-10-24T12:07:09.80",
    "data_v": "LAMOST DR9",
    "verspipe": "v2.9.8",
    "objtype": "Star",
    "tsource": "JF_LEGAS_S",
    "tfrom": None,
    "tcomment": None,
    "fibertype": "Obj",
    "fibermask": 0,
    "class": "STAR",
    "subclass": "A2",
    "z": -0.00106647,
    "z_err": 1.064e-05,
    "snru": 0.71,
    "snrg": 5.56,
    "snrr": 8.79,
    "snri": 9.13,
    "snrz": None,
    "offsets": False,
    "offsets_v": 0.0,
    "seeing": 3.4,
    "exptime": 5400.0,
    "moonpha": 27.16,
    "date": "2023-09-12T06:12:41",
    "expid01": "06b-20111028033916-0-80441496",
}


def _spectrum(npix: int = 3909, *, normalization: bool = False, seed: int = 0) -> Spectrum:
    rng = np.random.default_rng(seed)
    return Spectrum(
        wavelength=lrs_wavelength(npix),
        flux=(100 + 10 * rng.standard_normal(npix)).astype(np.float32),
        ivar=rng.uniform(0, 0.1, npix).astype(np.float32),
        andmask=rng.integers(0, 2**20, npix),
        ormask=rng.integers(0, 2**20, npix),
        normalization=rng.uniform(0.5, 1.5, npix) if normalization else None,
        meta=dict(META),
    )


def _assert_same_arrays(got: Spectrum, expected: Spectrum) -> None:
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)


def _assert_meta_kept(got: dict[str, Any], written: dict[str, Any]) -> None:
    kept = {key: got.get(key, "<absent>") for key in written if key not in COMPUTED}
    assert kept == {key: value for key, value in written.items() if key not in COMPUTED}


def test_lrs_coadd_round_trip(tmp_path: Path) -> None:
    spec = _spectrum(normalization=True)
    path = write_lrs_fits(tmp_path / "spec-55859-F5902_sp01-013.fits.gz", spec)
    back = read_spectrum(path)
    assert (back.kind, back.layout, back.source) == ("LRS", "lrs-coadd", "spec-55859-F5902_sp01-013.fits.gz")
    _assert_same_arrays(back, spec)
    np.testing.assert_array_equal(back.normalization, spec.normalization)
    _assert_meta_kept(back.meta, META)
    assert back.meta["filename"] == "spec-55859-F5902_sp01-013.fits"
    assert back.meta["norm"] == 1
    assert back.meta["obsdate"] == "2011-10-24"
    assert back.meta["coeff0"] == pytest.approx(3.5682)


def test_lrs_coadd_without_normalization_writes_norm_0(tmp_path: Path) -> None:
    path = write_lrs_fits(tmp_path / "spec.fits", _spectrum())
    with fits.open(path) as hdul:
        assert hdul[0].header["NORM"] == 0
        assert np.all(hdul["COADD"].data["NORMALIZATION"][0] == -9999)
    assert read_spectrum(path).normalization is None


def test_lrs_image_round_trip(tmp_path: Path) -> None:
    spec = _spectrum()
    path = write_lrs_fits(tmp_path / "spec-58397-EG014118N254444M01_sp03-031.fits", spec, layout="lrs-image")
    back = read_spectrum(path)
    assert back.layout == "lrs-image"
    _assert_same_arrays(back, spec)
    _assert_meta_kept(back.meta, META)
    with fits.open(path) as hdul:
        assert hdul[0].data.shape == (5, 3909)
        assert hdul[0].header["EXTEN0"] == "Flux, Inverse, Wavelength, Andmask, Ormask"


def test_each_layout_uses_its_era_keywords(tmp_path: Path) -> None:
    meta = {**META, "mag_ps_g": 17.79, "mag_ps_r": None, "magtype": "ugrizjh", "mag1": None, "mag2": 17.4}
    coadd = write_lrs_fits(tmp_path / "coadd.fits", {"flux": np.ones(3909), "ivar": np.ones(3909)}, meta=meta)
    image = write_lrs_fits(
        tmp_path / "image.fits", {"flux": np.ones(3909), "ivar": np.ones(3909)}, meta=meta, layout="lrs-image"
    )
    new, old = fits.getheader(coadd), fits.getheader(image)
    assert (new["FIB_TYPE"], new["FIB_MASK"], new["SNRG"]) == ("Obj", 0, 5.56)
    assert "FIBERTYP" not in new
    assert (old["FIBERTYP"], old["FIBERMAS"], old["SNRG"]) == ("Obj", 0, 5.56)
    assert "FIB_TYPE" not in old
    assert "MAG_PS_R" not in old  # a core name the era has no card for, with no value: left out
    assert old["MAG_PS_G"] == pytest.approx(17.79)  # ... but a value is never dropped
    # None as each era writes it
    assert (new["MAG_PS_G"], new["MAG_PS_R"]) == (pytest.approx(17.79), -999.0)
    assert (old["MAG1"], old["MAG2"]) == (99.0, pytest.approx(17.4))
    assert (new["TCOMMENT"], new["TFROM"], new["SNRZ"]) == ("-", "-", -9999.0)
    assert new.comments["SNRG"] == "SNR of g filter"
    assert new.comments["DESIG"] == "Designation of LAMOST target"
    # LAMOST's fixed decimals, where they keep the value exactly
    assert "RA      =           332.321523 / [deg] Right ascension of object" in str(new)
    assert "SNRG    =                 5.56 / SNR of g filter" in str(new)
    for path in (coadd, image):
        spec = read_spectrum(path)
        assert (spec.meta["mag_u"], spec.meta["mag_g"]) == (None, pytest.approx(17.4))
        assert spec.meta["mag_ps_r"] is None


def test_obsdate_alone_becomes_date_obs(tmp_path: Path) -> None:
    arrays = {"flux": np.ones(3909), "ivar": np.ones(3909), "meta": {"obsdate": "2011-10-24"}}
    path = write_lrs_fits(tmp_path / "spec.fits", arrays)
    assert fits.getheader(path)["DATE-OBS"] == "2011-10-24"
    assert read_spectrum(path).meta["obsdate"] == "2011-10-24"


def test_written_files_verify_cleanly(tmp_path: Path) -> None:
    long_comment = "a target comment long enough to need FITS CONTINUE cards, " * 2
    spec = _spectrum()
    spec.meta["tcomment"] = long_comment
    for layout in ("lrs-coadd", "lrs-image"):
        path = write_lrs_fits(tmp_path / f"{layout}.fits", spec, layout=layout)  # type: ignore[arg-type]
        with fits.open(path) as hdul:
            hdul.verify("exception")
        assert read_spectrum(path).meta["tcomment"] == long_comment.strip()


def test_gz_only_when_the_name_says_so(tmp_path: Path) -> None:
    spec = _spectrum()
    compressed = Path(write_lrs_fits(tmp_path / "a.fits.gz", spec))
    plain = Path(write_lrs_fits(tmp_path / "a.fits", spec))
    assert compressed.read_bytes()[:2] == b"\x1f\x8b"
    assert plain.read_bytes().startswith(b"SIMPLE  =")
    assert len(plain.read_bytes()) % 2880 == 0
    assert gzip.decompress(compressed.read_bytes())[:80] == plain.read_bytes()[:80]


def test_mrs_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)

    def part(wavelength: np.ndarray, **meta: Any) -> dict[str, Any]:
        n = wavelength.size
        return {
            "wavelength": wavelength,
            "flux": rng.normal(1000, 30, n),
            "ivar": rng.uniform(0, 1, n),
            "andmask": rng.integers(0, 4, n),
            "ormask": rng.integers(0, 4, n),
            "meta": meta,
        }

    exposure_wave = {arm: np.float32(mrs_wavelength(arm)[:4000] + 0.1).astype(np.float64) for arm in "BR"}
    arms = {"B": part(mrs_wavelength("B"), snr=120.75), "R": part(mrs_wavelength("R"), snr=280.75)}
    exposures = {
        f"{arm}-{lmjm}": part(exposure_wave[arm], exptime=1200.0, snr=40.0 + i)
        for i, lmjm in enumerate((84107311, 84107335))
        for arm in "BR"
    }
    meta = {key: value for key, value in META.items() if key not in ("class", "subclass")}
    path = write_mrs_fits(tmp_path / "med-58408-TD230151N343645T01_sp01-015.fits.gz", arms, exposures, meta)
    back = read_spectrum(path)

    assert (back.kind, back.layout) == ("MRS", "mrs-vector-rows")
    assert list(back.arms) == ["B", "R"]
    assert sorted(back.exposures) == sorted(exposures)
    _assert_meta_kept(back.meta, meta)
    assert back.meta["n_exten"] == 7
    assert back.meta["nexp_b"] == 2
    for arm, given in arms.items():
        got = back.arms[arm]
        for name in ARRAYS:
            np.testing.assert_array_equal(
                getattr(got, name), np.asarray(given[name], dtype=getattr(got, name).dtype)
            )
        assert got.meta["snr"] == given["meta"]["snr"]
    np.testing.assert_array_equal(back.wavelength, np.concatenate([mrs_wavelength("B"), mrs_wavelength("R")]))
    for name, given in exposures.items():
        got = back.exposures[name]
        np.testing.assert_array_equal(got.wavelength, given["wavelength"])
        np.testing.assert_array_equal(got.flux, given["flux"].astype(np.float32))
        assert (got.meta["lmjm"], got.meta["exptime"], got.meta["snr"]) == (
            int(name[2:]),
            1200.0,
            given["meta"]["snr"],
        )
        assert got.meta["obsid"] == META["obsid"]
    with fits.open(path) as hdul:
        hdul.verify("exception")
        assert hdul[0].header["EXTNAME"] == "Information"
        assert [hdu.name for hdu in hdul[1:3]] == ["COADD_B", "COADD_R"]


def test_written_file_appears_only_complete(tmp_path: Path) -> None:
    target = tmp_path / "fits" / "20111024" / "F5902" / "spec-55859-F5902_sp01-013.fits.gz"
    write_lrs_fits(target, _spectrum())
    assert sorted(os.listdir(target.parent)) == [target.name]  # parents made, no temporary left
    before = target.read_bytes()
    bad = {"flux": np.ones(3909), "ivar": np.ones(3909), "meta": {"much_too_long_key": 1}}
    with pytest.raises(ValueError, match="cannot be a FITS keyword"):
        write_lrs_fits(target, bad)
    assert target.read_bytes() == before
    assert sorted(os.listdir(target.parent)) == [target.name]


def test_atomic_write_failure_leaves_no_temporary(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(IsADirectoryError):  # os.replace cannot put a file over a directory
        atomic_write(tmp_path / "taken", b"data")
    assert sorted(os.listdir(tmp_path)) == ["taken"]


def test_fsspec_url(tmp_path: Path) -> None:
    url = "memory://surveyhub-test/fits/20111024/F5902/spec-55859-F5902_sp01-013.fits.gz"
    spec = _spectrum()
    assert write_lrs_fits(url, spec) == url
    fs = fsspec.filesystem("memory")
    assert [Path(p).name for p in fs.ls("/surveyhub-test/fits/20111024/F5902", detail=False)] == [
        "spec-55859-F5902_sp01-013.fits.gz"
    ]
    back = read_spectrum(url)
    _assert_same_arrays(back, spec)
    assert back.source == "spec-55859-F5902_sp01-013.fits.gz"
    fs.rm("/surveyhub-test", recursive=True)


def test_refusals() -> None:
    ones = {"flux": np.ones(3909), "ivar": np.ones(3909)}
    with pytest.raises(ValueError, match="no normalised flux"):
        encode_lrs_fits(_spectrum(normalization=True), layout="lrs-image")
    with pytest.raises(ValueError, match="exactly"):
        encode_lrs_fits({**ones, "andmask": np.full(3909, 2**24 + 1)})
    with pytest.raises(ValueError, match="layout"):
        encode_lrs_fits(ones, layout="lrs-table")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'flux' and 'ivar'"):
        encode_lrs_fits({"flux": np.ones(3)})
    with pytest.raises(ValueError, match="printable ASCII"):
        encode_lrs_fits({**ones, "meta": {"objname": "étoile"}})
    with pytest.raises(ValueError, match="arms"):
        write_mrs_fits("/nonexistent/x.fits", {"G": ones})
    with pytest.raises(ValueError, match="exposure names"):
        write_mrs_fits("/nonexistent/x.fits", {"B": ones}, {"84107311": ones})


def test_cards_are_fits_fixed_format() -> None:
    assert (
        card("SNRG", 5.56, "SNR of g filter", 2)
        == f"{'SNRG    =                 5.56 / SNR of g filter':<80}"
    )
    assert card("Z", -6.4e-06, "", 8) == f"{'Z       =          -0.00000640':<80}"
    assert (
        card("Z", 1.23456789012e-06, "", 8).split("=")[1].strip() == "1.23456789012E-06"
    )  # exact over pretty
    assert (
        card("SNRG", np.float32(5.56), "", 2)[:30] == "SNRG    =                 5.56"
    )  # at float32 precision
    assert card("SNRG", np.float32(5.561), "", 2)[:30] == "SNRG    =                5.561"
    assert card("OFFSET", False)[:30] == "OFFSET  =                    F"
    assert card("OBJNAME", "O'Brien")[:20] == "OBJNAME = 'O''Brien'"
    assert card("DUST", None, "Reservation").rstrip() == "DUST    =                      / Reservation"


def test_real_samples_survive_a_rewrite(tmp_path: Path) -> None:
    for path in sorted(samples.samples_dir().glob("*.fits*")):
        spec = read_spectrum(path)
        if spec.kind == "MRS":
            rewritten = [read_spectrum(write_mrs_fits(tmp_path / f"mrs-{path.name}", spec))]
        else:
            layouts = ["lrs-coadd"] + (["lrs-image"] if spec.normalization is None else [])
            rewritten = [
                read_spectrum(write_lrs_fits(tmp_path / f"{layout}-{path.name}", spec, layout=layout))
                for layout in layouts
            ]
        for back in rewritten:
            _assert_same_arrays(back, spec)
            _assert_meta_kept(back.meta, spec.meta)
            for name, exposure in spec.exposures.items():
                np.testing.assert_array_equal(back.exposures[name].flux, exposure.flux)
                _assert_meta_kept(back.exposures[name].meta, exposure.meta)
