"""The LAMOST wavelength grids.

LAMOST writes its spectra on log-linear grids, ``lambda_i = 10**(COEFF0 + COEFF1 * i)`` in vacuum Angstrom,
heliocentric. The low-resolution (LRS) grid is the one every LRS file of DR2 onward uses, so the columnar
spectra store keeps one copy of it and every spectrum as arrays on it. The MRS arms have grids of their own.

>>> wave = lrs_wavelength()
>>> len(wave), round(float(wave[0]), 2), round(float(wave[-1]), 1)
(3909, 3699.99, 9099.1)
"""

from __future__ import annotations

import numpy as np

LRS_COEFF0 = 3.5682
LRS_COEFF1 = 1e-4
LRS_NPIX = 3909

#: MRS coadd grids as (log10 of the first pixel, log10 dispersion, npix), as in the real DR7 MRS coadds:
#: blue 4894-5378 A and red 6292-6851 A at R~7500.
MRS_ARMS: dict[str, tuple[float, float, int]] = {
    "B": (3.68966, 1e-5, 4101),
    "R": (3.79882, 1e-5, 3692),
}


def loglinear_wavelength(coeff0: float, coeff1: float, npix: int) -> np.ndarray:
    """Return ``10**(coeff0 + coeff1 * i)`` for ``i`` in ``0..npix-1`` as float64 Angstrom."""
    return np.power(10.0, coeff0 + coeff1 * np.arange(npix, dtype=np.float64))


def lrs_wavelength(npix: int = LRS_NPIX) -> np.ndarray:
    """The common LRS wavelength grid (vacuum Angstrom) of ``npix`` pixels."""
    return loglinear_wavelength(LRS_COEFF0, LRS_COEFF1, npix)


def mrs_wavelength(arm: str) -> np.ndarray:
    """The MRS wavelength grid of arm ``"B"`` or ``"R"`` (vacuum Angstrom)."""
    coeff0, coeff1, npix = MRS_ARMS[arm]
    return loglinear_wavelength(coeff0, coeff1, npix)
