"""What to analyse: a release version, one of its catalogs, conditions on it and a cone.

A :class:`Query` is plain data with the version it reads, so the same object opens the rows
(:meth:`Query.open_catalog`), the rows with their spectra (:meth:`Query.open_spectra`) and, written
beside a result, says exactly what produced it (:meth:`Query.to_dict`). Everything it opens is a lazy
lsdb catalog: nothing is read until a computation asks, and then only the HEALPix partitions that the
cone (if any) touches.

Inside the platform a server reads the versions it may read through ``~/releases`` (the hub links only
the granted ones there; file permissions do the rest), so :func:`open_version` needs no groups: what the
account cannot read fails as it would for any other program.

>>> where_expression("snrg > 10", ["STAR", "QSO"])
"(snrg > 10) and (`class` in ['STAR', 'QSO'])"
>>> where_expression(None, [])
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from surveyhub.releases.manifest import MANIFEST_NAME
from surveyhub.releases.registry import ReleaseStore, ReleaseVersion, VersionNotFound, check_name

#: The columns of the columnar spectra store that hold arrays on the common grid.
SPECTRUM_ARRAYS = ("flux", "ivar", "andmask", "ormask")
#: Arrays a spectra selection reads unless told otherwise (``ormask`` is rarely needed for stacking).
DEFAULT_ARRAYS = ("flux", "ivar", "andmask")


def is_lsdb(obj: Any) -> bool:
    """Whether ``obj`` is an lsdb catalog (checked by class: a Dask Delayed answers every attribute)."""
    from lsdb.catalog.dataset.healpix_dataset import HealpixDataset

    return isinstance(obj, HealpixDataset)


def release_store() -> ReleaseStore:
    """The release store as this server sees it: ``~/releases`` in the platform, else the store URL.

    ``SURVEYHUB_RELEASES_DIR`` holds links to the versions the user may read; a store on S3 is reached
    through ``SURVEYHUB_STORE_URL`` and ``SURVEYHUB_STORE_STORAGE_OPTIONS`` instead.
    """
    releases_dir = os.environ.get("SURVEYHUB_RELEASES_DIR", "")
    if releases_dir and os.path.isdir(releases_dir):
        return ReleaseStore(releases_dir)
    url = os.environ.get("SURVEYHUB_STORE_URL", "")
    if url:
        options = json.loads(os.environ.get("SURVEYHUB_STORE_STORAGE_OPTIONS") or "{}")
        return ReleaseStore(url, options)
    raise RuntimeError(
        "no release store here: outside the platform pass store=ReleaseStore(path) (and groups=...)"
    )


def open_version(
    release: str,
    version: str,
    *,
    store: ReleaseStore | None = None,
    groups: Iterable[str] | None = None,
) -> ReleaseVersion:
    """One release version, e.g. ``open_version("DEMO", "v2")``.

    With ``groups`` the version's policy is checked as the archive checks it; without, access is left to
    the storage (in the platform: ``~/releases`` and file permissions). Raises ``VersionNotFound``.
    """
    store = store if store is not None else release_store()
    if groups is not None:
        return store.version(release, version, groups)
    try:
        check_name("release", release)
        check_name("version", version)
    except ValueError:
        raise VersionNotFound(f"no release version {release}/{version}") from None
    if not store.fs.exists(store.path(release, version, MANIFEST_NAME)):
        raise VersionNotFound(f"no release version {release}/{version}")
    return ReleaseVersion(store, release, version)


def where_expression(where: str | None, classes: Sequence[str]) -> str | None:
    """One pandas/lsdb query expression from a free condition and a list of classes (``class`` is a
    Python keyword, so it needs backticks that nobody should have to remember)."""
    parts = []
    if where:
        parts.append(f"({where})")
    if classes:
        parts.append(f"(`class` in {[str(c) for c in classes]!r})")
    return " and ".join(parts) or None


@dataclass(frozen=True)
class Cone:
    """A cone on the sky: centre in degrees (ICRS), radius in arcseconds."""

    ra: float
    dec: float
    radius_arcsec: float

    def __post_init__(self) -> None:
        if not (-90.0 <= self.dec <= 90.0) or self.radius_arcsec <= 0:
            raise ValueError(f"bad cone {self}: dec must be within [-90, 90] and the radius positive")


@dataclass(frozen=True)
class Query:
    """Rows of one catalog of a release version, selected by conditions and a cone.

    ``where`` is a pandas query over the catalog's columns (``"snrg > 20 and z < 0.5"``), ``classes``
    keeps rows whose ``class`` is one of them, ``cone`` a :class:`Cone` (or ``(ra, dec, radius_arcsec)``),
    ``columns`` the catalog columns to keep (all by default).
    """

    version: ReleaseVersion
    catalog: str = "lrs"
    where: str | None = None
    classes: tuple[str, ...] = ()
    cone: Cone | None = None
    columns: tuple[str, ...] | None = None
    arrays: tuple[str, ...] = field(default=DEFAULT_ARRAYS)

    def __post_init__(self) -> None:
        # Accept lists and tuples from notebooks, keep the dataclass hashable and its record stable.
        if isinstance(self.classes, str):
            object.__setattr__(self, "classes", (self.classes,))
        object.__setattr__(self, "classes", tuple(self.classes))
        if self.cone is not None and not isinstance(self.cone, Cone):
            object.__setattr__(self, "cone", Cone(*self.cone))
        if self.columns is not None:
            object.__setattr__(self, "columns", tuple(self.columns))
        unknown = set(self.arrays) - set(SPECTRUM_ARRAYS)
        if unknown:
            raise ValueError(f"unknown spectrum arrays {sorted(unknown)}: choose from {SPECTRUM_ARRAYS}")
        object.__setattr__(self, "arrays", tuple(self.arrays))

    @property
    def expression(self) -> str | None:
        """The row condition as one pandas query expression (``None``: every row)."""
        return where_expression(self.where, self.classes)

    def open_catalog(self) -> Any:
        """The selected rows, as a lazy lsdb catalog (with the catalog's margin cache, for cross-matching)."""
        catalog = self.version.open_catalog(self.catalog)
        if self.cone is not None:
            catalog = catalog.cone_search(self.cone.ra, self.cone.dec, self.cone.radius_arcsec)
        if self.expression:
            catalog = catalog.query(self.expression)
        if self.columns is not None:
            catalog = catalog[list(dict.fromkeys(["obsid", "ra", "dec", *self.columns]))]
        return catalog

    def open_spectra(self) -> Any:
        """The selected rows that have a spectrum in the columnar store, with its arrays, lazily.

        Each row holds ``flux``, ``ivar`` and ``andmask`` (see ``arrays``) on the common LRS grid
        (:data:`surveyhub.analysis.WAVELENGTH`) beside the catalog's columns. The join is on ``obsid``
        within HEALPix partitions, which is exact: a spectrum and its catalog row share their position.
        """
        if self.catalog not in ("lrs", "stellar"):
            raise ValueError(f"spectra belong to LRS rows (catalog lrs or stellar), not {self.catalog!r}")
        spectra = self.version.open_spectra(columns=["obsid", "ra", "dec", *self.arrays])
        if self.cone is not None:
            spectra = spectra.cone_search(self.cone.ra, self.cone.dec, self.cone.radius_arcsec)
        joined = spectra.join(
            self.open_catalog(),
            left_on="obsid",
            right_on="obsid",
            suffixes=("", "_catalog"),
            suffix_method="overlapping_columns",
            log_changes=False,
        )
        keep = [c for c in joined.columns if c not in ("obsid_catalog", "ra_catalog", "dec_catalog")]
        return joined[keep]

    def to_dict(self) -> dict[str, Any]:
        """The query as JSON-ready data: what a result records about where it came from."""
        return {
            "release": self.version.release,
            "version": self.version.version,
            "catalog": self.catalog,
            "where": self.where,
            "classes": list(self.classes),
            "cone": None if self.cone is None else vars(self.cone).copy(),
            "columns": None if self.columns is None else list(self.columns),
            "expression": self.expression,
        }


def select(
    release: str,
    version: str,
    catalog: str = "lrs",
    *,
    where: str | None = None,
    classes: Sequence[str] = (),
    cone: Cone | tuple[float, float, float] | None = None,
    columns: Sequence[str] | None = None,
    arrays: Sequence[str] = DEFAULT_ARRAYS,
    store: ReleaseStore | None = None,
    groups: Iterable[str] | None = None,
) -> Query:
    """A :class:`Query` on ``release/version`` (opened with :func:`open_version`): the notebook one-liner,
    ``select("DEMO", "v2", where="snrg > 20", classes=["STAR"])``."""
    return Query(
        open_version(release, version, store=store, groups=groups),
        catalog,
        where,
        tuple(classes),
        cone if cone is None or isinstance(cone, Cone) else Cone(*cone),
        None if columns is None else tuple(columns),
        tuple(arrays),
    )


def describe_query(query: Query | Mapping[str, Any] | str | None) -> Any:
    """What to record about a query: a :class:`Query`'s own record, or what the caller gave as is."""
    if isinstance(query, Query):
        return query.to_dict()
    if isinstance(query, Mapping):
        return dict(query)
    return query
