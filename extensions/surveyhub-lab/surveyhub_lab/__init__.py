"""surveyhub's JupyterLab extension, server half: search the archive, preview spectra, import them.

The frontend (a later step) talks only to the routes of :mod:`surveyhub_lab.handlers`; the heavy work runs
here, in the user's own server, with the user's own credentials.
"""

from __future__ import annotations

try:
    from surveyhub_lab._version import __version__
except ImportError:  # a source tree that was never built or installed: hatch writes _version.py
    import warnings

    warnings.warn("Importing 'surveyhub_lab' outside a proper installation.", stacklevel=2)
    __version__ = "dev"


def _jupyter_server_extension_points() -> list[dict[str, object]]:
    """The server extension Jupyter Server loads: the :class:`~surveyhub_lab.app.SurveyhubLab` app."""
    from surveyhub_lab.app import SurveyhubLab

    return [{"module": "surveyhub_lab", "app": SurveyhubLab}]
