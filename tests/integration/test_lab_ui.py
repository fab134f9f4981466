"""The "Survey data" panel of surveyhub-lab, in a real browser, in the platform's own JupyterLab.

A real hub (``running_platform``) spawns alice's and bob's servers; Debian's Chromium, driven by Python
Playwright, logs in as alice through the hub's login form, opens the panel, searches DEMO v1 by cone
(sexagesimal centre) and by a pasted obsid list, previews a spectrum, selects rows and imports them into
her space, then finds the files and ``manifest.json`` in JupyterLab's file browser. bob cannot see them.
The result actions' test selects all matching rows (beyond the page) and cancels that long import (alice's
own Jupyter config slows her imports down), resumes it from the Imports tab (only the missing files are
copied), imports 20 spectra into her team's space, downloads the table,
opens the generated notebook and runs it all in the browser, and re-runs a search from the History tab.

Every step leaves a screenshot in ``test-artifacts/lab-ui/``.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from surveyhub.releases.registry import ReleaseStore, ReleaseVersion
from tests.support.browser import CHROMIUM, hub_login, screenshots
from tests.support.platform import Platform, reachable_dir, running_platform

pytestmark = [
    pytest.mark.xdist_group("hub"),
    pytest.mark.skipif(os.geteuid() != 0, reason="isolation needs the hub to run as root"),
]


ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "lab-ui"
USERS = {"alice": ["lamost-wg"], "bob": ["lamost-partners"]}
VERSION = "v1"  # both read it
FOLDER = "imports/ui-run1"
N_IMPORT = 8
TEAM = "astro"
#: alice's imports read at most this many bytes a second (her own Jupyter config), so that an import of
#: every file of the version (about 3.4 MB) lasts long enough to be cancelled from the browser.
IMPORT_RATE = 500_000

sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():  # pragma: no cover - the Makefile installs it
    pytest.skip(f"{CHROMIUM} is missing (Debian package chromium)", allow_module_level=True)


def obsids_with_files(store: ReleaseStore, version: str) -> list[int]:
    """LRS obsids of the version whose released file is there (an import copies them)."""
    import pyarrow.dataset as pds

    v = ReleaseVersion(store, "DEMO", version)
    info = v.manifest.catalogs["lrs"]
    index = v.path(info.path, f"lrs_{info.index}", "dataset", "index")
    ids = sorted(pds.dataset(index, format="parquet").to_table(columns=["obsid"])["obsid"].to_pylist())
    located = v.locate_spectra(ids)
    return [o for o in ids if Path(v.path(located[o].relpath)).exists()]


def sexagesimal(ra: float, dec: float) -> str:
    """'hh:mm:ss.ss +dd:mm:ss.s' for a position in degrees."""
    h = ra / 15
    hh, mm = int(h), int((h - int(h)) * 60)
    ss = ((h - hh) * 60 - mm) * 60
    sign = "-" if dec < 0 else "+"
    d = abs(dec)
    dd, dm = int(d), int((d - int(d)) * 60)
    ds = ((d - dd) * 60 - dm) * 60
    return f"{hh:02d}:{mm:02d}:{ss:05.2f} {sign}{dd:02d}:{dm:02d}:{ds:04.1f}"


def set_field(field, text: str) -> None:
    """Put ``text`` in a text field, as a user selecting what is there and typing over it; check it took.

    Playwright fills a field by selecting its text and then typing (or pressing Delete, for ""); on a
    loaded machine the selection can be lost in between, so the old text stays (a stale redshift bound
    silently narrowed a search in CI) or is typed after. So the value is checked, and set again.
    """
    for _ in range(5):
        field.fill(text)
        if field.input_value() == text:
            return
    raise AssertionError(f"{field} holds {field.input_value()!r}, not {text!r}, after being set")


def widen_left_area(page, width: int) -> None:
    """Drag the handle between the left area and the main area, as a user makes room for the table."""
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
    box = handle.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(width, y, steps=10)
    page.mouse.up()


def throttle_imports(platform: Platform, name: str) -> None:
    """Give the user's server an import rate limit in their own ``~/.jupyter`` config, and restart it."""
    import time

    account = pwd.getpwnam(platform.account(name))
    config = Path(account.pw_dir, ".jupyter", "jupyter_server_config.json")
    config.parent.mkdir(exist_ok=True)
    config.write_text(json.dumps({"SurveyhubLab": {"rate_limit": IMPORT_RATE}}))
    for path in (config.parent, config):
        os.chown(path, account.pw_uid, account.pw_gid)
    assert platform.hub.api("DELETE", f"users/{name}/server").status_code in (202, 204)
    deadline = time.monotonic() + 60
    while platform.hub.api("GET", f"users/{name}").json().get("server"):
        assert time.monotonic() < deadline, f"{name}'s server did not stop"
        time.sleep(0.3)
    platform.spawn(name)
    assert Server(platform, name).get("surveyhub/info").json()["rate_limit"] == IMPORT_RATE


