"""The team inspection workbench in real Chromium, rendered by Voila in users' servers of a real hub.

alice and bob are the team ``astro``, carol the team ``cosmo`` (JupyterHub groups with the
``surveyhub_team`` property, as ``surveyhub team create`` makes them); ``lamost-partners`` lets all three
read DEMO v1. In two browser contexts, alice makes a list from pasted obsids and bob opens it; each labels
the first spectrum, and each sees the other's verdict arrive without reloading, with the disagreement
highlighted and both members' progress. alice exports the result into the team space. carol, logged in
too, sees neither the list in her app nor anything of it through the archive (404).

Screenshots of each step go to ``test-artifacts/workbench/`` and are checked not to be blank.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests

from surveyhub.hub.access import TEAM_PROPERTY
from surveyhub.releases.registry import ReleaseStore, ReleaseVersion
from tests.support.browser import CHROMIUM, hub_login, screenshots
from tests.support.platform import Platform, reachable_dir, running_platform

pytestmark = [
    pytest.mark.xdist_group("hub"),
    pytest.mark.skipif(os.geteuid() != 0, reason="isolation needs the hub to run as root"),
]


ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "workbench"
REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "apps" / "team-workbench.ipynb"
USERS = {
    "alice": ["astro", "lamost-partners"],
    "bob": ["astro", "lamost-partners"],
    "carol": ["cosmo", "lamost-partners"],
}
TEAMS = ("astro", "cosmo")
N_ITEMS = 4

sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():  # pragma: no cover - the Makefile installs it
    pytest.skip(f"{CHROMIUM} is missing (Debian package chromium)", allow_module_level=True)


def obsids_with_files(store: ReleaseStore, version: str, n: int) -> list[int]:
    """The first ``n`` LRS obsids of a version whose released file is there (so a spectrum is drawn)."""
    import pyarrow.dataset as pds

    v = ReleaseVersion(store, "DEMO", version)
    info = v.manifest.catalogs["lrs"]
    index = v.path(info.path, f"lrs_{info.index}", "dataset", "index")
    ids = sorted(pds.dataset(index, format="parquet").to_table(columns=["obsid"])["obsid"].to_pylist())
    located = v.locate_spectra(ids)
    return [o for o in ids if Path(v.path(located[o].relpath)).exists()][:n]


@pytest.fixture(scope="module")
def platform(platform_store: ReleaseStore) -> Iterator[Platform]:
    base = reachable_dir("surveyhub-workbench-")
    with running_platform(base, platform_store.url.removeprefix("file://")) as p:
        for name, groups in USERS.items():
            p.add_user(name, groups)
        for team in TEAMS:  # what `surveyhub team create` does: the group property makes it a team
            answer = p.hub.api("PUT", f"groups/{team}/properties", json={TEAM_PROPERTY: True})
            assert answer.status_code == 200, answer.text
        for name in USERS:
            p.spawn(name)
        yield p


@pytest.fixture(scope="module")
def shots() -> Callable[[object, str], Path]:
    return screenshots(ARTIFACTS, full_page=True, min_colours=50)


def app_path(platform: Platform, name: str) -> str:
    """Where Voila renders the workbench in ``name``'s server: ``apps/`` (the platform's link to the
    apps' notebooks), else a copy put in the home through the contents API."""
    token = platform.hub.token_for(name, [f"access:servers!user={name}"], note="workbench-ui")
    s = requests.Session()
    s.headers["Authorization"] = f"token {token}"
    base = f"{platform.hub.url}user/{name}/api/contents/"
    if s.get(base + "apps/team-workbench.ipynb", params={"content": "0"}, timeout=30).status_code == 200:
        return "apps/team-workbench.ipynb"
    body = {"type": "notebook", "format": "json", "content": json.loads(NOTEBOOK.read_text())}
    answer = s.put(base + "team-workbench.ipynb", json=body, timeout=30)
    assert answer.status_code in (200, 201), answer.text
    return "team-workbench.ipynb"


