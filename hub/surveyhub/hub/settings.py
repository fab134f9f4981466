"""The platform's settings: one TOML file (``surveyhub.toml``) with defaults for the embedded case.

Zero to JupyterHub maps a values file onto traitlets in one ``jupyterhub_config.py``; we do the same with a
small typed file, so an operator edits one short document and every part (hub, archive, gateway, spawner)
reads the same values. Unknown keys are refused by name: a misspelt setting must not pass silently.

>>> s = Settings.from_dict({"hub": {"bind_url": "http://0.0.0.0:9000"}}, home="/srv/surveyhub")
>>> s.hub.bind_url, s.store.root, s.hub.db_url
('http://0.0.0.0:9000', '/srv/surveyhub/store', 'sqlite:////srv/surveyhub/hub/jupyterhub.sqlite')
>>> s.cloud.user_url_for("alice")
'file:///srv/surveyhub/cloud/users/alice/'
>>> Settings.from_dict({"hub": {"bind": "x"}})
Traceback (most recent call last):
...
surveyhub.hub.settings.SettingsError: unknown setting hub.bind
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Authenticators the settings may name; ``dummy`` (any password) exists for the tests only.
AUTHENTICATORS = ("native", "pam", "generic-oauth", "dummy")
SPAWNERS = ("local", "kubernetes")


class SettingsError(ValueError):
    """A settings file that cannot be used, naming the key or the reason."""


@dataclass
class HubSettings:
    """The hub process: where it listens, its database and who administers it."""

    bind_url: str = "http://127.0.0.1:8000"  # the proxy's public address: what people open
    hub_port: int = 8081  # the hub process itself, on loopback (behind the proxy)
    proxy_api_port: int = 8001  # configurable-http-proxy's REST API, on loopback
    apps_port: int = 8894  # the "Apps" page service (surveyhub.apps.hub_page), on loopback
    db_url: str = ""  # default: SQLite in the state folder
    admin_users: list[str] = field(default_factory=lambda: ["admin"])
    authenticator: str = "native"  # one of AUTHENTICATORS
    #: GenericOAuthenticator traits (client_id, client_secret, authorize_url, token_url, userdata_url, ...).
    oauth: dict[str, Any] = field(default_factory=dict)
    #: JupyterHub's own traits by class, for anything this file does not name (``{"Spawner": {...}}``).
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class StoreSettings:
    """The release store."""

    root: str = ""  # default: <home>/store
    storage_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class CloudSettings:
    """Each user's and each team's own space: fsspec URL templates."""

    user_url: str = ""  # default: file://<home>/cloud/users/{username}/
    team_url: str = ""  # default: file://<home>/cloud/teams/{team}/
    s3_endpoint: str = ""  # for s3:// templates on S3-compatible storage
    #: The credential broker for s3:// templates (``surveyhub.hub.credentials``): ``kind`` is ``iam-user``
    #: or ``sts``, with the broker's own keys (admin key, role ARN, region, duration).
    credentials: dict[str, Any] = field(default_factory=dict)

    def user_url_for(self, username: str) -> str:
        """The cloud space URL of one user."""
        return self.user_url.format(username=username)

    def team_url_for(self, team: str) -> str:
        """The cloud space URL of one team."""
        return self.team_url.format(team=team)


@dataclass
class UserSettings:
    """Each user's server: accounts, limits and culling."""

    home_root: str = "/home"  # where system accounts' homes are made, when the hub runs as root
    account_prefix: str = "sh-"  # system account of hub user alice: sh-alice (TLJH uses jupyter-)
    spawner: str = "local"  # "local" (processes on this machine) or "kubernetes" (KubeSpawner)
    python: str = ""  # interpreter of user servers; default: the hub's own
    default_url: str = "/lab"
    idle_timeout_s: int = 3600  # culled after this long idle; 0 turns culling off
    mem_limit: str = ""  # e.g. "4G"; enforced by spawners that can (systemd, Kubernetes)
    cpu_limit: float = 0.0
    start_timeout_s: int = 120


@dataclass
class ArchiveSettings:
    """The archive service, run by the hub at /services/archive/."""

    port: int = 8890
    allow_anonymous: bool = False
    cache_dir: str = ""  # default: <home>/archive-cache
    max_radius_deg: float = 10.0
    timeout_s: float = 60.0
    #: The platform database (query history, TAP jobs, workbench lists and verdicts), a SQLAlchemy URL:
    #: ``postgresql+psycopg://user:password@host/db`` in production; default SQLite in the state folder.
    database_url: str = ""


