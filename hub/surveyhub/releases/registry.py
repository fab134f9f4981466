"""The release registry: which releases and versions a store holds, and who may read each.

A store root is a local path or an fsspec URL (``file://``, ``s3://``). Under it each published version is
``<release>/<version>/`` with its ``release.toml``; anything else (a version still being published under a
hidden staging name, a folder without a manifest) is not a version. Every question a caller asks carries
their groups, and a version they may not read behaves exactly as one that does not exist, so no answer
hints at what they cannot see.

>>> import tempfile
>>> from surveyhub.releases.manifest import Policy, ReleaseManifest
>>> root = tempfile.mkdtemp()
>>> store = ReleaseStore(root)
>>> for version, policy in [("v0", Policy(groups=("wg",))), ("v2", Policy(public=True))]:
...     manifest = ReleaseManifest(release="DEMO", version=version, title="Demo", description="",
...                                policy=policy, acknowledgement="")
...     _ = store.write_manifest(manifest)
>>> [v.key for v in store.versions(groups={"wg"})]
['DEMO/v0', 'DEMO/v2']
>>> [v.key for v in store.versions(groups=set())]
['DEMO/v2']
>>> store.version("DEMO", "v0", groups=set())
Traceback (most recent call last):
...
surveyhub.releases.registry.VersionNotFound: no release version DEMO/v0
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import fsspec
import pyarrow.compute as pc
import pyarrow.dataset as pds
from upath import UPath

from surveyhub.releases.layout import CATALOGS_DIR, fits_relpath
from surveyhub.releases.manifest import MANIFEST_NAME, ManifestError, ReleaseManifest

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class VersionNotFound(LookupError):
    """The version does not exist, or the caller may not read it (the two are not told apart)."""


class SpectrumNotFound(LookupError):
    """No spectrum with that obsid in the version."""


def check_name(kind: str, value: str) -> str:
    """Refuse release and version names that could escape the store or hide (``..``, ``/``, ``.x``)."""
    if not _NAME.match(value) or ".." in value:
        raise ValueError(f"invalid {kind} name {value!r}: use letters, digits, '.', '_' and '-'")
    return value


def version_sort_key(version: str) -> tuple:
    """Sort v0 < v1 < v1.1 < v1.2 < v2 < v10, whatever the digits' widths."""
    return tuple(
        (0, int(p), "") if p.isdigit() else (1, 0, p)
        for p in re.split(r"[^0-9]+|(?<=\D)(?=\d)", version)
        if p
    )