class Server:
    """A user's server through the hub, with a token (the contents API, the extension's routes)."""

    def __init__(self, platform: Platform, name: str) -> None:
        self.base = f"{platform.hub.url}user/{name}/"
        token = platform.hub.token_for(name, [f"access:servers!user={name}"], note="lab-ui")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"

    def get(self, path: str, **params: str) -> requests.Response:
        return self.session.get(self.base + path, params=params, timeout=60)

    def put(self, path: str, body: dict) -> requests.Response:
        return self.session.put(self.base + path, json=body, timeout=60)


@pytest.fixture(scope="module")
def platform(platform_store: ReleaseStore) -> Iterator[Platform]:
    base = reachable_dir("surveyhub-labui-")
    with running_platform(base, platform_store.url.removeprefix("file://")) as p:
        for name, groups in USERS.items():
            p.add_user(name, groups)
        team = p.hub.api("POST", f"groups/{TEAM}", json={"users": ["alice"]})  # a team of alice alone
        assert team.status_code == 201, team.text
        answer = p.hub.api("PUT", f"groups/{TEAM}/properties", json={"surveyhub_team": True})
        assert answer.status_code == 200, answer.text
        for name in USERS:
            p.spawn(name)
        throttle_imports(p, "alice")
        for name in USERS:
            no_news_toast(p, name)
        yield p


def no_news_toast(platform: Platform, name: str) -> None:
    """No "get Jupyter news?" toast over the panel in ``name``'s JupyterLab (as --LabApp.news_url=None)."""
    answer = Server(platform, name).put(
        "lab/api/settings/@jupyterlab/apputils-extension:notification",
        {"raw": json.dumps({"fetchNews": "false"})},
    )
    assert answer.status_code == 204, answer.text


@pytest.fixture(scope="module")
def shots() -> Callable[[object, str], Path]:
    return screenshots(ARTIFACTS)


