"""Cross-matching a release catalog with the external Gaia-like catalog each version carries, with lsdb.

lsdb matches partition by partition (HEALPix pixels aligned between the two catalogs) with a k-d tree. A
source near a partition's edge can have its counterpart in the neighbouring partition; the right
catalog's margin cache (the rows within a few arcseconds outside each partition) is what finds it. So a
match radius wider than the margin could silently lose matches near edges, and is refused here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from surveyhub.analysis.query import Query

#: How many counterparts within the radius "all" keeps at most per source (a k-d tree needs a k).
MAX_NEIGHBORS = 100


def margin_arcsec(catalog: Any) -> float:
    """The margin cache width of an lsdb catalog in arcseconds (0 without one)."""
    margin = getattr(catalog, "margin", None)
    if margin is None:
        return 0.0
    return float(margin.hc_structure.catalog_info.margin_threshold or 0.0)


def crossmatch(
    left: Any,
    right: Any,
    *,
    radius_arcsec: float = 1.0,
    nearest: bool = True,
    max_neighbors: int = MAX_NEIGHBORS,
    suffixes: tuple[str, str] = ("", "_gaia"),
) -> Any:
    """Match two lsdb catalogs: each left row with its nearest right row within ``radius_arcsec``, or,
    with ``nearest=False``, with all right rows within it (up to ``max_neighbors``, nearest first).

    Returns a lazy lsdb catalog of the left columns, the right ones (suffixed where names clash) and
    ``_dist_arcsec``. Left rows without a match are left out.
    """
    if radius_arcsec <= 0:
        raise ValueError("radius_arcsec must be positive")
    width = margin_arcsec(right)
    if radius_arcsec > width:
        raise ValueError(
            f"radius {radius_arcsec:g} arcsec is wider than the right catalog's margin cache "
            f"({width:g} arcsec): matches across partition edges would be lost"
        )
    return left.crossmatch(
        right,
        n_neighbors=1 if nearest else max_neighbors,
        radius_arcsec=radius_arcsec,
        require_right_margin=True,
        suffixes=suffixes,
        suffix_method="overlapping_columns",
        log_changes=False,
    )


def crossmatch_gaia(
    query: Query,
    *,
    radius_arcsec: float = 1.0,
    nearest: bool = True,
    max_neighbors: int = MAX_NEIGHBORS,
    gaia_columns: Sequence[str] | None = None,
) -> Any:
    """The rows of ``query`` matched with its version's Gaia-like catalog (``catalogs/gaia``), lazily.

    ``gaia_columns`` picks the Gaia columns to carry (``source_id``, ``ra``, ``dec``, ``pmra``,
    ``pmdec``, ``parallax``, ``phot_g_mean_mag``; all by default).
    """
    columns = None if gaia_columns is None else list(dict.fromkeys(["ra", "dec", *gaia_columns]))
    gaia = query.version.open_catalog("gaia", columns=columns)
    if query.cone is not None:
        # A cone on the right too prunes its partitions; lsdb keeps the margin for the ones it keeps.
        gaia = gaia.cone_search(query.cone.ra, query.cone.dec, query.cone.radius_arcsec + radius_arcsec)
    return crossmatch(
        query.open_catalog(),
        gaia,
        radius_arcsec=radius_arcsec,
        nearest=nearest,
        max_neighbors=max_neighbors,
    )
