"""KubeSpawner as ``configure_kubernetes`` sets it up: the pods that users would get, built without a cluster.

Everything here is real: JupyterHub's own database objects and ``User`` make the spawner the way the hub
does (``user.spawners[""]``), KubeSpawner builds the pod manifest it would send to the API server, and the
release store holds real published versions. Only the API server is absent: a kubeconfig that names an
unreachable server satisfies KubeSpawner's client set-up, and no request is made before ``start()``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubespawner
import pytest
from jupyterhub import orm
from jupyterhub.objects import Hub
from jupyterhub.user import User
from traitlets.config import Config

from surveyhub._version import __version__
from surveyhub.hub.access import TEAM_PROPERTY
from surveyhub.hub.kubernetes import (
    CLOUD_VOLUME,
    POD_HOME_SETUP,
    RELEASES_VOLUME,
    KubernetesOptions,
    chart_settings_kept,
    configure_kubernetes,
    pod_subpath,
)
from surveyhub.hub.settings import Settings, SettingsError
from surveyhub.releases.manifest import Policy, ReleaseManifest
from surveyhub.releases.registry import ReleaseStore

#: The mock release's policies (``surveyhub release mock``): v0 working group, v1 + partners, v2 public.
POLICIES = {
    "v0": Policy(groups=("lamost-wg",)),
    "v1": Policy(groups=("lamost-wg", "lamost-partners")),
    "v2": Policy(public=True),
}

#: The server token JupyterHub would issue; the archive token in the pod must be this one.
SERVER_TOKEN = "server-token"  # noqa: S105 - a test value, not a secret

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: absent, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: absent, user: {token: never-sent}}]
contexts: [{name: absent, context: {cluster: absent, user: absent}}]
current-context: absent
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ReleaseStore:
    """DEMO v0, v1 and v2 with the mock release's policies; manifests only (mounts need no more)."""
    store = ReleaseStore(str(tmp_path_factory.mktemp("releases")))
    for version, policy in POLICIES.items():
        store.write_manifest(
            ReleaseManifest(
                release="DEMO",
                version=version,
                title="Demo",
                description="",
                policy=policy,
                acknowledgement="",
            )
        )
    return store


@pytest.fixture(autouse=True)
def no_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kubeconfig naming a server nobody listens on (KubeSpawner loads one when it is created)."""
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    from kubernetes_asyncio.config import kube_config

    # The client reads $KUBECONFIG once, at import: point its default at this file instead.
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))


def k8s_settings(store: ReleaseStore, home: Path, **sections: Any) -> Settings:
    data: dict[str, Any] = {
        "users": {"spawner": "kubernetes", "mem_limit": "4G", "cpu_limit": 2.0},
        "store": {"root": store.url},
    }
    data.update(sections)
    return Settings.from_dict(data, home=str(home))


class Hubless:
    """JupyterHub's database with users and groups, and the hub's way of making their spawners."""

    def __init__(self) -> None:
        self.db = orm.new_session_factory("sqlite://")()
        self.groups: dict[str, orm.Group] = {}

    def group(self, name: str, *, team: bool = False) -> orm.Group:
        if name not in self.groups:
            group = orm.Group(name=name, properties={TEAM_PROPERTY: True} if team else {})
            self.db.add(group)
            self.groups[name] = group
        return self.groups[name]

    def user(self, name: str, groups: list[orm.Group]) -> orm.User:
        user = orm.User(name=name)
        self.db.add(user)
        user.groups.extend(groups)
        self.db.commit()
        return user

    def spawner(self, orm_user: orm.User, config: Config) -> Any:
        """The user's default server's spawner, made as the hub makes it (inside a running event loop)."""
        asyncio.get_running_loop()
        settings = {"spawner_class": kubespawner.KubeSpawner, "config": config, "hub": Hub()}
        return User(orm_user, settings=settings).spawners[""]

    def pod(self, orm_user: orm.User, config: Config) -> dict[str, Any]:
        """The pod of one start of the user's server."""

        async def start() -> dict[str, Any]:
            return await pod_of(self.spawner(orm_user, config))

        return asyncio.run(start())


@pytest.fixture
def hub() -> Iterator[Hubless]:
    hubless = Hubless()
    yield hubless
    hubless.db.close()


