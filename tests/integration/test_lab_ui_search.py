"""The panel's other ways to search, in a real browser, in the platform's own JupyterLab.

A real hub (``running_platform``) spawns alice's server; Debian's Chromium, driven by Python Playwright,
logs in through the hub's form, opens the "Survey data" panel and searches DEMO v2 by a LAMOST
designation (resolved to its catalog row), by a worked ADQL example (run through the archive's TAP), and
by an uploaded CSV position list (``set_input_files``). Bad input of each kind is flagged at its field
before any request. Every step leaves a screenshot in ``test-artifacts/lab-ui-search/``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from surveyhub.releases.registry import ReleaseStore
from tests.integration.test_lab_ui import Server, no_news_toast, set_field, sync_api, widen_left_area
from tests.support.browser import chromium, hub_login, screenshots
from tests.support.platform import Platform, reachable_dir, running_platform

pytestmark = [
    pytest.mark.xdist_group("hub"),
    pytest.mark.skipif(os.geteuid() != 0, reason="isolation needs the hub to run as root"),
]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "lab-ui-search"
VERSION = "v2"


@pytest.fixture(scope="module")
def platform(platform_store: ReleaseStore) -> Iterator[Platform]:
    base = reachable_dir("surveyhub-labsearch-")
    with running_platform(base, platform_store.url.removeprefix("file://")) as p:
        p.add_user("alice", ["lamost-wg"])
        p.spawn("alice")
        no_news_toast(p, "alice")
        yield p


@pytest.fixture(scope="module")
def shots() -> Callable[[object, str], Path]:
    return screenshots(ARTIFACTS)


def catalog_rows(alice: Server, **params: str) -> list[dict]:
    """Rows of DEMO v2's lrs as the archive's search gives them (through alice's server)."""
    answer = alice.get("surveyhub/search", release="DEMO", version=VERSION, **params)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    names = [c["name"] for c in body["columns"]]
    return [dict(zip(names, row, strict=True)) for row in body["rows"]]


def test_search_by_name_adql_and_an_uploaded_list(
    platform: Platform, tmp_path: Path, shots: Callable[[object, str], None]
) -> None:
    expect = sync_api.expect
    alice = Server(platform, "alice")
    rows = catalog_rows(alice, columns="obsid,designation,ra,dec", limit="4", offset="30")
    named = rows[0]
    top = alice.session.post(
        alice.base + "surveyhub/adql",
        json={"query": "SELECT TOP 20 obsid FROM demo_v2.lrs WHERE class = 'STAR' ORDER BY snrg DESC"},
        timeout=60,
    ).json()
    top_obsids = [r[0] for r in top["rows"]]
    assert len(top_obsids) == 20

    with chromium() as browser:
        page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
        page.set_default_timeout(60_000)
        sent: list[str] = []
        page.on("request", lambda r: sent.append(r.url) if "/surveyhub/" in r.url else None)

        # log in, open JupyterLab and the panel on DEMO v2
        hub_login(page, platform.hub.url, "alice")
        page.goto(f"{platform.hub.url}user/alice/lab")
        page.wait_for_selector("#jupyterlab-splash", state="detached")
        page.click('.jp-SideBar.jp-mod-left [data-id="surveyhub-panel"]')
        panel = page.locator("#surveyhub-panel")
        expect(panel).to_be_visible()
        widen_left_area(page, 700)
        release = panel.locator('select[name="release"]')
        expect(release.locator("option")).to_have_count(3)
        labels = release.locator("option").all_inner_texts()
        release.select_option(label=next(t for t in labels if t.startswith(f"DEMO {VERSION}")))
        grid_rows = panel.locator("tr.jp-SurveyPanel-row")

        # 1. a name of another catalog is refused at the field, before any request
        pos = panel.locator('input[name="pos"]')
        set_field(pos, "NGC 1234")
        before = len(sent)
        panel.locator(".jp-SurveyPanel-search").click()
        expect(panel.locator('.jp-SurveyPanel-error[data-field="pos"]')).to_contain_text(
            "nor as a LAMOST designation"
        )
        expect(pos).to_have_attribute("aria-invalid", "true")
        assert not [u for u in sent[before:] if "/surveyhub/search" in u]
        shots(page, "unknown-name")

        # 2. a LAMOST designation (without "LAMOST") finds its catalog row
        set_field(pos, named["designation"].removeprefix("LAMOST "))
        set_field(panel.locator('input[name="radius"]'), "2")
        panel.locator('select[name="radius_unit"]').select_option("arcsec")
        panel.locator(".jp-SurveyPanel-search").click()
        expect(grid_rows.first).to_have_attribute("data-obsid", str(named["obsid"]))
        expect(panel.locator('.jp-SurveyPanel-hint[data-field="pos"]')).to_contain_text(
            f"(obsid {named['obsid']})"
        )
        shots(page, "designation-search")

        # 3. the ADQL tab: a bad query is flagged at the field, a worked example fills the grid
        panel.locator('.jp-SurveyPanel-tab[data-tab="adql"]').click()
        examples = panel.locator('select[name="adql_example"] option')
        expect(examples).to_have_count(6)  # the prompt and five examples for DEMO v2
        text = panel.locator('textarea[name="adql"]')
        set_field(text, "SELECT TOP 3 FRM demo_v2.lrs")
        panel.locator(".jp-SurveyPanel-runAdql").click()
        expect(panel.locator('.jp-SurveyPanel-error[data-field="adql"]')).to_contain_text("syntax error")
        expect(text).to_have_attribute("aria-invalid", "true")
        shots(page, "adql-error")
        panel.locator('select[name="adql_example"]').select_option("top-snr")
        example = re.compile(r"SELECT TOP 20 obsid.*demo_v2\.lrs.*ORDER BY snrg DESC", re.S)
        expect(text).to_have_value(example)
        panel.locator(".jp-SurveyPanel-runAdql").click()
        expect(panel.locator(".jp-SurveyPanel-total")).to_have_attribute("data-total", "20")
        expect(grid_rows).to_have_count(20)
        assert [int(grid_rows.nth(i).get_attribute("data-obsid")) for i in range(20)] == top_obsids
        page.wait_for_function(
            "() => [...document.querySelectorAll('#surveyhub-panel img.jp-SurveyPanel-thumb')]"
            ".some(i => i.complete && i.naturalWidth > 0)"
        )
        shots(page, "adql-example")

        # 3b. a column header sorts the grid; ADQL rows are all in the browser and are sorted there
        header = panel.locator('th.jp-SurveyPanel-sortable[data-column="obsid"]')
        before = len(sent)
        header.click()
        expect(header).to_have_attribute("aria-sort", "ascending")
        assert [int(grid_rows.nth(i).get_attribute("data-obsid")) for i in range(20)] == sorted(top_obsids)
        header.click()
        expect(header).to_have_attribute("aria-sort", "descending")
        descending = sorted(top_obsids, reverse=True)
        assert [int(grid_rows.nth(i).get_attribute("data-obsid")) for i in range(20)] == descending
        assert not [u for u in sent[before:] if "/surveyhub/search" in u or "/surveyhub/adql" in u]
        shots(page, "adql-sorted")

        # 4. the upload tab: a file without usable columns is flagged; a list is matched row by row
        panel.locator('.jp-SurveyPanel-tab[data-tab="upload"]').click()
        bad = tmp_path / "bad.csv"
        bad.write_text("target,x,y\na,1,2\n")
        panel.locator('input[name="upload_file"]').set_input_files(str(bad))
        expect(panel.locator('.jp-SurveyPanel-error[data-field="upload_file"]')).to_contain_text(
            "line 1: no usable columns"
        )
        shots(page, "upload-bad-file")
        good = tmp_path / "targets.csv"
        lines = ["name,ra,dec"]
        lines += [f"star-{i},{r['ra']},{r['dec'] + 1 / 3600}" for i, r in enumerate(rows[1:])]
        lines.append("nowhere,180.0,-45.0")
        good.write_text("\n".join(lines) + "\n")
        panel.locator('input[name="upload_file"]').set_input_files(str(good))
        expect(panel.locator(".jp-SurveyPanel-uploadInfo")).to_contain_text("targets.csv: 4 rows")
        expect(panel.locator('.jp-SurveyPanel-error[data-field="upload_file"]')).to_be_empty()
        set_field(panel.locator('input[name="upload_radius"]'), "3")
        panel.locator(".jp-SurveyPanel-runUpload").click()
        expect(panel.locator(".jp-SurveyPanel-total")).to_have_attribute("data-total", "3")
        expect(grid_rows).to_have_count(3)
        shown = {grid_rows.nth(i).locator("td").nth(2).inner_text(): grid_rows.nth(i) for i in range(3)}
        assert set(shown) == {"star-0", "star-1", "star-2"}
        for i, r in enumerate(rows[1:]):
            assert shown[f"star-{i}"].get_attribute("data-obsid") == str(r["obsid"])
        expect(panel.locator(".jp-SurveyPanel-unmatched")).to_contain_text("nowhere (line 5)")
        shots(page, "upload-matched")

        # 5. a search's order is the archive's, over every matching row: the header asks it again
        panel.locator('.jp-SurveyPanel-tab[data-tab="search"]').click()
        set_field(pos, "")
        panel.locator('select[name="class"]').select_option("STAR")
        panel.locator(".jp-SurveyPanel-search").click()
        expect(grid_rows.first).to_be_visible()
        for order, sort in (("ascending", "obsid"), ("descending", "-obsid")):
            before = len(sent)
            panel.locator('th.jp-SurveyPanel-sortable[data-column="obsid"]').click()
            expect(panel.locator('th[data-column="obsid"]')).to_have_attribute("aria-sort", order)
            asked = [u for u in sent[before:] if "/surveyhub/search" in u]
            assert len(asked) == 1, asked
            params = {k: v[0] for k, v in parse_qs(urlsplit(asked[0]).query).items()}
            assert (params.pop("release"), params.pop("version")) == ("DEMO", VERSION)
            assert params["sort"] == sort
            assert params["offset"] == "0"
            expected = [str(r["obsid"]) for r in catalog_rows(alice, **params)]
            assert len(expected) > 1
            expect(grid_rows).to_have_count(len(expected))
            assert [grid_rows.nth(i).get_attribute("data-obsid") for i in range(len(expected))] == expected
        shots(page, "search-sorted")
