"""The environment of a user's server: everything code needs so that it needs no configuration.

``Gateway()`` with no arguments, ``pyvo.dal.TAPService(os.environ["SURVEYHUB_TAP_URL"])``, and
``fsspec.open(os.environ["SURVEYHUB_CLOUD_URL"] + "x.parquet", **storage_options)`` all work because the
hub puts the addresses and credentials here at spawn (dask-gateway reads its ``DASK_GATEWAY__*`` variables
through dask's config, as daskhub does). The token is the server's own ``JUPYTERHUB_API_TOKEN``, which the
hub issues with the ``access:services!service=archive`` and ``...=dask-gateway`` scopes.

>>> from surveyhub.hub.settings import Settings
>>> s = Settings.from_dict({"hub": {"bind_url": "http://0.0.0.0:8000"}}, home="/srv/sh")
>>> env = server_environment(s, "alice", ["astro"], releases_dir="/home/sh-alice/releases")
>>> env["SURVEYHUB_ARCHIVE_URL"], env["DASK_GATEWAY__ADDRESS"]
('http://127.0.0.1:8000/services/archive/', 'http://127.0.0.1:8000/services/dask-gateway')
>>> env["SURVEYHUB_CLOUD_URL"], env["SURVEYHUB_TEAMS"]
('file:///srv/sh/cloud/users/alice/', '{"astro": "file:///srv/sh/cloud/teams/astro/"}')
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

from surveyhub.hub.settings import Settings

ARCHIVE_SERVICE = "archive"
GATEWAY_SERVICE = "dask-gateway"


def internal_url(bind_url: str) -> str:
    """The proxy's address as a process on this machine reaches it (``0.0.0.0`` means loopback)."""
    parts = urlsplit(bind_url)
    host = parts.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - reading a bind address, not binding
        host = "127.0.0.1"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/", "", ""))


def service_url(settings: Settings, service: str) -> str:
    """Where a hub service is reached through the proxy, ending with '/'."""
    return f"{internal_url(settings.hub.bind_url)}services/{service}/"


def server_environment(
    settings: Settings,
    username: str,
    teams: Sequence[str],
    *,
    releases_dir: str,
    storage_options: Mapping[str, object] | None = None,
    credentials_env: Mapping[str, str] | None = None,
    token: str | None = None,
) -> dict[str, str]:
    """The variables a user's server gets (besides JupyterHub's own ``JUPYTERHUB_*``)."""
    archive = service_url(settings, ARCHIVE_SERVICE)
    env = {
        "SURVEYHUB_RELEASES_DIR": releases_dir,
        "SURVEYHUB_STORE_URL": settings.store.root,
        "SURVEYHUB_STORE_STORAGE_OPTIONS": json.dumps(settings.store.storage_options),
        "SURVEYHUB_CLOUD_URL": settings.cloud.user_url_for(username),
        "SURVEYHUB_CLOUD_STORAGE_OPTIONS": json.dumps(dict(storage_options or {})),
        "SURVEYHUB_TEAMS": json.dumps({team: settings.cloud.team_url_for(team) for team in teams}),
        "SURVEYHUB_ARCHIVE_URL": archive,
        "SURVEYHUB_TAP_URL": archive + "tap",
    }
    if token:
        env["SURVEYHUB_ARCHIVE_TOKEN"] = token
    if settings.gateway.enabled:
        env |= {
            "DASK_GATEWAY__ADDRESS": service_url(settings, GATEWAY_SERVICE).rstrip("/"),
            "DASK_GATEWAY__PROXY_ADDRESS": f"gateway://127.0.0.1:{settings.gateway.scheduler_port}",
            "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
        }
    env |= dict(credentials_env or {})
    return env
