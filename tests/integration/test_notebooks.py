"""The tutorial notebooks (``notebooks/tutorials``), run top to bottom inside a real user's server.

One hub built by ``surveyhub.hub.configure`` with its archive and Dask Gateway, over the 600-row DEMO
release; two users in team ``astro``:

- alice (group ``lamost-wg``) runs every notebook, each in a fresh kernel of her own server, so the code
  runs as her system account with only the environment the hub gave it, as it does for a researcher;
- bob (group ``lamost-partners``) is the teammate who reads what notebook 05 left for the team.

Each code cell goes to the kernel as it is in the notebook (unmodified, in order); a failing cell fails
the test with the notebook's name, the cell's number and source, and what it printed. Beyond running,
each test checks what the notebook leaves behind (files in the cloud and team spaces, the shared query,
no cluster left running) against the same computation done here, in the test process, on the store.

The notebooks are kept in git without outputs or execution counts; the first tests check that.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import nbformat
import numpy as np
import pyarrow.parquet as pq
import pytest

from surveyhub import analysis as sa
from surveyhub.hub.workspace import team_group
from surveyhub.releases import read_spectrum
from surveyhub.releases.registry import ReleaseStore, ReleaseVersion
from tests.support.lab import CellResult, Kernel
from tests.support.platform import REPO, Platform, reachable_dir, running_platform

pytestmark = pytest.mark.xdist_group("hub")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="users' servers run as their accounts only as root")

TUTORIALS = REPO / "notebooks" / "tutorials"
EXPECTED = [
    "01-getting-started",
    "02-plotting-and-measuring",
    "03-crossmatch-with-lsdb",
    "04-whole-release-on-dask-gateway",
    "05-team-space",
]
#: The longest a single cell may take (a Dask Gateway cluster starting on a busy 2-core machine).
CELL_TIMEOUT_S = 240
RELEASE, VERSION = "DEMO", "v2"  # what the notebooks' parameter cells name


def notebook_path(name: str) -> Path:
    return TUTORIALS / f"{name}.ipynb"


# --- the notebooks as files ------------------------------------------------------------------------------


def test_the_five_tutorials_are_there() -> None:
    assert sorted(p.stem for p in TUTORIALS.glob("*.ipynb")) == EXPECTED


@pytest.mark.parametrize("path", sorted(TUTORIALS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebook_is_kept_cleared(path: Path) -> None:
    """Valid nbformat 4, kernel python3, no outputs, execution counts or run metadata in git."""
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert not {"widgets", "toc-autonumbering"} & set(nb.metadata), nb.metadata.keys()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a tutorial without code"
    for number, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [], f"{path.name} cell {number} has outputs"
        assert cell.execution_count is None, f"{path.name} cell {number} has an execution count"
        assert "execution" not in cell.metadata, f"{path.name} cell {number} keeps run times"
        assert cell.source.strip(), f"{path.name} cell {number} is empty"
    markdown = [c for c in nb.cells if c.cell_type == "markdown"]
    assert markdown[0].source.startswith("# "), "a tutorial opens with its title"
    assert len(markdown) >= len(code) // 2, "a tutorial explains its code"


# --- the notebooks run inside the platform ----------------------------------------------------------------


@pytest.fixture(scope="module")
def platform(platform_store: ReleaseStore) -> Iterator[Platform]:
    base = reachable_dir("surveyhub-notebooks-")
    with running_platform(base, platform_store.url.removeprefix("file://")) as p:
        p.add_user("alice", ["lamost-wg"])
        p.add_user("bob", ["lamost-partners"])
        team = p.hub.api("POST", "groups/astro", json={"users": ["alice", "bob"]})
        assert team.status_code == 201, team.text
        assert p.hub.api("PUT", "groups/astro/properties", json={"surveyhub_team": True}).status_code == 200
        for name in ("alice", "bob"):  # both start at once; spawn() then waits for each
            assert p.hub.api("POST", f"users/{name}/server").status_code in (201, 202)
        for name in ("alice", "bob"):
            p.spawn(name)
        yield p


@pytest.fixture(scope="module")
def v2(platform_store: ReleaseStore) -> ReleaseVersion:
    """The public version the notebooks work on, opened here in the test process."""
    return platform_store.version(RELEASE, VERSION, set())


def cloud_dir(platform: Platform, username: str) -> Path:
    return Path(platform.settings.cloud.user_url_for(username).removeprefix("file://"))


def team_dir(platform: Platform, team: str) -> Path:
    return Path(platform.settings.cloud.team_url_for(team).removeprefix("file://"))


def account_uid(platform: Platform, username: str) -> int:
    return pwd.getpwnam(platform.account(username)).pw_uid


class Notebook:
    """What a notebook's run printed and displayed, cell by cell."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cells: list[CellResult] = []
        self.probe: object = None

    @property
    def stdout(self) -> str:
        return "".join(cell.stdout for cell in self.cells)

    @property
    def figures(self) -> int:
        """How many images the notebook displayed (matplotlib figures shown inline)."""
        return sum("image/png" in output for cell in self.cells for output in cell.outputs)


