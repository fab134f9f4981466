"""dask-gateway-server's config file when the hub runs it as a service (``dask-gateway-server -f`` this)."""

from surveyhub.gateway.config import configure_gateway
from surveyhub.hub.settings import Settings

configure_gateway(c, Settings.load())  # type: ignore[name-defined] # noqa: F821 - `c` is dask-gateway's
