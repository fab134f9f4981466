"""Running the archive service: standalone (``surveyhub archive``) for development, or as a hub service.

Standalone, it serves a store without a hub: anonymous callers see public versions only (when
``--allow-anonymous`` is given), and a tokens file can name development users and their groups.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

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
) -> None:
    """Serve until SIGINT or SIGTERM."""
    engine = ArchiveEngine(ReleaseStore(root), cache_dir, limits)
    database = PlatformDatabase.connect(database_url) if database_url else None
    app = make_app(engine, build_identity(tokens_file, allow_anonymous), base_url=base_url, database=database)
    server = HTTPServer(app, xheaders=True)
    server.listen(port, address=host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    who = "anonymous callers see public versions" if allow_anonymous else "anonymous access is off"
    print(f"surveyhub archive serving {root} at http://{host}:{port}{base_url} ({who})", flush=True)
    await stop.wait()
    server.stop()
    await server.close_all_connections()
