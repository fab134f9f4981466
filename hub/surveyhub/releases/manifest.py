"""``release.toml``: what one published release version is, who may read it, and how to cite it.

The manifest is the one file a reader needs to trust a version: its presence marks the version as complete
(publishing writes it last), its ``[policy]`` says which JupyterHub groups may read it, and every catalog's
columns are documented in it. It is TOML so operators can read and review it by eye.

>>> from surveyhub.releases.columns import GAIA_COLUMNS
>>> m = ReleaseManifest(release="DEMO", version="v2", title="Demo DR", description="A demo.",
...     policy=Policy(public=True), acknowledgement="Cite us.",
...     catalogs={"gaia": CatalogInfo(name="gaia", title="Gaia-like", path="catalogs/gaia", rows=3,
...                                   columns=GAIA_COLUMNS)})
>>> ReleaseManifest.from_toml(m.to_toml()) == m
True
>>> m.policy.allows({"anyone"})
True
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import tomli_w

from surveyhub._version import __version__
from surveyhub.releases.columns import Column

MANIFEST_NAME = "release.toml"


class ManifestError(ValueError):
    """A ``release.toml`` that cannot be read or misses what a version must declare."""


@dataclass(frozen=True)
class Policy:
    """Who may read a version: anyone (``public``) or members of any of ``groups``."""

    public: bool = False
    groups: tuple[str, ...] = ()

    def allows(self, groups: Iterable[str]) -> bool:
        """Whether a caller in ``groups`` may read the version."""
        return self.public or not set(self.groups).isdisjoint(groups)

    def describe(self) -> str:
        """A short human text: 'public' or 'groups: a, b'."""
        return "public" if self.public else "groups: " + ", ".join(self.groups)


@dataclass(frozen=True)
class CatalogInfo:
    """One catalog of a version: a HATS collection under ``path`` (relative to the version)."""

    name: str
    title: str
    path: str
    rows: int
    columns: tuple[Column, ...]
    description: str = ""
    index: str = "obsid"  # the column with an index catalog for fast look-ups

    def to_dict(self) -> dict[str, Any]:
        """The catalog as written into the manifest."""
        return {
            "title": self.title,
            "description": self.description,
            "path": self.path,
            "rows": self.rows,
            "index": self.index,
            "columns": [c.to_dict() for c in self.columns],
        }

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> CatalogInfo:
        """Read one ``[catalogs.<name>]`` table."""
        return cls(
            name=name,
            title=data.get("title", name),
            description=data.get("description", ""),
            path=data["path"],
            rows=int(data["rows"]),
            index=data.get("index", "obsid"),
            columns=tuple(Column(**c) for c in data.get("columns", [])),
        )


@dataclass(frozen=True)
class ReleaseManifest:
    """The content of one ``<release>/<version>/release.toml``."""

    release: str
    version: str
    title: str
    description: str
    policy: Policy
    acknowledgement: str
    catalogs: dict[str, CatalogInfo] = field(default_factory=dict)
    survey: str = "LAMOST"
    observation_start: str = ""
    observation_end: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    spectra: dict[str, Any] = field(default_factory=dict)  # columnar store: path, grid (coeff0, coeff1, npix)
    fits: dict[str, Any] = field(default_factory=dict)  # released files: path, count
    docs: str = ""
    software: str = f"surveyhub {__version__}"
    published: str = ""

    def to_toml(self) -> str:
        """Serialise to TOML text."""
        doc: dict[str, Any] = {
            "release": {
                "name": self.release,
                "version": self.version,
                "survey": self.survey,
                "title": self.title,
                "description": self.description,
                "observation_start": self.observation_start,
                "observation_end": self.observation_end,
                "acknowledgement": self.acknowledgement,
                "docs": self.docs,
                "software": self.software,
                "published": self.published,
            },
            "policy": {"public": self.policy.public, "groups": list(self.policy.groups)},
            "counts": dict(self.counts),
        }
        if self.fits:
            doc["fits"] = dict(self.fits)
        if self.spectra:
            doc["spectra"] = dict(self.spectra)
        doc["catalogs"] = {name: info.to_dict() for name, info in self.catalogs.items()}
        return tomli_w.dumps(doc)

    @classmethod
    def from_toml(cls, text: str, *, source: str = MANIFEST_NAME) -> ReleaseManifest:
        """Parse a manifest; a ManifestError names ``source`` and what is wrong."""
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ManifestError(f"{source}: not valid TOML: {exc}") from exc
        try:
            rel = doc["release"]
            pol = doc["policy"]
            return cls(
                release=rel["name"],
                version=rel["version"],
                survey=rel.get("survey", "LAMOST"),
                title=rel["title"],
                description=rel.get("description", ""),
                observation_start=rel.get("observation_start", ""),
                observation_end=rel.get("observation_end", ""),
                acknowledgement=rel.get("acknowledgement", ""),
                docs=rel.get("docs", ""),
                software=rel.get("software", ""),
                published=rel.get("published", ""),
                policy=Policy(public=bool(pol.get("public", False)), groups=tuple(pol.get("groups", ()))),
                counts={k: int(v) for k, v in doc.get("counts", {}).items()},
                fits=doc.get("fits", {}),
                spectra=doc.get("spectra", {}),
                catalogs={n: CatalogInfo.from_dict(n, d) for n, d in doc.get("catalogs", {}).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{source}: missing or malformed entry: {exc}") from exc
