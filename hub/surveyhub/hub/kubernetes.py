"""Kubernetes: each user's server is a pod (KubeSpawner) that mounts only the release versions they may read.

On one machine, Unix permissions keep a user out of a version they may not read. In a pod there is no such
lock to rely on: whatever volume is mounted is readable. So the pod gets one read-only ``subPath`` mount of
the release-store volume per *readable* version, computed at each spawn from the same :class:`UserAccess`
as the local spawner, and nothing else of the store; a version the user may not read is absent from the pod.

Inside the pod (the layout the notebooks and the JupyterLab extension expect)::

    /home/jovyan                         the user's own volume (PVC claim-<username>, KubeSpawner's storage)
    /home/jovyan/releases/<rel>/<ver>    one read-only mount per readable version (release-store PVC)
    /home/jovyan/cloud                   subPath users/<username> of the shared cloud PVC (read-write)
    /home/jovyan/teams/<team>            subPath teams/<team> of the cloud PVC, one per team (read-write)

Cluster names that the settings file does not have (the PVCs, how pods reach the proxy, the gateway's
traefik) are a table of their own, ``[hub.extra.SurveyhubKubernetes]``, with the defaults of
:class:`KubernetesOptions`. KubeSpawner's own traits (``[hub.extra.KubeSpawner]``) are applied by
``configure`` after this module, so an operator's value always wins.

Zero to JupyterHub runs its own ``jupyterhub_config.py`` first and then our ``hub.extraConfig`` snippet;
:func:`chart_settings_kept` keeps what the chart owns (its proxy, hub addresses, database, cookie secret,
declared services) while ``configure`` fills in the rest:

>>> from traitlets.config import Config
>>> c = Config()
>>> c.JupyterHub.db_url = "postgresql://hub@db/jupyterhub"   # what the chart set
>>> with chart_settings_kept(c):
...     c.JupyterHub.db_url = "sqlite:///elsewhere.sqlite"   # what a local configuration would set
...     c.JupyterHub.bind_url = "http://127.0.0.1:8000"
>>> c.JupyterHub.db_url, "bind_url" in c.JupyterHub
('postgresql://hub@db/jupyterhub', False)
>>> literal("{x}"), pod_subpath("users", "alice")
('{{x}}', 'users/alice')
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

from surveyhub._version import __version__
from surveyhub.apps.hub_page import SERVICE_NAME as APPS_SERVICE
from surveyhub.hub.access import UserAccess
from surveyhub.hub.environment import ARCHIVE_SERVICE, GATEWAY_SERVICE, server_environment
from surveyhub.hub.settings import Settings, SettingsError
from surveyhub.releases.registry import ReleaseStore

#: The user's home in the lab image (uid 1000, like the Jupyter docker stacks).
HOME = "/home/jovyan"
RELEASES_DIR = f"{HOME}/releases"
CLOUD_DIR = f"{HOME}/cloud"
TEAMS_DIR = f"{HOME}/teams"
#: Pod volume names (DNS labels); one volume each, mounted many times with different subPaths.
RELEASES_VOLUME = "surveyhub-releases"
CLOUD_VOLUME = "surveyhub-cloud"
HOME_VOLUME = "home"
#: The ``hub.extra`` table this module reads.
OPTIONS_SECTION = "SurveyhubKubernetes"

#: What the Zero to JupyterHub chart sets and ``configure`` must not change: the proxy runs in its own pod,
#: the hub listens where the chart's Service expects it, and the database and secrets are the chart's.
#: Keys the chart did not set are removed after ``configure``, because a loopback address or a local file
#: that is right on one machine is wrong in a pod.
CHART_OWNED: dict[str, tuple[str, ...]] = {
    "JupyterHub": (
        "bind_url",
        "ip",
        "port",
        "base_url",
        "hub_bind_url",
        "hub_connect_url",
        "hub_ip",
        "hub_port",
        "hub_connect_ip",
        "db_url",
        "cleanup_servers",
        "cookie_secret",
        "cookie_secret_file",
        "pid_file",
        "last_activity_interval",
        "tornado_settings",
    ),
    "ConfigurableHTTPProxy": ("api_url", "should_start", "auth_token", "command", "pid_file"),
    "CryptKeeper": ("keys",),
}


@dataclass(frozen=True)
class KubernetesOptions:
    """Names of things in the cluster, from ``[hub.extra.SurveyhubKubernetes]`` (defaults: the charts' own
    names when both charts are installed in one namespace as ``deploy/k8s`` does)."""

    #: The image of users' servers; KubeSpawner.image, when set (by the chart or hub.extra), wins.
    image: str = f"surveyhub/lab:{__version__}"
    #: The PVC holding the release store (its root is the store root); mounted read-only, per version.
    release_claim: str = "surveyhub-releases"
    #: A ReadWriteMany PVC with ``users/<username>`` and ``teams/<team>`` folders; "" mounts neither.
    cloud_claim: str = "surveyhub-cloud"
    #: Size of each user's own PVC (``claim-<username>`` at /home/jovyan); "" gives no per-user volume.
    home_capacity: str = "10Gi"
    #: The proxy as pods reach it (the chart's ``proxy-public`` Service): the archive and the gateway API.
    proxy_url: str = "http://proxy-public/"
    #: Where hub-managed services in the hub pod (the archive) listen, as the proxy pod reaches them;
    #: "" is this pod's own address ($POD_IP from the downward API, else what the pod's hostname resolves
    #: to). A managed service listens on its URL's host, so that host must be an address of this pod.
    hub_host: str = ""

    def service_host(self) -> str:
        """The address hub-managed services listen on and the proxy connects to."""
        return self.hub_host or os.environ.get("POD_IP") or socket.gethostbyname(socket.gethostname())

    #: The dask-gateway chart's traefik, as the proxy reaches it (routed at /services/dask-gateway/).
    gateway_url: str = "http://traefik-dask-gateway"
    #: The same traefik for the schedulers' TCP traffic, as clients in users' pods reach it.
    gateway_proxy_address: str = "gateway://traefik-dask-gateway:80"

    @classmethod
    def from_settings(cls, settings: Settings) -> KubernetesOptions:
        """The options of ``settings.hub.extra``; unknown keys and non-strings are refused by name."""
        given = dict(settings.hub.extra.get(OPTIONS_SECTION, {}))
        known = {f.name for f in dataclasses.fields(cls)}
        for key, value in given.items():
            if key not in known:
                raise SettingsError(f"unknown setting hub.extra.{OPTIONS_SECTION}.{key}")
            if not isinstance(value, str):
                raise SettingsError(f"setting hub.extra.{OPTIONS_SECTION}.{key} must be a string")
        return cls(**given)


def literal(value: str) -> str:
    """``value`` as KubeSpawner leaves it: KubeSpawner fills ``{username}``-style fields in volumes,
    mounts and environment values with ``str.format``, so braces of our own (JSON, odd team names) must
    be doubled or the spawn fails (or, worse, a name is read as a field)."""
    return value.replace("{", "{{").replace("}", "}}")


def pod_subpath(*parts: str) -> str:
    """A ``subPath`` inside a shared volume; refuses parts that could climb out of it or name nothing.

    Kubernetes itself refuses ``..`` in a subPath; checking here names the user or team at fault.
    """
    for part in parts:
        if not part or part in (".", "..") or "/" in part or "\0" in part:
            raise ValueError(f"{part!r} cannot be a folder name in a shared volume")
    return "/".join(parts)


def user_mounts(access: UserAccess, options: KubernetesOptions) -> tuple[list[dict], list[dict]]:
    """The volumes and volumeMounts of one user's pod: readable versions read-only, cloud and teams
    read-write. A version missing from ``access.versions`` gets no mount at all."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if access.versions:
        volumes.append(
            {
                "name": RELEASES_VOLUME,
                "persistentVolumeClaim": {"claimName": options.release_claim, "readOnly": True},
            }
        )
        for version in access.versions:
            sub = pod_subpath(version.release, version.version)
            mounts.append(
                {
                    "name": RELEASES_VOLUME,
                    "mountPath": f"{RELEASES_DIR}/{sub}",
                    "subPath": sub,
                    "readOnly": True,
                }
            )
    if options.cloud_claim:
        volumes.append({"name": CLOUD_VOLUME, "persistentVolumeClaim": {"claimName": options.cloud_claim}})
        mounts.append(
            {"name": CLOUD_VOLUME, "mountPath": CLOUD_DIR, "subPath": pod_subpath("users", access.username)}
        )
        for team in access.teams:
            mounts.append(
                {
                    "name": CLOUD_VOLUME,
                    "mountPath": f"{TEAMS_DIR}/{pod_subpath(team)}",
                    "subPath": pod_subpath("teams", team),
                }
            )
    return volumes, mounts