async def pod_of(spawner: Any, token: str = SERVER_TOKEN) -> dict[str, Any]:
    """Run the pre-spawn hook as JupyterHub does (after giving the server its token), then build the pod.

    Call it in the event loop the spawner was made in: KubeSpawner's API client belongs to that loop.
    """
    from kubernetes_asyncio.client import ApiClient

    spawner.api_token = token
    await spawner.run_pre_spawn_hook()
    pod = await spawner.get_pod_manifest()
    async with ApiClient() as api:
        return api.sanitize_for_serialization(pod)


def container(pod: dict[str, Any]) -> dict[str, Any]:
    [notebook] = [c for c in pod["spec"]["containers"] if c["name"] == "notebook"]
    return notebook


def release_mounts(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["subPath"]: m for m in container(pod)["volumeMounts"] if m["name"] == RELEASES_VOLUME}


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container(pod)["env"]}


def configured(settings: Settings) -> Config:
    c = Config()
    configure_kubernetes(c, settings)
    return c


def test_working_group_member_gets_every_version_read_only_and_team_folders(
    store: ReleaseStore, hub: Hubless, tmp_path: Path
) -> None:
    settings = k8s_settings(store, tmp_path)
    c = configured(settings)
    assert c.JupyterHub.spawner_class == "kubespawner.KubeSpawner"
    alice = hub.user("alice", [hub.group("lamost-wg"), hub.group("astro", team=True)])

    async def start() -> tuple[Any, dict[str, Any]]:
        spawner = hub.spawner(alice, c)
        return spawner, await pod_of(spawner)

    spawner, pod = asyncio.run(start())
    assert isinstance(spawner, kubespawner.KubeSpawner)

    mounts = release_mounts(pod)
    assert set(mounts) == {"DEMO/v0", "DEMO/v1", "DEMO/v2"}
    for sub, mount in mounts.items():
        assert mount["readOnly"] is True
        assert mount["mountPath"] == f"/home/jovyan/releases/{sub}"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes[RELEASES_VOLUME]["persistentVolumeClaim"] == {
        "claimName": "surveyhub-releases",
        "readOnly": True,
    }
    cloud = {m["mountPath"]: m for m in container(pod)["volumeMounts"] if m["name"] == CLOUD_VOLUME}
    assert cloud["/home/jovyan/cloud"]["subPath"] == "users/alice"
    assert cloud["/home/jovyan/teams/astro"]["subPath"] == "teams/astro"
    assert not any(m.get("readOnly") for m in cloud.values())  # read-write
    assert "readOnly" not in volumes[CLOUD_VOLUME]["persistentVolumeClaim"]
    # The user's own volume at the home, from KubeSpawner's per-user claim.
    assert volumes["home"]["persistentVolumeClaim"]["claimName"] == "claim-alice"
    assert spawner.storage_pvc_ensure
    assert spawner.pvc_name == "claim-alice"

    env = env_of(pod)
    assert env["SURVEYHUB_RELEASES_DIR"] == "/home/jovyan/releases"
    assert env["SURVEYHUB_CLOUD_URL"] == "file:///home/jovyan/cloud/"
    assert json.loads(env["SURVEYHUB_TEAMS"]) == {"astro": "file:///home/jovyan/teams/astro/"}
    assert json.loads(env["SURVEYHUB_CLOUD_STORAGE_OPTIONS"]) == {}
    assert env["SURVEYHUB_ARCHIVE_URL"] == "http://proxy-public/services/archive/"
    assert env["SURVEYHUB_TAP_URL"] == "http://proxy-public/services/archive/tap"
    assert env["SURVEYHUB_ARCHIVE_TOKEN"] == SERVER_TOKEN
    assert env["DASK_GATEWAY__ADDRESS"] == "http://proxy-public/services/dask-gateway"
    assert env["DASK_GATEWAY__PROXY_ADDRESS"] == "gateway://traefik-dask-gateway:80"
    assert env["DASK_GATEWAY__AUTH__TYPE"] == "jupyterhub"

    notebook = container(pod)
    assert notebook["image"] == f"surveyhub/lab:{__version__}"
    assert notebook["args"][0] == "jupyterhub-singleuser"
    assert notebook["resources"]["limits"] == {"cpu": 2.0, "memory": 4 * 1024**3}
    assert notebook["securityContext"]["runAsUser"] == 1000
    assert pod["spec"]["securityContext"]["fsGroup"] == 100


