"""What the archive serves per spectrum: LAMOST's CSV, spectrum plots and their cache, catalog info, tars.

Spectra are the real LAMOST samples (skipped where that folder is absent); the references are computed
independently here (numpy moving averages, explicit loops, the stdlib's own tar writer and reader).
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import functools
import hashlib
import io
import json
import os
import tarfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from surveyhub.archive.spectrum_products import (
    CSV_HEADER,
    PNG_SIZES,
    PngCache,
    SourceSizeMismatch,
    TarEntry,
    line_markers,
    spectrum_csv,
    spectrum_info,
    spectrum_png,
    stream_tar,
)
from surveyhub.releases.spectrum import Spectrum, read_spectrum
from tests.support import samples

LRS_SAMPLES = (samples.DR1_PILOT, samples.DR7_IMAGE, samples.DR9_COADD, samples.DR13_COADD)
_SPECTRA: dict[str, Spectrum] = {}


def spectrum(name: str) -> Spectrum:
    """A sample spectrum, read once per test process (or skip where the samples are absent)."""
    if name not in _SPECTRA:
        _SPECTRA[name] = read_spectrum(samples.samples_dir() / name)
    return _SPECTRA[name]


def relabel(spec: Spectrum, **meta: object) -> Spectrum:
    """The same arrays with other catalog values (there is no galaxy or QSO among the samples)."""
    other = copy.copy(spec)
    other.meta = {**spec.meta, **meta}
    return other


def read_csv(data: bytes) -> tuple[list[str], dict[str, np.ndarray]]:
    lines = data.decode("ascii").splitlines()
    header = lines[0].split(",")
    values = np.array([line.split(",") for line in lines[1:]], dtype=np.float64)
    return header, {name: values[:, i] for i, name in enumerate(header)}


def masked_mean_reference(flux: np.ndarray, good: np.ndarray, width: int) -> np.ndarray:
    """The smoothing as documented, written as the plainest loop: mean of the good pixels in the window."""
    half, n = width // 2, flux.size
    out = np.empty(n)
    for i in range(n):
        window = slice(max(0, i - half), min(n, i + half + 1))
        chosen = flux[window][good[window]]
        out[i] = chosen.mean() if chosen.size else flux[window].mean()
    return out


# --- CSV -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", samples.ALL)
def test_csv_has_lamost_header_and_one_row_per_pixel(name: str) -> None:
    spec = spectrum(name)
    data = spectrum_csv(spec)
    assert data.startswith(b"Wavelength,Flux,FluxSmooth7,FluxSmooth15\n")
    assert data.decode("ascii").splitlines()[0] == CSV_HEADER
    header, columns = read_csv(data)
    assert header == ["Wavelength", "Flux", "FluxSmooth7", "FluxSmooth15"]
    assert columns["Flux"].size == spec.npix
    assert data.count(b"\n") == spec.npix + 1
    np.testing.assert_allclose(columns["Wavelength"], spec.wavelength, rtol=0, atol=5.1e-5)
    # flux is written as the shortest text that reads back as the file's float32
    assert np.array_equal(columns["Flux"].astype(np.float32), spec.flux)
    assert np.all(np.isfinite(columns["FluxSmooth7"]))
    assert np.all(np.isfinite(columns["FluxSmooth15"]))


@pytest.mark.parametrize("name", LRS_SAMPLES)
@pytest.mark.parametrize("width", [7, 15])
def test_csv_smoothing_is_the_moving_average_away_from_edges_and_masks(name: str, width: int) -> None:
    spec = spectrum(name)
    _, columns = read_csv(spectrum_csv(spec))
    smoothed = columns[f"FluxSmooth{width}"]
    flux = spec.flux.astype(np.float64)
    good = spec.ivar > 0
    kernel = np.ones(width)
    reference = np.convolve(flux, kernel / width, mode="valid")  # index i: the window centred on i + half
    clean = np.convolve(good.astype(float), kernel, mode="valid") == width
    half = width // 2
    inner = smoothed[half : spec.npix - half]
    assert clean.sum() > 0.7 * spec.npix  # the pilot has 736 masked pixels
    np.testing.assert_allclose(inner[clean], reference[clean], rtol=2e-7, atol=1e-4)


@pytest.mark.parametrize("name", [samples.DR1_PILOT, samples.DR13_COADD])
def test_csv_smoothing_skips_masked_pixels_and_cuts_windows_at_the_ends(name: str) -> None:
    spec = spectrum(name)
    _, columns = read_csv(spectrum_csv(spec))
    good = spec.ivar > 0
    assert not good.all()  # these samples have masked pixels: the red end, bad columns
    flux = spec.flux.astype(np.float64)
    for width in (7, 15):
        expected = masked_mean_reference(flux, good, width)
        np.testing.assert_allclose(columns[f"FluxSmooth{width}"], expected, rtol=2e-7, atol=1e-4)
    # a masked pixel with good neighbours gets their mean, whatever its own (often wild) flux
    masked = np.flatnonzero(~good)
    with_good = [i for i in masked if 3 <= i < spec.npix - 3 and good[i - 3 : i + 4].any()]
    assert with_good
    for i in with_good:
        window = flux[i - 3 : i + 4][good[i - 3 : i + 4]]
        assert columns["FluxSmooth7"][i] == pytest.approx(window.mean(), rel=1e-6)


def test_smoothing_of_a_synthetic_spectrum() -> None:
    wave = np.linspace(4000.0, 4100.0, 30)
    flux = np.full(30, 5.0)
    flux[10] = 0.0  # masked
    flux[20] = 1000.0  # a good spike
    ivar = np.ones(30)
    ivar[10] = 0.0
    ivar[25:] = 0.0  # a masked tail: these windows have no good pixel...
    flux[25:] = 0.0
    _, columns = read_csv(spectrum_csv(Spectrum(wavelength=wave, flux=flux, ivar=ivar)))
    s7 = columns["FluxSmooth7"]
    assert s7[10] == 5.0  # the masked zero is skipped
    assert s7[0] == 5.0  # the window cut short at the end is still flat
    assert s7[20] == pytest.approx((5 * 6 + 1000) / 7)  # good pixels, spikes included, are averaged
    assert s7[29] == 0.0  # ... so they get the plain mean of the (zero) flux there


def test_mrs_csv_is_both_arms_in_wavelength_order_each_smoothed_alone() -> None:
    spec = spectrum(samples.DR7_MRS)
    blue, red = spec.arms["B"], spec.arms["R"]
    _, columns = read_csv(spectrum_csv(spec))
    assert columns["Wavelength"].size == blue.npix + red.npix == 4101 + 3692
    assert np.all(np.diff(columns["Wavelength"]) > 0)
    np.testing.assert_allclose(columns["Wavelength"][: blue.npix], blue.wavelength, atol=5.1e-5)
    np.testing.assert_allclose(columns["Wavelength"][blue.npix :], red.wavelength, atol=5.1e-5)
    assert np.array_equal(columns["Flux"][: blue.npix].astype(np.float32), blue.flux)
    assert np.array_equal(columns["Flux"][blue.npix :].astype(np.float32), red.flux)
    for arm, part in (("B", slice(0, blue.npix)), ("R", slice(blue.npix, None))):
        one = spec.arms[arm]
        for width in (7, 15):
            expected = masked_mean_reference(one.flux.astype(np.float64), one.ivar > 0, width)
            np.testing.assert_allclose(columns[f"FluxSmooth{width}"][part], expected, rtol=2e-7, atol=1e-3)


# --- line markers ----------------------------------------------------------------------------------------

GALAXY_LINES = {  # vacuum rest wavelengths
    "Ca II K": [3934.77],
    "Ca II H": [3969.59],
    "G band": [4305.61],
    "Mg b": [5168.76, 5174.12, 5185.04],
    "Na D": [5891.58, 5897.55],
    "[O II]": [3727.09, 3729.88],
    "[Ne III]": [3869.86],
    "H\N{GREEK SMALL LETTER DELTA}": [4102.89],
    "H\N{GREEK SMALL LETTER GAMMA}": [4341.69],
    "H\N{GREEK SMALL LETTER BETA}": [4862.68],
    "[O III]": [4960.29, 5008.24],
    "H\N{GREEK SMALL LETTER ALPHA}": [6564.61],
    "[N II]": [6549.86, 6585.27],
    "[S II]": [6718.29, 6732.68],
}


def test_galaxy_markers_at_z_0_1() -> None:
    markers = line_markers("GALAXY", 0.1, (3690.0, 9100.0))
    expected = sorted(
        ((name, rest * 1.1) for name, rests in GALAXY_LINES.items() for rest in rests), key=lambda m: m[1]
    )
    assert [name for name, _ in markers] == [name for name, _ in expected]  # all 21 lines, by wavelength
    np.testing.assert_allclose([w for _, w in markers], [w for _, w in expected], rtol=1e-12)
    assert dict(markers)["H\N{GREEK SMALL LETTER ALPHA}"] == pytest.approx(7221.071)
    assert dict(markers)["[O III]"] == pytest.approx(5509.064)  # dict keeps the last (redder) of the doublet


def test_markers_are_limited_to_the_range_and_sorted() -> None:
    markers = line_markers("galaxy", 0.1, (7300.0, 7000.0))  # either order, any case
    assert markers == sorted(markers, key=lambda m: m[1])
    assert {name for name, _ in markers} == {"H\N{GREEK SMALL LETTER ALPHA}", "[N II]"}
    assert all(7000.0 <= wave <= 7300.0 for _, wave in markers)


def test_qso_markers() -> None:
    at_01 = dict(line_markers("QSO", 0.1, (3690.0, 9100.0)))
    assert at_01["[Ne V]"] == pytest.approx(3426.84 * 1.1)  # 3769.5 A: just inside LAMOST's blue end
    assert at_01["H\N{GREEK SMALL LETTER ALPHA}"] == pytest.approx(6564.61 * 1.1)
    assert "Mg II" not in at_01
    assert "[N II]" not in at_01
    at_25 = line_markers("QSO", 2.5, (3690.0, 9100.0))
    assert [name for name, _ in at_25] == ["Ly\N{GREEK SMALL LETTER ALPHA}", "N V", "C IV", "C III]"]
    assert at_25[0][1] == pytest.approx(1215.67 * 3.5)
    assert dict(at_25)["C IV"] == pytest.approx(1549.48 * 3.5)


def test_markers_without_a_redshift() -> None:
    for missing in (None, float("nan"), -9999.0, -9999):
        assert line_markers("GALAXY", missing, (3690.0, 9100.0)) == []
        assert line_markers("QSO", missing, (3690.0, 9100.0)) == []
        # stars (and spectra without a class: LRS "Unknown", MRS) are marked at rest
        stellar = dict(line_markers("STAR", missing, (3690.0, 9100.0)))
        assert stellar["H\N{GREEK SMALL LETTER ALPHA}"] == 6564.61
    assert line_markers(None, None, (6000.0, 7000.0)) == line_markers("MRS", 0.0, (6000.0, 7000.0))
    assert line_markers("Unknown", 0.0, (6500.0, 6600.0)) == [("H\N{GREEK SMALL LETTER ALPHA}", 6564.61)]


# --- PNG -------------------------------------------------------------------------------------------------


def decode(png: bytes) -> np.ndarray:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        return np.asarray(image.convert("L"), dtype=np.float64)


@pytest.mark.parametrize("name", samples.ALL)
@pytest.mark.parametrize("size", ["full", "thumb"])
def test_png_decodes_at_its_size_and_shows_a_spectrum(name: str, size: str) -> None:
    pixels = decode(spectrum_png(spectrum(name), size=size))  # type: ignore[arg-type]
    width, height = PNG_SIZES[size]
    assert pixels.shape == (height, width)
    assert pixels.std() > 10  # not blank
    dark_columns = (pixels < 100).any(axis=0)  # the flux curve is drawn dark across the whole width
    assert dark_columns.mean() > (0.85 if size == "thumb" else 0.75)


@pytest.mark.parametrize("size", ["full", "thumb"])
def test_png_is_deterministic(size: str) -> None:
    first = spectrum_png(spectrum(samples.DR13_COADD), size=size)  # type: ignore[arg-type]
    again = spectrum_png(read_spectrum(samples.samples_dir() / samples.DR13_COADD), size=size)  # type: ignore[arg-type]
    assert first == again


def plot_x(spec: Spectrum, wavelength: float) -> int:
    """The pixel column of a wavelength on a full-size LRS plot (axes from 7.5 % to 98.5 % of 1000 px)."""
    lo, hi = float(spec.wavelength[0]), float(spec.wavelength[-1])
    return round(75 + 910 * (wavelength - lo) / (hi - lo))


def test_png_draws_the_line_markers_of_the_class_at_its_redshift() -> None:
    star = spectrum(samples.DR13_COADD)
    galaxy = relabel(star, **{"class": "GALAXY", "subclass": None, "z": 0.1})
    assert not np.array_equal(decode(spectrum_png(galaxy, lines=False)), decode(spectrum_png(galaxy)))
    assert not np.array_equal(decode(spectrum_png(galaxy)), decode(spectrum_png(star)))
    # the same plot at z = 0.10 and z = 0.12 (same data, same y range) differs only along the markers
    at_10 = decode(spectrum_png(galaxy))
    at_12 = decode(spectrum_png(relabel(galaxy, z=0.12)))
    rows = slice(80, 440)  # inside the axes: the title (which prints z) is above
    changed = (np.abs(at_10[rows] - at_12[rows]) > 25).sum(axis=0)  # changed pixels per column
    lines = {plot_x(star, w) for z in (0.1, 0.12) for _, w in line_markers("GALAXY", z, (3700, 9100))}
    halpha = plot_x(star, 6564.61 * 1.1)
    assert changed[halpha - 1 : halpha + 2].max() > 150  # a dashed line from top to bottom of the axes
    far = [x for x in range(80, 980) if min(abs(x - line) for line in lines) > 12]
    assert len(far) > 300
    assert changed[far].max() == 0


def test_thumbnails_are_fast() -> None:
    spec = spectrum(samples.DR13_COADD)
    spectrum_png(spec, size="thumb")  # matplotlib's first-use set-up is not what we measure
    times = []
    for _ in range(5):
        start = time.perf_counter()
        spectrum_png(spec, size="thumb")
        times.append(time.perf_counter() - start)
    # ~15 ms on a laptop; the bound leaves room for loaded CI machines, not for a full-size render
    assert sorted(times)[2] < 0.1


def test_png_rendering_from_threads_gives_the_sequential_bytes() -> None:
    jobs = [(name, size) for name in samples.ALL for size in ("full", "thumb")]
    sequential = {job: spectrum_png(spectrum(job[0]), size=job[1]) for job in jobs}  # type: ignore[arg-type]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda job: spectrum_png(spectrum(job[0]), size=job[1]), jobs * 2))
    assert results == [sequential[job] for job in jobs * 2]


def test_png_rejects_unknown_sizes() -> None:
    with pytest.raises(ValueError, match="size must be one of"):
        spectrum_png(spectrum(samples.DR13_COADD), size="huge")  # type: ignore[arg-type]


def test_png_of_a_spectrum_without_good_pixels() -> None:
    wave = np.linspace(4000.0, 5000.0, 100)
    spec = Spectrum(wavelength=wave, flux=np.zeros(100), ivar=np.zeros(100))
    assert decode(spectrum_png(spec, size="thumb")).shape == (120, 240)
    assert decode(spectrum_png(spec)).shape == (500, 1000)


@pytest.mark.parametrize("npix", [0, 1, 2, 5])
def test_tiny_and_empty_spectra(npix: int) -> None:
    wave = 5000.0 + np.arange(npix, dtype=np.float64)
    spec = Spectrum(wavelength=wave, flux=np.arange(npix) + 1.0, ivar=np.ones(npix))
    data = spectrum_csv(spec)
    assert data.count(b"\n") == npix + 1
    assert data.startswith(CSV_HEADER.encode() + b"\n")
    if npix:  # the first window, cut short: pixels 0..7 where they exist
        assert read_csv(data)[1]["FluxSmooth15"][0] == pytest.approx(np.mean(np.arange(min(npix, 8)) + 1.0))
    assert decode(spectrum_png(spec, size="thumb")).shape == (120, 240)
    assert decode(spectrum_png(spec)).shape == (500, 1000)


# --- PNG cache -------------------------------------------------------------------------------------------


def fake_png(tag: int, size: int = 1000) -> bytes:
    """PNG-signed bytes: the cache checks the signature, not the image."""
    return b"\x89PNG\r\n\x1a\n" + tag.to_bytes(4, "big") + bytes(size - 12)


class Renderer:
    """Counts renders, optionally slowly, to see what the cache saves."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: dict[int, int] = {}
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, tag: int) -> bytes:
        with self.lock:
            self.calls[tag] = self.calls.get(tag, 0) + 1
        time.sleep(self.delay)
        return fake_png(tag)


