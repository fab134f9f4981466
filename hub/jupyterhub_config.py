"""JupyterHub loads this; it only calls surveyhub.hub.configure (settings file: $SURVEYHUB_CONFIG)."""

from surveyhub.hub import configure

configure(c)  # type: ignore[name-defined] # noqa: F821 - `c` is the config object JupyterHub provides
