"""Keep the apps' kernels quick to start: skip one optional import that costs seconds here.

``plotly.graph_objects.FigureWidget`` imports ``nbformat``, which imports ``jsonschema``, whose format
checkers import ``rfc3987_syntax`` if it is installed, only to validate ``"format": "iri"`` strings; that
package builds a grammar at import, about 3-4 s on these machines, for every kernel that draws a figure.
The apps never validate IRIs, so their kernels mark it as absent before ``jsonschema`` loads (jsonschema
then leaves out the ``iri`` checker, as it does wherever the package is not installed). Nothing changes in a
process that has already imported ``jsonschema``.
"""

from __future__ import annotations

import sys

SLOW_OPTIONAL = ("rfc3987_syntax",)


def skip_slow_optional_imports() -> None:
    """Make ``import rfc3987_syntax`` fail fast in this process, if ``jsonschema`` is not loaded yet."""
    if "jsonschema" in sys.modules:
        return
    for name in SLOW_OPTIONAL:
        sys.modules.setdefault(name, None)  # type: ignore[assignment] - None means "not importable"
