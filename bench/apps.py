"""Time to first render of the Voila apps (issue 7), against a trivial one-cell Voila notebook.

A Jupyter server with the Voila extension (as in each user's server) serves a folder holding ``apps`` (a
link to the apps' notebooks, as ``surveyhub.hub.workspace`` makes it) and ``baseline.ipynb`` (one cell:
an ``ipywidgets.HTML``). The server's environment points at a real ``surveyhub archive`` over a mock
release, as the hub's does. Debian's Chromium (Playwright) opens each page and the clock stops when the
app's main widget is drawn:

- baseline: the HTML widget is in the page;
- quick lookup (``?obsid=N``): plotly drew the spectrum (the ``flux`` trace has its points);
- release explorer (``?left=v1&right=v2``): both sides' statistics figures have their traces; the first
  open of a version summarises it (``cold``), later ones read the cache (``warm``);
- team workbench: before timing, alice makes a list of a few v2 obsids for her team ``gaia-team``
  through the archive (``api/workbench/teams/gaia-team/lists``); its kernel reaches the archive as
  alice through the same ``SURVEYHUB_ARCHIVE_URL`` and ``SURVEYHUB_ARCHIVE_TOKEN``. The app opens on
  the team with its newest list chosen but not opened (it takes no URL parameters), so the run waits for
  that list to be chosen, clicks "Open" at once, as a member would, and stops when the list's first
  spectrum is drawn (``.wb-pos`` names its obsid, bqplot's flux line has its points, the verdict form is
  shown). The part before the click is printed too (``app drawn``).

Runs alternate (baseline, lookup, explorer, workbench, baseline, ...) so drift on a shared machine hits
all. Printed: medians, and each app's ratio to the baseline (time to first render / baseline's; 1.0 is as
fast as Voila with nothing in it).

Environment: ``BENCH_APPS_ROWS`` (5000 rows in v0), ``BENCH_APPS_REPEATS`` (5), ``BENCH_DIR``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import requests

from surveyhub.apps.registry import app_named, apps_dir
from surveyhub.releases.mock.release import build_mock_release
from surveyhub.releases.registry import ReleaseStore, ReleaseVersion
from tests.support.archive import ALICE, archive_server
from tests.support.s3 import _free_port

CHROMIUM = "/usr/bin/chromium"
RELEASE = "BENCH"
BASELINE = "baseline.ipynb"
TEAM = "gaia-team"  # alice's team in tests.support.archive's tokens file
WORKBENCH_ITEMS = 5

#: The JavaScript condition that says a page's main widget is drawn (``arg``: the workbench list's
#: ``title``, first ``obsid`` and ``team``; the other pages ignore it).
DRAWN = {
    "baseline": "() => !!document.querySelector('.bench-baseline')",
    "lookup": """() => { const gd = document.querySelector('.sh-spectrum .js-plotly-plot');
        return !!(gd && gd.data && gd.data.some(t => t.name === 'flux' && t.x && t.x.length > 1000)); }""",
    "explorer": """() => ['left', 'right'].every(s => { const gd = document.querySelector(
        '.sh-stats-box-' + s + ' .js-plotly-plot'); return !!(gd && gd.data && gd.data.length >= 5); })""",
    # bqplot draws the flux as one SVG path ("M x,y L x,y ..."): more than 1000 segments is the spectrum
    # (the line marks are two points each); the form's Save button is laid out (inspect box shown).
    "workbench": """(arg) => { const pos = document.querySelector('.wb-pos');
        const save = document.querySelector('.wb-save');
        return !!(pos && pos.dataset.obsid === String(arg.obsid) && save && save.offsetParent !== null
            && [...document.querySelectorAll('.wb-plot path')].some(
                p => ((p.getAttribute('d') || '').match(/L/g) || []).length > 1000)); }""",
}

#: Pages that need a click once drawn this far: the workbench, when its team's list is chosen (the
#: option's ``value`` is the label as given; its text has non-breaking spaces).
BEFORE_CLICK = {
    "workbench": (
        """(arg) => { const opt = document.querySelector('.wb-list select option:checked');
        const team = document.querySelector('.wb-team select');
        return !!(opt && team && team.value === arg.team && opt.value.startsWith(arg.title + ' (')
            && document.querySelector('.wb-open')); }""",
        ".wb-open",
    ),
}


def _baseline(folder: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "import ipywidgets\nipywidgets.HTML('<b class=\"bench-baseline\">ready</b>')"
        )
    ]
    nbformat.write(notebook, folder / BASELINE)


def _obsids_with_files(store: str, n: int) -> list[int]:
    """The first ``n`` LRS obsids of v2 whose released file is there (so a spectrum is drawn)."""
    import pyarrow.dataset as pds

    v = ReleaseVersion(ReleaseStore(store), RELEASE, "v2")
    info = v.manifest.catalogs["lrs"]
    index = pds.dataset(v.path(info.path, f"lrs_{info.index}", "dataset", "index"), format="parquet")
    ids = sorted(index.to_table(columns=["obsid"])["obsid"].to_pylist())
    located = v.locate_spectra(ids)
    found = [o for o in ids if Path(v.path(located[o].relpath)).exists()][:n]
    if not found:
        raise RuntimeError(f"{RELEASE} v2 in {store} has no LRS spectrum file")
    return found


def _team_list(archive_url: str, obsids: list[int]) -> dict:
    """Make a workbench list for the team as alice, through the archive, as the app's "Create" does."""
    body = {
        "title": f"bench list {time.strftime('%H%M%S')}",
        "release": RELEASE,
        "version": "v2",
        "obsids": obsids,
        "source": "obsids",
        "description": "bench.apps",
    }
    answer = requests.post(
        f"{archive_url}api/workbench/teams/{TEAM}/lists",
        json=body,
        headers={"Authorization": f"token {ALICE}"},
        timeout=60,
    )
    if answer.status_code not in (200, 201):
        raise RuntimeError(f"making the workbench list: {answer.status_code} {answer.text[:500]}")
    made = answer.json()
    if made.get("n_items") != len(obsids):
        raise RuntimeError(f"the workbench list has {made.get('n_items')} items, not {len(obsids)}")
    return made


