"""``configure(c, settings)``: the platform's whole JupyterHub configuration from one settings object.

Zero to JupyterHub's habit: one function maps a short settings document onto traitlets, and everything
(production, ``make up``, the tests) runs through it. It declares the proxy, the database, the
authenticator, the spawner, the roles (what a user's server token may reach) and the hub-managed services:
the archive at ``/services/archive/``, dask-gateway at ``/services/dask-gateway/`` and the idle culler.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import tomli_w

from surveyhub.apps.hub_page import SERVICE_NAME as APPS_SERVICE
from surveyhub.hub.environment import ARCHIVE_SERVICE, GATEWAY_SERVICE
from surveyhub.hub.settings import Settings, SettingsError
from surveyhub.hub.spawner import SurveyhubSpawner, running_as_root
from surveyhub.hub.team_shares import SCOPES as TEAM_SHARES_SCOPES
from surveyhub.hub.workspace import prepare_state, secure_store
from surveyhub.releases.registry import ReleaseStore

log = logging.getLogger("surveyhub.hub")

#: The archive service's own hub scopes. JupyterHub's answer for a caller's token always carries the
#: caller's name and groups (its identify scopes); ``read:groups`` lets it read a group's properties, to
#: know which groups are teams (the workbench's lists belong to teams).
ARCHIVE_SCOPES: list[str] = ["read:groups"]
#: jupyterhub-idle-culler's scopes, as its README lists them.
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
#: What every user may do: their own things, share their servers, see names to share with, use the
#: platform's services (a server's token gets only scopes its user holds, so these must be here).
USER_SCOPES = [
    "self",
    "shares!user",
    "read:users:name",
    "read:groups:name",
    f"access:services!service={ARCHIVE_SERVICE}",
    f"access:services!service={GATEWAY_SERVICE}",
    f"access:services!service={APPS_SERVICE}",
]
SANDBOX_WARNING = (
    "SINGLE-USER SANDBOX: the hub is not running as root, so it cannot give users accounts of their own. "
    "Every server runs as the hub's own user and can read everything that user can. Use it for yourself "
    "only; run the hub as root (or on Kubernetes) to isolate users."
)


def proxy_command() -> list[str]:
    """configurable-http-proxy: the copy ``make`` installs beside the virtualenv, else the one on PATH."""
    local = Path(sys.prefix) / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
    return [str(local)] if local.exists() else ["configurable-http-proxy"]


def write_effective_settings(settings: Settings) -> Path:
    """The settings as resolved (defaults filled in), for the services to load with ``SURVEYHUB_CONFIG``."""
    path = Path(settings.home) / "hub" / "settings.toml"
    data = dataclasses.asdict(settings)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(tomli_w.dumps(data))
    temporary.chmod(0o600)
    temporary.replace(path)
    return path


ADMIN_SERVICE = "surveyhub-admin"
#: How often a server shared with a team is extended to the team's current members (team_shares.py).
TEAM_SHARES_INTERVAL_S = 3.0


def admin_token_file(settings: Settings) -> Path:
    """Where the operator's API token lives (``surveyhub team`` and ``surveyhub up`` use it): mode 0600."""
    return Path(settings.home) / "hub" / "admin-api-token"