def test_cache_misses_then_hits_and_survives_a_restart(tmp_path: Path) -> None:
    cache = PngCache(tmp_path / "png")
    render = Renderer()
    key = ("DR13", "v1", 1247301001, "thumb")
    assert cache.get(key) is None
    first = cache.get_or_render(key, lambda: render(1))
    assert cache.get_or_render(key, lambda: render(1)) == first == fake_png(1)
    assert render.calls == {1: 1}
    assert (cache.hits, cache.misses) == (1, 1)
    assert cache.path(key).read_bytes() == first
    assert cache.path(key).parent == tmp_path / "png"
    # another size, another release version: other entries
    cache.get_or_render(("DR13", "v1", 1247301001, "full"), lambda: render(2))
    cache.get_or_render(("DR13", "v2", 1247301001, "thumb"), lambda: render(3))
    assert render.calls == {1: 1, 2: 1, 3: 1}
    # another process (a new cache object on the same folder) finds them
    again = PngCache(tmp_path / "png")
    assert again.get_or_render(key, lambda: render(1)) == first
    assert render.calls[1] == 1
    assert again.total_bytes == 3 * 1000
    assert cache.path("DR13/v1/1247301001/thumb") == cache.path(key)  # a sequence key is its parts joined


def test_cache_with_real_thumbnails(tmp_path: Path) -> None:
    cache = PngCache(tmp_path)
    spec = spectrum(samples.DR13_COADD)
    calls = []

    def render() -> bytes:
        calls.append(1)
        return spectrum_png(spec, size="thumb")

    key = ("DR13", "v1", spec.meta["obsid"], "thumb")
    assert cache.get_or_render(key, render) == cache.get_or_render(key, render)
    assert len(calls) == 1
    assert decode(cache.get(key) or b"").shape == (120, 240)


