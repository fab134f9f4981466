"""STILTS taplint, the IVOA's TAP validator, run against a TAP base URL (``make test`` installs stilts)."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def taplint_report(tap_url: str) -> str:
    """taplint's report (errors and warnings only) for the service at ``tap_url``."""
    if shutil.which("stilts") is None:
        pytest.fail("STILTS is not installed: run `make test`, which installs it (apt-get install stilts)")
    done = subprocess.run(
        ["stilts", "taplint", f"tapurl={tap_url}", "report=EW", "maxrepeat=3"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return done.stdout
