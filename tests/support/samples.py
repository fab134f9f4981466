"""The real LAMOST sample files kept beside the repository in ``../shared/data/lamost-samples``."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO.parent / "shared" / "data" / "lamost-samples"

DR1_PILOT = "spec-55862-B6212_sp06-006.fits"
DR7_IMAGE = "spec-58397-EG014118N254444M01_sp03-031.fits"
DR9_COADD = "spec-55859-F5902_sp01-013_dr8.fits.gz"
DR13_COADD = "spec-60591-LN042429N340750BM01_sp01-001.fits.gz"
DR7_MRS = "med-58408-TD230151N343645T01_sp01-015.fits"
ALL = (DR1_PILOT, DR7_IMAGE, DR9_COADD, DR13_COADD, DR7_MRS)


def samples_dir() -> Path:
    """The samples folder, or a skip naming what is missing (a clone outside this workspace)."""
    if not all((SAMPLES / name).is_file() for name in ALL):
        pytest.skip(
            f"the real LAMOST samples are not at {SAMPLES} (they live beside the repository, not in it)"
        )
    return SAMPLES