class ReleaseStore:
    """A release store root: a local path or an fsspec URL, with options for its filesystem."""

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = str(root)
        self.storage_options = dict(storage_options or {})
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        self.root = self.root.rstrip("/")
        # Parsed versions, keyed by name and checked against the manifest's modification stamp, so a service
        # asking on every request parses each release.toml once (and again only when it is replaced).
        self._versions: dict[tuple[str, str], tuple[Any, ReleaseVersion]] = {}

    def __repr__(self) -> str:
        return f"ReleaseStore({self.url!r})"

    def path(self, *parts: str) -> str:
        """A path inside the store, in the filesystem's own form (no protocol)."""
        return posixpath.join(self.root, *parts)

    def url_of(self, *parts: str) -> str:
        """A full URL (with protocol) for a path inside the store, for lsdb and other fsspec users."""
        return self.fs.unstrip_protocol(self.path(*parts))

    def upath(self, url: str) -> UPath:
        """A universal-pathlib path carrying the store's filesystem options (how hats and lsdb take them)."""
        return UPath(url, **self.storage_options)

    def all_versions(self) -> list[ReleaseVersion]:
        """Every published version whatever its policy: for operators (the hub gates each one), never for
        answering a caller."""
        found: list[ReleaseVersion] = []
        if not self.fs.exists(self.root):
            return found
        for release_dir in sorted(self.fs.ls(self.root, detail=False)):
            release = posixpath.basename(release_dir.rstrip("/"))
            if release.startswith(".") or not self.fs.isdir(release_dir):
                continue
            for version_dir in self.fs.ls(release_dir, detail=False):
                version = posixpath.basename(version_dir.rstrip("/"))
                if version.startswith("."):
                    continue  # staging area of a publication still under way
                manifest_path = posixpath.join(version_dir, MANIFEST_NAME)
                if self.fs.exists(manifest_path):
                    found.append(ReleaseVersion(self, release, version))
        return sorted(found, key=lambda v: (v.release, version_sort_key(v.version)))

    def versions(self, groups: Iterable[str]) -> list[ReleaseVersion]:
        """Every version that a member of ``groups`` may read, sorted by release then version."""
        groups = set(groups)
        return [v for v in self.all_versions() if v.manifest.policy.allows(groups)]

    def releases(self, groups: Iterable[str]) -> dict[str, list[ReleaseVersion]]:
        """The readable versions grouped by release."""
        out: dict[str, list[ReleaseVersion]] = {}
        for v in self.versions(groups):
            out.setdefault(v.release, []).append(v)
        return out

    def version(self, release: str, version: str, groups: Iterable[str]) -> ReleaseVersion:
        """One version, if it exists and ``groups`` may read it; otherwise VersionNotFound."""
        try:
            check_name("release", release)
            check_name("version", version)
        except ValueError:
            raise VersionNotFound(f"no release version {release}/{version}") from None
        candidate = self._cached_version(release, version)
        if candidate is None:
            raise VersionNotFound(f"no release version {release}/{version}")
        if not candidate.manifest.policy.allows(set(groups)):
            raise VersionNotFound(f"no release version {release}/{version}")
        return candidate

    def _cached_version(self, release: str, version: str) -> ReleaseVersion | None:
        """The version if its manifest exists, parsed once per manifest stamp (mtime, size or ETag)."""
        path = self.path(release, version, MANIFEST_NAME)
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            self._versions.pop((release, version), None)
            return None
        stamp = (info.get("mtime") or info.get("LastModified") or info.get("ETag"), info.get("size"))
        cached = self._versions.get((release, version))
        if cached is not None and cached[0] == stamp:
            return cached[1]
        found = ReleaseVersion(self, release, version)
        self._versions[(release, version)] = (stamp, found)
        return found

    def write_manifest(self, manifest: ReleaseManifest, *, directory: str | None = None) -> str:
        """Write ``release.toml`` (into ``directory`` or the version's own folder); returns its path."""
        check_name("release", manifest.release)
        check_name("version", manifest.version)
        folder = directory or self.path(manifest.release, manifest.version)
        self.fs.makedirs(folder, exist_ok=True)
        target = posixpath.join(folder, MANIFEST_NAME)
        with self.fs.open(target, "w") as fh:
            fh.write(manifest.to_toml())
        return target


@dataclass(frozen=True)
class SpectrumLocation:
    """Where one spectrum's released file is, with the catalog facts that name it."""

    obsid: int
    catalog: str
    relpath: str  # relative to the version
    url: str  # full fsspec URL


