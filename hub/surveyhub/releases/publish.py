"""Publishing a release version atomically: nobody ever sees half a release.

A version is built in a hidden staging folder (``<release>/.<version>.staging-<id>``; the registry ignores
names starting with a dot) and becomes visible in one step at the end:

- on a local or POSIX store the staging folder is renamed to ``<release>/<version>`` (one ``rename``);
- on an object store (S3), where there is no rename, the version is built locally and uploaded with its
  ``release.toml`` last: the registry lists a version only once its manifest exists, so readers see the
  version complete or not at all.

A failure (an exception, a refused ingest) removes the staging folder and publishes nothing. Published
versions are kept forever: publishing over one is refused unless the operator asks to ``replace`` it
(corrections go in sub-versions such as ``v1.1``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from types import TracebackType
from typing import Self

from surveyhub.releases.manifest import MANIFEST_NAME, ReleaseManifest
from surveyhub.releases.registry import ReleaseStore, check_name


class PublishError(RuntimeError):
    """A publication that cannot go ahead (the version exists, the store is not writable, ...)."""


def _is_local(store: ReleaseStore) -> bool:
    return "file" in (store.fs.protocol if isinstance(store.fs.protocol, tuple) else (store.fs.protocol,))


class Publication:
    """Build one version in staging, then :meth:`commit` it; leaving the ``with`` block uncommitted aborts.

    ``staging`` is a local directory to write the version's files into.
    """

    def __init__(self, store: ReleaseStore, release: str, version: str, *, replace: bool = False) -> None:
        self.store = store
        self.release = check_name("release", release)
        self.version = check_name("version", version)
        self.replace = replace
        self.committed = False
        if store.fs.exists(store.path(release, version, MANIFEST_NAME)) and not replace:
            raise PublishError(
                f"{release}/{version} is already published in {store.url}; releases are kept forever: "
                "publish corrections as a new sub-version (e.g. v1.1), or pass replace=True (--replace)"
            )
        token = uuid.uuid4().hex[:12]
        if _is_local(store):
            parent = Path(store.path(release))
            parent.mkdir(parents=True, exist_ok=True)
            self.staging = parent / f".{version}.staging-{token}"
            self.staging.mkdir()
        else:
            self.staging = Path(tempfile.mkdtemp(prefix=f"surveyhub-{release}-{version}-"))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.committed:
            self.abort()

    def abort(self) -> None:
        """Remove the staging folder; nothing becomes visible."""
        shutil.rmtree(self.staging, ignore_errors=True)

    def commit(self, manifest: ReleaseManifest) -> str:
        """Write the manifest and make the version visible in one step; returns the version's URL."""
        if (manifest.release, manifest.version) != (self.release, self.version):
            raise PublishError(
                f"manifest is for {manifest.release}/{manifest.version}, publication for "
                f"{self.release}/{self.version}"
            )
        (self.staging / MANIFEST_NAME).write_text(manifest.to_toml())
        final = self.store.path(self.release, self.version)
        if _is_local(self.store):
            self._commit_local(Path(final))
        else:
            self._commit_remote(final)
        self.committed = True
        return self.store.url_of(self.release, self.version)

    def _commit_local(self, final: Path) -> None:
        old = None
        if final.exists():
            if (final / MANIFEST_NAME).exists() and not self.replace:
                raise PublishError(f"{self.release}/{self.version} was published meanwhile by someone else")
            old = final.with_name(f".{self.version}.old-{uuid.uuid4().hex[:12]}")
            os.rename(final, old)
        os.rename(self.staging, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def _commit_remote(self, final: str) -> None:
        fs = self.store.fs
        if fs.exists(final):
            fs.rm(final, recursive=True)  # an earlier, replaced or unfinished, upload
        manifest = self.staging / MANIFEST_NAME
        for local in sorted(p for p in self.staging.rglob("*") if p.is_file() and p != manifest):
            fs.put_file(str(local), f"{final}/{local.relative_to(self.staging).as_posix()}")
        fs.put_file(str(manifest), f"{final}/{MANIFEST_NAME}")
        shutil.rmtree(self.staging, ignore_errors=True)
