"""surveyhub: a JupyterHub-based science platform for the data releases of spectroscopic sky surveys."""

from surveyhub._version import __version__

__all__ = ["__version__"]
