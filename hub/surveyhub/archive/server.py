"""Running the archive service: standalone (``surveyhub archive``) for development, or as a hub service.

Standalone, it serves a store without a hub: anonymous callers see public versions only (when
``--allow-anonymous`` is given), and a tokens file can name development users and their groups.

Under the hub (``--hub``), JupyterHub starts it as a managed service and tells it, in the environment,
where to listen (``JUPYTERHUB_SERVICE_URL``), under which prefix it is reached through the proxy
(``JUPYTERHUB_SERVICE_PREFIX``) and how to ask the hub who a caller is (:mod:`.hub_identity`).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tornado.httpserver import HTTPServer

from surveyhub.archive.app import make_app
from surveyhub.archive.database import PlatformDatabase
from surveyhub.archive.engine import ArchiveEngine, Limits
from surveyhub.archive.identity import AnonymousIdentity, Identity, StaticTokenIdentity
from surveyhub.releases.registry import ReleaseStore


def build_identity(tokens_file: str | None, allow_anonymous: bool) -> Identity:
    """The identity provider for a standalone service."""
    if tokens_file:
        return StaticTokenIdentity.from_file(tokens_file, allow_anonymous=allow_anonymous)
    return AnonymousIdentity(allow_anonymous)


@dataclass(frozen=True)
class HubService:
    """Where a hub-managed service listens and the prefix the proxy routes to it."""

    host: str
    port: int
    base_url: str

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> HubService:
        """Read ``JUPYTERHUB_SERVICE_URL`` and ``JUPYTERHUB_SERVICE_PREFIX`` (set by the hub)."""
        from surveyhub.archive.hub_identity import HubEnvironmentError

        env = os.environ if environ is None else environ
        url = env.get("JUPYTERHUB_SERVICE_URL", "")
        prefix = env.get("JUPYTERHUB_SERVICE_PREFIX", "")
        if not url or not prefix:
            raise HubEnvironmentError(
                "--hub needs JUPYTERHUB_SERVICE_URL and JUPYTERHUB_SERVICE_PREFIX: "
                "declare the service with a 'url' in c.JupyterHub.services"
            )
        parsed = urlparse(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        return cls(parsed.hostname or "127.0.0.1", port, prefix)


async def serve(
    root: str,
    *,
    port: int,
    host: str = "127.0.0.1",
    base_url: str = "/",
    cache_dir: str | Path = "var/archive-cache",
    tokens_file: str | None = None,
    allow_anonymous: bool = False,
    limits: Limits | None = None,
    database_url: str | None = None,
    hub: bool = False,
) -> None:
    """Serve until SIGINT or SIGTERM; with ``hub``, as a JupyterHub-managed service.

    Under the hub, where to listen and the prefix come from the hub's environment, not from ``host``,
    ``port`` and ``base_url``, so that the proxy's route and the service always agree.
    """
    extra_handlers: list[Any] = []
    extra_settings: dict[str, Any] = {}
    identity: Identity
    if hub:
        from surveyhub.archive.hub_identity import HubIdentity

        if tokens_file:
            raise ValueError("--tokens is for the standalone service: under the hub, the hub names callers")
        where = HubService.from_environment()
        host, port, base_url = where.host, where.port, where.base_url
        hub_identity = HubIdentity.from_environment(allow_anonymous=allow_anonymous)
        identity = hub_identity
        extra_handlers = hub_identity.handlers()
        extra_settings = hub_identity.settings()
    else:
        identity = build_identity(tokens_file, allow_anonymous)
    engine = ArchiveEngine(ReleaseStore(root), cache_dir, limits)
    database = PlatformDatabase.connect(database_url) if database_url else None
    app = make_app(
        engine,
        identity,
        base_url=base_url,
        database=database,
        extra_handlers=extra_handlers,
        extra_settings=extra_settings,
    )
    server = HTTPServer(app, xheaders=True)
    server.listen(port, address=host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    who = "anonymous callers see public versions" if allow_anonymous else "anonymous access is off"
    if hub:
        who += "; callers identified by JupyterHub"
    print(f"surveyhub archive serving {root} at http://{host}:{port}{base_url} ({who})", flush=True)
    await stop.wait()
    server.stop()
    await server.close_all_connections()
