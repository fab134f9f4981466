"""Reading the five real LAMOST layouts, and refusing what is not a LAMOST spectrum.

The expected values were read off the sample headers and data by hand (see the samples' README); the
samples live outside the repository, so these tests skip where the folder is absent.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import fsspec
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import InverseVariance

from surveyhub.releases.keywords import CORE_NAMES
from surveyhub.releases.spectrum import Spectrum, SpectrumReadError, read_spectrum
from tests.support import samples

PILOT, DR7_LRS, DR9_LRS = samples.DR1_PILOT, samples.DR7_IMAGE, samples.DR9_COADD
DR13_LRS, DR7_MRS = samples.DR13_COADD, samples.DR7_MRS

#: astropy warns about truncated files before the reader refuses them; expected where files are cut.
ASTROPY_TRUNCATION_WARNINGS = "ignore::astropy.utils.exceptions.AstropyUserWarning"

#: file: (kind, layout, obsid, class, subclass, npix, first wavelength, last wavelength)
EXPECTED = {
    PILOT: ("LRS", "dr1-pilot", None, "STAR", "K5", 3904, 3699.99, 9088.66),
    DR7_LRS: ("LRS", "lrs-image", 677503031, "STAR", "G3", 3909, 3699.99, 9099.13),
    DR9_LRS: ("LRS", "lrs-coadd", 101013, "STAR", "A2", 3908, 3699.99, 9097.04),
    DR13_LRS: ("LRS", "lrs-coadd", 1247301001, "STAR", "G5", 3909, 3699.99, 9099.13),
    DR7_MRS: ("MRS", "mrs-pixel-rows", 681001015, None, None, 4101 + 3692, 4893.96, 6850.62),
}


def sample(name: str) -> Path:
    """The path of a sample file, or skip: the samples are not part of the repository."""
    return samples.samples_dir() / name


@pytest.mark.parametrize("name", list(EXPECTED))
def test_samples_read_with_expected_values(name: str) -> None:
    kind, layout, obsid, klass, subclass, npix, first, last = EXPECTED[name]
    spec = read_spectrum(sample(name))
    assert (spec.kind, spec.layout, spec.source) == (kind, layout, name)
    assert spec.meta["obsid"] == obsid
    assert spec.meta["class"] == klass
    assert spec.meta["subclass"] == subclass
    assert spec.npix == npix
    assert spec.wavelength[0] == pytest.approx(first, abs=0.01)
    assert spec.wavelength[-1] == pytest.approx(last, abs=0.01)
    assert np.all(np.diff(spec.wavelength) > 0)
    assert np.all(np.isfinite(spec.flux))
    assert np.all(np.isfinite(spec.ivar))
    assert np.all(spec.ivar >= 0)
    assert (spec.wavelength.dtype, spec.flux.dtype, spec.ivar.dtype) == (np.float64, np.float32, np.float32)
    assert (spec.andmask.dtype, spec.ormask.dtype) == (np.int32, np.int32)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_era_gives_the_same_core_keys(name: str) -> None:
    meta = read_spectrum(sample(name)).meta
    assert set(CORE_NAMES) <= set(meta)
    assert not {key for key in meta if key != key.lower() or "-" in key}


def test_dr1_pilot_wavelength_is_rebuilt_from_coeff0_coeff1() -> None:
    path = sample(PILOT)
    spec = read_spectrum(path)
    raw = fits.getdata(path)
    expected = 10.0 ** (3.5682 + 1e-4 * np.arange(3904))
    np.testing.assert_allclose(spec.wavelength, expected, rtol=1e-12)
    # row 2 of the pilot is the continuum-normalised flux: kept apart, not taken for anything else
    np.testing.assert_array_equal(spec.extras["subcontinuum"], raw[2])
    assert spec.normalization is None
    np.testing.assert_array_equal(spec.flux, raw[0])
    np.testing.assert_array_equal(spec.ivar, raw[1])


def test_dr1_pilot_old_keyword_names_map_to_canonical_ones() -> None:
    meta = read_spectrum(sample(PILOT)).meta
    assert meta["snrg"] == pytest.approx(10.56)  # SN_G
    assert meta["snrz"] == pytest.approx(28.98)  # SN_Z
    assert meta["tsource"] == "PILOT"  # OBJSOURC
    assert meta["tcomment"] is None  # T_INFO = 'NULL'
    assert meta["tfrom"] is None  # T_FROM = 'NULL'
    assert meta["fibertype"] == "Obj"
    assert meta["designation"] == "LAMOST J063657.24+272227.2"
    assert meta["ra_obs"] is None
    assert meta["data_v"] is None
    assert meta["obsdate"] == "2011-10-27"
    assert meta["date_obs"] == "2011-10-27T20:02:34.19"
    assert meta["magtype"] == "ugrizjh"
    assert (meta["mag_u"], meta["mag_g"], meta["mag_r"], meta["mag_i"], meta["mag_z"]) == (
        None,
        pytest.approx(17.40),
        pytest.approx(16.21),
        pytest.approx(15.80),
        None,
    )
    assert meta["exptime"] == pytest.approx(3600.0)
    assert meta["expid01"] == "06b-20111028033916-0-80441496"  # a card outside the table keeps its name


def test_dr7_lrs_image_values() -> None:
    path = sample(DR7_LRS)
    spec = read_spectrum(path)
    raw = fits.getdata(path)
    np.testing.assert_allclose(spec.wavelength, raw[2], rtol=1e-6)
    np.testing.assert_array_equal(spec.flux, raw[0])
    assert spec.flux[-1] == 0  # LAMOST's empty last pixels
    assert spec.ivar[-1] == 0
    meta = spec.meta
    assert (meta["snrg"], meta["tfrom"], meta["tcomment"]) == (
        pytest.approx(153.72),
        "SGP",
        "1237680073933258778",
    )
    assert meta["fibermask"] == 0
    assert meta["magtype"] == "fibermagr"
    assert meta["mag1"] == pytest.approx(16.85)
    assert meta["mag6"] is None  # 99.00
    assert "mag_g" not in meta  # 'fibermagr' does not name bands
    assert meta["x_value"] == pytest.approx(295.940692603)  # a string in this file, a float everywhere
    assert meta["tempccdb"] is None  # -999.00
    assert meta["offsets"] is False
    assert meta["obsdate"] == "2018-10-05"


def test_dr9_coadd_without_normalization() -> None:
    spec = read_spectrum(sample(DR9_LRS))
    assert spec.meta["norm"] == 0
    assert spec.normalization is None  # NORM = 0, all -9999
    assert spec.meta["data_v"] == "LAMOST DR9"  # the file name says dr8: the layout comes from the structure
    assert spec.meta["fibertype"] == "Obj"  # FIB_TYPE
    assert spec.meta["fibermask"] == 0  # FIB_MASK
    assert spec.meta["mag_ps_g"] == pytest.approx(17.79)
    assert spec.meta["tcomment"] is None  # '.'
    assert spec.meta["tfrom"] is None  # '-'
    assert spec.meta["snrg"] == pytest.approx(5.56)
    assert "naxis1" not in spec.meta  # stale structural cards of the primary are not metadata


def test_dr13_coadd_with_normalization() -> None:
    path = sample(DR13_LRS)
    spec = read_spectrum(path)
    table = fits.getdata(path, "COADD")
    assert spec.meta["norm"] == 1
    assert spec.normalization is not None
    assert spec.normalization.dtype == np.float32
    np.testing.assert_array_equal(spec.normalization, table["NORMALIZATION"][0])
    np.testing.assert_array_equal(spec.andmask, table["ANDMASK"][0].astype(np.int32))
    assert spec.meta["mag_ps_g"] is None  # -999.00
    assert spec.meta["tfrom"] == "LRS_HRD"
    assert spec.meta["temp_fp"] is None  # blank string
    assert spec.meta["obsdate"] == "2024-10-07"


def test_mrs_arms_and_exposures() -> None:
    path = sample(DR7_MRS)
    spec = read_spectrum(path)
    assert list(spec.arms) == ["B", "R"]
    blue, red = spec.arms["B"], spec.arms["R"]
    assert (blue.npix, red.npix) == (4101, 3692)
    assert blue.wavelength[0] == pytest.approx(4893.95, abs=0.01)
    assert blue.wavelength[-1] == pytest.approx(5378.48, abs=0.01)
    assert red.wavelength[0] == pytest.approx(6292.45, abs=0.01)
    np.testing.assert_array_equal(spec.wavelength, np.concatenate([blue.wavelength, red.wavelength]))
    np.testing.assert_array_equal(spec.flux, np.concatenate([blue.flux, red.flux]))
    assert blue.meta["snr"] == pytest.approx(120.75)
    assert red.meta["snr"] == pytest.approx(280.75)
    assert blue.meta["obsid"] == 681001015  # each part carries the object's metadata too
    assert spec.meta["magtype"] == "g"
    assert spec.meta["mag_g"] == pytest.approx(11.40)
    assert spec.meta["fibermask"] == 64

    assert len(spec.exposures) == 14
    assert sorted(spec.exposures)[:2] == ["B-84107311", "B-84107335"]
    for name, exposure in spec.exposures.items():
        assert exposure.npix == 4136
        assert exposure.kind == "MRS"
        assert np.all(np.diff(exposure.wavelength) > 0), name
        assert exposure.meta["lmjm"] == int(name[2:])
        assert exposure.meta["exptime"] == pytest.approx(1200.0)
        np.testing.assert_array_equal(exposure.andmask, exposure.ormask)  # PIXMASK is both


def test_mrs_red_exposure_is_reversed_to_increasing_wavelength() -> None:
    path = sample(DR7_MRS)
    exposure = read_spectrum(path).exposures["R-84107311"]
    raw = fits.getdata(path, "R-84107311")
    assert raw["LOGLAM"][0] > raw["LOGLAM"][-1]
    np.testing.assert_array_equal(exposure.flux, raw["FLUX"][::-1])
    np.testing.assert_array_equal(exposure.andmask, raw["PIXMASK"][::-1])
    assert exposure.wavelength[0] == pytest.approx(6292.41, abs=0.01)
    assert exposure.wavelength[-1] == pytest.approx(6846.06, abs=0.01)
    assert exposure.meta["snr"] == pytest.approx(93.38)


@pytest.mark.parametrize("name", [DR7_LRS, DR7_MRS])
def test_to_specutils(name: str) -> None:
    spec = read_spectrum(sample(name))
    converted = spec.to_specutils()
    assert converted.flux.unit.to_string() == "1e-17 erg / (Angstrom s cm2)"
    assert converted.spectral_axis.unit.to_string() == "Angstrom"
    assert isinstance(converted.uncertainty, InverseVariance)
    np.testing.assert_array_equal(converted.flux.value, spec.flux)
    np.testing.assert_array_equal(converted.uncertainty.array, spec.ivar)
    np.testing.assert_array_equal(converted.mask, spec.andmask != 0)
    assert converted.meta["obsid"] == spec.meta["obsid"]


def test_reads_bytes_file_objects_and_fsspec_files() -> None:
    path = sample(DR13_LRS)
    from_path = read_spectrum(path)
    from_bytes = read_spectrum(path.read_bytes())
    with open(path, "rb") as f:
        from_file = read_spectrum(f)
    with fsspec.open(f"file://{path}", "rb") as f:
        from_fsspec = read_spectrum(f)
    from_plain = read_spectrum(io.BytesIO(gzip.decompress(path.read_bytes())))
    assert from_bytes.source == "<bytes>"
    assert from_file.source == from_fsspec.source == DR13_LRS
    for other in (from_bytes, from_file, from_fsspec, from_plain):
        np.testing.assert_array_equal(other.flux, from_path.flux)
        np.testing.assert_array_equal(other.wavelength, from_path.wavelength)
        assert other.meta == from_path.meta


def test_spectrum_checks_its_arrays() -> None:
    spec = Spectrum(wavelength=[1.0, 2.0], flux=[1, 2], ivar=[1, 1])
    assert spec.andmask.tolist() == [0, 0]
    assert spec.andmask.dtype == np.int32
    with pytest.raises(ValueError, match="one length"):
        Spectrum(wavelength=[1.0, 2.0], flux=[1, 2, 3], ivar=[1, 1])
    with pytest.raises(ValueError, match="layout"):
        Spectrum(wavelength=[1.0], flux=[1], ivar=[1], layout="nonsense")  # type: ignore[arg-type]


# --- bad files ---------------------------------------------------------------------------------------------


def _raises_naming(path: Path, match: str) -> None:
    with pytest.raises(SpectrumReadError, match=match) as info:
        read_spectrum(path)
    assert path.name in str(info.value)
    assert info.value.source == path.name


def test_text_file_is_not_fits(tmp_path: Path) -> None:
    path = tmp_path / "notes.fits"
    path.write_text("this is not a spectrum\n")
    _raises_naming(path, "not a FITS file")


def test_empty_and_gzipped_text_are_not_fits(tmp_path: Path) -> None:
    empty = tmp_path / "empty.fits"
    empty.write_bytes(b"")
    _raises_naming(empty, "not a FITS file")
    text = tmp_path / "text.fits.gz"
    text.write_bytes(gzip.compress(b"hello"))
    _raises_naming(text, "not a FITS file")


def test_truncated_gz_is_refused(tmp_path: Path) -> None:
    data = sample(DR13_LRS).read_bytes()
    path = tmp_path / "cut.fits.gz"
    path.write_bytes(data[: len(data) // 2])
    _raises_naming(path, "truncated or corrupt gzip")


def test_corrupt_gz_is_refused(tmp_path: Path) -> None:
    data = bytearray(sample(DR13_LRS).read_bytes())
    data[100:200] = bytes(100)
    path = tmp_path / "corrupt.fits.gz"
    path.write_bytes(bytes(data))
    _raises_naming(path, "gzip")


@pytest.mark.filterwarnings(ASTROPY_TRUNCATION_WARNINGS)
@pytest.mark.parametrize("cut", [1000, 20000, 50000, 92160 - 100])
def test_truncated_lrs_image_is_refused(tmp_path: Path, cut: int) -> None:
    data = sample(DR7_LRS).read_bytes()
    path = tmp_path / "cut.fits"
    path.write_bytes(data[:cut])
    _raises_naming(path, "truncated|corrupt")


@pytest.mark.filterwarnings(ASTROPY_TRUNCATION_WARNINGS)
@pytest.mark.parametrize("cut", [20000, 300000, 302980, 207360, 331200, 1028160 - 2880 * 22])
def test_truncated_mrs_is_refused(tmp_path: Path, cut: int) -> None:
    """Cuts inside data, inside a header, and exactly between HDUs (caught by N_EXTEN)."""
    data = sample(DR7_MRS).read_bytes()
    path = tmp_path / "cut.fits"
    path.write_bytes(data[:cut])
    _raises_naming(path, "truncated|corrupt")


def test_image_of_wrong_shape_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "shape.fits"
    fits.PrimaryHDU(np.zeros((3, 100), dtype=np.float32)).writeto(path)
    _raises_naming(path, "shape 3 x 100")
    flat = tmp_path / "flat.fits"
    fits.PrimaryHDU(np.zeros(100, dtype=np.float32)).writeto(flat)
    _raises_naming(flat, "shape 100")


def test_pilot_like_image_without_coefficients_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nocoeff.fits"
    fits.PrimaryHDU(np.ones((5, 100), dtype=np.float32)).writeto(path)
    _raises_naming(path, "not a wavelength and the header has no COEFF0/COEFF1")


def test_fits_without_spectrum_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.fits"
    fits.HDUList(
        [fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("X", "E", array=[1.0])])]
    ).writeto(path)
    _raises_naming(path, "not a LAMOST spectrum layout")


def _coadd(path: Path, columns: dict[str, np.ndarray], extname: str = "COADD") -> None:
    cols = [fits.Column(name, f"{len(a)}E", array=[a]) for name, a in columns.items()]
    table = fits.BinTableHDU.from_columns(cols, name=extname)
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)


def test_table_missing_flux_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "noflux.fits"
    ones = np.ones(10, dtype=np.float32)
    _coadd(path, {"IVAR": ones, "WAVELENGTH": ones, "ANDMASK": ones, "ORMASK": ones})
    _raises_naming(path, "lacks column.*FLUX")


def test_mrs_table_missing_wavelength_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nowave.fits"
    ones = np.ones(10, dtype=np.float32)
    _coadd(path, {"FLUX": ones, "IVAR": ones, "ANDMASK": ones, "ORMASK": ones}, extname="COADD_B")
    _raises_naming(path, r"COADD_B lacks column.*WAVELENGTH \(or LOGLAM\)")


def test_columns_of_different_lengths_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "lengths.fits"
    ten, nine = np.ones(10, dtype=np.float32), np.ones(9, dtype=np.float32)
    wave = np.linspace(4000, 5000, 10, dtype=np.float32)
    _coadd(path, {"FLUX": ten, "IVAR": nine, "WAVELENGTH": wave, "ANDMASK": ten, "ORMASK": ten})
    _raises_naming(path, "different lengths")


def test_bad_bytes_are_named_as_bytes() -> None:
    with pytest.raises(SpectrumReadError, match=r"^<bytes>: not a FITS file"):
        read_spectrum(b"SIMPLE")
    with pytest.raises(SpectrumReadError, match=r"^<bytes>: corrupt FITS file"):
        read_spectrum(b"SIMPLE  =" + b" " * 100)


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_spectrum(tmp_path / "absent.fits")
