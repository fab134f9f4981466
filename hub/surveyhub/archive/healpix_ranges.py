"""Sky regions as ranges of order-29 nested HEALPix indices: how a cone avoids a full scan.

Catalog rows carry ``_healpix_29`` (HATS's spatial index) and the serving copies are sorted on it, so a
region becomes a handful of contiguous index ranges, found by binary search, followed by an exact
angular-distance test on the few candidate rows. Pixel coverage comes from ``healpy.query_disc`` /
``query_polygon`` with ``inclusive=True``: the design notes record that cdshealpix's cone coverage dropped
pixels inside large cones, and the tests check these ranges against brute force on many cones.

>>> ranges = cone_ranges(10.0, 20.0, 1 / 60)
>>> bool(ranges.shape[1] == 2 and (ranges[:, 0] < ranges[:, 1]).all())
True
"""

from __future__ import annotations

import healpy as hp
import numpy as np

ORDER_MAX = 29


def _order_for_radius(radius_deg: float) -> int:
    """A coverage order whose pixels are about a third of the radius: few pixels, little excess area."""
    if radius_deg <= 0:
        return 20
    # Pixel size at order k is about 58.6 / 2**k degrees.
    k = int(np.floor(np.log2(58.6 / max(radius_deg / 3.0, 1e-9))))
    return int(np.clip(k, 3, 20))


def _pixels_to_ranges(pixels: np.ndarray, order: int) -> np.ndarray:
    """Nested pixels at ``order`` -> merged half-open ranges ``[lo, hi)`` of order-29 indices."""
    if pixels.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    pixels = np.unique(pixels.astype(np.int64))
    shift = 2 * (ORDER_MAX - order)
    breaks = np.flatnonzero(np.diff(pixels) != 1) + 1
    starts = pixels[np.r_[0, breaks]]
    ends = pixels[np.r_[breaks - 1, pixels.size - 1]] + 1
    return np.stack([starts << shift, ends << shift], axis=1)


def cone_ranges(ra: float, dec: float, radius_deg: float, *, order: int | None = None) -> np.ndarray:
    """Order-29 index ranges that together cover the cone (a superset: test distances afterwards)."""
    order = _order_for_radius(radius_deg) if order is None else order
    vec = hp.ang2vec(ra, dec, lonlat=True)
    pixels = hp.query_disc(2**order, vec, np.radians(radius_deg), inclusive=True, nest=True)
    return _pixels_to_ranges(pixels, order)


def polygon_ranges(vertices: np.ndarray, *, order: int | None = None) -> np.ndarray:
    """Ranges covering a convex spherical polygon given as (n, 2) ra/dec vertices in degrees."""
    vertices = np.asarray(vertices, dtype=np.float64)
    if order is None:
        span = float(np.max(angular_distance(vertices[:, 0], vertices[:, 1], *vertices.mean(axis=0))))
        order = _order_for_radius(max(span, 1e-6))
    vecs = hp.ang2vec(vertices[:, 0], vertices[:, 1], lonlat=True)
    pixels = hp.query_polygon(2**order, vecs, inclusive=True, nest=True)
    return _pixels_to_ranges(pixels, order)


def angular_distance(ra1: np.ndarray, dec1: np.ndarray, ra2: float, dec2: float) -> np.ndarray:
    """Great-circle distance in degrees (haversine: exact for tiny and large separations alike)."""
    r1, d1, r2, d2 = np.radians(ra1), np.radians(dec1), np.radians(ra2), np.radians(dec2)
    a = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))


def rows_in_ranges(sorted_index: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """Row ``[start, stop)`` spans of a sorted index array that fall inside the order-29 ``ranges``."""
    if ranges.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    starts = np.searchsorted(sorted_index, ranges[:, 0], side="left")
    stops = np.searchsorted(sorted_index, ranges[:, 1], side="left")
    keep = stops > starts
    return np.stack([starts[keep], stops[keep]], axis=1)