def open_app(platform: Platform, browser, name: str) -> object:
    """Log ``name`` in through the hub's form and open the workbench in Voila; returns the page."""
    path = app_path(platform, name)
    context = browser.new_context(viewport={"width": 1500, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(90_000)
    hub_login(page, platform.hub.url, name)
    page.goto(f"{platform.hub.url}user/{name}/voila/render/{path}")
    page.wait_for_selector(".wb-app", timeout=180_000)
    page.wait_for_selector(".wb-status .wb-message")
    return page


def archive_as(platform: Platform, name: str) -> requests.Session:
    token = platform.hub.token_for(name, ["access:services!service=archive"], note="workbench-ui")
    s = requests.Session()
    s.headers["Authorization"] = f"token {token}"
    return s


def test_two_members_label_a_list_and_see_each_other(
    platform: Platform, platform_store: ReleaseStore, browser, shots
) -> None:
    expect = sync_api.expect
    archive = f"{platform.hub.url}services/archive/"
    obsids = obsids_with_files(platform_store, "v1", N_ITEMS)
    assert len(obsids) == N_ITEMS

    # alice: her team is there; she makes a list from pasted obsids and lands on its first spectrum
    alice = open_app(platform, browser, "alice")
    expect(alice.locator(".wb-team select option")).to_have_count(1)
    expect(alice.locator(".wb-team select")).to_have_value("astro")
    shots(alice, "alice-open")
    alice.get_by_text("New list").click()
    alice.locator(".wb-new-title input").fill("UI candidates")
    alice.locator(".wb-new-version select").select_option("DEMO/v1")
    alice.locator(".wb-new-obsids textarea").fill("\n".join(map(str, obsids)))
    shots(alice, "alice-new-list")
    alice.locator(".wb-create").click()
    expect(alice.locator(".wb-status")).to_contain_text(f"with {N_ITEMS} spectra")
    expect(alice.locator(".wb-pos")).to_have_attribute("data-obsid", str(obsids[0]))
    alice.wait_for_function(
        "() => [...document.querySelectorAll('.wb-plot path')]"
        ".some(p => (p.getAttribute('d') || '').length > 1000)"
    )
    shots(alice, "alice-list-made")
    lists = archive_as(platform, "alice").get(archive + "api/workbench/teams/astro/lists", timeout=30).json()
    list_id = next(t["id"] for t in lists["lists"] if t["title"] == "UI candidates")

    # bob opens the same list before anyone has judged anything
    bob = open_app(platform, browser, "bob")
    expect(bob.locator(".wb-list select option:checked")).to_have_text("UI candidates (4, by alice)")
    bob.locator(".wb-open").click()
    expect(bob.locator(".wb-pos")).to_have_attribute("data-obsid", str(obsids[0]))
    expect(bob.locator(".wb-others")).to_contain_text("No verdicts yet")
    shots(bob, "bob-open")

    # alice confirms the catalog class of the first spectrum; it appears in bob's app by itself
    catalog_class = alice.locator(".wb-class").inner_text()
    alice.locator(".wb-flag-low-snr input").check()
    alice.locator(".wb-note textarea").fill("clean")
    alice.locator(".wb-save").click()
    expect(alice.locator(".wb-pos")).to_have_attribute("data-obsid", str(obsids[1]))  # moved on
    expect(bob.locator('.wb-verdict[data-member="alice"]')).to_contain_text(f"{catalog_class} confirmed")
    expect(bob.locator('.wb-verdict[data-member="alice"]')).to_contain_text("clean")
    expect(bob.locator('.wb-member-progress[data-member="alice"]')).to_have_attribute("data-done", "1")
    shots(bob, "bob-sees-alice")

    # bob disagrees: another class and a redshift fix
    other = next(c for c in ("GALAXY", "QSO", "STAR") if c != catalog_class)
    bob.locator(".wb-confirm button", has_text="Class wrong").click()
    bob.locator(".wb-corrected select").select_option(other)
    bob.locator(".wb-fix-z input").check()
    bob.locator(".wb-z input").fill("0.25")
    bob.locator(".wb-z input").press("Enter")
    bob.locator(".wb-save").click()
    expect(bob.locator(".wb-status")).to_contain_text(f"Saved your verdict on {obsids[0]}")
    bob.locator(".wb-prev").click()
    expect(bob.locator(".wb-others-box")).to_have_attribute("data-contested", "1")
    expect(bob.locator(".wb-disagreement")).to_contain_text("class")
    shots(bob, "bob-disagrees")

    # alice sees bob's verdict and the disagreement, live (her progress panel first, then the item)
    expect(alice.locator('.wb-member-progress[data-member="bob"]')).to_have_attribute("data-done", "1")
    expect(alice.locator(".wb-disagreement-list")).to_have_attribute("data-count", "1")
    alice.locator(".wb-prev").click()
    expect(alice.locator('.wb-verdict[data-member="bob"]')).to_contain_text(f"→ {other}")
    expect(alice.locator('.wb-verdict[data-member="bob"]')).to_contain_text("z = 0.25")
    expect(alice.locator(".wb-others-box")).to_have_attribute("data-contested", "1")
    shots(alice, "alice-sees-bob")

    # alice exports the result into the team space, as herself
    alice.locator(".wb-export").click()
    exported = alice.locator(".wb-exported")
    expect(exported).to_be_visible()
    url = exported.get_attribute("data-url")
    shots(alice, "alice-exported")
    path = Path(url.removeprefix("file://"))
    team_folder = Path(platform.settings.cloud.team_url_for("astro").removeprefix("file://"))
    assert path.is_relative_to(team_folder)
    import pwd

    assert path.stat().st_uid == pwd.getpwnam(platform.account("alice")).pw_uid
    rows = pq.read_table(io.BytesIO(path.read_bytes())).to_pylist()
    judged = {(r["obsid"], r["member"]): r for r in rows if r["member"]}
    assert judged[(obsids[0], "alice")]["final_class"] == catalog_class
    assert judged[(obsids[0], "bob")]["final_class"] == other
    assert judged[(obsids[0], "bob")]["z_fix"] == 0.25
    assert judged[(obsids[0], "bob")]["disagreement"]
    assert {r["obsid"] for r in rows} == set(obsids)

    # carol (team cosmo) sees nothing of it: not in her app, not through the archive
    carol = open_app(platform, browser, "carol")
    expect(carol.locator(".wb-team select")).to_have_value("cosmo")
    expect(carol.locator(".wb-team select option")).to_have_count(1)
    assert list_id not in carol.locator(".wb-list select").inner_html()
    assert "UI candidates" not in carol.content()
    shots(carol, "carol-sees-nothing")
    as_carol = archive_as(platform, "carol")
    for route in ("", "/changes?since=0", "/summary", "/export"):
        assert as_carol.get(f"{archive}api/workbench/lists/{list_id}{route}", timeout=30).status_code == 404
    assert as_carol.get(archive + "api/workbench/teams/astro/lists", timeout=30).status_code == 404
    answer = as_carol.put(
        f"{archive}api/workbench/lists/{list_id}/items/{obsids[0]}/verdict",
        json={"class_ok": True},
        timeout=30,
    )
    assert answer.status_code == 404
    # lamost-partners grants a release version: the hub says it is no team, so it holds no lists
    assert as_carol.get(archive + "api/workbench/teams/lamost-partners/lists", timeout=30).status_code == 404
    for page in (alice, bob, carol):
        page.context.close()
