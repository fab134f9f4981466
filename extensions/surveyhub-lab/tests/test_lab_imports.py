"""The import engine without a Jupyter Server: crash and restart, streamed copies, verification.

The engine is what the handlers drive; here it runs on its own (as a restarted server's would), against the
same real archive service, store and storage.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from lab_support import Spectra
from surveyhub_lab.archive_client import ArchiveClient
from surveyhub_lab.imports import ImportManager
from surveyhub_lab.spaces import Spaces
from surveyhub_lab.storage import Committer, VerificationError

from tests.support.archive import ALICE

#: One worker builds the lab store and runs these (``make test`` runs with ``--dist loadgroup``).
pytestmark = pytest.mark.xdist_group("lab")

#: Run in a child process that the test kills with SIGKILL part-way through (a crashed server).
CHILD = """
import asyncio, json, sys
from surveyhub_lab.archive_client import ArchiveClient
from surveyhub_lab.imports import ImportManager
from surveyhub_lab.spaces import Spaces

archive_url, token, cloud_url, store, body = sys.argv[1:6]

async def main():
    manager = ImportManager(archive=ArchiveClient(archive_url, token), spaces=Spaces(cloud_url),
                            store_url=store, rate_limit=400_000, state_interval=0.2)
    job = await manager.create(json.loads(body))
    print(job.id, flush=True)
    await manager.wait(job.id)

asyncio.run(main())
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manager(archive_url: str, cloud_url: str, store: str, **kwargs: Any) -> ImportManager:
    return ImportManager(
        archive=ArchiveClient(archive_url, ALICE), spaces=Spaces(cloud_url), store_url=store, **kwargs
    )


async def test_a_crashed_import_is_listed_after_a_restart_and_resumes_copying_only_what_is_missing(
    archive_url: str, lab_store: str, spectra: Spectra, tmp_path: Path
) -> None:
    cloud = tmp_path / "users" / "alice"
    cloud_url = cloud.as_uri() + "/"
    obsids = spectra.with_files[("v1", "lrs")][:24]
    body = {"release": "DEMO", "version": "v1", "obsids": obsids, "destination": {"folder": "crash"}}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, archive_url, ALICE, cloud_url, lab_store, json.dumps(body)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        import_id = child.stdout.readline().strip()
        folder = cloud / "crash"
        deadline = time.monotonic() + 60
        while len(list((folder / "spectra").glob("spec-*"))) < 5:
            assert child.poll() is None, "the import ended before it could be killed"
            assert time.monotonic() < deadline, "the import did not start copying"
            time.sleep(0.02)
        time.sleep(0.3)  # let it save its state at least once after the first files
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    present = sorted(p.name for p in (folder / "spectra").glob("spec-*"))
    assert 5 <= len(present) < 24
    assert not (folder / "manifest.json").exists()
    # what an interrupted copy leaves (the kill may or may not have caught one): resume must remove it
    stale = folder / "spectra" / f".{present[0]}.0badc0de.part"
    stale.write_bytes(b"half a file")

    restarted = manager(archive_url, cloud_url, lab_store)
    listed = await restarted.list()
    assert [(i["id"], i["status"]) for i in listed] == [(import_id, "interrupted")]
    assert "resume" in listed[0]["error"]

    await restarted.resume(import_id)
    job = await restarted.wait(import_id)
    assert job.status == "completed", job.error
    assert (job.found, job.copied) == (
        len(present),
        24 - len(present),
    )  # finished files were not copied again
    assert not stale.exists()
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["files"]:
        source = spectra.source("v1", entry["obsid"])
        assert entry["sha256"] == sha256(folder / entry["path"]) == sha256(source)
    await restarted.shutdown()


async def test_a_restarted_server_lists_finished_imports(
    archive_url: str, lab_store: str, spectra: Spectra, tmp_path: Path
) -> None:
    cloud_url = (tmp_path / "users" / "alice").as_uri() + "/"
    first = manager(archive_url, cloud_url, lab_store)
    obsids = spectra.with_files[("v2", "lrs")][:2]
    job = await first.create(
        {
            "release": "DEMO",
            "version": "v2",
            "obsids": obsids,
            "destination": {"folder": "a"},
            "query": {"q": 1},
        }
    )
    await first.wait(job.id)
    await first.shutdown()

    second = manager(archive_url, cloud_url, lab_store)
    (listed,) = await second.list()
    assert (listed["id"], listed["status"], listed["files_done"]) == (job.id, "completed", 2)
    assert listed["manifest"] == cloud_url + "a/manifest.json"
    await second.shutdown()


async def test_large_files_are_streamed_through_a_verified_temporary_name(
    archive_url: str, lab_store: str, spectra: Spectra, tmp_path: Path
) -> None:
    cloud = tmp_path / "users" / "alice"
    streaming = manager(archive_url, cloud.as_uri() + "/", lab_store, stream_threshold=0)
    obsids = spectra.with_files[("v1", "lrs")][:4]
    job = await streaming.create(
        {"release": "DEMO", "version": "v1", "obsids": obsids, "destination": {"folder": "big"}}
    )
    await streaming.wait(job.id)
    assert job.status == "completed", job.error
    manifest = json.loads((cloud / "big" / "manifest.json").read_text())
    assert sorted(e["sha256"] for e in manifest["files"]) == sorted(
        sha256(spectra.source("v1", o)) for o in obsids
    )
    assert not list((cloud / "big").rglob("*.part"))
    await streaming.shutdown()


def test_a_file_that_does_not_verify_never_appears_under_its_final_name(tmp_path: Path) -> None:
    import fsspec

    committer = Committer(fsspec.filesystem("file"))
    target = tmp_path / "spec.fits.gz"
    data = b"SIMPLE  =                    T" * 100
    with pytest.raises(VerificationError, match="expected"):
        committer.put_bytes(str(target), data, hashlib.sha256(b"other bytes").hexdigest())
    assert list(tmp_path.iterdir()) == []  # neither the final name nor the temporary one is left
    committer.put_bytes(str(target), data, hashlib.sha256(data).hexdigest())
    assert target.read_bytes() == data
    assert committer.digest(str(target)) == (len(data), hashlib.sha256(data).hexdigest())
