"""The Voila apps in a real browser, in the platform's own users' servers.

A real hub (``running_platform``) spawns alice's (working group) and bob's (partners) servers; Debian's
Chromium, driven by Python Playwright, logs in through the hub's form and opens the apps Voila renders at
``/user/<name>/voila/render/apps/...``: the quick lookup finds a demo obsid, draws its spectrum and moves
the line markers with the redshift; the release explorer shows two versions side by side and refuses a
version bob may not read; the hub's "Apps" page and JupyterLab's launcher tiles open the apps.

Every step leaves a screenshot in ``test-artifacts/apps/``, checked not blank (many distinct colours).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from surveyhub.apps.registry import APPS, app_named
from surveyhub.releases.registry import ReleaseStore, ReleaseVersion
from tests.support.browser import CHROMIUM, hub_login, screenshots
from tests.support.platform import Platform, reachable_dir, running_platform

pytestmark = [
    pytest.mark.xdist_group("hub"),
    pytest.mark.skipif(os.geteuid() != 0, reason="isolation needs the hub to run as root"),
]


ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "apps"
USERS = {"alice": ["lamost-wg"], "bob": ["lamost-partners"]}
RENDER_TIMEOUT = 120_000  # ms: a Voila kernel starting on a loaded 2-core machine

sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():  # pragma: no cover - the Makefile installs it
    pytest.skip(f"{CHROMIUM} is missing (Debian package chromium)", allow_module_level=True)


def obsid_with_file(store: ReleaseStore, version: str) -> int:
    """An LRS obsid of the version whose released file is there (the lookup draws it from that file)."""
    import pyarrow.dataset as pds

    v = ReleaseVersion(store, "DEMO", version)
    info = v.manifest.catalogs["lrs"]
    index = v.path(info.path, f"lrs_{info.index}", "dataset", "index")
    ids = sorted(pds.dataset(index, format="parquet").to_table(columns=["obsid"])["obsid"].to_pylist())
    located = v.locate_spectra(ids)
    return next(o for o in ids if Path(v.path(located[o].relpath)).exists())


def plotly_traces(page, selector: str) -> list[dict]:
    """The traces plotly.js drew in the figure under ``selector``: name, x values and visibility."""
    return page.evaluate(
        """sel => { const gd = document.querySelector(sel + ' .js-plotly-plot');
            return gd ? (gd.data || []).map(t => ({name: t.name, x: Array.from(t.x || []),
            visible: t.visible === undefined ? true : t.visible})) : []; }""",
        selector,
    )


def option_texts(select) -> list[str]:
    """The options of a widget's <select> as a user reads them (ipywidgets writes spaces as nbsp)."""
    return [t.replace("\xa0", " ") for t in select.locator("option").all_inner_texts()]


def line_marks(page, name: str) -> list[float]:
    """The x positions of one list of line markers (vertical segments: x, x, null, ...)."""
    trace = next(t for t in plotly_traces(page, ".sh-spectrum") if t["name"] == name)
    return sorted({x for x in trace["x"] if x is not None})


@pytest.fixture(scope="module")
def platform(platform_store: ReleaseStore) -> Iterator[Platform]:
    base = reachable_dir("surveyhub-apps-")
    with running_platform(base, platform_store.url.removeprefix("file://")) as p:
        for name, groups in USERS.items():
            p.add_user(name, groups)
        for name in USERS:
            p.spawn(name)
        yield p


@pytest.fixture(scope="module")
def shots() -> Callable[[object, str], Path]:
    return screenshots(ARTIFACTS, full_page=True, min_colours=200)


def logged_in(browser, platform: Platform, name: str):
    """A browser context logged in to the hub as ``name`` (through the hub's login form)."""
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    hub_login(page, platform.hub.url, name)
    return context, page


def server(platform: Platform, name: str) -> requests.Session:
    token = platform.hub.token_for(name, [f"access:servers!user={name}"], note="apps")
    session = requests.Session()
    session.headers["Authorization"] = f"token {token}"
    return session


def test_each_server_has_the_apps_read_only_and_voila_renders_them(platform: Platform) -> None:
    """~/apps holds the registry's notebooks, the user cannot change them, Voila answers at its route."""
    alice = server(platform, "alice")
    base = f"{platform.hub.url}user/alice/"
    listing = alice.get(base + "api/contents/apps", timeout=60)
    assert listing.status_code == 200, listing.text
    names = {item["name"] for item in listing.json()["content"]}
    assert {app.notebook for app in APPS} <= names
    model = alice.get(base + "api/contents/apps/" + APPS[0].notebook, timeout=60).json()
    overwrite = alice.put(base + "api/contents/apps/" + APPS[0].notebook, json=model, timeout=60)
    assert overwrite.status_code >= 400, "a user could overwrite an app's notebook"
    listed = alice.get(base + "surveyhub/apps", timeout=60).json()["apps"]
    assert [a["name"] for a in listed] == [a.name for a in APPS]
    assert listed[0]["url"] == f"/user/alice/voila/render/apps/{APPS[0].notebook}"
    page = alice.get(base + f"voila/render/apps/{app_named('release-explorer').notebook}", timeout=300)
    assert page.status_code == 200, page.text[-2000:]
    assert "voila" in page.text.lower()


