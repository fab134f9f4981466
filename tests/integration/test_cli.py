"""The ``surveyhub`` command line, run as an operator runs it (a real process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import s3fs

from surveyhub.releases.mock.release import build_mock_release
from surveyhub.releases.registry import ReleaseStore
from tests.support.s3 import s3_options


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "surveyhub.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        check=False,
    )


def test_help_lists_the_commands() -> None:
    done = _run("--help")
    assert done.returncode == 0
    assert "up" in done.stdout
    assert "release" in done.stdout
    assert "mock" in _run("release", "--help").stdout


def test_mock_then_list_by_group(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    done = _run("release", "mock", "--root", root, "--release", "DR0", "--rows", "400", "--fits-files", "3")
    assert done.returncode == 0, done.stderr
    assert f"DR0/v0: file://{root}/DR0/v0" in done.stdout
    listing = _run("release", "list", "--root", root, "--group", "lamost-partners").stdout
    assert "DR0/v1" in listing
    assert "DR0/v2" in listing
    assert "DR0/v0" not in listing
    again = _run("release", "mock", "--root", root, "--release", "DR0", "--rows", "400")
    assert again.returncode != 0
    assert "already published" in again.stderr


def test_bad_arguments_get_a_clear_error(tmp_path: Path) -> None:
    done = _run(
        "release",
        "publish",
        str(tmp_path),
        "--root",
        str(tmp_path / "s"),
        "--release",
        "R",
        "--version",
        "v0",
        "--policy",
        "everyone",
    )
    assert done.returncode == 2
    assert "policy 'everyone'" in done.stderr
    done = _run(
        "release",
        "publish",
        str(tmp_path / "missing"),
        "--root",
        str(tmp_path / "s"),
        "--release",
        "R",
        "--version",
        "v0",
    )
    assert done.returncode == 2
    assert "is not a folder" in done.stderr


def test_up_builds_the_demo_once_and_reuses_it(tmp_path: Path) -> None:
    """The store half of `up` (`--no-hub`); tests/integration/test_up.py runs the whole platform."""
    first = _run("up", "--home", str(tmp_path / "var"), "--demo-rows", "300", "--no-hub")
    assert first.returncode == 0, first.stderr
    assert "Building the demo release" in first.stdout
    assert "DEMO/v2" in first.stdout
    second = _run("up", "--home", str(tmp_path / "var"), "--demo-rows", "300", "--no-hub")
    assert "Reusing the release store" in second.stdout
    assert "Building" not in second.stdout


def test_a_release_on_s3_reads_like_a_local_one(s3_endpoint: str, tmp_path: Path) -> None:
    options = s3_options(s3_endpoint)
    s3fs.S3FileSystem(**options).mkdir("surveyhub-store")
    build_mock_release(
        "s3://surveyhub-store/releases", "DEMO", 500, fits_files=4, seed=5, storage_options=options, log=print
    )
    store = ReleaseStore("s3://surveyhub-store/releases", storage_options=options)
    assert [v.key for v in store.versions({"lamost-partners"})] == ["DEMO/v1", "DEMO/v2"]
    v0 = store.version("DEMO", "v0", {"lamost-wg"})
    lrs = v0.open_catalog("lrs", columns=["obsid", "ra", "dec"]).compute()
    assert len(lrs) == 500
    first = lrs.sort_values("obsid").iloc[0]
    cone = v0.open_catalog("lrs").cone_search(float(first["ra"]), float(first["dec"]), 5.0).compute()
    assert int(first["obsid"]) in set(cone["obsid"])
    spec = v0.read_spectrum(int(first["obsid"]))
    assert spec.meta["obsid"] == int(first["obsid"])
    assert spec.flux.size == 3909
