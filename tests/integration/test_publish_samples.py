"""``surveyhub release publish`` on the real LAMOST samples: every layout, failures, catalogs, the CLI."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from surveyhub.releases.ingest import IngestRefused, publish_folder
from surveyhub.releases.registry import ReleaseStore, VersionNotFound
from tests.support import samples

OBSIDS = {
    samples.DR7_IMAGE: 677503031,
    samples.DR9_COADD: 101013,
    samples.DR13_COADD: 1247301001,
    samples.DR7_MRS: 681001015,
}
PILOT_OBSID = 621206006  # given by the catalog: the pilot file has no OBSID card


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """The five samples in a LAMOST-like folder tree (copied: the shared folder is read-only)."""
    folder = tmp_path / "incoming"
    for i, name in enumerate(samples.ALL):
        (folder / f"night{i}").mkdir(parents=True)
        shutil.copy(samples.samples_dir() / name, folder / f"night{i}" / name)
    return folder


def test_without_catalog_the_pilot_file_is_refused_and_nothing_published(
    source: Path, tmp_path: Path
) -> None:
    root = str(tmp_path / "store")
    with pytest.raises(IngestRefused) as refused:
        publish_folder(source, root, "DR1", "v0", log=lambda _: None)
    message = str(refused.value)
    assert "1 of 5 files failed; nothing was published" in message
    assert samples.DR1_PILOT in message
    assert "OBSID" in message
    assert ReleaseStore(root).versions({"lamost-wg"}) == []
    assert not list((tmp_path / "store" / "DR1").iterdir())  # no staging left behind


def test_publish_accepting_failures_reads_back_every_layout(source: Path, tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    report = publish_folder(source, root, "DR1", "v0", allow_failures=True, log=lambda _: None)
    assert (report.lrs, report.mrs) == (3, 1)
    assert [path for path, _ in report.failures] == [f"night0/{samples.DR1_PILOT}"]
    version = ReleaseStore(root).version("DR1", "v0", {"lamost-wg"})
    with pytest.raises(VersionNotFound):
        ReleaseStore(root).version("DR1", "v0", {"public-only"})
    for name, obsid in OBSIDS.items():
        location = version.locate_spectrum(obsid)
        assert location.relpath.endswith(name.replace("_dr8", "").removesuffix(".gz") + ".gz")
        spec = version.read_spectrum(obsid)
        assert spec.meta["obsid"] == obsid
    lrs = version.open_catalog("lrs").compute()
    assert sorted(lrs["obsid"]) == sorted(o for n, o in OBSIDS.items() if n != samples.DR7_MRS)
    row = lrs.set_index("obsid").loc[677503031]
    assert row["class"] == "STAR"
    assert row["subclass"] == "G3"
    assert row["snrg"] == pytest.approx(153.72)
    assert version.open_catalog("mrs").compute()["obsid"].tolist() == [681001015]
    # The columnar store holds the LRS spectra on the common grid, equal to the files where they overlap.
    spectra = version.open_spectra().compute().set_index("obsid")
    spec = version.read_spectrum(101013)  # 3908 pixels starting at the grid's first pixel
    flux = np.asarray(spectra.loc[101013, "flux"], dtype=np.float32)
    assert flux.size == 3909
    np.testing.assert_array_equal(flux[: spec.flux.size], spec.flux)
    assert np.asarray(spectra.loc[101013, "ivar"])[-1] == 0  # the pixel the file lacks


def test_a_catalog_completes_the_pilot_and_adds_stellar_parameters(source: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "dr1_v0.csv"
    catalog.write_text(
        "obsid|lmjd|planid|spid|fiberid|teff|logg|feh|subclass\n"
        f"{PILOT_OBSID}|55862|B6212|6|6|4350.5|4.6|-0.3|K5\n"
        "677503031|58397|EG014118N254444M01|3|31|5650|4.4|0.1|G3\n"
        "101013|55859|F5902|1|13|-9999|-9999|-9999|A2\n"
        "1247301001|60591|LN042429N340750BM01|1|1|5500|4.2|-0.1|G5\n"
        "681001015|58408|TD230151N343645T01|1|15|-9999|-9999|-9999|\n"
        "999999999|58408|TD230151N343645T01|1|16|-9999|-9999|-9999|\n"
    )
    root = str(tmp_path / "store")
    report = publish_folder(source, root, "DR1", "v1", catalog=catalog, public=True, log=lambda _: None)
    assert (report.lrs, report.mrs, report.failures) == (4, 1, [])
    assert report.catalog_rows_without_file == 1
    version = ReleaseStore(root).version("DR1", "v1", set())
    pilot = version.read_spectrum(PILOT_OBSID)
    assert pilot.layout == "dr1-pilot"
    assert round(float(pilot.wavelength[0]), 2) == 3699.99
    stellar = version.open_catalog("stellar").compute().set_index("obsid")
    assert sorted(stellar.index) == sorted([PILOT_OBSID, 677503031, 1247301001])
    assert stellar.loc[PILOT_OBSID, "teff"] == pytest.approx(4350.5)
    assert version.manifest.policy.public


def test_bad_files_are_listed_with_their_reason(source: Path, tmp_path: Path) -> None:
    (source / "broken").mkdir()
    (source / "broken" / "notes.fits").write_text("this is not FITS")
    raw = (samples.samples_dir() / samples.DR13_COADD).read_bytes()
    (source / "broken" / "spec-cut.fits.gz").write_bytes(raw[: len(raw) // 2])
    plain = gzip.decompress(raw)
    (source / "broken" / "spec-short.fits").write_bytes(plain[: len(plain) - 4000])
    with pytest.raises(IngestRefused) as refused:
        publish_folder(source, str(tmp_path / "store"), "DR1", "v0", log=lambda _: None)
    message = str(refused.value)
    assert "4 of 8 files failed" in message
    for name in ("notes.fits", "spec-cut.fits.gz", "spec-short.fits"):
        assert f"broken/{name}: " in message


def test_cli_publish_refuses_then_publishes(source: Path, tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    cmd = [
        sys.executable,
        "-m",
        "surveyhub.cli",
        "release",
        "publish",
        str(source),
        "--root",
        root,
        "--release",
        "DR1",
        "--version",
        "v0",
        "--policy",
        "groups:lamost-wg,partners",
    ]
    refused = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert refused.returncode == 2
    assert "nothing was published" in refused.stderr
    done = subprocess.run(
        [*cmd, "--allow-failures"], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "published DR1/v0" in done.stdout
    assert samples.DR1_PILOT in done.stdout
    listing = subprocess.run(
        [sys.executable, "-m", "surveyhub.cli", "release", "list", "--root", root, "--group", "partners"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "DR1/v0" in listing.stdout
    assert "groups: lamost-wg, partners" in listing.stdout