def test_cache_treats_damaged_files_as_misses_and_stores_only_pngs(tmp_path: Path) -> None:
    cache = PngCache(tmp_path)
    render = Renderer()
    cache.path("k").write_bytes(b"<html>half a file")
    assert cache.get_or_render("k", lambda: render(1)) == fake_png(1)
    assert render.calls == {1: 1}
    with pytest.raises(ValueError, match="PNG"):
        cache.put("j", b"GIF89a")
    assert sorted(p.name for p in tmp_path.iterdir()) == [cache.filename("k")]  # no temporary files left


def test_cache_evicts_least_recently_used_by_mtime(tmp_path: Path) -> None:
    cache = PngCache(tmp_path, max_bytes=4500)
    now = time.time()
    for tag in range(4):
        cache.put(f"k{tag}", fake_png(tag))
        os.utime(cache.path(f"k{tag}"), (now - 100 + tag, now - 100 + tag))
    assert cache.get("k0") == fake_png(0)  # a hit makes k0 the most recently used
    assert cache.path("k0").stat().st_mtime > now - 10
    cache.put("k4", fake_png(4))  # 5000 bytes > 4500: evict down to 90 % (4050), oldest first
    assert [cache.get(f"k{tag}") is not None for tag in range(5)] == [True, False, True, True, True]
    assert cache.total_bytes == 4000
    cache.put("k5", fake_png(5))  # over again: k2 goes
    assert not cache.path("k2").exists()
    assert cache.path("k5").exists()
    # an explicit eviction under the limit removes nothing
    assert cache.evict() == 0
    # stale temporary files of crashed writers are cleaned up, fresh ones (being written) are not
    stale, fresh = tmp_path / ".tmp-stale.part", tmp_path / ".tmp-fresh.part"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(stale, (now - 2 * PngCache.STALE_TEMP, now - 2 * PngCache.STALE_TEMP))
    cache.evict()
    assert not stale.exists()
    assert fresh.exists()