def run_notebook(platform: Platform, name: str, user: str = "alice", probe: str | None = None) -> Notebook:
    """Run every code cell of notebook ``name`` in order in a fresh kernel of ``user``'s server.

    ``probe`` is one more cell run afterwards in the same kernel, to read what the notebook computed.
    """
    nb = nbformat.read(notebook_path(name), as_version=4)
    run = Notebook(name)
    with platform.kernel(user) as kernel:
        for number, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            try:
                result = kernel.run(cell.source, timeout=CELL_TIMEOUT_S)
            except TimeoutError:
                result = CellResult(error=("TimeoutError", f"no answer within {CELL_TIMEOUT_S} s"))
            if result.error is not None:
                ename, evalue = result.error
                pytest.fail(
                    f"{name}.ipynb, cell {number} raised {ename}: {evalue}\n"
                    f"--- cell source ---\n{cell.source}\n--- it printed ---\n{result.stdout[-3000:]}\n"
                    f"--- hub log (end) ---\n{platform.hub.log()[-2000:]}",
                    pytrace=False,
                )
            run.cells.append(result)
        if probe is not None:
            run.probe = json.loads(kernel.check(probe, timeout=CELL_TIMEOUT_S).strip().splitlines()[-1])
    return run


def kernel_json(kernel: Kernel, code: str) -> object:
    return json.loads(kernel.check(code, timeout=CELL_TIMEOUT_S).strip().splitlines()[-1])


@needs_root
def test_01_getting_started(platform: Platform, v2: ReleaseVersion) -> None:
    run = run_notebook(platform, "01-getting-started")
    # alice (working group) sees every version in ~/releases, and the archive knows her as herself
    assert "DEMO ['v0', 'v1', 'v2']" in run.stdout
    assert "signed in to the archive as alice" in run.stdout
    # the spectrum it found through SSA and downloaded is in her cloud space, written as her account
    kept = list((cloud_dir(platform, "alice") / "spectra").glob("*.fits.gz"))
    assert len(kept) == 1, kept
    assert kept[0].stat().st_uid == account_uid(platform, "alice")
    spectrum = read_spectrum(kept[0])
    released = v2.read_spectrum(spectrum.meta["obsid"])  # the very file of that obsid in the release
    assert np.array_equal(spectrum.flux, released.flux)
    assert kept[0].name == Path(v2.locate_spectrum(spectrum.meta["obsid"]).relpath).name


PROBE_02 = (
    "import json\n"
    "print(json.dumps({'obsid': int(meta['obsid']), 'snr_g': float(snr_g), 'ours': float(ours),\n"
    "                  'specutils': float(ew_specutils.value / (1 + z)),\n"
    "                  'specutils_type': type(s1d).__name__}))"
)


@needs_root
def test_02_plotting_and_measuring(platform: Platform, v2: ReleaseVersion) -> None:
    run = run_notebook(platform, "02-plotting-and-measuring", probe=PROBE_02)
    assert run.figures == 3  # the spectrum with its mask, the lines at the redshift, the index bands
    got = run.probe
    assert isinstance(got, dict)
    # it picked the highest-SNR spectrum that has a file
    rows = v2.open_catalog("lrs", columns=["obsid", "snrg"]).compute().sort_values("snrg", ascending=False)
    located = v2.locate_spectra(rows["obsid"].tolist())
    with_file = next(int(o) for o in rows["obsid"] if Path(v2.path(located[int(o)].relpath)).exists())
    assert got["obsid"] == with_file
    # the SNR it measures is the catalog's (the pipeline's definition: median over the g band)
    snrg = float(rows.set_index("obsid").loc[with_file, "snrg"])
    assert got["snr_g"] == pytest.approx(snrg, rel=0.02)
    # its own equivalent width and specutils' agree
    assert got["specutils_type"] == "Spectrum"
    assert got["specutils"] == pytest.approx(got["ours"], abs=0.02 + 0.01 * abs(got["ours"]))


@needs_root
def test_03_crossmatch_with_lsdb(platform: Platform, v2: ReleaseVersion) -> None:
    run = run_notebook(platform, "03-crossmatch-with-lsdb")
    assert run.figures == 2
    assert (
        "refused: radius 20 arcsec is wider than the right catalog's margin cache (10 arcsec)" in run.stdout
    )
    written = pq.read_table(cloud_dir(platform, "alice") / "gaia" / "stars-snrg10.parquet")
    query = sa.Query(v2, where="snrg > 10", classes=("STAR",))
    (expected,) = sa.compute(sa.crossmatch_gaia(query, radius_arcsec=2), progress=False)
    assert sorted(written.column("obsid").to_pylist()) == sorted(expected["obsid"].tolist())
    assert len(expected) > 100
    pairs = dict(
        zip(written.column("obsid").to_pylist(), written.column("source_id").to_pylist(), strict=True)
    )
    assert pairs == dict(zip(expected["obsid"].tolist(), expected["source_id"].tolist(), strict=True))
    record = json.loads(written.schema.metadata[b"surveyhub"])
    assert record["query"]["expression"] == query.expression
    assert record["metadata"] == {"radius_arcsec": 2}


