"""Standard spectral lines for marking spectra (vacuum rest wavelengths in Angstrom, as LAMOST's grid is).

The lists are those a LAMOST spectrum viewer marks: the strong nebular/AGN emission lines and the stellar
absorption features of the LRS range (3700-9100 A), plus the UV lines that redshifted quasars bring in.

>>> observed(Line("Halpha", 6564.61, "emission"), 0.1)
7221.071
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["emission", "absorption", "custom"]


@dataclass(frozen=True)
class Line:
    """A line: its label, vacuum rest wavelength (Angstrom) and kind."""

    name: str
    rest: float
    kind: Kind


# The Greek letters in line names are meant (H-alpha, Ly-alpha): noqa RUF001 on those lines.
EMISSION: tuple[Line, ...] = tuple(
    Line(n, w, "emission")
    for n, w in (
        ("Lyα", 1215.67),  # noqa: RUF001
        ("C IV", 1549.06),
        ("C III]", 1908.73),
        ("Mg II", 2799.12),
        ("[O II]", 3728.48),
        ("[Ne III]", 3870.16),
        ("Hδ", 4102.89),
        ("Hγ", 4341.68),  # noqa: RUF001
        ("Hβ", 4862.68),
        ("[O III]", 4960.30),
        ("[O III]", 5008.24),
        ("He I", 5877.25),
        ("[O I]", 6302.05),
        ("[N II]", 6549.86),
        ("Hα", 6564.61),  # noqa: RUF001
        ("[N II]", 6585.27),
        ("[S II]", 6718.29),
        ("[S II]", 6732.67),
    )
)

ABSORPTION: tuple[Line, ...] = tuple(
    Line(n, w, "absorption")
    for n, w in (
        ("Ca II K", 3934.78),
        ("Ca II H", 3969.59),
        ("G band", 4305.61),
        ("Hγ", 4341.68),  # noqa: RUF001
        ("Hβ", 4862.68),
        ("Mg b", 5176.70),
        ("Na D", 5894.57),
        ("Hα", 6564.61),  # noqa: RUF001
        ("Ca II", 8500.36),
        ("Ca II", 8544.44),
        ("Ca II", 8664.52),
    )
)


def observed(line: Line, z: float) -> float:
    """Where ``line`` falls at redshift ``z`` (observed = rest * (1 + z)), rounded to 1 mA."""
    return round(line.rest * (1.0 + z), 3)


def parse_custom(name: str, rest: str | float) -> Line:
    """A user's line from a name and a rest wavelength in Angstrom; ValueError says what is wrong."""
    label = name.strip()
    if not label:
        raise ValueError("line name: give the line a name (e.g. 'Fe II')")
    try:
        value = float(rest)
    except (TypeError, ValueError):
        raise ValueError(f"rest wavelength: {rest!r} is not a number of Angstrom") from None
    if not 500.0 <= value <= 100_000.0:
        raise ValueError(f"rest wavelength: {value} A is outside 500-100000 A")
    return Line(label, value, "custom")