def test_cache_renders_each_key_once_under_concurrent_requests(tmp_path: Path) -> None:
    cache = PngCache(tmp_path)
    render = Renderer(delay=0.02)
    keys = list(range(6))

    def client(i: int) -> list[bytes]:
        order = keys[i % len(keys) :] + keys[: i % len(keys)]
        return [cache.get_or_render(("R", "v1", k, "thumb"), lambda k=k: render(k)) for k in order]

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(client, range(32)))
    assert render.calls == dict.fromkeys(keys, 1)
    for i, got in enumerate(results):
        order = keys[i % len(keys) :] + keys[: i % len(keys)]
        assert got == [fake_png(k) for k in order]
    assert cache.misses == len(keys)
    assert cache.hits >= 32 * len(keys) - len(keys)
    assert not cache._flights  # no per-key locks left behind


def test_cache_objects_made_per_request_share_their_directory_state(tmp_path: Path) -> None:
    render = Renderer(delay=0.02)

    def request(i: int) -> bytes:  # what a web handler does: a new cache object for each request
        return PngCache(tmp_path).get_or_render(("R", "v1", i % 3, "thumb"), lambda: render(i % 3))

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(request, range(48)))
    assert results == [fake_png(i % 3) for i in range(48)]
    assert render.calls == {0: 1, 1: 1, 2: 1}
    assert PngCache(tmp_path).total_bytes == 3000