def pod_environment(
    settings: Settings,
    options: KubernetesOptions,
    access: UserAccess,
    *,
    token: str | None,
    credentials: Any = None,
) -> dict[str, str]:
    """The platform's variables for one pod: the local ones, with the addresses a pod can reach.

    ``credentials`` is a :class:`surveyhub.hub.credentials.StorageCredentials` for S3 cloud space.
    """
    env = server_environment(
        settings,
        access.username,
        access.teams,
        releases_dir=RELEASES_DIR,
        storage_options=credentials.storage_options() if credentials is not None else None,
        credentials_env=credentials.environment() if credentials is not None else None,
        token=token,
    )
    proxy = options.proxy_url.rstrip("/") + "/"
    archive = f"{proxy}services/{ARCHIVE_SERVICE}/"
    env["SURVEYHUB_ARCHIVE_URL"] = archive
    env["SURVEYHUB_TAP_URL"] = archive + "tap"
    if settings.gateway.enabled:
        env["DASK_GATEWAY__ADDRESS"] = f"{proxy}services/{GATEWAY_SERVICE}"
        env["DASK_GATEWAY__PROXY_ADDRESS"] = options.gateway_proxy_address
        # Dashboard links are opened by the browser, through the public proxy, not by the pod.
        env["DASK_GATEWAY__PUBLIC_ADDRESS"] = f"/services/{GATEWAY_SERVICE}/"
    if options.cloud_claim and urlsplit(settings.cloud.user_url).scheme == "file":
        # Cloud space on the shared volume: the pod sees it at its mount points, not at the hub's paths.
        env["SURVEYHUB_CLOUD_URL"] = f"file://{CLOUD_DIR}/"
        env["SURVEYHUB_TEAMS"] = json.dumps({team: f"file://{TEAMS_DIR}/{team}/" for team in access.teams})
    return env