def test_partner_does_not_get_the_working_group_version_at_all(
    store: ReleaseStore, hub: Hubless, tmp_path: Path
) -> None:
    c = configured(k8s_settings(store, tmp_path))
    bob = hub.user("bob", [hub.group("lamost-partners")])

    pod = hub.pod(bob, c)

    assert set(release_mounts(pod)) == {"DEMO/v1", "DEMO/v2"}
    everything = json.dumps(pod)
    assert "DEMO/v0" not in everything  # neither mounted nor named anywhere in the pod
    assert not [m for m in container(pod)["volumeMounts"] if m["mountPath"].startswith("/home/jovyan/teams")]
    assert json.loads(env_of(pod)["SURVEYHUB_TEAMS"]) == {}


def test_revoked_access_is_gone_at_the_next_start(store: ReleaseStore, hub: Hubless, tmp_path: Path) -> None:
    """JupyterHub reuses a server's spawner object across restarts; mounts must not accumulate."""
    c = configured(k8s_settings(store, tmp_path))
    carol = hub.user("carol", [hub.group("lamost-wg"), hub.group("astro", team=True)])

    async def start_twice() -> tuple[dict[str, Any], dict[str, Any]]:
        spawner = hub.spawner(carol, c)
        first = await pod_of(spawner)
        carol.groups.clear()  # an admin takes carol out of every group while her server is stopped
        hub.db.commit()
        return first, await pod_of(spawner)

    first, second = asyncio.run(start_twice())

    assert set(release_mounts(first)) == {"DEMO/v0", "DEMO/v1", "DEMO/v2"}

    assert set(release_mounts(second)) == {"DEMO/v2"}
    assert "teams/astro" not in json.dumps(second)
    assert len(container(second)["volumeMounts"]) == len(
        {m["mountPath"] for m in container(second)["volumeMounts"]}
    )


def test_names_with_braces_survive_kubespawner_templates(
    store: ReleaseStore, hub: Hubless, tmp_path: Path
) -> None:
    """KubeSpawner runs str.format over volumes and environment; JSON and odd names must come out as given."""
    c = configured(k8s_settings(store, tmp_path))
    dave = hub.user("dave", [hub.group("{odd}", team=True)])

    pod = hub.pod(dave, c)

    assert json.loads(env_of(pod)["SURVEYHUB_TEAMS"]) == {"{odd}": "file:///home/jovyan/teams/{odd}/"}
    assert "teams/{odd}" in {m.get("subPath") for m in container(pod)["volumeMounts"]}


def test_chart_values_win_and_options_come_from_hub_extra(
    store: ReleaseStore, hub: Hubless, tmp_path: Path
) -> None:
    extra = {
        "SurveyhubKubernetes": {
            "release_claim": "lamost-releases",
            "cloud_claim": "",
            "home_capacity": "",
            "proxy_url": "http://proxy-public.sh.svc",
        }
    }
    settings = k8s_settings(store, tmp_path, hub={"extra": extra})
    c = Config()
    c.KubeSpawner.image = "registry.example/surveyhub/lab:pinned"  # as the chart's singleuser.image sets it
    c.KubeSpawner.mem_limit = "8G"
    configure_kubernetes(c, settings)
    erin = hub.user("erin", [])

    pod = hub.pod(erin, c)

    notebook = container(pod)
    assert notebook["image"] == "registry.example/surveyhub/lab:pinned"
    assert notebook["resources"]["limits"]["memory"] == 8 * 1024**3
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes[RELEASES_VOLUME]["persistentVolumeClaim"]["claimName"] == "lamost-releases"
    assert set(release_mounts(pod)) == {"DEMO/v2"}
    assert CLOUD_VOLUME not in volumes
    assert "home" not in volumes
    assert env_of(pod)["SURVEYHUB_ARCHIVE_URL"] == "http://proxy-public.sh.svc/services/archive/"
    # at start the pod puts the tutorials and the apps' link into its home
    assert notebook["lifecycle"]["postStart"]["exec"]["command"] == POD_HOME_SETUP


def test_unknown_cluster_options_are_refused_by_name(store: ReleaseStore, tmp_path: Path) -> None:
    settings = k8s_settings(store, tmp_path, hub={"extra": {"SurveyhubKubernetes": {"release_pvc": "x"}}})
    with pytest.raises(SettingsError, match=r"SurveyhubKubernetes\.release_pvc"):
        KubernetesOptions.from_settings(settings)


@pytest.mark.parametrize("name", ["..", ".", "", "a/b"])
def test_folder_names_that_would_leave_the_volume_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="cannot be a folder name"):
        pod_subpath("teams", name)