def _server(root: Path, env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    cmd = [
        str(Path(sys.executable).with_name("jupyter-server")),
        f"--port={port}",
        "--no-browser",
        "--allow-root",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        f"--ServerApp.root_dir={root}",
    ]
    proc = subprocess.Popen(cmd, env=os.environ | env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/api/status", timeout=2).status_code == 200:
                return proc
        except requests.ConnectionError:
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError(log.read_text()[-3000:])


def _stop_kernels(port: int) -> None:
    """Shut down the kernels the pages left (Voila keeps a kernel when its page is closed by a script)."""
    api = f"http://127.0.0.1:{port}/api/kernels"
    for kernel in requests.get(api, timeout=10).json():
        requests.delete(f"{api}/{kernel['id']}", timeout=30)


def _render(browser, url: str, name: str, arg: dict, clicked: list[float] | None = None) -> float:
    """Seconds from asking for page ``name`` to its main widget drawn (a fresh context: nothing cached).

    A page in :data:`BEFORE_CLICK` is clicked as soon as it is that far; the seconds until then are
    appended to ``clicked``.
    """
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    start = time.perf_counter()
    page.goto(url, wait_until="commit", timeout=300_000)
    if name in BEFORE_CLICK:
        ready, button = BEFORE_CLICK[name]
        page.wait_for_function(ready, arg=arg, timeout=300_000, polling=50)
        if clicked is not None:
            clicked.append(time.perf_counter() - start)
        page.click(button, timeout=60_000)
    page.wait_for_function(DRAWN[name], arg=arg, timeout=300_000, polling=50)
    elapsed = time.perf_counter() - start
    context.close()
    return elapsed


def main() -> None:
    """Run the benchmark and print its figures."""
    from playwright.sync_api import sync_playwright

    rows = int(os.environ.get("BENCH_APPS_ROWS", "5000"))
    repeats = int(os.environ.get("BENCH_APPS_REPEATS", "5"))
    given = os.environ.get("BENCH_DIR")
    work = Path(given or tempfile.mkdtemp(prefix="surveyhub-bench-apps-"))
    server = None
    try:
        store = str(work / "store")
        if not (Path(store) / RELEASE / "v2" / "release.toml").exists():
            build_mock_release(store, RELEASE, rows, fits_files=50, seed=3, log=lambda _: None)
        obsids = _obsids_with_files(store, WORKBENCH_ITEMS)
        obsid = obsids[0]
        root = work / "root"
        root.mkdir(exist_ok=True)
        if not (root / "apps").exists():
            (root / "apps").symlink_to(apps_dir(), target_is_directory=True)
        _baseline(root)
        cache = work / "explorer-cache"
        shutil.rmtree(cache, ignore_errors=True)
        (work / "archive").mkdir(exist_ok=True)
        with archive_server(store, work / "archive", allow_anonymous=False) as archive_url:
            env = {
                "SURVEYHUB_ARCHIVE_URL": archive_url,
                "SURVEYHUB_ARCHIVE_TOKEN": ALICE,
                "SURVEYHUB_STORE_URL": store,
                "SURVEYHUB_APPS_CACHE": str(cache),
            }
            port = _free_port()
            server = _server(root, env, port, work / "server.log")
            base = f"http://127.0.0.1:{port}/voila/render/"
            urls = {
                "baseline": base + BASELINE,
                "lookup": base
                + f"apps/{app_named('quick-lookup').notebook}?version={RELEASE}/v2&obsid={obsid}",
                "explorer": base
                + f"apps/{app_named('release-explorer').notebook}?left={RELEASE}/v1&right={RELEASE}/v2",
                "workbench": base + f"apps/{app_named('team-workbench').notebook}",
            }
            made = _team_list(archive_url, obsids)
            arg = {"title": made["title"], "obsid": obsids[0], "team": TEAM}
            times: dict[str, list[float]] = {name: [] for name in urls}
            before_click: list[float] = []
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                _render(browser, urls["baseline"], "baseline", arg)  # untimed: first kernel, cold imports
                _stop_kernels(port)
                cold = _render(browser, urls["explorer"], "explorer", arg)  # summaries computed now
                _stop_kernels(port)
                _render(browser, urls["workbench"], "workbench", arg)  # untimed: bqplot's first import
                _stop_kernels(port)
                for _ in range(repeats):
                    for name, url in urls.items():
                        times[name].append(_render(browser, url, name, arg, before_click))
                        _stop_kernels(port)  # each page starts from the same server
                browser.close()
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if not given:
            shutil.rmtree(work, ignore_errors=True)

    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"apps: time to first render, {repeats} runs each, {rows} rows in {RELEASE} v0 (median seconds)")
    print(f"  baseline (one-cell Voila notebook): {median['baseline']:.2f} s")
    for name in ("lookup", "explorer", "workbench"):
        spread = f"{min(times[name]):.2f}-{max(times[name]):.2f}"
        ratio = median[name] / median["baseline"]
        print(f"  {name}: {median[name]:.2f} s ({spread}); ratio to baseline {ratio:.2f}")
    print(f"  explorer, first open (summaries computed): {cold:.2f} s; ratio {cold / median['baseline']:.2f}")
    ready = statistics.median(before_click)
    print(
        f"  workbench, app drawn with the list chosen (before Open, {WORKBENCH_ITEMS} items): {ready:.2f} s; "
        f"ratio {ready / median['baseline']:.2f}"
    )


if __name__ == "__main__":
    main()