def test_cache_stays_bounded_under_concurrent_writers(tmp_path: Path) -> None:
    cache = PngCache(tmp_path, max_bytes=20_000)

    def writer(i: int) -> None:
        for j in range(50):
            cache.get_or_render(f"{i}/{j}", lambda j=j: fake_png(j))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(writer, range(8)))
    files = list(tmp_path.iterdir())
    assert all(f.name.endswith(".png") for f in files)  # nothing half-written left behind
    assert sum(f.stat().st_size for f in files) <= 20_000
    assert all(f.read_bytes().startswith(b"\x89PNG") for f in files)


# --- catalog info ----------------------------------------------------------------------------------------


def test_info_is_json_ready_keeping_lamost_sentinels() -> None:
    row = {
        "obsid": np.int64(1247301001),
        "designation": np.str_("LAMOST J042543.91+323730.3"),
        "class": b"STAR",
        "z": np.float32(4.19e-05),
        "teff": np.float64("nan"),
        "logg": np.float32(-9999.0),
        "mag_u": np.float64(99.0),
        "rv_err": float("inf"),
        "fibermask": np.int16(0),
        "offsets": np.bool_(False),
        "obsdate": dt.date(2024, 10, 3),
        "mjd": np.int32(60591),
        "snr": np.array([21.9, np.nan, 194.94]),
        "note": None,
    }
    info = spectrum_info(row)
    assert list(info) == list(row)  # column order kept
    assert info == {
        "obsid": 1247301001,
        "designation": "LAMOST J042543.91+323730.3",
        "class": "STAR",
        "z": pytest.approx(4.19e-05),
        "teff": None,
        "logg": -9999.0,
        "mag_u": 99.0,
        "rv_err": None,
        "fibermask": 0,
        "offsets": False,
        "obsdate": "2024-10-03",
        "mjd": 60591,
        "snr": [21.9, None, 194.94],
        "note": None,
    }
    assert [type(info[k]) for k in ("obsid", "z", "logg", "offsets", "designation")] == [
        int,
        float,
        float,
        bool,
        str,
    ]
    json.dumps(info, allow_nan=False)  # strict JSON: no NaN or Infinity tokens