def test_quick_lookup_draws_a_spectrum_and_the_redshift_moves_the_lines(
    platform: Platform, platform_store: ReleaseStore, browser, shots
) -> None:
    expect = sync_api.expect
    obsid = obsid_with_file(platform_store, "v2")
    token = platform.hub.token_for("alice", ["access:services!service=archive"], note="apps-archive")
    row = requests.get(
        f"{platform.hub.url}services/archive/api/DEMO/v2/spectra/{obsid}/info",
        headers={"Authorization": f"token {token}"},
        timeout=60,
    )
    assert row.status_code == 200, row.text
    info = row.json()
    context, page = logged_in(browser, platform, "alice")
    page.goto(f"{platform.hub.url}user/alice/voila/render/apps/{app_named('quick-lookup').notebook}")
    page.wait_for_selector(".sh-lookup", timeout=RENDER_TIMEOUT)
    versions = page.locator(".sh-version select")
    labels = option_texts(versions)
    assert [t.split(" — ")[0] for t in labels] == ["DEMO v0", "DEMO v1", "DEMO v2"]  # alice: all three
    versions.select_option(index=2)
    query = page.locator(".sh-query input")
    query.fill(str(obsid))
    page.locator(".sh-go").click()
    page.wait_for_function(
        """() => { const gd = document.querySelector('.sh-spectrum .js-plotly-plot');
            return gd && gd.data && gd.data.some(t => t.name === 'flux' && t.x && t.x.length > 1000); }""",
        timeout=RENDER_TIMEOUT,
    )
    expect(page.locator(".sh-status")).to_contain_text(f"obsid {obsid}")
    expect(page.locator(".sh-spectrum-info .sh-class")).to_have_text(info["class"])
    expect(page.locator(".sh-spectrum-info .sh-subclass")).to_have_text(info["subclass"])
    expect(page.locator(f'.sh-results tr[data-obsid="{obsid}"]')).to_have_count(1)
    links = page.locator(".sh-links a")
    kinds = {links.nth(i).get_attribute("data-kind") for i in range(links.count())}
    assert kinds == {"fits", "png", "csv", "info", "ssa"}
    href = page.locator('.sh-links a[data-kind="fits"]').get_attribute("href")
    tab = context.new_page()  # as the link opens it: a page visit, through the archive's hub OAuth
    # "Download is starting" ends the navigation with an error: expected
    with tab.expect_download(timeout=60_000) as downloading, contextlib.suppress(sync_api.Error):
        tab.goto(platform.hub.url.rstrip("/") + href)
    data = Path(downloading.value.path()).read_bytes()
    tab.close()
    assert (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)[:6] == b"SIMPLE"
    shots(page, "lookup-spectrum")

    before = line_marks(page, "emission lines")
    assert before, "no emission line markers drawn"
    z0 = float(info["z"])
    entry = page.locator(".sh-z-entry input")
    entry.fill("0.1")
    entry.press("Enter")
    page.wait_for_function(
        """x0 => { const gd = document.querySelector('.sh-spectrum .js-plotly-plot');
            const t = gd.data.find(t => t.name === 'emission lines');
            const xs = t ? t.x.filter(v => v !== null) : [];
            return xs.length > 0 && Math.min(...xs) !== x0; }""",
        arg=before[0],
        timeout=60_000,
    )
    after = line_marks(page, "emission lines")
    # every marker moved by (1 + 0.1) / (1 + z0); lines shifted out of the window are no longer drawn
    ratio = (1 + 0.1) / (1 + z0)
    moved = [x * ratio for x in before]
    assert after, "no emission line markers after the redshift change"
    assert all(min(abs(a - m) for m in moved) < 0.05 for a in after), (before, after)
    readout = page.locator(".sh-z-slider .widget-readout").inner_text().replace("\N{MINUS SIGN}", "-")
    assert float(readout) == pytest.approx(0.1)
    shots(page, "lookup-redshift")

    # a custom line, added then removed
    page.locator(".sh-line-name input").fill("test line")
    page.locator(".sh-line-rest input").fill("5000")
    page.locator(".sh-line-add").click()
    page.wait_for_function(
        """() => { const gd = document.querySelector('.sh-spectrum .js-plotly-plot');
            const t = gd.data.find(t => t.name === 'custom lines'); return t && t.x.includes(5500); }"""
    )
    page.locator(".sh-line-remove").click()
    page.wait_for_function(
        """() => { const gd = document.querySelector('.sh-spectrum .js-plotly-plot');
            const t = gd.data.find(t => t.name === 'custom lines'); return t && t.x.length === 0; }"""
    )
    query.fill("not an object")
    page.locator(".sh-go").click()
    expect(page.locator(".sh-status .sh-error")).to_contain_text("neither an obsid")
    context.close()