class ReleaseVersion:
    """One published version of a release. Obtain it from :class:`ReleaseStore`, which checks access."""

    def __init__(self, store: ReleaseStore, release: str, version: str) -> None:
        self.store = store
        self.release = release
        self.version = version

    def __repr__(self) -> str:
        return f"<ReleaseVersion {self.key}>"

    @property
    def key(self) -> str:
        """``release/version``, the name users and URLs use."""
        return f"{self.release}/{self.version}"

    def path(self, *parts: str) -> str:
        """A path inside this version, in the filesystem's own form."""
        return self.store.path(self.release, self.version, *parts)

    def url(self, *parts: str) -> str:
        """A full URL inside this version."""
        return self.store.url_of(self.release, self.version, *parts)

    @cached_property
    def manifest(self) -> ReleaseManifest:
        """The parsed ``release.toml``."""
        source = self.url(MANIFEST_NAME)
        try:
            with self.store.fs.open(self.path(MANIFEST_NAME), "r") as fh:
                return ReleaseManifest.from_toml(fh.read(), source=source)
        except FileNotFoundError as exc:
            raise ManifestError(f"{source}: missing") from exc

    @property
    def catalog_names(self) -> list[str]:
        """Names of the version's catalogs (``lrs``, ``stellar``, ``mrs``, ...)."""
        return list(self.manifest.catalogs)

    def catalog_url(self, name: str) -> str:
        """URL of the HATS collection of catalog ``name``."""
        try:
            info = self.manifest.catalogs[name]
        except KeyError:
            raise KeyError(f"{self.key} has no catalog {name!r}; it has {self.catalog_names}") from None
        return self.url(info.path)

    def open_catalog(self, name: str, **kwargs: Any) -> Any:
        """Open catalog ``name`` lazily as an ``lsdb`` catalog (with its margin cache and index)."""
        from surveyhub.releases.lsdb_open import open_catalog

        return open_catalog(self.store.upath(self.catalog_url(name)), **kwargs)

    def open_spectra(self, **kwargs: Any) -> Any:
        """Open the columnar spectra store lazily as an ``lsdb`` catalog (arrays on the common grid)."""
        from surveyhub.releases.lsdb_open import open_catalog

        spectra = self.manifest.spectra
        if not spectra:
            raise KeyError(f"{self.key} has no columnar spectra store")
        return open_catalog(self.url(spectra["path"]), storage_options=self.store.storage_options, **kwargs)

    def _index_table(self, name: str, obsids: Sequence[int]) -> Any:
        info = self.manifest.catalogs[name]
        index_dir = self.path(info.path, f"{name}_{info.index}", "dataset", "index")
        dataset = pds.dataset(index_dir, format="parquet", filesystem=self.store.fs)
        return dataset.to_table(filter=pc.field(info.index).isin([int(o) for o in obsids]))

    def locate_spectra(self, obsids: Sequence[int]) -> dict[int, SpectrumLocation]:
        """Find the released files of many spectra by obsid; obsids not in the version are left out.

        Reads the obsid indexes of the spectroscopic catalogs only (not the catalogs themselves).
        """
        wanted = {int(o) for o in obsids}
        found: dict[int, SpectrumLocation] = {}
        for name, kind in (("lrs", "LRS"), ("mrs", "MRS")):
            if name not in self.manifest.catalogs or not wanted - found.keys():
                continue
            rows = self._index_table(name, sorted(wanted - found.keys())).to_pylist()
            for row in rows:
                rel = fits_relpath(
                    row["obsdate"], row["planid"], row["lmjd"], row["spid"], row["fiberid"], kind=kind
                )
                found[int(row["obsid"])] = SpectrumLocation(int(row["obsid"]), name, rel, self.url(rel))
        return found

    def locate_spectrum(self, obsid: int) -> SpectrumLocation:
        """Find the released file of one spectrum; SpectrumNotFound when the version has no such obsid."""
        found = self.locate_spectra([obsid]).get(int(obsid))
        if found is None or not self.store.fs.exists(self.path(found.relpath)):
            raise SpectrumNotFound(f"no spectrum with obsid {obsid} in {self.key}")
        return found

    def read_spectrum(self, obsid: int) -> Any:
        """Read one spectrum of this version by obsid (see :func:`surveyhub.releases.read_spectrum`)."""
        from surveyhub.releases.spectrum import read_spectrum

        location = self.locate_spectrum(obsid)
        with self.store.fs.open(self.path(location.relpath), "rb") as fh:
            return read_spectrum(fh)


#: Columns the obsid index of a spectroscopic catalog carries besides obsid: what names its file.
SPECTRUM_INDEX_COLUMNS = ("obsdate", "planid", "lmjd", "spid", "fiberid")
CATALOG_PATH = CATALOGS_DIR + "/{name}"
