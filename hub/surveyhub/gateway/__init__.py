"""dask-gateway for the platform: the server's configuration, and the backend that runs clusters as users."""
