"""The panel's search benchmark (issue: the JupyterLab extension): search click to first results row.

A real platform (hub, archive service, alice's server with the extension) over a mock release of
``BENCH_LAB_SEARCH_ROWS`` rows; Debian's Chromium, driven by Playwright, logs in as alice and opens the
"Survey data" panel. For ``BENCH_LAB_SEARCH_CONES`` cones (1 deg around catalog rows, each a different
centre) it measures, in the page itself (``performance.now()``):

- **panel**: from the click on Search to the first row of the result table in the document with the
  exact total shown, plus one animation frame (the row painted);
- **baseline**: the same search request (``surveyhub/search``, same parameters and page size) made with
  ``fetch`` from the same page, answered and parsed: what any client of the server extension pays.

The ratio panel/baseline is what the panel adds (validation, rendering the table) to the round trip.
Each measurement has a centre of its own, and the page's requests (the rows' thumbnails) are let finish
before the next one starts.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

import requests

from surveyhub.releases.mock.release import build_mock_release
from tests.support.platform import PASSWORD, reachable_dir, running_platform

CHROMIUM = "/usr/bin/chromium"
VERSION = "v1"
PAGE = 25

# Click Search, then wait (one check per animation frame) for a row and the total, then one more frame:
# the row is painted. The old rows and total are taken out first (the panel renders both anew for each
# answer), so a stale one cannot count.
_CLICK_TO_ROW = """async () => {
  const panel = document.querySelector('#surveyhub-panel');
  panel.querySelectorAll('tr.jp-SurveyPanel-row, .jp-SurveyPanel-total').forEach(e => e.remove());
  const frame = () => new Promise(r => requestAnimationFrame(r));
  const t0 = performance.now();
  panel.querySelector('.jp-SurveyPanel-search').click();
  for (;;) {
    await frame();
    const total = panel.querySelector('.jp-SurveyPanel-total');
    if (panel.querySelector('tr.jp-SurveyPanel-row') && total) break;
    if (performance.now() - t0 > 60000) throw new Error('no row within 60 s');
  }
  await frame();
  return [performance.now() - t0, panel.querySelector('.jp-SurveyPanel-total').dataset.total];
}"""

_FETCH = """async (url) => {
  const xsrf = (document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || '';
  const t0 = performance.now();
  const answer = await fetch(url, {headers: {'X-XSRFToken': xsrf}, credentials: 'same-origin'});
  const body = await answer.json();
  if (!answer.ok) throw new Error(JSON.stringify(body));
  return [performance.now() - t0, body.total];
}"""


def _centres(store: Path, n: int, seed: int) -> list[tuple[float, float]]:
    """``n`` catalog positions of the version to centre cones on."""
    import glob

    import pyarrow.dataset as pds

    dataset = store / "DEMO" / VERSION / "catalogs" / "lrs" / "lrs" / "dataset"  # the HATS collection's
    files = glob.glob(str(dataset / "**" / "*.parquet"), recursive=True)
    table = pds.dataset(files, format="parquet").to_table(columns=["ra", "dec"])
    rows = random.Random(seed).sample(range(table.num_rows), n)
    return [(table["ra"][i].as_py(), table["dec"][i].as_py()) for i in rows]


class _Quiet:
    """Waits until the page has had no request in flight for a while (the panel's thumbnails done)."""

    def __init__(self, page: Any, calm_s: float = 0.5) -> None:
        self.page, self.calm_s = page, calm_s
        self.inflight: set[Any] = set()
        page.on("request", lambda r: self.inflight.add(r))
        page.on("requestfinished", lambda r: self.inflight.discard(r))
        page.on("requestfailed", lambda r: self.inflight.discard(r))

    def wait(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        calm_since = None
        while time.monotonic() < deadline:
            self.page.wait_for_timeout(50)  # lets Playwright deliver the page's events
            if self.inflight:
                calm_since = None
            elif calm_since is None:
                calm_since = time.monotonic()
            elif time.monotonic() - calm_since >= self.calm_s:
                return
        raise RuntimeError(f"{len(self.inflight)} requests still in flight after {timeout_s} s")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    """Run the benchmark and print its figures."""
    from playwright.sync_api import sync_playwright

    rows = int(os.environ.get("BENCH_LAB_SEARCH_ROWS", "50000"))
    cones = int(os.environ.get("BENCH_LAB_SEARCH_CONES", "15"))
    base = reachable_dir("surveyhub-bench-labsearch-")
    store = base / "store"
    build_mock_release(str(store), "DEMO", rows, fits_files=20, seed=7, log=lambda _: None)
    centres = _centres(store, 2 * (cones + 2), seed=7)

    (base / "platform").mkdir()
    with running_platform(base / "platform", str(store)) as platform:
        platform.add_user("alice", ["lamost-wg"])
        platform.spawn("alice")
        user = f"{platform.hub.url}user/alice/"
        token = platform.hub.token_for("alice", ["access:servers!user=alice"], note="bench")
        news = requests.put(  # no "get Jupyter news?" toast over the panel
            f"{user}lab/api/settings/@jupyterlab/apputils-extension:notification",
            json={"raw": json.dumps({"fetchNews": "false"})},
            headers={"Authorization": f"token {token}"},
            timeout=60,
        )
        news.raise_for_status()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
            page.set_default_timeout(120_000)
            page.goto(f"{platform.hub.url}hub/login")
            page.fill("#username_input", "alice")
            page.fill("#password_input", PASSWORD)
            page.click("#login_submit")
            page.wait_for_url(lambda url: "/hub/login" not in url)
            page.goto(f"{user}lab")
            page.wait_for_selector(".jp-LabShell")
            page.click('.jp-SideBar.jp-mod-left [data-id="surveyhub-panel"]')
            panel = page.locator("#surveyhub-panel")
            release = panel.locator('select[name="release"]')
            labels = release.locator("option").all_inner_texts()
            release.select_option(label=next(t for t in labels if t.startswith(f"DEMO {VERSION}")))
            pos, radius, unit = (
                panel.locator('input[name="pos"]'),
                panel.locator('input[name="radius"]'),
                panel.locator('select[name="radius_unit"]'),
            )
            radius.fill("1")
            unit.select_option("deg")

            quiet = _Quiet(page)
            ours: list[float] = []
            theirs: list[float] = []
            totals: list[int] = []
            # Each measurement gets a centre of its own: a search met before would find its pages and
            # partitions warm, and whichever ran second would look faster.
            for i in range(cones + 2):
                (ra, dec), (ra2, dec2) = centres[2 * i], centres[2 * i + 1]
                query = {"release": "DEMO", "version": VERSION, "catalog": "lrs", "pos": f"{ra} {dec}"}
                query |= {"radius": "1deg", "offset": "0", "limit": str(PAGE)}
                url = f"{user}surveyhub/search?" + requests.compat.urlencode(query)
                fetched, _ = page.evaluate(_FETCH, url)
                pos.fill(f"{ra2} {dec2}")
                if pos.input_value() != f"{ra2} {dec2}":
                    raise RuntimeError("the position field did not take the centre")
                clicked, total = page.evaluate(_CLICK_TO_ROW)
                # the rows' thumbnails (drawn by the archive) load after the rows: let them finish, or
                # they would slow the next measurement
                quiet.wait()
                if i >= 2:  # the first two warm the serving copy and the page's code paths
                    ours.append(clicked)
                    theirs.append(fetched)
                    totals.append(int(total))
            browser.close()

    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"\n== lab search: click to first results row, {rows:,}-row mock, {len(ours)} cones of 1 deg ==")
    print(f"rows per cone: median {statistics.median(totals):.0f} (page of {PAGE} shown)")
    print(f"{'':28}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    for label, values in (("panel: click to first row", ours), ("baseline: fetch same search", theirs)):
        p50, p95 = statistics.median(values), _percentile(values, 0.95)
        print(f"{label:28}{p50:>10.1f}{p95:>10.1f}{max(values):>10.1f}")
    print(f"ratio panel / baseline (p50): {a / b:.2f}")


if __name__ == "__main__":
    main()