def test_services_are_adapted_to_the_cluster(
    store: ReleaseStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The archive listens on the hub pod's address; dask-gateway is the gateway chart's."""
    settings = k8s_settings(store, tmp_path)
    monkeypatch.setenv("POD_IP", "10.1.2.3")  # what the chart's downward API gives the hub pod
    c = Config()
    c.JupyterHub.services = [
        {"name": "archive", "url": "http://127.0.0.1:8890", "command": ["surveyhub", "archive", "--hub"]},
        {"name": "apps", "url": "http://127.0.0.1:8894", "command": ["python", "-m", "surveyhub.apps"]},
        {"name": "dask-gateway", "url": "http://127.0.0.1:8892", "command": ["dask-gateway-server"]},
        {"name": "idle-culler", "command": ["python", "-m", "jupyterhub_idle_culler", "--timeout=3600"]},
    ]
    configure_kubernetes(c, settings)
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert services["archive"]["url"] == "http://10.1.2.3:8890"
    assert services["archive"]["command"] == ["surveyhub", "archive", "--hub"]
    assert services["apps"]["url"] == "http://10.1.2.3:8894"  # the "Apps" page, also in the hub pod
    assert services["dask-gateway"] == {
        "name": "dask-gateway",
        "url": "http://traefik-dask-gateway",
        "display": False,
    }
    assert "--url=http://127.0.0.1:8081/hub/api" in services["idle-culler"]["command"]


def test_chart_settings_are_kept_through_configure(store: ReleaseStore, tmp_path: Path) -> None:
    c = Config()
    c.JupyterHub.hub_connect_url = "http://hub:8081"
    c.JupyterHub.services = [{"name": "dask-gateway", "url": "http://traefik-dask-gateway", "api_token": "t"}]
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self"]}]
    with chart_settings_kept(c):
        c.JupyterHub.hub_connect_url = "http://127.0.0.1:8081"
        c.JupyterHub.pid_file = "/var/x.pid"
        c.JupyterHub.services = [{"name": "archive", "url": "http://hub:8890"}, {"name": "dask-gateway"}]
        c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "shares!user"]}, {"name": "other"}]
    assert c.JupyterHub.hub_connect_url == "http://hub:8081"
    assert "pid_file" not in c.JupyterHub
    assert {s["name"]: s for s in c.JupyterHub.services} == {
        "archive": {"name": "archive", "url": "http://hub:8890"},
        "dask-gateway": {"name": "dask-gateway", "url": "http://traefik-dask-gateway", "api_token": "t"},
    }
    assert sorted(r["name"] for r in c.JupyterHub.load_roles) == ["other", "user"]


def test_s3_cloud_space_gets_credentials_from_the_broker_and_revokes_them(
    store: ReleaseStore, hub: Hubless, tmp_path: Path, s3_endpoint: str
) -> None:
    """Against a real S3/IAM API (moto): the pod carries keys of its own, and stopping revokes them."""
    import boto3

    cloud = {
        "user_url": "s3://cloud/users/{username}/",
        "team_url": "s3://cloud/teams/{team}/",
        "s3_endpoint": s3_endpoint,
        "credentials": {"kind": "iam-user", "access_key_id": "test", "secret_access_key": "test"},
    }
    settings = k8s_settings(store, tmp_path, cloud=cloud)
    c = configured(settings)
    frank = hub.user("frank", [hub.group("astro", team=True)])

    async def start() -> tuple[Any, dict[str, Any]]:
        spawner = hub.spawner(frank, c)
        return spawner, await pod_of(spawner)

    spawner, pod = asyncio.run(start())
    env = env_of(pod)

    assert env["SURVEYHUB_CLOUD_URL"] == "s3://cloud/users/frank/"
    assert json.loads(env["SURVEYHUB_TEAMS"]) == {"astro": "s3://cloud/teams/astro/"}
    options = json.loads(env["SURVEYHUB_CLOUD_STORAGE_OPTIONS"])
    assert options["key"] == env["AWS_ACCESS_KEY_ID"] != "test"
    iam = boto3.client(
        "iam",
        endpoint_url=s3_endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",  # noqa: S106 - moto accepts any key
        region_name="us-east-1",
    )
    user = spawner.post_stop_hook.broker.iam_user_name("frank")
    keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [env["AWS_ACCESS_KEY_ID"]]

    asyncio.run(spawner.post_stop_hook(spawner))

    assert iam.list_access_keys(UserName=user)["AccessKeyMetadata"] == []
