"""The hub: ``configure(c, settings)`` builds JupyterHub's configuration for the platform.

``hub/jupyterhub_config.py`` calls it, and the tests build their hub through the same function, so what
runs in production and what is tested are one configuration.
"""

from surveyhub.hub.config import configure
from surveyhub.hub.settings import Settings

__all__ = ["Settings", "configure"]