@needs_root
def test_04_whole_release_on_dask_gateway(platform: Platform, v2: ReleaseVersion) -> None:
    run = run_notebook(platform, "04-whole-release-on-dask-gateway")
    assert "Starting a Dask Gateway cluster (2 workers" in run.stdout
    assert "on the platform's gateway: True" in run.stdout
    assert run.figures == 2
    query = sa.Query(v2, classes=("STAR", "GALAXY", "QSO"))
    spectra = query.open_spectra()
    # one H-alpha index per selected spectrum, beside its catalog row
    cloud = cloud_dir(platform, "alice")
    index = pq.read_table(cloud / "halpha" / "DEMO-v2.parquet").to_pandas()
    (selected,) = sa.compute(spectra[["obsid", "class"]], progress=False)
    assert sorted(index["obsid"]) == sorted(selected["obsid"])
    assert index["ew_halpha"].notna().mean() > 0.9
    # the measurement means something: Balmer absorption weakens from A to K stars
    stars = index[index["class"] == "STAR"]
    by_type = stars.groupby(stars["subclass"].str[:1])["ew_halpha"].median()
    present = [t for t in "AFGK" if t in by_type.index]
    assert len(present) >= 3, by_type
    assert list(by_type[present]) == sorted(by_type[present], reverse=True), by_type
    # the stacks it wrote are the stacks of that selection
    stack = pq.read_table(cloud / "stacks" / "DEMO-v2-by-class.parquet")
    expected = sa.stack_spectra(spectra, by="class", normalize="median", progress=False)
    assert stack.column("label").to_pylist() == expected.labels
    assert stack.column("count").to_pylist() == expected.count.tolist()
    np.testing.assert_allclose(
        np.array(stack.column("flux").to_pylist(), dtype=float), expected.flux, rtol=1e-5, equal_nan=True
    )
    record = json.loads(stack.schema.metadata[b"surveyhub"])
    assert record["query"]["classes"] == ["STAR", "GALAXY", "QSO"]
    # and it left no cluster running
    with platform.kernel("alice") as kernel:
        clusters = kernel_json(
            kernel,
            "import json\nfrom dask_gateway import Gateway\n"
            "print(json.dumps([c.name for c in Gateway().list_clusters()]))",
        )
    assert clusters == []


@needs_root
def test_05_team_space(platform: Platform) -> None:
    run = run_notebook(platform, "05-team-space")
    assert "working in 'astro'" in run.stdout
    shared_line = re.search(r"shared with: \[(.*)\]", run.stdout)
    assert shared_line is not None
    assert shared_line.group(1) == "'astro'"
    folder = team_dir(platform, "astro") / "targets"
    written = pq.read_table(folder / "bright-fgk.parquet")
    obsids = written.column("obsid").to_pylist()
    assert len(obsids) == 30
    adql = json.loads(written.schema.metadata[b"surveyhub"])["query"]["adql"]
    for path in folder.iterdir():  # the team's group owns what alice wrote, and may edit it
        info = path.stat()
        assert grp.getgrgid(info.st_gid).gr_name == team_group("astro"), path
        assert stat.S_IMODE(info.st_mode) & 0o060 == 0o060, path
    # bob, a teammate, reads the list from his own server and finds alice's query in his history
    code = (
        "import json, os, requests, pandas as pd\n"
        "path = os.path.expanduser('~/teams/astro/targets/bright-fgk.parquet')\n"
        "s = requests.Session()\n"
        "s.headers['Authorization'] = 'token ' + os.environ['SURVEYHUB_ARCHIVE_TOKEN']\n"
        "h = s.get(os.environ['SURVEYHUB_ARCHIVE_URL'] + 'api/history', timeout=60).json()['history']\n"
        "print(json.dumps({'obsids': pd.read_parquet(path)['obsid'].tolist(),\n"
        "                  'shared': [r for r in h if r['owner'] == 'alice']}))"
    )
    with platform.kernel("bob") as kernel:
        seen = kernel_json(kernel, code)
    assert isinstance(seen, dict)
    assert seen["obsids"] == obsids
    assert [(r["kind"], r["query"], r["shared_with"]) for r in seen["shared"]] == [
        ("tap-sync", adql, ["astro"])
    ]