@dataclass(frozen=True)
class _Group:
    """A group's name and properties, copied off the hub's database session before leaving its thread."""

    name: str
    properties: dict[str, Any]


def _extend(current: Any, additions: list[dict[str, Any]]) -> Any:
    """KubeSpawner's volumes and volume_mounts are a list or a dict (keyed for merging): add to either."""
    if isinstance(current, Mapping):
        merged = dict(current)
        for item in additions:
            merged[f"surveyhub-{item['name']}-{item.get('mountPath', '')}"] = item
        return merged
    return [*(current or []), *additions]


class KubernetesSpawnHook:
    """KubeSpawner's ``pre_spawn_hook``: mounts, environment and S3 credentials of one user's pod.

    Runs in the hub at each start, after JupyterHub made the server's token and before the pod manifest
    is built, so access granted or revoked in the hub takes effect at the next start.
    """

    def __init__(self, settings: Settings, options: KubernetesOptions, broker: Any = None) -> None:
        self.settings = settings
        self.options = options
        self.broker = broker

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        # traitlets deep-copies config into each spawner: one hook (and its broker's clients) serves all.
        return self

    async def access_of(self, spawner: Any) -> UserAccess:
        """The user's groups, teams and readable versions (the store is read off the event loop)."""
        # The hub's database session belongs to the event loop's thread: read the groups here.
        groups = [_Group(g.name, dict(g.properties or {})) for g in spawner.user.groups]
        store = ReleaseStore(self.settings.store.root, self.settings.store.storage_options or None)
        return await asyncio.to_thread(UserAccess.of, spawner.user.name, groups, store)

    async def __call__(self, spawner: Any) -> None:
        # JupyterHub keeps a server's spawner object across restarts: start each time from what the
        # configuration gave, or a version mounted at the last start would stay after access is revoked.
        base = getattr(spawner, "_surveyhub_base", None)
        if base is None:
            base = (
                copy.deepcopy(spawner.volumes),
                copy.deepcopy(spawner.volume_mounts),
                dict(spawner.environment),
            )
            spawner._surveyhub_base = base
        base_volumes, base_mounts, base_env = base
        access = await self.access_of(spawner)
        credentials = None
        if self.broker is not None:
            credentials = await self.broker.issue(access.username, list(access.teams))
        volumes, mounts = user_mounts(access, self.options)
        spawner.volumes = _extend(copy.deepcopy(base_volumes), [_literal_dict(v) for v in volumes])
        spawner.volume_mounts = _extend(copy.deepcopy(base_mounts), [_literal_dict(m) for m in mounts])
        env = pod_environment(
            self.settings, self.options, access, token=spawner.api_token, credentials=credentials
        )
        spawner.environment = {**base_env, **{k: literal(v) for k, v in env.items()}}
        spawner.log.info(
            "surveyhub: %s gets %d release version(s) [%s] and team(s) [%s]",
            access.username,
            len(access.versions),
            ", ".join(access.version_keys),
            ", ".join(access.teams),
        )