def test_info_of_a_pandas_row() -> None:
    frame = pd.DataFrame(
        {
            "obsid": pd.array([101013], dtype="Int64"),
            "teff": [np.nan],
            "subclass": pd.array([pd.NA], dtype="string"),
            "date_obs": [pd.NaT],
            "lmjd": [55859],
        }
    )
    info = spectrum_info(frame.iloc[0])
    assert info == {"obsid": 101013, "teff": None, "subclass": None, "date_obs": None, "lmjd": 55859}
    json.dumps(info, allow_nan=False)


# --- tar streams -----------------------------------------------------------------------------------------


def sample_entries() -> list[TarEntry]:
    entries = []
    for i, name in enumerate(samples.ALL):
        path = samples.samples_dir() / name
        relpath = f"fits/20111024/PLAN/{name}"  # as the registry gives it: the member is the base name
        entries.append(
            TarEntry(relpath, functools.partial(path.open, "rb"), path.stat().st_size, obsid=101 + i)
        )
    return entries


def read_tar(data: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    members = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|*") as tar:
        for member in tar:
            handle = tar.extractfile(member)
            assert handle is not None
            members[member.name] = (member, handle.read())
    return members


def test_tar_stream_reads_back_with_identical_bytes_and_manifest() -> None:
    entries = sample_entries()
    chunks = list(stream_tar(entries, mtime=1_700_000_000, chunk_size=1 << 14))
    data = b"".join(chunks)
    assert len(data) % tarfile.RECORDSIZE == 0
    assert all(len(chunk) < 2 * (1 << 14) + 10240 for chunk in chunks)
    members = read_tar(data)
    assert list(members) == [*samples.ALL, "manifest.csv"]
    for name in samples.ALL:
        info, content = members[name]
        assert content == (samples.samples_dir() / name).read_bytes()
        assert (info.mtime, info.mode, info.isreg()) == (1_700_000_000, 0o644, True)
    manifest = list(csv.DictReader(io.StringIO(members["manifest.csv"][1].decode())))
    assert [row["filename"] for row in manifest] == list(samples.ALL)
    for row, entry in zip(manifest, entries, strict=True):
        content = members[row["filename"]][1]
        assert row["sha256"] == hashlib.sha256(content).hexdigest()
        assert int(row["size"]) == len(content) == entry.size
        assert int(row["obsid"]) == entry.obsid


def test_tar_stream_is_what_tarfile_itself_writes() -> None:
    files = {"spec-55859-F5902_sp01-013.fits.gz": os.urandom(3000), "med-58408-x_sp01-015.fits": b"x" * 512}
    ours = b"".join(
        stream_tar([(n, lambda d=d: d, len(d)) for n, d in files.items()], manifest=False, mtime=1234567890)
    )
    theirs = io.BytesIO()
    with tarfile.open(fileobj=theirs, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(content), 1234567890, 0o644
            tar.addfile(info, io.BytesIO(content))
    assert ours == theirs.getvalue()


def test_tar_entries_of_unknown_size_duplicates_and_per_entry_mtime() -> None:
    payload = os.urandom(300_000)
    handles: list[io.BytesIO] = []

    def opener() -> io.BytesIO:
        handles.append(io.BytesIO(payload))
        return handles[-1]

    entries = [
        ("a/spec-1.fits.gz", opener, None),  # size unknown: spooled to measure it
        TarEntry("b/spec-1.fits.gz", lambda: b"second", 6, mtime=1000.7),  # same base name
        ("spec-1.fits.gz", lambda: bytearray(b"third"), None),
        ("manifest.csv", lambda: b"a file that happens to be called so", None),
    ]
    members = read_tar(b"".join(stream_tar(entries, mtime=5)))
    assert list(members) == [
        "spec-1.fits.gz",
        "spec-1-2.fits.gz",
        "spec-1-3.fits.gz",
        "manifest.csv",
        "manifest-2.csv",
    ]
    assert members["spec-1.fits.gz"][1] == payload
    assert members["spec-1-2.fits.gz"][0].mtime == 1000
    assert members["spec-1.fits.gz"][0].mtime == 5
    assert members["spec-1-3.fits.gz"][1] == b"third"
    assert all(handle.closed for handle in handles)  # file objects are closed after their turn
    manifest = members["manifest-2.csv"][1].decode().splitlines()
    assert manifest[0] == "obsid,filename,size,sha256"
    assert manifest[1] == f",spec-1.fits.gz,300000,{hashlib.sha256(payload).hexdigest()}"


def test_tar_stream_refuses_sizes_that_do_not_match() -> None:
    with pytest.raises(SourceSizeMismatch, match="ended after 10 of 20 bytes"):
        list(stream_tar([("short.fits", lambda: io.BytesIO(bytes(10)), 20)]))
    with pytest.raises(SourceSizeMismatch, match="longer than the 20 bytes"):
        list(stream_tar([("long.fits", lambda: io.BytesIO(bytes(30)), 20)]))
    with pytest.raises(SourceSizeMismatch, match="30 bytes given, 20 announced"):
        list(stream_tar([("bytes.fits", lambda: bytes(30), 20)]))
    with pytest.raises(ValueError, match="no file name"):
        list(stream_tar([("fits/..", lambda: b"", 0)]))


def test_tar_stream_opens_each_source_in_turn() -> None:
    opened: list[int] = []

    def opener(i: int) -> bytes:
        opened.append(i)
        return bytes([i]) * 100_000

    stream = stream_tar(
        ((f"f{i}.fits", lambda i=i: opener(i), 100_000) for i in range(50)), chunk_size=1 << 16
    )
    next(stream)
    assert opened == [0]  # not all fifty at once
    list(stream)
    assert opened == list(range(50))


class PatternFile:
    """``size`` bytes of a seeded pattern, made while read: a 1 MB file that never exists in memory whole."""

    def __init__(self, size: int, seed: int) -> None:
        self.remaining = size
        block = b"".join(hashlib.sha256(f"{seed}/{i}".encode()).digest() for i in range(128))
        self.pattern, self.offset = block * 2, 0  # 4 KiB, doubled so a wrap-around read is one slice
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        n = min(self.remaining if n < 0 else n, self.remaining, 4096)
        out = self.pattern[self.offset : self.offset + n]
        self.offset = (self.offset + n) % 4096
        self.remaining -= n
        return out

    def close(self) -> None:
        self.closed = True


def pattern_sha256(size: int, seed: int) -> str:
    source, digest = PatternFile(size, seed), hashlib.sha256()
    while block := source.read(1 << 16):
        digest.update(block)
    return digest.hexdigest()


class ChunkReader(io.RawIOBase):
    """A file object over an iterator of chunks, so tarfile reads the stream as a client would receive it."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.buffer, self.received = chunks, b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, target: memoryview) -> int:  # type: ignore[override]
        while not self.buffer:
            chunk = next(self.chunks, None)
            if chunk is None:
                return 0
            self.received += len(chunk)
            self.buffer = chunk
        n = min(len(target), len(self.buffer))
        target[:n] = self.buffer[:n]
        self.buffer = self.buffer[n:]
        return n


def test_tar_stream_memory_stays_bounded_for_200_files_of_1_mb() -> None:
    count, size = 200, 1 << 20
    expected = {f"spec-{i:03d}.fits.gz": pattern_sha256(size, i) for i in range(count)}
    entries = (
        TarEntry(f"fits/x/spec-{i:03d}.fits.gz", lambda i=i: PatternFile(size, i), size, i)
        for i in range(count)
    )
    tracemalloc.start()
    try:
        reader = ChunkReader(stream_tar(entries, mtime=0))
        seen = {}
        with tarfile.open(fileobj=io.BufferedReader(reader, 1 << 16), mode="r|*") as tar:
            for member in tar:
                handle = tar.extractfile(member)
                assert handle is not None
                digest = hashlib.sha256()
                while block := handle.read(1 << 16):
                    digest.update(block)
                seen[member.name] = (member.size, digest.hexdigest())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reader.received > count * size
    manifest = seen.pop("manifest.csv")
    assert {name: h for name, (_, h) in seen.items()} == expected
    assert all(s == size for s, _ in seen.values())
    assert manifest[0] > count * 80
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MiB while streaming {count * size / 2**20:.0f} MiB"
