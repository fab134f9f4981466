"""Helpers of the server extension's tests (a module of their own: tests do not import conftest)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from surveyhub.releases.registry import ReleaseStore, ReleaseVersion

#: The team every test user is in.
TEAM = "astro"


class Spectra:
    """Obsids of the store by what they are, found from the versions' own obsid indexes and files."""

    def __init__(self, root: str) -> None:
        store = ReleaseStore(root)
        self.store = store
        self.with_files: dict[tuple[str, str], list[int]] = {}
        self.without_files: dict[str, list[int]] = {}
        self.index: dict[tuple[str, str], set[int]] = {}
        for version in ("v0", "v1", "v2"):
            v = ReleaseVersion(store, "DEMO", version)
            for catalog in ("lrs", "mrs"):
                ids = self._ids(v, catalog)
                self.index[(version, catalog)] = set(ids)
                located = v.locate_spectra(ids)
                have = [o for o in ids if Path(v.path(located[o].relpath)).exists()]
                self.with_files[(version, catalog)] = have
                if catalog == "lrs":
                    self.without_files[version] = [o for o in ids if o not in set(have)]

    @staticmethod
    def _ids(version: ReleaseVersion, catalog: str) -> list[int]:
        import pyarrow.dataset as pds

        info = version.manifest.catalogs[catalog]
        path = version.path(info.path, f"{catalog}_{info.index}", "dataset", "index")
        return sorted(pds.dataset(path, format="parquet").to_table(columns=["obsid"])["obsid"].to_pylist())

    def source(self, version: str, obsid: int) -> Path:
        """The released file of ``obsid`` in ``version``."""
        v = ReleaseVersion(self.store, "DEMO", version)
        return Path(v.path(v.locate_spectra([obsid])[obsid].relpath))

    def only_in_v0(self) -> list[int]:
        """LRS obsids of v0 that v1 does not hold."""
        return sorted(self.index[("v0", "lrs")] - self.index[("v1", "lrs")])


async def wait_for(
    api: Callable[..., Any], import_id: str, done: Callable[[dict], bool], timeout: float = 90
) -> dict:
    """Poll an import's progress until ``done(progress)``; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        status, progress = await api("surveyhub", "imports", import_id)
        assert status == 200, progress
        if done(progress):
            return progress
        if time.monotonic() > deadline:
            raise AssertionError(f"import {import_id} did not get there in {timeout}s: {progress}")
        await asyncio.sleep(0.05)


def ended(progress: dict) -> bool:
    """Whether a run of the import has ended (whatever the outcome)."""
    return progress["status"] not in ("running", "cancelling")
