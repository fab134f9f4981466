"""Run every benchmark: ``python -m bench [name ...]``."""

from __future__ import annotations

import sys

from bench import analysis, apps, archive, hub, lab_import, lab_search, release_store, workbench

BENCHMARKS = {
    "release_store": release_store.main,
    "archive": archive.main,
    "hub": hub.main,
    "lab_import": lab_import.main,
    "analysis": analysis.main,
    "lab_search": lab_search.main,
    "workbench": workbench.main,
    "apps": apps.main,
}


def main(argv: list[str]) -> int:
    """Run the named benchmarks (all by default)."""
    for name in argv or list(BENCHMARKS):
        BENCHMARKS[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
