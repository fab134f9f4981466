"""Where a mock LAMOST survey points: plate centres over the northern sky, denser toward the anticentre.

LAMOST observes from Xinglong (latitude 40 N) at declinations from about -10 to +90 degrees, with the
LEGUE Galactic survey concentrating on the Galactic anticentre and the plane. We draw plate centres with a
weight that rises toward Galactic longitude 180 and latitude 0, so density maps, cone searches and
partitioning behave as they do on the real survey (HEALPix partitions of very unequal size).
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

DEC_MIN, DEC_MAX = -10.0, 90.0
#: LAMOST's field of view is 5 degrees across.
PLATE_RADIUS_DEG = 2.5


def plate_weight(l_deg: np.ndarray, b_deg: np.ndarray) -> np.ndarray:
    """Relative plate density at Galactic (l, b): a floor, plus the anticentre and the plane."""
    anticentre = 0.5 * (1.0 + np.cos(np.radians(l_deg - 180.0)))
    plane = np.exp(-np.abs(b_deg) / 12.0)
    return 0.25 + 0.75 * anticentre * plane + 0.35 * plane


def plate_centres(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``n`` plate centres (ra, dec, l, b in degrees) by rejection sampling on the sphere."""
    ra_out: list[np.ndarray] = []
    dec_out: list[np.ndarray] = []
    got = 0
    zmin, zmax = np.sin(np.radians(DEC_MIN)), np.sin(np.radians(DEC_MAX))
    while got < n:
        m = max(4 * (n - got), 64)
        ra = rng.uniform(0.0, 360.0, m)
        dec = np.degrees(np.arcsin(rng.uniform(zmin, zmax, m)))
        gal = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, frame="icrs").galactic
        keep = rng.uniform(0.0, 1.25, m) < plate_weight(gal.l.deg, gal.b.deg)
        ra_out.append(ra[keep])
        dec_out.append(dec[keep])
        got += int(keep.sum())
    ra_all = np.concatenate(ra_out)[:n]
    dec_all = np.concatenate(dec_out)[:n]
    gal = SkyCoord(ra=ra_all * u.deg, dec=dec_all * u.deg, frame="icrs").galactic
    return ra_all, dec_all, gal.l.deg, gal.b.deg


def scatter_in_plate(
    rng: np.random.Generator, ra0: np.ndarray, dec0: np.ndarray, radius_deg: float = PLATE_RADIUS_DEG
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform positions within ``radius_deg`` of each centre (one position per centre given)."""
    # Uniform on the spherical cap around the pole, then rotated to the centre.
    cos_r = np.cos(np.radians(radius_deg))
    z = rng.uniform(cos_r, 1.0, ra0.size)
    phi = rng.uniform(0.0, 2 * np.pi, ra0.size)
    s = np.sqrt(1.0 - z * z)
    x, y = s * np.cos(phi), s * np.sin(phi)
    a, d = np.radians(ra0), np.radians(dec0)
    # Rotate the pole (0, 0, 1) onto (a, d): first about y by (90 - d), then about z by a.
    cd, sd = np.cos(np.pi / 2 - d), np.sin(np.pi / 2 - d)
    x1, z1 = x * cd + z * sd, -x * sd + z * cd
    ca, sa = np.cos(a), np.sin(a)
    x2, y2 = x1 * ca - y * sa, x1 * sa + y * ca
    ra = np.mod(np.degrees(np.arctan2(y2, x2)), 360.0)
    dec = np.degrees(np.arcsin(np.clip(z1, -1.0, 1.0)))
    return ra, dec
