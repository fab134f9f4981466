"""The Voila apps' logic, without a browser: the registry, reading what users type, the spectrum's derived
arrays, line lists, and the release explorer's summaries and cache over a real mock release; the lookup's
widgets against a real archive service (``surveyhub archive`` with development tokens)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from surveyhub.apps import explorer, lookup
from surveyhub.apps.archive_client import AppArchive, NotReadable
from surveyhub.apps.hub_page import render_page
from surveyhub.apps.lines import EMISSION, Line, observed, parse_custom
from surveyhub.apps.registry import APPS, app_named, app_url, apps_dir
from surveyhub.releases.registry import ReleaseStore, ReleaseVersion
from tests.support.archive import ALICE, BOB, archive_server


def test_registry_names_each_app_once_and_its_notebook_exists() -> None:
    names = [a.name for a in APPS]
    assert len(names) == len(set(names))
    for app in APPS:
        assert (apps_dir() / app.notebook).is_file(), app.notebook
        assert app.icon.startswith("<svg")
        assert app.title
        assert app.description
        assert app.to_dict()["path"] == f"apps/{app.notebook}"
    assert (
        app_url("/user/a b/", app_named("quick-lookup")) == "/user/a b/voila/render/apps/quick-lookup.ipynb"
    )
    with pytest.raises(KeyError, match="quick-lookup"):
        app_named("nope")


def test_hub_page_lists_every_app_in_the_visitors_own_server() -> None:
    page = render_page("bob<x>", "/", "/hub/")
    for app in APPS:
        assert f'data-app="{app.name}"' in page
        assert f'href="/user/bob%3Cx%3E/voila/render/apps/{app.notebook}"' in page
    assert "<x>" not in page  # names are escaped
    assert '<span class="sh-user">bob&lt;x&gt;</span>' in page


@pytest.mark.parametrize(
    ("text", "radius", "params"),
    [
        ("101001", "30arcsec", {"obsid": "101001"}),
        (" 101001 ", "", {"obsid": "101001"}),
        ("J055820.25+812438.3", "", {"designation": "LAMOST J055820.25+812438.3"}),
        ("lamost j055820.25+812438.3", "", {"designation": "LAMOST J055820.25+812438.3"}),
        ("89.58 81.41", "2arcmin", {"pos": "89.58 81.41", "radius": "2arcmin"}),
        ("89.58, -1.5", "10", {"pos": "89.58 -1.5", "radius": "10arcsec"}),
        ("05:58:20.2 +81:24:38", "0.1deg", {"pos": "05:58:20.2 +81:24:38", "radius": "0.1deg"}),
        ("05 58 20.2 +81 24 38", "1'", {"pos": "05 58 20.2 +81 24 38", "radius": "1arcmin"}),
    ],
)
def test_parse_query_reads_obsids_designations_and_positions(text: str, radius: str, params: dict) -> None:
    assert lookup.parse_query(text, radius).params == params


@pytest.mark.parametrize(
    ("text", "radius", "message"),
    [
        ("", "30arcsec", "enter an obsid"),
        ("M31", "30arcsec", "neither an obsid"),
        ("1 2 3", "30arcsec", "neither an obsid"),
        ("10 20", "wide", "radius: 'wide' is not a radius"),
        ("10 20", "0", "more than zero"),
    ],
)
def test_parse_query_names_what_it_cannot_read(text: str, radius: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lookup.parse_query(text, radius)


def test_smoothing_is_inverse_variance_weighted_and_invents_nothing() -> None:
    flux = np.array([1.0, 1.0, 100.0, 1.0, 1.0, 5.0, 5.0])
    ivar = np.array([1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    assert np.array_equal(lookup.smooth(flux, ivar, 1), flux)
    smoothed = lookup.smooth(flux, ivar, 3)
    assert smoothed[2] == pytest.approx(1.0)  # the bad pixel (ivar 0) does not count
    assert smoothed[4] == pytest.approx((1 + 1 + 5) / 3)
    alone = lookup.smooth(np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.0, 0.0]), 3)
    assert np.isnan(alone).all()


def test_line_markers_follow_the_redshift_and_stay_in_the_window() -> None:
    halpha = next(line for line in EMISSION if line.name == "H\N{GREEK SMALL LETTER ALPHA}")
    assert observed(halpha, 0.0) == pytest.approx(6564.61)
    xs, ys, shown = lookup.line_segments(EMISSION, 0.2, 0.0, 1.0, (3700.0, 9100.0))
    assert all(3700 <= x <= 9100 for x in xs if x is not None)
    assert [x for x in xs if x is not None][::2] == [x for _, x in shown]
    assert (halpha, pytest.approx(6564.61 * 1.2, abs=1e-3)) in [(ln, x) for ln, x in shown]
    assert ys[:3] == [0.0, 1.0, None]
    assert (
        lookup.line_segments(EMISSION, 5.0, 0, 1, (3700.0, 9100.0))[2][0][0].name
        == "Ly\N{GREEK SMALL LETTER ALPHA}"
    )


def test_custom_lines_are_checked() -> None:
    assert parse_custom(" Fe II ", "2600.17") == Line("Fe II", 2600.17, "custom")
    with pytest.raises(ValueError, match="give the line a name"):
        parse_custom("", "5000")
    with pytest.raises(ValueError, match="not a number"):
        parse_custom("x", "five")
    with pytest.raises(ValueError, match="outside"):
        parse_custom("x", "3")


def test_missing_values_are_shown_as_missing() -> None:
    assert lookup.is_missing(-9999)
    assert lookup.is_missing(None)
    assert lookup.is_missing(float("nan"))
    assert not lookup.is_missing(0)
    assert not lookup.is_missing("STAR")
    assert "sh-missing" in lookup.row_table({"z": -9999.0})


# --- the release explorer, over a real mock release ------------------------------------------------------


def test_summary_counts_every_row_once(mock_store: ReleaseStore) -> None:
    import pyarrow.dataset as pds

    v0 = ReleaseVersion(mock_store, "DEMO", "v0")
    summary = explorer.summarize(v0, batch_size=1000)  # several batches
    info = v0.manifest.catalogs["lrs"]
    table = pds.dataset(v0.path(info.path, "lrs", "dataset"), format="parquet").to_table(
        columns=["class", "snrg", "mag_ps_g", "obsdate", "_healpix_29"]
    )
    frame = table.to_pandas()
    assert summary["rows"] == len(frame) == v0.manifest.counts["lrs_spectra"]
    assert summary["classes"] == frame["class"].value_counts().to_dict()
    assert sum(n for pairs in summary["sky"].values() for _, n in pairs) == len(frame)
    pixels = set((frame["_healpix_29"].to_numpy() >> (2 * (29 - explorer.ORDER))).tolist())
    assert {p for pairs in summary["sky"].values() for p, _ in pairs} == pixels
    good_snr = frame["snrg"][(frame["snrg"] > -999) & (frame["snrg"] < 99)]
    snr_total = sum(sum(c) for c in summary["snr"]["counts"].values())
    assert snr_total == len(good_snr[good_snr.notna()])
    assert sum(summary["nights"].values()) == len(frame)
    assert sum(sum(v.values()) for v in summary["subclasses"].values()) == len(frame)
    json.dumps(summary)  # cacheable as it is


def test_summary_cache_is_keyed_by_the_published_stamp(mock_store: ReleaseStore, tmp_path: Path) -> None:
    v2 = ReleaseVersion(mock_store, "DEMO", "v2")
    first, hit = explorer.cached_summary(v2, tmp_path)
    assert not hit
    second, hit = explorer.cached_summary(v2, tmp_path)
    assert hit
    assert second == first
    path = explorer.cache_path(v2, tmp_path)
    assert path.exists()
    assert v2.manifest.published.replace(":", "").replace("-", "")[:8] in path.name
    stale = json.loads(path.read_text()) | {"published": "1999-01-01T00:00:00+00:00", "rows": -1}
    path.write_text(json.dumps(stale))  # as if the version had been republished since
    again, hit = explorer.cached_summary(v2, tmp_path)
    assert not hit
    assert again["rows"] == first["rows"]


def test_sky_image_places_counts_where_the_spectra_are(mock_store: ReleaseStore) -> None:
    import healpy

    summary = explorer.summarize(ReleaseVersion(mock_store, "DEMO", "v2"))
    image = explorer.sky_image(summary)
    grid = explorer.mollweide_pixels(explorer.ORDER)
    assert image.shape == grid.shape
    drawn = set(np.unique(grid[np.isfinite(image)]).tolist())
    pixels = {p for pairs in summary["sky"].values() for p, _ in pairs}
    assert drawn
    assert drawn <= pixels
    # each drawn cell holds log10 of its pixel's spectra, all classes together
    totals: dict[int, int] = {}
    for pairs in summary["sky"].values():
        for p, n in pairs:
            totals[p] = totals.get(p, 0) + n
    finite = np.isfinite(image)
    assert np.allclose(image[finite], np.log10([totals[p] for p in grid[finite]]))
    # and sits where its pixel is (within a pixel's size, 1.8 degrees at order 5)
    ra, dec, _ = explorer.mollweide_lonlat(grid.shape[1])
    centre_ra, centre_dec = healpy.pix2ang(2**explorer.ORDER, grid[finite], nest=True, lonlat=True)
    assert np.abs(centre_dec - dec[finite]).max() < 2.5
    wrapped = np.abs((centre_ra - ra[finite] + 180) % 360 - 180) * np.cos(np.radians(dec[finite]))
    assert wrapped.max() < 2.5
    only = explorer.sky_image(summary, "QSO")
    assert np.isfinite(only).sum() <= np.isfinite(image).sum()


def test_open_version_refuses_what_the_archive_does_not_list(mock_store: ReleaseStore) -> None:
    with pytest.raises(NotReadable, match="DEMO v0 is not a version you can read"):
        explorer.open_version(mock_store, "DEMO/v0", {"DEMO/v1", "DEMO/v2"})
    with pytest.raises(NotReadable, match="not a version you can read"):
        explorer.open_version(mock_store, "DEMO/v9", {"DEMO/v9"})  # listed, but not there
    assert explorer.open_version(mock_store, "DEMO/v1", {"DEMO/v1"}).key == "DEMO/v1"


# --- the widgets, against a real archive service ---------------------------------------------------------


@pytest.fixture(scope="module")
def archive_url(mock_store: ReleaseStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with archive_server(mock_store.url, tmp_path_factory.mktemp("apps-archive")) as url:
        yield url


def _obsid_with_file(store: ReleaseStore, version: str) -> int:
    import pyarrow.dataset as pds

    v = ReleaseVersion(store, "DEMO", version)
    info = v.manifest.catalogs["lrs"]
    ids = sorted(
        pds.dataset(v.path(info.path, "lrs_obsid", "dataset"), format="parquet")
        .to_table(columns=["obsid"])["obsid"]
        .to_pylist()
    )
    located = v.locate_spectra(ids)
    return next(o for o in ids if Path(v.path(located[o].relpath)).exists())


def test_lookup_app_finds_an_obsid_and_draws_it(archive_url: str, mock_store: ReleaseStore) -> None:
    obsid = _obsid_with_file(mock_store, "v2")
    archive = AppArchive(archive_url, ALICE, public_url="/services/archive/")
    app = lookup.LookupApp(archive, query_string=f"version=DEMO/v2&obsid={obsid}")
    assert "sh-error" not in app.status.value, app.status.value
    spectrum = ReleaseVersion(mock_store, "DEMO", "v2").read_spectrum(obsid)
    figure = app.viewer.figure
    flux = next(t for t in figure.data if t.name == "flux")
    assert np.allclose(np.asarray(flux.x), spectrum.wavelength)
    assert f"<b class='sh-class'>{spectrum.meta['class']}</b>" in app.viewer.info.value
    assert f"/services/archive/api/DEMO/v2/spectra/{obsid}/fits" in app.viewer.links.value
    assert "/services/archive/ssa/DEMO/v2?POS=" in app.viewer.links.value
    marks = sorted({x for x in next(t for t in figure.data if t.name == "emission lines").x if x is not None})
    z0 = app.viewer.z_slider.value
    app.viewer.z_entry.value = 0.25
    moved = sorted({x for x in next(t for t in figure.data if t.name == "emission lines").x if x is not None})
    assert moved[0] == pytest.approx(marks[0] * 1.25 / (1 + z0), abs=0.01)
    app.viewer.smoothing.value = 9
    assert not np.allclose(np.asarray(figure.data[0].y), spectrum.flux, equal_nan=True)
    app.query.value = "J000000.00+000000.0"
    assert "nothing found" in app.status.value


def test_lookup_app_shows_only_what_the_user_may_read(archive_url: str, mock_store: ReleaseStore) -> None:
    bob = lookup.LookupApp(AppArchive(archive_url, BOB))
    keys = [key for _, key in bob.version.options]
    assert "DEMO/v0" not in keys
    assert "DEMO/v1" in keys
    with pytest.raises(NotReadable):
        AppArchive(archive_url, BOB).spectrum("DEMO", "v0", _obsid_with_file(mock_store, "v0"))


def test_explorer_app_draws_both_sides_and_refuses_a_version_not_granted(
    archive_url: str, mock_store: ReleaseStore, tmp_path: Path
) -> None:
    app = explorer.ExplorerApp(
        AppArchive(archive_url, BOB),
        mock_store,
        query_string="left=DEMO/v0&right=DEMO/v2",
        cache_root=tmp_path,
    )
    left, right = app.sides
    assert left.summary is None
    assert "DEMO v0 is not a version you can read" in left.message.value
    assert len(left.stats.data) == 0
    assert right.summary is not None
    assert right.summary["rows"] == mock_store.version("DEMO", "v2", []).manifest.counts["lrs_spectra"]
    assert {t.name for t in right.stats.data} >= {"by class", "subclasses", "STAR"}
    assert not list(tmp_path.glob("DEMO__v0__*"))
    right.sky_class.value = "STAR"
    assert "STAR" in right.sky.layout.title.text
