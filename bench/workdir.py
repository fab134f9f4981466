"""The work folder of a benchmark run."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def work_dir(prefix: str) -> Iterator[Path]:
    """``BENCH_DIR`` when it is set, kept at the end (so a mock release built there is reused by the next
    run); else a fresh temporary folder, removed at the end."""
    given = os.environ.get("BENCH_DIR")
    work = Path(given or tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    try:
        yield work
    finally:
        if not given:
            shutil.rmtree(work, ignore_errors=True)