def test_release_explorer_compares_versions_and_refuses_one_not_granted(
    platform: Platform, platform_store: ReleaseStore, browser, shots
) -> None:
    expect = sync_api.expect
    v0 = ReleaseVersion(platform_store, "DEMO", "v0").manifest
    v2 = ReleaseVersion(platform_store, "DEMO", "v2").manifest
    notebook = app_named("release-explorer").notebook
    context, page = logged_in(browser, platform, "alice")
    page.goto(f"{platform.hub.url}user/alice/voila/render/apps/{notebook}?left=DEMO/v0&right=DEMO/v2")
    page.wait_for_selector(".sh-explorer", timeout=RENDER_TIMEOUT)
    left, right = page.locator(".sh-message-left .sh-rows"), page.locator(".sh-message-right .sh-rows")
    expect(left).to_have_attribute("data-rows", str(v0.counts["lrs_spectra"]), timeout=RENDER_TIMEOUT)
    expect(right).to_have_attribute("data-rows", str(v2.counts["lrs_spectra"]))
    for side in ("left", "right"):
        page.wait_for_function(
            "sel => { const gd = document.querySelector(sel + ' .js-plotly-plot');"
            " return gd && gd.data && gd.data.length >= 5; }",
            arg=f".sh-stats-box-{side}",
            timeout=RENDER_TIMEOUT,
        )
    shots(page, "explorer-two-versions")
    home = Path(platform.settings.users.home_root) / platform.account("alice")
    cached = list((home / ".cache" / "surveyhub" / "release-explorer").glob("DEMO__v0__*.json"))
    assert len(cached) == 1
    assert json.loads(cached[0].read_text())["rows"] == v0.counts["lrs_spectra"]
    context.close()

    # bob (partners) may not read v0: a plain message, no figure, and v0 is not among his choices
    context, page = logged_in(browser, platform, "bob")
    page.goto(f"{platform.hub.url}user/bob/voila/render/apps/{notebook}?left=DEMO/v0&right=DEMO/v2")
    page.wait_for_selector(".sh-explorer", timeout=RENDER_TIMEOUT)
    expect(page.locator(".sh-message-left .sh-refused")).to_contain_text(
        "DEMO v0 is not a version you can read", timeout=RENDER_TIMEOUT
    )
    expect(page.locator(".sh-message-left .sh-rows")).to_have_count(0)
    expect(page.locator(".sh-message-right .sh-rows")).to_have_attribute(
        "data-rows", str(v2.counts["lrs_spectra"])
    )
    options = option_texts(page.locator(".sh-pick-left select"))
    assert "DEMO v0" not in options
    assert "DEMO v1" in options
    shots(page, "explorer-refused")
    bob_home = Path(platform.settings.users.home_root) / platform.account("bob")
    assert not list((bob_home / ".cache" / "surveyhub" / "release-explorer").glob("DEMO__v0__*"))
    context.close()


def test_hub_apps_page_and_launcher_tiles_open_the_apps(platform: Platform, browser, shots) -> None:
    expect = sync_api.expect
    context, page = logged_in(browser, platform, "alice")
    page.goto(f"{platform.hub.url}hub/home")
    page.click("text=Services")
    expect(page.locator(".dropdown-menu a", has_text="apps")).to_be_visible()
    page.goto(f"{platform.hub.url}services/apps/")
    cards = page.locator(".sh-app")
    expect(cards).to_have_count(len(APPS))
    assert [cards.nth(i).get_attribute("data-app") for i in range(len(APPS))] == [a.name for a in APPS]
    expect(page.locator(".sh-user")).to_have_text("alice")
    shots(page, "hub-apps-page")
    with context.expect_page() as opened:
        page.locator('.sh-app[data-app="quick-lookup"] .sh-app-open').click()
    app_page = opened.value
    app_page.wait_for_selector(".sh-lookup", timeout=RENDER_TIMEOUT)
    assert app_page.url.endswith("/user/alice/voila/render/apps/quick-lookup.ipynb")
    app_page.close()

    page.goto(f"{platform.hub.url}user/alice/lab?reset")
    page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=120_000)
    page.wait_for_selector(".jp-Launcher", timeout=60_000)
    section = page.locator(".jp-Launcher-section", has_text="Survey apps")
    tiles = section.locator(".jp-LauncherCard")
    expect(tiles).to_have_count(len(APPS))
    shots(page, "lab-launcher")
    with context.expect_page() as opened:
        section.locator(".jp-LauncherCard", has_text="Release explorer").click()
    app_page = opened.value
    app_page.wait_for_selector(".sh-explorer", timeout=RENDER_TIMEOUT)
    assert "/user/alice/voila/render/apps/release-explorer.ipynb" in app_page.url
    context.close()

    # another user's Apps page opens their own server, not alice's
    context, page = logged_in(browser, platform, "bob")
    page.goto(f"{platform.hub.url}services/apps/")
    href = page.locator('.sh-app[data-app="quick-lookup"] .sh-app-open').get_attribute("href")
    assert href == "/user/bob/voila/render/apps/quick-lookup.ipynb"
    context.close()