def admin_token(settings: Settings) -> str:
    """The operator's API token, made once (the Zero to JupyterHub dev-config pattern of a fixed token)."""
    path = admin_token_file(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip()


def _authenticator(c: Any, settings: Settings) -> None:
    hub = settings.hub
    c.Authenticator.admin_users = set(hub.admin_users)
    if hub.authenticator == "native":
        # Sign-up is open to anyone; logging in needs an admin's approval at /hub/authorize.
        from surveyhub.hub.native_auth import TEMPLATE_DIR, SurveyhubNativeAuthenticator

        c.JupyterHub.authenticator_class = SurveyhubNativeAuthenticator
        c.JupyterHub.template_paths = [TEMPLATE_DIR]
        c.NativeAuthenticator.open_signup = False
        c.NativeAuthenticator.minimum_password_length = 8
        c.NativeAuthenticator.check_common_password = True
        c.NativeAuthenticator.allow_all = True  # authorisation is the approval, checked at login
    elif hub.authenticator == "pam":
        c.JupyterHub.authenticator_class = "pam"
        c.PAMAuthenticator.allow_all = True  # every account of this machine may log in
    elif hub.authenticator == "generic-oauth":
        c.JupyterHub.authenticator_class = "generic-oauth"
        for key, value in hub.oauth.items():
            setattr(c.GenericOAuthenticator, key, value)
    elif hub.authenticator == "dummy":
        if os.environ.get("SURVEYHUB_TESTING") != "1":
            raise SettingsError("hub.authenticator 'dummy' accepts any password: it is for the tests only")
        c.JupyterHub.authenticator_class = "dummy"
        c.DummyAuthenticator.allow_all = True
        if hub.oauth.get("password"):
            c.DummyAuthenticator.password = hub.oauth["password"]


def _services(c: Any, settings: Settings, settings_file: Path) -> None:
    python = sys.executable
    env = {"SURVEYHUB_CONFIG": str(settings_file), "SURVEYHUB_HOME": settings.home}
    archive = settings.archive
    archive_cmd = [
        python,
        "-m",
        "surveyhub.cli",
        "archive",
        "--hub",
        "--root",
        settings.store.root,
        "--cache",
        archive.cache_dir,
        "--max-radius",
        str(archive.max_radius_deg),
        "--timeout",
        str(archive.timeout_s),
    ]
    if archive.allow_anonymous:
        archive_cmd.append("--allow-anonymous")
    # In the environment, not on the command line: a PostgreSQL URL may hold a password.
    archive_env = env | {"SURVEYHUB_ARCHIVE_DATABASE_URL": archive.database_url}
    services: list[dict[str, Any]] = [
        {"name": ADMIN_SERVICE, "api_token": admin_token(settings)},
        {
            "name": ARCHIVE_SERVICE,
            "url": f"http://127.0.0.1:{archive.port}",
            "command": archive_cmd,
            "environment": archive_env,
            "oauth_no_confirm": True,
            "display": True,
        },
    ]
    roles: list[dict[str, Any]] = [
        {"name": "user", "scopes": USER_SCOPES},
        {"name": "archive-service", "services": [ARCHIVE_SERVICE], "scopes": ARCHIVE_SCOPES},
        {
            "name": "surveyhub-admin",
            "services": [ADMIN_SERVICE],
            "scopes": [
                "admin:users",
                "admin:groups",
                "admin:servers",
                "tokens",
                "shares",
                "read:hub",
                "proxy",
            ],
        },
    ]
    if settings.gateway.enabled:
        services.append(
            {
                "name": GATEWAY_SERVICE,
                "url": f"http://127.0.0.1:{settings.gateway.proxy_port}",
                "command": [
                    str(Path(python).with_name("dask-gateway-server")),
                    "-f",
                    str(Path(__file__).parent.parent / "gateway" / "dask_gateway_config.py"),
                ],
                "environment": env,
                "oauth_no_confirm": True,
            }
        )
    services.append(  # the hub's "Apps" page, in its Services menu (surveyhub.apps.hub_page)
        {
            "name": APPS_SERVICE,
            "url": f"http://127.0.0.1:{settings.hub.apps_port}",
            "command": [python, "-m", "surveyhub.apps.hub_page"],
            "oauth_no_confirm": True,
            "display": True,
        }
    )
    services.append(
        {
            "name": "team-shares",
            "command": [
                python,
                "-m",
                "surveyhub.hub.team_shares",
                "--interval",
                str(TEAM_SHARES_INTERVAL_S),
                "--state",
                str(Path(settings.home) / "hub" / "team-shares.json"),
            ],
            "environment": env,
        }
    )
    roles.append({"name": "team-shares", "services": ["team-shares"], "scopes": TEAM_SHARES_SCOPES})
    if settings.users.idle_timeout_s > 0:
        services.append(
            {
                "name": "idle-culler",
                "command": [
                    python,
                    "-m",
                    "jupyterhub_idle_culler",
                    f"--timeout={settings.users.idle_timeout_s}",
                    f"--cull-every={max(10, min(300, settings.users.idle_timeout_s // 4))}",
                ],
            }
        )
        roles.append({"name": "idle-culler", "services": ["idle-culler"], "scopes": CULLER_SCOPES})
    c.JupyterHub.services = services
    c.JupyterHub.load_roles = roles


def configure(c: Any, settings: Settings | None = None) -> Settings:
    """Fill JupyterHub's config object ``c`` for the platform; returns the settings used."""
    settings = settings or Settings.load()
    on_kubernetes = settings.users.spawner == "kubernetes"
    isolate = running_as_root() and not on_kubernetes
    if on_kubernetes:  # pods isolate users; the store is a volume mounted read-only per version
        Path(settings.home, "hub").mkdir(parents=True, exist_ok=True)
    else:
        prepare_state(settings, isolate=isolate)
        if isolate:
            secure_store(ReleaseStore(settings.store.root, settings.store.storage_options or None))
        else:
            log.warning(SANDBOX_WARNING)
            print(f"\n*** {SANDBOX_WARNING} ***\n", file=sys.stderr, flush=True)
    state = Path(settings.home) / "hub"
    settings_file = write_effective_settings(settings)

    c.JupyterHub.bind_url = settings.hub.bind_url
    c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{settings.hub.hub_port}"
    c.JupyterHub.db_url = settings.hub.db_url
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.hub.proxy_api_port}"
    c.ConfigurableHTTPProxy.command = proxy_command()
    c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
    c.JupyterHub.cleanup_servers = True  # Ctrl-C stops the users' servers too
    if not isolate and not on_kubernetes:
        c.JupyterHub.template_vars = {"announcement": SANDBOX_WARNING}

    _authenticator(c, settings)

    users = settings.users
    c.JupyterHub.spawner_class = SurveyhubSpawner
    c.SurveyhubSpawner.platform = settings
    c.Spawner.default_url = users.default_url
    c.Spawner.start_timeout = users.start_timeout_s
    c.Spawner.http_timeout = users.start_timeout_s
    c.Spawner.notebook_dir = "~"
    if users.mem_limit:
        c.Spawner.mem_limit = users.mem_limit
    if users.cpu_limit:
        c.Spawner.cpu_limit = users.cpu_limit
    c.Spawner.server_token_scopes = [
        "users:activity!user",
        "access:servers!server",
        f"access:services!service={ARCHIVE_SERVICE}",
        f"access:services!service={GATEWAY_SERVICE}",
        "read:users:name",
        "read:groups:name",
        "shares!server",
    ]
    _services(c, settings, settings_file)

    if on_kubernetes:
        from surveyhub.hub.kubernetes import configure_kubernetes

        configure_kubernetes(c, settings)

    for cls, traits in settings.hub.extra.items():
        if cls == "SurveyhubKubernetes":  # the cluster's names, read by kubernetes.py, not a traitlets class
            continue
        for key, value in traits.items():
            setattr(c[cls], key, value)
    return settings