def _literal_dict(item: dict[str, Any]) -> dict[str, Any]:
    """A volume or mount with every string kept literal through KubeSpawner's template expansion."""
    out: dict[str, Any] = {}
    for key, value in item.items():
        if isinstance(value, str):
            out[key] = literal(value)
        elif isinstance(value, dict):
            out[key] = _literal_dict(value)
        else:
            out[key] = value
    return out


class RevokeCredentials:
    """KubeSpawner's ``post_stop_hook``: IAM users' keys do not expire, so they end with the server."""

    def __init__(self, broker: Any) -> None:
        self.broker = broker

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        # traitlets deep-copies config into each spawner: one hook (and its broker's clients) serves all.
        return self

    async def __call__(self, spawner: Any) -> None:
        await self.broker.revoke(spawner.user.name)


#: What a pod runs as it starts (``postStart``): ``surveyhub.hub.tutorials`` over the home volume.
POD_HOME_SETUP = ["python", "-m", "surveyhub.hub.tutorials", HOME]


def _set_default(c: Any, trait: str, value: Any, sections: tuple[str, ...] = ("KubeSpawner",)) -> None:
    """Set ``c.KubeSpawner.<trait>`` unless the chart (or anything earlier) already set it in ``sections``."""
    if not any(trait in c[section] for section in sections):
        setattr(c.KubeSpawner, trait, value)


def _is_culler(service: Mapping[str, Any]) -> bool:
    """Whether a hub service is jupyterhub-idle-culler (found by its command, whatever its name)."""
    return any("jupyterhub_idle_culler" in str(arg) for arg in service.get("command", []))


def _services_for_cluster(c: Any, settings: Settings, options: KubernetesOptions) -> None:
    """Hub services as they run in a cluster: the archive in the hub pod, at an address of the pod that the
    proxy (another pod) can reach; dask-gateway is the dask-gateway chart's, an external service; the culler
    talks to the hub directly."""
    services = [dict(s) for s in c.JupyterHub.get("services", [])]
    fixed: list[dict[str, Any]] = []
    for service in services:
        name = service.get("name")
        if name in (ARCHIVE_SERVICE, APPS_SERVICE) and "url" in service:
            port = urlsplit(service["url"]).port
            service["url"] = f"http://{options.service_host()}:{port}"
        elif name == GATEWAY_SERVICE and "command" in service:
            service = {
                key: value
                for key, value in service.items()
                if key in ("name", "api_token", "oauth_no_confirm")
            }
            service["url"] = options.gateway_url
            service["display"] = False
        elif _is_culler(service) and not any(str(a).startswith("--url") for a in service["command"]):
            # Through the hub's Service the hub pod would have to reach itself; loopback needs no rule.
            url = f"--url=http://127.0.0.1:{settings.hub.hub_port}/hub/api"
            service["command"] = [*service["command"], url]
        fixed.append(service)
    c.JupyterHub.services = fixed


