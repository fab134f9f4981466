"""Catalog files as LAMOST distributes them: FITS tables and CSV with '|' or ','."""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.table import Table

from surveyhub.releases.ingest import IngestRefused, read_catalog_file


@pytest.mark.parametrize("sep", ["|", ","])
def test_csv_with_either_separator(tmp_path: Path, sep: str) -> None:
    path = tmp_path / "dr1.csv"
    path.write_text(
        sep.join(["OBSID", "Designation", "teff"]) + "\n" + sep.join(["101013", "LAMOST J1", "5500.5"])
    )
    df = read_catalog_file(path)
    assert list(df.columns) == ["obsid", "designation", "teff"]
    assert df.loc[0, "obsid"] == 101013
    assert df.loc[0, "teff"] == 5500.5


def test_fits_table(tmp_path: Path) -> None:
    path = tmp_path / "dr1.fits"
    Table({"OBSID": [101013, 677503031], "CLASS": ["STAR", "GALAXY"]}).write(path)
    df = read_catalog_file(path)
    assert list(df["obsid"]) == [101013, 677503031]
    assert list(df["class"]) == ["STAR", "GALAXY"]


def test_unreadable_catalog_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.fits"
    path.write_bytes(b"SIMPLE  = nonsense")
    with pytest.raises(IngestRefused, match=r"broken\.fits: cannot be read"):
        read_catalog_file(path)
