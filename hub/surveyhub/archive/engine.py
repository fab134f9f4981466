"""The archive's query engine: which versions a caller may read, and their catalogs ready to query.

It holds the release store, the serving copies (opened once, kept memory-mapped) and the sandboxed
DuckDB. Access is decided here, once, for every entry point (JSON API, IVOA services, LAMOST routes): a
version the caller's groups may not read is :class:`VersionNotFound`, exactly like one that does not exist.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from surveyhub.archive.sandbox import Sandbox
from surveyhub.archive.serving import ServingCatalog
from surveyhub.releases.registry import ReleaseStore, ReleaseVersion, VersionNotFound


@dataclass(frozen=True)
class Limits:
    """What one query may cost."""

    max_rows: int = 1_000_000  # rows a synchronous result may hold
    default_rows: int = 100  # page size of the JSON search when none is asked for
    max_radius_deg: float = 10.0  # largest cone
    timeout_s: float = 60.0
    max_upload_rows: int = 100_000


class ArchiveEngine:
    """Versions, serving copies and the sandbox behind every archive entry point."""

    def __init__(self, store: ReleaseStore, cache_dir: str | Path, limits: Limits | None = None) -> None:
        self.store = store
        self.cache_dir = Path(cache_dir)
        self.limits = limits or Limits()
        self.sandbox = Sandbox()
        self._catalogs: dict[tuple[str, str, str], ServingCatalog] = {}
        self._lock = threading.Lock()

    def versions(self, groups: Iterable[str]) -> list[ReleaseVersion]:
        """Versions a member of ``groups`` may read."""
        return self.store.versions(set(groups))

    def version(self, release: str, version: str, groups: Iterable[str]) -> ReleaseVersion:
        """One readable version, or VersionNotFound (also when it exists but may not be read)."""
        return self.store.version(release, version, set(groups))

    def catalog(self, version: ReleaseVersion, name: str) -> ServingCatalog:
        """The serving copy of ``version``'s catalog ``name`` (KeyError naming the catalogs it has)."""
        if name not in version.manifest.catalogs:
            raise KeyError(
                f"{version.key} has no catalog {name!r}; it has {', '.join(version.catalog_names)}"
            )
        key = (version.key, version.manifest.published, name)
        with self._lock:
            found = self._catalogs.get(key)
        if found is None:
            found = ServingCatalog.open(version, name, self.cache_dir)
            with self._lock:
                self._catalogs[key] = found
        return found


__all__ = ["ArchiveEngine", "Limits", "VersionNotFound"]