def configure_kubernetes(c: Any, settings: Settings) -> KubernetesOptions:
    """Make ``c`` spawn users' servers as pods with KubeSpawner; returns the cluster options used.

    Called by :func:`surveyhub.hub.configure` after authenticator, database and services are set. Values
    the chart already put into ``c.KubeSpawner`` (image, limits, storage) are kept.
    """
    from surveyhub.hub.credentials import make_broker

    options = KubernetesOptions.from_settings(settings)
    users = settings.users
    broker = make_broker(settings.cloud)  # a settings mistake fails at hub start, not at the first spawn

    c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
    _set_default(c, "image", options.image)
    _set_default(c, "cmd", ["jupyterhub-singleuser"], ("KubeSpawner", "Spawner"))
    c.KubeSpawner.default_url = users.default_url
    c.KubeSpawner.notebook_dir = HOME
    _set_default(c, "uid", 1000)  # jovyan in the lab image
    _set_default(c, "fs_gid", 100)  # volumes are made group-writable for the users group
    if users.mem_limit:
        _set_default(c, "mem_limit", users.mem_limit)
    if users.cpu_limit:
        _set_default(c, "cpu_limit", users.cpu_limit)
    _set_default(c, "start_timeout", users.start_timeout_s)
    # the tutorials (the user's own copies) and the Voila apps' link, from the image, into the home volume
    _set_default(c, "lifecycle_hooks", {"postStart": {"exec": {"command": POD_HOME_SETUP}}})
    if options.home_capacity:
        _set_default(c, "storage_pvc_ensure", True)
        _set_default(c, "pvc_name_template", "claim-{username}")
        _set_default(c, "storage_capacity", options.home_capacity)
        _set_default(c, "storage_access_modes", ["ReadWriteOnce"])
        _set_default(
            c,
            "volumes",
            {HOME_VOLUME: {"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": "{pvc_name}"}}},
        )
        _set_default(c, "volume_mounts", {HOME_VOLUME: {"name": HOME_VOLUME, "mountPath": HOME}})
    c.KubeSpawner.pre_spawn_hook = KubernetesSpawnHook(settings, options, broker)
    if broker is not None:
        c.KubeSpawner.post_stop_hook = RevokeCredentials(broker)
    _services_for_cluster(c, settings, options)
    # Pods are the isolation on Kubernetes: the local "single-user sandbox" banner does not apply.
    template_vars = dict(c.JupyterHub.get("template_vars", {}))
    if "SANDBOX" in str(template_vars.get("announcement", "")):
        template_vars.pop("announcement")
        c.JupyterHub.template_vars = template_vars
    return options


def _merge_by_name(ours: list[dict[str, Any]], chart: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chart entries replace ours of the same name (they carry the chart's tokens); the rest are kept."""
    chart_names = {entry.get("name") for entry in chart}
    return [*(entry for entry in ours if entry.get("name") not in chart_names), *chart]


@contextmanager
def chart_settings_kept(c: Any) -> Iterator[None]:
    """Run ``configure`` inside this in Zero to JupyterHub's ``hub.extraConfig``: afterwards, what the
    chart owns (:data:`CHART_OWNED`) is as the chart set it, and the chart's services and roles (with the
    tokens it generated, e.g. dask-gateway's) replace ours of the same name."""
    kept = {
        (section, trait): copy.deepcopy(c[section][trait])
        for section, traits in CHART_OWNED.items()
        for trait in traits
        if trait in c[section]
    }
    chart_services = copy.deepcopy(list(c.JupyterHub.get("services", [])))
    chart_roles = copy.deepcopy(list(c.JupyterHub.get("load_roles", [])))
    yield
    for section, traits in CHART_OWNED.items():
        for trait in traits:
            if (section, trait) in kept:
                c[section][trait] = kept[section, trait]
            elif trait in c[section]:
                del c[section][trait]
    c.JupyterHub.services = _merge_by_name(list(c.JupyterHub.get("services", [])), chart_services)
    c.JupyterHub.load_roles = _merge_by_name(list(c.JupyterHub.get("load_roles", [])), chart_roles)