def test_search_preview_and_import_from_the_panel(
    platform: Platform, platform_store: ReleaseStore, browser, shots
) -> None:
    expect = sync_api.expect
    alice = Server(platform, "alice")
    with_files = obsids_with_files(platform_store, VERSION)
    assert len(with_files) >= 20
    chosen = with_files[:12]
    first = alice.get("surveyhub/search", release="DEMO", version=VERSION, obsid=str(chosen[0])).json()
    cols = [c["name"] for c in first["columns"]]
    ra, dec = (first["rows"][0][cols.index(k)] for k in ("ra", "dec"))
    cone = alice.get(
        "surveyhub/search", release="DEMO", version=VERSION, pos=f"{ra} {dec}", radius="3deg", limit="0"
    ).json()
    assert cone["total"] > 0

    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    searches: list[str] = []
    page.on("request", lambda r: searches.append(r.url) if "/surveyhub/search" in r.url else None)

    # 1. log in through the hub's form and open JupyterLab
    hub_login(page, platform.hub.url, "alice", before_submit=lambda: shots(page, "hub-login"))
    page.goto(f"{platform.hub.url}user/alice/lab")
    page.wait_for_selector("#jupyterlab-splash", state="detached")
    page.wait_for_selector(".jp-LabShell")

    # 2. open the panel from its icon in the left area; the readable versions are listed
    page.click('.jp-SideBar.jp-mod-left [data-id="surveyhub-panel"]')
    panel = page.locator("#surveyhub-panel")
    expect(panel).to_be_visible()
    widen_left_area(page, 600)
    release = panel.locator('select[name="release"]')
    expect(release.locator("option")).to_have_count(3)  # alice: DEMO v0, v1, v2
    labels = release.locator("option").all_inner_texts()
    release.select_option(label=next(t for t in labels if t.startswith(f"DEMO {VERSION}")))
    expect(panel.locator(".jp-SurveyPanel-counts")).not_to_be_empty()
    shots(page, "panel-open")

    # 3. invalid input is flagged at its field, and nothing is asked of the server
    set_field(panel.locator('input[name="pos"]'), "12:99:00 +91:00:00")
    set_field(panel.locator('input[name="z_min"]'), "0.5")
    set_field(panel.locator('input[name="z_max"]'), "0.1")
    panel.locator(".jp-SurveyPanel-search").click()
    expect(panel.locator('.jp-SurveyPanel-error[data-field="pos"]')).to_contain_text("cannot read")
    expect(panel.locator('.jp-SurveyPanel-error[data-field="zmax"]')).to_contain_text("lower bound")
    expect(panel.locator('input[name="pos"]')).to_have_attribute("aria-invalid", "true")
    shots(page, "invalid-input")
    assert searches == []
    set_field(panel.locator('input[name="z_min"]'), "")
    set_field(panel.locator('input[name="z_max"]'), "")

    # 4. a cone with a sexagesimal centre: rows, thumbnails, and the exact total
    set_field(panel.locator('input[name="pos"]'), sexagesimal(ra, dec))
    set_field(panel.locator('input[name="radius"]'), "3")
    panel.locator('select[name="radius_unit"]').select_option("deg")
    panel.locator(".jp-SurveyPanel-search").click()
    expect(panel.locator(".jp-SurveyPanel-total")).to_have_attribute("data-total", str(cone["total"]))
    expect(panel.locator("tr.jp-SurveyPanel-row")).to_have_count(min(25, cone["total"]))
    page.wait_for_function(
        "() => [...document.querySelectorAll('#surveyhub-panel img.jp-SurveyPanel-thumb')]"
        ".some(i => i.complete && i.naturalWidth > 0)"
    )
    shots(page, "cone-search")
    assert len(searches) == 1

    # 5. a pasted obsid list (one a line): exactly those rows
    set_field(panel.locator('input[name="pos"]'), "")
    set_field(panel.locator('textarea[name="obsids"]'), "\n".join(map(str, chosen)))
    panel.locator(".jp-SurveyPanel-search").click()
    expect(panel.locator(".jp-SurveyPanel-total")).to_have_attribute("data-total", str(len(chosen)))
    rows = panel.locator("tr.jp-SurveyPanel-row")
    expect(rows).to_have_count(len(chosen))
    shown = sorted(int(rows.nth(i).get_attribute("data-obsid")) for i in range(len(chosen)))
    assert shown == sorted(chosen)
    shots(page, "obsid-search")

    # 6. a click on a row previews its spectrum
    rows.nth(0).locator("td").nth(3).click()
    preview = panel.locator("img.jp-SurveyPanel-spectrum")
    expect(preview).to_be_visible()
    page.wait_for_function(
        "() => { const i = document.querySelector('#surveyhub-panel img.jp-SurveyPanel-spectrum');"
        " return i && i.complete && i.naturalWidth > 100; }"
    )
    plot = panel.locator(".jp-SurveyPanel-plotSvg")
    expect(plot.locator("path.series.flux")).to_have_count(1)
    plot.scroll_into_view_if_needed()
    box = plot.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()  # zoomed in on that band of wavelengths
    expect(panel.locator(".jp-SurveyPanel-plotReadout")).to_contain_text("λ")
    shots(page, "spectrum-preview")

    # 6b. its views, smoothing and line markers, checked against the released file and the catalog's z
    check_preview_controls(
        page, panel, platform_store, int(rows.nth(0).get_attribute("data-obsid")), alice, shots
    )

    # 7. select some rows and import them into alice's space
    picked = []
    for i in range(N_IMPORT):
        rows.nth(i).locator("input.jp-SurveyPanel-select").check()
        picked.append(int(rows.nth(i).get_attribute("data-obsid")))
    expect(panel.locator(".jp-SurveyPanel-selectedCount")).to_have_attribute("data-count", str(N_IMPORT))
    panel.locator('select[name="destination"]').select_option(label="Your space")
    set_field(panel.locator('input[name="folder"]'), FOLDER)
    button = panel.locator(".jp-SurveyPanel-import")
    expect(button).to_have_text(f"Import {N_IMPORT} spectra")
    button.scroll_into_view_if_needed()
    shots(page, "rows-selected")
    button.click()
    progress = panel.locator(".jp-SurveyPanel-progress")
    expect(progress).to_be_visible()
    expect(button).to_be_disabled()  # one import at a time from the panel
    progress.scroll_into_view_if_needed()
    shots(page, "import-progress")
    status = panel.locator(".jp-SurveyPanel-progressStatus")
    expect(status).to_have_attribute("data-status", "completed", timeout=120_000)
    expect(panel.locator(".jp-SurveyPanel-progressFiles")).to_contain_text(f"{N_IMPORT} of {N_IMPORT} files")
    toast = page.locator(".Toastify__toast", has_text=FOLDER)
    expect(toast).to_be_visible()
    expect(panel.locator(".jp-SurveyPanel-cancel")).to_have_count(0)
    progress.scroll_into_view_if_needed()
    shots(page, "import-done")

    # 8. the files and manifest.json, in JupyterLab's file browser (the space is ~/cloud)
    imports = alice.get("surveyhub/imports").json()["imports"]
    done = next(p for p in imports if p["folder"] == FOLDER)
    assert done["status"] == "completed"
    assert done["files_done"] == N_IMPORT
    listing = alice.get(f"api/contents/cloud/{FOLDER}")
    assert listing.status_code == 200, listing.text
    names = {item["name"] for item in listing.json()["content"]}
    assert {"manifest.json", "catalog.parquet", "spectra"} <= names, names
    spectra = alice.get(f"api/contents/cloud/{FOLDER}/spectra").json()["content"]
    assert len(spectra) == N_IMPORT
    manifest = json.loads(
        alice.get(f"api/contents/cloud/{FOLDER}/manifest.json", format="text").json()["content"]
    )
    assert sorted(manifest["obsids"]) == sorted(picked)
    page.goto(f"{platform.hub.url}user/alice/lab/tree/cloud/{FOLDER}")
    page.wait_for_selector("#jupyterlab-splash", state="detached")
    listing_ui = page.locator(".jp-DirListing-content")
    page.wait_for_selector(".jp-SideBar.jp-mod-left [data-id='filebrowser']")
    if not listing_ui.is_visible():  # the layout came back with the survey panel in front
        page.click(".jp-SideBar.jp-mod-left [data-id='filebrowser']")
    expect(listing_ui.locator(".jp-DirListing-item", has_text="manifest.json")).to_be_visible()
    expect(listing_ui.locator(".jp-DirListing-item", has_text="catalog.parquet")).to_be_visible()
    shots(page, "file-browser")
    context.close()

    # 9. bob sees none of it: his panel lists only his versions, his file browser no import; not through
    # his server, not on disk as his own account
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    hub_login(page, platform.hub.url, "bob")
    page.goto(f"{platform.hub.url}user/bob/lab/tree/cloud")
    page.wait_for_selector("#jupyterlab-splash", state="detached")
    page.click('.jp-SideBar.jp-mod-left [data-id="surveyhub-panel"]')
    panel = page.locator("#surveyhub-panel")
    options = panel.locator('select[name="release"] option')
    expect(options).to_have_count(2)  # bob (lamost-partners): DEMO v1 and v2, not v0
    assert not any(t.startswith("DEMO v0") for t in options.all_inner_texts())
    shots(page, "second-user-panel")
    page.click(".jp-SideBar.jp-mod-left [data-id='filebrowser']")
    expect(page.locator(".jp-BreadCrumbs")).to_contain_text("cloud")
    expect(page.locator(".jp-DirListing-item", has_text="imports")).to_have_count(0)
    shots(page, "second-user-files")
    context.close()
    bob = Server(platform, "bob")
    assert bob.get(f"api/contents/cloud/{FOLDER}").status_code == 404
    assert all(p["folder"] != FOLDER for p in bob.get("surveyhub/imports").json()["imports"])
    folder = done["url"].removeprefix("file://")
    assert Path(folder, "manifest.json").stat().st_uid == pwd.getpwnam(platform.account("alice")).pw_uid
    as_bob = subprocess.run(
        ["runuser", "-u", platform.account("bob"), "--", "cat", f"{folder}/manifest.json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert as_bob.returncode != 0, as_bob
    assert "Permission denied" in as_bob.stderr, as_bob


def masked_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) pixel of each run of consecutive masked pixels."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def check_preview_controls(page, panel, store: ReleaseStore, obsid: int, alice: Server, shots) -> None:
    """The preview's view switch, smoothing and line markers, against the FITS file and the row's ``z``."""
    from surveyhub.apps.lines import ABSORPTION, EMISSION
    from surveyhub.releases.spectrum import read_spectrum

    expect = sync_api.expect
    v = ReleaseVersion(store, "DEMO", VERSION)
    spec = read_spectrum(v.path(v.locate_spectra([obsid])[obsid].relpath))
    found = alice.get("surveyhub/search", release="DEMO", version=VERSION, obsid=str(obsid)).json()
    z = found["rows"][0][[c["name"] for c in found["columns"]].index("z")]
    assert z is not None, f"obsid {obsid} has no redshift"
    assert z > -1, f"obsid {obsid} has no usable redshift ({z})"
    plot = panel.locator(".jp-SurveyPanel-plotSvg")
    view = panel.locator('select[name="plotView"]')
    smooth = panel.locator('select[name="plotSmooth"]')
    plot.dblclick()  # back to the whole spectrum
    series = plot.locator("path.series")
    flux_path = series.get_attribute("d")

    # ivar: another curve; the error view another again
    view.select_option("ivar")
    expect(plot).to_have_attribute("data-view", "ivar")
    expect(plot.locator('path.series[data-series="ivar"]')).to_have_count(1)
    ivar_path = series.get_attribute("d")
    assert ivar_path != flux_path
    view.select_option("error")
    expect(plot.locator('path.series[data-series="error"]')).to_have_count(1)
    assert series.get_attribute("d") not in (flux_path, ivar_path)

    # mask: one shaded region per run of pixels with a non-zero andmask or ormask in the file
    view.select_option("mask")
    runs = masked_runs((spec.andmask != 0) | (spec.ormask != 0))
    assert runs, f"obsid {obsid} has no masked pixels to shade"
    regions = plot.locator("rect.mask")
    expect(regions).to_have_count(len(runs))
    shaded = [
        (float(regions.nth(i).get_attribute("data-start")), float(regions.nth(i).get_attribute("data-end")))
        for i in range(len(runs))
    ]
    assert np.allclose(shaded, [(spec.wavelength[a], spec.wavelength[b]) for a, b in runs], atol=1e-3)
    assert series.get_attribute("d") == flux_path  # the flux, under the shading

    # smoothing, client-side: 15 px is another curve than 7 px (the default), none draws no smoothed curve
    smoothed = plot.locator("path.smooth")
    expect(smoothed).to_have_attribute("data-width", "7")
    seven = smoothed.get_attribute("d")
    smooth.select_option("15")
    expect(smoothed).to_have_attribute("data-width", "15")
    assert smoothed.get_attribute("d") != seven
    smooth.select_option("1")
    expect(smoothed).to_have_count(0)
    smooth.select_option("7")
    expect(smoothed).to_have_attribute("d", seven)

    # line markers: the standard lines inside the spectrum, at rest * (1 + z), where the x axis puts them
    lo, hi = float(spec.wavelength[0]), float(spec.wavelength[-1])
    expected = sorted(
        {(line.name, line.rest) for line in (*EMISSION, *ABSORPTION) if lo <= line.rest * (1 + z) <= hi},
        key=lambda line: line[1],
    )
    markers = plot.locator("g.lineMarker")
    expect(markers).to_have_count(len(expected))
    ticks = plot.locator("text.xtick")
    tick_at = [(float(t.get_attribute("data-value")), float(t.get_attribute("x"))) for t in ticks.all()]
    slope, intercept = np.polyfit(*zip(*tick_at, strict=True), 1)
    for (name, rest), marker in zip(expected, markers.all(), strict=True):
        assert (marker.get_attribute("data-name"), float(marker.get_attribute("data-rest"))) == (name, rest)
        at = float(marker.get_attribute("data-wavelength"))
        assert at == pytest.approx(rest * (1 + z), abs=1e-3)
        x = float(marker.locator("line").get_attribute("x1"))
        assert x == pytest.approx(intercept + slope * at, abs=0.05), name
    panel.locator('input[name="plotLines"]').uncheck()
    expect(markers).to_have_count(0)
    panel.locator('input[name="plotLines"]').check()
    expect(markers).to_have_count(len(expected))
    plot.scroll_into_view_if_needed()
    shots(page, "spectrum-preview-masks-and-lines")

    # zoom still works with all of it: fewer markers, fewer mask regions at most, the same view
    box = plot.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    expect(plot).to_have_attribute("data-view", "mask")
    ticks_zoomed = [float(t.get_attribute("data-value")) for t in ticks.all()]
    assert ticks_zoomed[-1] - ticks_zoomed[0] < (hi - lo) / 2
    assert markers.count() < len(expected) or not expected
    assert regions.count() <= len(runs)
    shots(page, "spectrum-preview-zoomed")


def log_in(browser, platform: Platform, name: str):
    """A new browser page logged in to the hub as ``name``, on JupyterLab with the Survey data panel open."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    hub_login(page, platform.hub.url, name)
    page.goto(f"{platform.hub.url}user/{name}/lab")
    page.wait_for_selector("#jupyterlab-splash", state="detached")
    page.wait_for_selector(".jp-LabShell")
    page.click('.jp-SideBar.jp-mod-left [data-id="surveyhub-panel"]')
    sync_api.expect(page.locator("#surveyhub-panel")).to_be_visible()
    widen_left_area(page, 600)
    return context, page


def search_obsids(panel, obsids: list[int]) -> None:
    """Search DEMO v1 for a pasted obsid list and wait for its exact total."""
    release = panel.locator('select[name="release"]')
    release.select_option(
        label=next(t for t in release.locator("option").all_inner_texts() if t.startswith("DEMO v1"))
    )
    panel.locator(".jp-SurveyPanel-form button.jp-mod-reject").click()
    set_field(panel.locator('textarea[name="obsids"]'), "\n".join(map(str, obsids)))
    panel.locator(".jp-SurveyPanel-search").click()
    sync_api.expect(panel.locator(".jp-SurveyPanel-total")).to_have_attribute("data-total", str(len(obsids)))


def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def resume_cancelled_import(
    page, panel, alice: Server, cancelled: dict, folder: Path, sources: dict[str, Path], shots
) -> None:
    """Resume a cancelled import from the Imports tab; check on disk that nothing was copied twice."""
    expect = sync_api.expect
    total = len(sources)
    present = sorted((folder / "spectra").iterdir())
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in present}
    panel.locator('.jp-SurveyPanel-tab[data-tab="imports"]').click()
    item = panel.locator(f'.jp-SurveyPanel-importItem[data-id="{cancelled["id"]}"]')
    expect(item).to_have_attribute("data-status", "cancelled")
    expect(item.locator(".jp-SurveyPanel-importState")).to_have_text("cancelled")
    expect(item.locator(".jp-SurveyPanel-importWhat")).to_contain_text(f"DEMO {VERSION}")
    expect(item.locator(".jp-SurveyPanel-importFiles")).to_contain_text(f"{len(present)} of {total} files")
    expect(item.locator(".jp-SurveyPanel-importTimes")).to_contain_text("started")
    link = item.locator("a.jp-SurveyPanel-importFolder")
    expect(link).to_have_text("Your space: imports/ui-cancel")
    expect(link).to_have_attribute("data-path", "cloud/imports/ui-cancel")
    expect(item.locator(".jp-SurveyPanel-importCancel")).to_have_count(0)  # cancel is for running ones
    shots(page, "imports-tab-cancelled")

    item.locator(".jp-SurveyPanel-resume").click()
    # the panel follows it with its progress bar, as a new import; the list reads itself again meanwhile
    status = panel.locator(".jp-SurveyPanel-progressStatus")
    expect(status).to_have_attribute("data-status", re.compile("running|completed"))
    expect(item).to_have_attribute("data-status", re.compile("running|completed"))
    if item.get_attribute("data-status") == "running":
        expect(item.locator(".jp-SurveyPanel-importCancel")).to_be_visible()
        shots(page, "import-resumed-progress")
    expect(status).to_have_attribute("data-status", "completed", timeout=120_000)
    expect(panel.locator(".jp-SurveyPanel-progressFiles")).to_contain_text(f"{total} of {total} files")
    expect(item).to_have_attribute("data-status", "completed", timeout=30_000)  # the polling saw it end
    expect(item.locator(".jp-SurveyPanel-importFiles")).to_contain_text(f"{total} of {total} files")
    expect(item.locator(".jp-SurveyPanel-resume")).to_have_count(0)
    expect(item.locator(".jp-SurveyPanel-importTimes")).to_contain_text("finished")
    toast = page.locator(".Toastify__toast", has_text=re.compile(r"Imported \d+ spectra into .*ui-cancel"))
    expect(toast).to_contain_text(f"Imported {total} spectra")
    expect(toast.get_by_role("button", name="Open folder")).to_be_visible()  # the folder's link
    item.scroll_into_view_if_needed()
    shots(page, "imports-tab-completed")

    # on disk: every file, each the same bytes as its source; those copied before the cancel untouched
    resumed = alice.get(f"surveyhub/imports/{cancelled['id']}").json()
    assert resumed["status"] == "completed", resumed
    assert (resumed["files_found"], resumed["files_copied"]) == (len(present), total - len(present))
    after = {p.name: p for p in (folder / "spectra").iterdir()}
    assert sorted(after) == sorted(sources)
    for name, path in after.items():
        assert sha256(path) == sha256(sources[name]), path
    assert {n: (after[n].stat().st_ino, after[n].stat().st_mtime_ns) for n in before} == before
    assert not list(folder.rglob("*.part"))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["id"] == cancelled["id"]
    assert {Path(f["path"]).name: f["sha256"] for f in manifest["files"]} == {
        name: sha256(path) for name, path in sources.items()
    }

    # the folder's link opens it in the file browser; then back to the panel
    link.click()
    listing = page.locator(".jp-DirListing-content")
    expect(page.locator(".jp-BreadCrumbs")).to_contain_text("ui-cancel")
    expect(listing.locator(".jp-DirListing-item", has_text="manifest.json")).to_be_visible()
    shots(page, "imports-folder-link")
    page.click('.jp-SideBar.jp-mod-left [data-id="surveyhub-panel"]')
    expect(panel).to_be_visible()


def test_result_actions_from_the_panel(
    platform: Platform, platform_store: ReleaseStore, browser, shots
) -> None:
    """Select all matching, cancel a long import, import 20 into a team, download, notebook, history."""
    import csv
    import io

    expect = sync_api.expect
    alice = Server(platform, "alice")
    with_files = obsids_with_files(platform_store, VERSION)
    assert len(with_files) > 30  # more than a page of 25: "select all matching" goes beyond the page
    version = ReleaseVersion(platform_store, "DEMO", VERSION)
    located = version.locate_spectra(with_files)
    sources = {Path(located[o].relpath).name: Path(version.path(located[o].relpath)) for o in with_files}
    context, page = log_in(browser, platform, "alice")
    panel = page.locator("#surveyhub-panel")

    # 1. every file of the version: select all matching (not just the page), import, cancel part-way
    search_obsids(panel, with_files)
    expect(panel.locator("tr.jp-SurveyPanel-row")).to_have_count(25)
    panel.locator(".jp-SurveyPanel-selectAll").click()
    expect(panel.locator(".jp-SurveyPanel-selectedCount")).to_have_attribute(
        "data-count", str(len(with_files))
    )
    panel.locator('select[name="destination"]').select_option(label="Your space")
    set_field(panel.locator('input[name="folder"]'), "imports/ui-cancel")
    shots(page, "select-all-matching")
    panel.locator(".jp-SurveyPanel-import").click()
    files = panel.locator(".jp-SurveyPanel-progressFiles")
    expect(files).to_contain_text(re.compile(r"^([2-9]|[1-9][0-9]+) of "), timeout=60_000)
    panel.locator(".jp-SurveyPanel-cancel").click()
    status = panel.locator(".jp-SurveyPanel-progressStatus")
    expect(status).to_have_attribute("data-status", "cancelled")
    expect(page.locator(".Toastify__toast", has_text="cancelled")).to_be_visible()
    shots(page, "import-cancelled")
    cancelled = next(
        p for p in alice.get("surveyhub/imports").json()["imports"] if p["folder"] == "imports/ui-cancel"
    )
    assert cancelled["status"] == "cancelled"
    folder = Path(cancelled["url"].removeprefix("file://"))
    present = sorted((folder / "spectra").iterdir())
    assert 2 <= len(present) < len(with_files)
    assert len(present) == cancelled["files_done"]
    assert not (folder / "manifest.json").exists()
    assert not list(folder.rglob("*.part"))
    for path in present:  # under its final name only once whole
        assert sha256(path) == sha256(sources[path.name]), path

    # 1b. the Imports tab lists it; Resume copies only the missing files, with the panel's progress bar
    resume_cancelled_import(page, panel, alice, cancelled, folder, sources, shots)
    panel.locator('.jp-SurveyPanel-tab[data-tab="search"]').click()

    # 2. 20 spectra into alice's team space, again by selecting all that match
    picked = with_files[:20]
    search_obsids(panel, picked)
    panel.locator(".jp-SurveyPanel-selectAll").click()
    expect(panel.locator(".jp-SurveyPanel-selectedCount")).to_have_attribute("data-count", "20")
    panel.locator('select[name="destination"]').select_option(label=f"Team {TEAM}")
    set_field(panel.locator('input[name="folder"]'), "picks/ui-20")
    panel.locator(".jp-SurveyPanel-import").click()
    expect(status).to_have_attribute("data-status", "completed", timeout=120_000)
    expect(files).to_contain_text("20 of 20 files")
    shots(page, "team-import-done")
    listing = alice.get("api/contents/teams/astro/picks/ui-20/spectra")
    assert listing.status_code == 200, listing.text
    assert len(listing.json()["content"]) == 20
    manifest = json.loads(
        alice.get("api/contents/teams/astro/picks/ui-20/manifest.json", format="text").json()["content"]
    )
    assert sorted(manifest["obsids"]) == sorted(picked)
    assert manifest["destination"]["space"] == f"team:{TEAM}"

    # 3. download the whole table (every matching row, not the page) as CSV, streamed by the browser
    panel.locator('select[name="download_format"]').select_option("csv")
    with page.expect_download() as download:
        panel.locator(".jp-SurveyPanel-download").click()
    name = download.value.suggested_filename
    assert re.fullmatch(r"DEMO-v1-lrs-20rows-\d{8}T\d{6}Z\.csv", name), name
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert sorted(int(r["obsid"]) for r in rows) == sorted(picked)
    download.value.save_as(ARTIFACTS / name)

    # 4. open the search in a notebook (beside the team import), run it all in the browser
    panel.locator(".jp-SurveyPanel-openNotebook").click()
    notebook = page.locator(".jp-NotebookPanel", has=page.locator(".jp-Cell"))
    expect(page.locator(".lm-TabBar-tabLabel", has_text="DEMO-v1-lrs-search.ipynb")).to_be_visible()
    expect(notebook).to_be_visible()
    path = "teams/astro/picks/ui-20/DEMO-v1-lrs-search.ipynb"
    assert alice.get(f"api/contents/{path}").status_code == 200
    # the kernel has started (the status bar says so), the notebook has the focus: Run > Run All Cells
    expect(page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"ipykernel\) \| Idle"))).to_be_visible(
        timeout=120_000
    )
    notebook.locator(".jp-Cell").first.click()
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    out = notebook.locator(".jp-OutputArea-output")
    try:
        expect(notebook).to_contain_text("20 rows of DEMO v1 lrs", timeout=120_000)
    except AssertionError:
        shots(page, "notebook-not-run")
        raise
    expect(notebook).to_contain_text("TAP: 20 rows, the same obsids as the search: True", timeout=60_000)
    expect(notebook).to_contain_text(
        "imported 20 spectra of DEMO v1; every file whole: True; catalog rows: 20"
    )
    expect(notebook).to_contain_text("imported obsids in the search result: True")
    assert out.count() >= 4
    expect(
        notebook.locator(
            ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']", has_text="Error"
        )
    ).to_have_count(0)
    shots(page, "notebook-run")

    # 5. the History tab: the long search again, in one click (the form is filled and the search runs)
    panel.locator(".jp-SurveyPanel-form button.jp-mod-reject").click()
    panel.locator('.jp-SurveyPanel-tab[data-tab="history"]').click()
    item = panel.locator(".jp-SurveyPanel-historyItem", has_text=f"obsid: {len(with_files)} obsids").first
    expect(item).to_be_visible()
    shots(page, "history")
    item.locator(".jp-SurveyPanel-rerun").click()
    expect(panel.locator(".jp-SurveyPanel-total")).to_have_attribute("data-total", str(len(with_files)))
    expect(panel.locator('textarea[name="obsids"]')).to_be_visible()
    assert panel.locator('textarea[name="obsids"]').input_value().split() == [str(o) for o in with_files]
    shots(page, "history-rerun")
    context.close()