@dataclass
class GatewaySettings:
    """dask-gateway, run by the hub at /services/dask-gateway/ (the daskhub pattern)."""

    enabled: bool = True
    api_port: int = 8891  # the gateway's own API, behind its proxy
    proxy_port: int = 8892  # HTTP (API and dashboards), what the hub routes /services/dask-gateway/ to
    scheduler_port: int = 8893  # TCP for clients to reach their schedulers
    max_workers: int = 4  # per cluster
    worker_cores: float = 1.0  # default of the cluster option `worker_cores` (whole cores)
    worker_memory: str = "2G"  # default of the cluster option `worker_memory` (K, M, G, T: binary units)
    idle_timeout_s: int = 1800  # clusters with no work for this long stop; users may choose less; 0: never
    # The largest workers a user may ask for with `Gateway().cluster_options()`: bounds of the options.
    max_worker_cores: int = 2  # on a 2-core machine, a worker may have the whole machine
    max_worker_memory: str = "4G"
    # Per-user limits, over all of a user's clusters together (workers only: schedulers are small). A
    # request beyond them is refused (clusters) or scaled down (workers) with a message saying so.
    user_max_clusters: int = 2  # pending or running clusters at once
    user_max_workers: int = 4  # workers at once
    user_max_cores: float = 2.0  # worker cores at once: by default what a 2-core machine has
    user_max_memory: str = "4G"  # worker memory at once: two default workers

    def __post_init__(self) -> None:
        """Make the sizes nest: worker default <= largest a user may choose <= the user's own limit.

        A bound below the default would refuse the default itself, and a user limit below one largest
        worker would leave it no room, so such bounds are raised to fit rather than refused: settings
        written before these keys existed (``worker_memory = "8G"``) keep meaning what they meant. Values
        no cluster could use are refused by name.

        >>> g = GatewaySettings(worker_memory="8G", worker_cores=4)
        >>> g.max_worker_memory, g.user_max_memory, g.max_worker_cores, g.user_max_cores
        ('8G', '8G', 4, 4.0)
        """
        for name in ("worker_memory", "max_worker_memory", "user_max_memory"):
            self.memory_bytes(name)  # refuses what is not a size
        if self.worker_cores != int(self.worker_cores) or self.worker_cores < 1:
            raise SettingsError("gateway.worker_cores must be a whole number of cores, at least 1")
        if min(self.max_worker_cores, self.user_max_clusters, self.user_max_workers) < 1:
            raise SettingsError(
                "gateway.max_worker_cores, user_max_clusters and user_max_workers must be >= 1"
            )
        self.max_worker_cores = max(self.max_worker_cores, int(self.worker_cores))
        self.user_max_cores = float(max(self.user_max_cores, self.max_worker_cores))
        if self.memory_bytes("max_worker_memory") < self.memory_bytes("worker_memory"):
            self.max_worker_memory = self.worker_memory
        if self.memory_bytes("user_max_memory") < self.memory_bytes("max_worker_memory"):
            self.user_max_memory = self.max_worker_memory

    def memory_bytes(self, name: str) -> int:
        """A memory setting in bytes, read as dask-gateway reads it (``"2G"`` is 2 GiB).

        >>> GatewaySettings(worker_memory="1.5G").memory_bytes("worker_memory")
        1610612736
        """
        value = str(getattr(self, name)).strip()
        units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
        try:
            return int(float(value[:-1]) * units[value[-1].upper()]) if value[-1:].isalpha() else int(value)
        except (KeyError, ValueError):
            raise SettingsError(f"gateway.{name} {value!r}: use a number of bytes or K, M, G, T") from None


@dataclass
class Settings:
    """Every setting of the platform; ``home`` is the state folder that the defaults live under."""

    home: str = "var"
    hub: HubSettings = field(default_factory=HubSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    cloud: CloudSettings = field(default_factory=CloudSettings)
    users: UserSettings = field(default_factory=UserSettings)
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)

    def __post_init__(self) -> None:
        home = Path(self.home).absolute()
        self.home = str(home)
        self.hub.db_url = self.hub.db_url or f"sqlite:///{home / 'hub' / 'jupyterhub.sqlite'}"
        self.store.root = self.store.root or str(home / "store")
        self.cloud.user_url = self.cloud.user_url or f"file://{home}/cloud/users/{{username}}/"
        self.cloud.team_url = self.cloud.team_url or f"file://{home}/cloud/teams/{{team}}/"
        self.archive.cache_dir = self.archive.cache_dir or str(home / "archive-cache")
        self.archive.database_url = (
            self.archive.database_url or f"sqlite:///{home / 'hub' / 'platform.sqlite'}"
        )
        if self.users.spawner not in SPAWNERS:
            raise SettingsError(f"users.spawner {self.users.spawner!r}: use one of {', '.join(SPAWNERS)}")
        if self.hub.authenticator not in AUTHENTICATORS:
            raise SettingsError(
                f"hub.authenticator {self.hub.authenticator!r}: use one of {', '.join(AUTHENTICATORS)}"
            )
        for name, template, key in (
            ("cloud.user_url", self.cloud.user_url, "{username}"),
            ("cloud.team_url", self.cloud.team_url, "{team}"),
        ):
            if key not in template:
                raise SettingsError(f"{name} {template!r} must contain {key}")

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, home: str | None = None) -> Settings:
        """Settings from a parsed document; unknown keys and wrong types are refused by name."""
        sections = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in sections:
                raise SettingsError(f"unknown setting {key}")
            if key == "home":
                kwargs["home"] = str(value)
                continue
            section_type = sections[key].default_factory  # type: ignore[misc]
            if not isinstance(value, dict):
                raise SettingsError(f"setting {key} must be a table")
            known = {f.name: f for f in dataclasses.fields(section_type)}
            for sub in value:
                if sub not in known:
                    raise SettingsError(f"unknown setting {key}.{sub}")
            try:
                kwargs[key] = section_type(**value)
            except TypeError as exc:
                raise SettingsError(f"setting {key}: {exc}") from exc
        if home is not None:
            kwargs["home"] = home
        elif "home" not in kwargs and os.environ.get("SURVEYHUB_HOME"):
            kwargs["home"] = os.environ["SURVEYHUB_HOME"]
        return cls(**kwargs)

    @classmethod
    def load(cls, path: str | Path | None = None, *, home: str | None = None) -> Settings:
        """Read ``path`` (or ``$SURVEYHUB_CONFIG``); no file at all means every default.

        The state folder is ``home`` if given, else the file's ``home``, else ``$SURVEYHUB_HOME``, else
        ``var`` (relative to where the hub starts)."""
        path = path or os.environ.get("SURVEYHUB_CONFIG")
        if not path:
            return cls.from_dict({}, home=home)
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"settings file {path}: {exc}") from exc
        return cls.from_dict(data, home=home)
