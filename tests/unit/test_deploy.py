"""What can be checked of ``deploy/k8s`` and ``images/`` without a cluster or a Docker daemon.

- every YAML file parses, and ``surveyhub.toml`` loads with the platform's own settings loader;
- the values files and the settings file agree where both name the same thing (images, limits, database);
- the chart's ``hub.extraConfig`` snippet, run the way Zero to JupyterHub runs it (``exec`` with ``c``
  after the chart's own configuration), yields KubeSpawner, the services and the chart's networking, and a
  real JupyterHub initialises with that configuration;
- the dask-gateway snippet configures a real ``KubeClusterConfig``;
- the Dockerfiles install the lock and copy only files that exist and that their ``.dockerignore`` sends.

No cluster is here: nothing is installed with Helm, no pod starts (docs/operator-guide.md says so too).
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
import tempfile
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml
from traitlets.config import Config

from surveyhub._version import __version__
from surveyhub.hub.settings import Settings
from surveyhub.releases.manifest import Policy, ReleaseManifest
from surveyhub.releases.registry import ReleaseStore

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
LOCK = ROOT / "images" / "requirements.lock"
DOCKERFILES = sorted((ROOT / "images").glob("*/Dockerfile"))
#: What the hub image must have for the Zero to JupyterHub chart's own jupyterhub_config.py and z2jh.py
#: (kubespawner, pycurl, PyYAML) and for the PostgreSQL hub database (psycopg).
HUB_IMAGE_PACKAGES = ("jupyterhub-kubespawner", "kubernetes-asyncio", "pycurl", "pyyaml", "psycopg")


def load_yaml(name: str) -> Any:
    return yaml.safe_load((K8S / name).read_text())


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return load_yaml("jupyterhub-values.yaml")


@pytest.fixture(scope="module")
def gateway_values() -> dict[str, Any]:
    return load_yaml("dask-gateway-values.yaml")


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings.load(K8S / "surveyhub.toml")


@pytest.mark.parametrize("path", sorted(K8S.glob("*.yaml")), ids=lambda p: p.name)
def test_every_yaml_file_parses_into_documents(path: Path) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert documents
    for document in documents:
        assert isinstance(document, dict)
        if "kind" in document:  # a manifest, not a values file
            assert document["apiVersion"]
            assert document["metadata"].get("name") or document["metadata"].get("generateName")


class ApiAnswer:
    """What the Kubernetes client's ``deserialize`` reads: an API server's answer body."""

    def __init__(self, document: Any) -> None:
        self.data = json.dumps(document)


def round_trip(document: Any, model: str) -> Any:
    """``document`` read into the Kubernetes client's model and written back: a misspelt or misplaced key
    is dropped on the way, so the result differs from the document."""
    from kubernetes_asyncio.client import ApiClient

    async def convert() -> Any:
        async with ApiClient() as api:
            return api.sanitize_for_serialization(api.deserialize(ApiAnswer(document), model))

    return asyncio.run(convert())


@pytest.mark.parametrize("path", sorted(K8S.glob("*.yaml")), ids=lambda p: p.name)
def test_manifests_are_valid_kubernetes_objects(path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        if document and "kind" in document:
            assert round_trip(document, f"V1{document['kind']}") == document


def test_values_volumes_and_network_rules_are_valid_kubernetes_objects(values: dict) -> None:
    """The parts of the values that the chart passes to Kubernetes as they are."""
    hub = values["hub"]
    for volume in hub["extraVolumes"]:
        assert round_trip(volume, "V1Volume") == volume
    for mount in hub["extraVolumeMounts"]:
        assert round_trip(mount, "V1VolumeMount") == mount
    for rule in hub["networkPolicy"]["ingress"]:
        assert round_trip(rule, "V1NetworkPolicyIngressRule") == rule
    for rule in values["singleuser"]["networkPolicy"]["egress"]:
        assert round_trip(rule, "V1NetworkPolicyEgressRule") == rule
    pod_ip = hub["extraEnv"]["POD_IP"]
    assert round_trip({"name": "POD_IP", **pod_ip}, "V1EnvVar") == {"name": "POD_IP", **pod_ip}


def test_the_kubernetes_settings_load(settings: Settings) -> None:
    assert settings.users.spawner == "kubernetes"
    assert settings.hub.authenticator == "generic-oauth"
    assert settings.store.root == "/srv/releases"
    assert settings.cloud.user_url_for("alice") == "s3://surveyhub-cloud/users/alice/"
    assert settings.cloud.team_url_for("astro") == "s3://surveyhub-cloud/teams/astro/"
    assert settings.cloud.credentials["kind"] in ("sts", "iam-user")
    assert settings.home == "/var/surveyhub/home"


def test_oauth_settings_are_generic_oauthenticator_traits(settings: Settings) -> None:
    from oauthenticator.generic import GenericOAuthenticator

    unknown = set(settings.hub.oauth) - set(GenericOAuthenticator.class_trait_names())
    assert not unknown


def test_values_and_settings_agree(values: dict, gateway_values: dict, settings: Settings) -> None:
    """Where a values file and surveyhub.toml both name a thing, a chart value wins: they must not differ."""
    assert values["hub"]["image"] == {"name": "surveyhub/hub", "tag": __version__}
    assert values["singleuser"]["image"] == {"name": "surveyhub/lab", "tag": __version__}
    assert gateway_values["gateway"]["backend"]["image"] == values["singleuser"]["image"]
    assert values["hub"]["db"]["type"] == "postgres"
    assert values["hub"]["db"]["url"] == settings.hub.db_url
    single = values["singleuser"]
    assert single["memory"]["limit"] == settings.users.mem_limit
    assert float(single["cpu"]["limit"]) == settings.users.cpu_limit
    assert single["startTimeout"] == settings.users.start_timeout_s
    assert single["storage"]["capacity"] == settings.hub.extra["SurveyhubKubernetes"]["home_capacity"]
    mounts = {m["name"]: m for m in values["hub"]["extraVolumeMounts"]}
    assert mounts["surveyhub-releases"]["mountPath"] == settings.store.root
    assert mounts["surveyhub-releases"]["readOnly"] is True
    assert settings.home.startswith(mounts["surveyhub-state"]["mountPath"] + "/")
    assert (
        values["hub"]["extraEnv"]["SURVEYHUB_CONFIG"]
        == mounts["surveyhub-settings"]["mountPath"] + "/surveyhub.toml"
    )
    ingress_ports = [p["port"] for rule in values["hub"]["networkPolicy"]["ingress"] for p in rule["ports"]]
    assert settings.archive.port in ingress_ports
    assert settings.hub.apps_port in ingress_ports
    worker = gateway_values["gateway"]["backend"]["worker"]
    assert worker["memory"]["limit"] == settings.gateway.worker_memory
    assert float(worker["cores"]["limit"]) == settings.gateway.worker_cores
    # The release store is mounted per readable version by the spawn hook, never whole into users' pods.
    assert "surveyhub-releases" not in yaml.safe_dump(single)


def chart_config(values: dict[str, Any]) -> Config:
    """``c`` as the Zero to JupyterHub chart's own jupyterhub_config.py (4.x) leaves it for extraConfig,
    for the keys our snippet meets: the proxy in its pod, the hub's addresses, the database, KubeSpawner's
    basics from ``singleuser``, the generated secrets and the declared services with their tokens."""
    c = Config()
    c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
    c.ConfigurableHTTPProxy.api_url = "http://proxy-api:8001"
    c.ConfigurableHTTPProxy.should_start = False
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.last_activity_interval = 60
    c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}
    c.JupyterHub.db_url = values["hub"]["db"]["url"]
    c.JupyterHub.hub_bind_url = "http://:8081"
    c.JupyterHub.hub_connect_url = "http://hub:8081"
    c.KubeSpawner.namespace = "surveyhub"
    single = values["singleuser"]
    c.KubeSpawner.start_timeout = single["startTimeout"]
    c.KubeSpawner.uid = single["uid"]
    c.KubeSpawner.fs_gid = single["fsGid"]
    c.KubeSpawner.mem_limit = single["memory"]["limit"]
    c.KubeSpawner.mem_guarantee = single["memory"]["guarantee"]
    c.KubeSpawner.cpu_limit = float(single["cpu"]["limit"])
    c.KubeSpawner.cpu_guarantee = float(single["cpu"]["guarantee"])
    c.KubeSpawner.image = f"{single['image']['name']}:{single['image']['tag']}"
    storage = single["storage"]
    name = storage["dynamic"]["volumeNameTemplate"]
    c.KubeSpawner.pvc_name_template = storage["dynamic"]["pvcNameTemplate"]
    c.KubeSpawner.storage_pvc_ensure = True
    c.KubeSpawner.storage_capacity = storage["capacity"]
    c.KubeSpawner.storage_access_modes = storage["dynamic"]["storageAccessModes"]
    c.KubeSpawner.volumes = {name: {"name": name, "persistentVolumeClaim": {"claimName": "{pvc_name}"}}}
    c.KubeSpawner.volume_mounts = {name: {"mountPath": storage["homeMountPath"], "name": name}}
    c.JupyterHub.services = []
    c.JupyterHub.load_roles = []
    for key, service in values["hub"].get("services", {}).items():
        c.JupyterHub.services.append({"name": key, **service, "api_token": f"chart-generated-{key}-token"})
    c.Spawner.cmd = single["cmd"]
    c.JupyterHub.cookie_secret = bytes(32)
    c.CryptKeeper.keys = [bytes(32)]
    return c


@pytest.fixture
def pod_dir() -> Iterator[Path]:
    """A folder for the hub's state that other accounts can traverse (as /var/surveyhub is in the pod):
    ``configure`` refuses a home that users' accounts could not reach when the hub runs as root."""
    path = Path(tempfile.mkdtemp(prefix="surveyhub-pod-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def chart_environment(pod_dir: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Path:
    """The hub pod's environment: the settings file (home and store moved to pod_dir), POD_IP, a store."""
    tmp_path = pod_dir
    store = ReleaseStore(str(tmp_path / "releases"))
    store.write_manifest(
        ReleaseManifest(
            release="DEMO",
            version="v2",
            title="Demo",
            description="",
            policy=Policy(public=True),
            acknowledgement="",
        )
    )
    text = (K8S / "surveyhub.toml").read_text()
    text = text.replace(f'home = "{settings.home}"', f'home = "{tmp_path / "home"}"')
    text = text.replace(f'root = "{settings.store.root}"', f'root = "{store.url}"')
    assert str(tmp_path) in text
    path = tmp_path / "surveyhub.toml"
    path.write_text(text)
    monkeypatch.setenv("SURVEYHUB_CONFIG", str(path))
    monkeypatch.setenv("POD_IP", "10.0.0.7")
    # The chart gives the hub pod the proxy API's token in the environment, from its Secret.
    monkeypatch.setenv("CONFIGPROXY_AUTH_TOKEN", "chart-generated-proxy-token")
    return path


def run_extra_config(values: dict[str, Any]) -> Config:
    c = chart_config(values)
    for key, snippet in sorted(values["hub"]["extraConfig"].items()):
        exec(compile(snippet, f"hub.extraConfig.{key}", "exec"), {"c": c})  # noqa: S102 - as the chart does
    return c


def test_extra_config_applies_surveyhub_and_keeps_the_chart(values: dict, chart_environment: Path) -> None:
    from surveyhub.hub.kubernetes import KubernetesSpawnHook

    c = run_extra_config(values)

    assert c.JupyterHub.spawner_class == "kubespawner.KubeSpawner"
    assert isinstance(c.KubeSpawner.pre_spawn_hook, KubernetesSpawnHook)
    assert c.JupyterHub.authenticator_class == "generic-oauth"
    assert c.GenericOAuthenticator.client_id == "surveyhub"
    # What the chart owns is as the chart set it.
    assert c.JupyterHub.db_url == values["hub"]["db"]["url"]
    assert c.JupyterHub.hub_connect_url == "http://hub:8081"
    assert c.JupyterHub.hub_bind_url == "http://:8081"
    assert c.ConfigurableHTTPProxy.api_url == "http://proxy-api:8001"
    assert c.ConfigurableHTTPProxy.should_start is False
    assert c.JupyterHub.cleanup_servers is False
    assert "pid_file" not in c.JupyterHub
    assert "command" not in c.ConfigurableHTTPProxy
    assert c.KubeSpawner.image == f"surveyhub/lab:{__version__}"
    assert c.KubeSpawner.pvc_name_template == "claim-{username}"
    # The services: the archive in the hub pod at the pod's address, the gateway from the other chart.
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert services["archive"]["url"] == "http://10.0.0.7:8890"
    assert services["archive"]["command"][:3] == [services["archive"]["command"][0], "-m", "surveyhub.cli"]
    assert services["dask-gateway"]["url"] == "http://traefik-dask-gateway"
    assert services["dask-gateway"]["api_token"] == "chart-generated-dask-gateway-token"  # noqa: S105
    assert "command" not in services["dask-gateway"]
    assert any(
        "jupyterhub_idle_culler" in " ".join(map(str, s.get("command", []))) for s in services.values()
    )


def test_a_hub_initialises_with_the_chart_and_surveyhub_config(
    values: dict, chart_environment: Path, tmp_path: Path
) -> None:
    """JupyterHub itself loads the result: authenticator, spawner class, services and roles are accepted.

    The database is SQLite here (the values name a PostgreSQL server, which is not running here), and the
    hub is only initialised: starting it would connect to the proxy pod.
    """
    from jupyterhub.app import JupyterHub
    from kubespawner import KubeSpawner
    from oauthenticator.generic import GenericOAuthenticator
    from tornado.httpclient import AsyncHTTPClient

    c = run_extra_config(values)
    c.JupyterHub.db_url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    # JupyterHub makes curl the whole process's default HTTP client (init_pycurl): put it back after, so
    # the other tests this worker runs get tornado's own client, as their servers do
    saved_client = AsyncHTTPClient._save_configuration()

    async def initialise() -> JupyterHub:
        app = JupyterHub(config=c)
        config_file = tmp_path / "jupyterhub_config.py"
        config_file.write_text("# everything is in `c` already, as the chart and extraConfig left it\n")
        app.config_file = str(config_file)
        await app.initialize([])
        return app

    app = asyncio.run(initialise())
    try:
        assert app.spawner_class is KubeSpawner
        assert isinstance(app.authenticator, GenericOAuthenticator)
        assert {"archive", "dask-gateway"} <= set(app._service_map)
        assert app._service_map["archive"].url == "http://10.0.0.7:8890"
        assert app._service_map["dask-gateway"].managed is False
        assert app.hub.connect_url == "http://hub:8081/hub/"
    finally:
        app.db.close()
        JupyterHub.clear_instance()
        AsyncHTTPClient._restore_configuration(saved_client)


def test_gateway_extra_config_configures_real_kube_clusters(gateway_values: dict, settings: Settings) -> None:
    from dask_gateway_server.backends.kubernetes.backend import KubeClusterConfig

    c = Config()
    backend = gateway_values["gateway"]["backend"]
    # As the dask-gateway chart forwards gateway.backend.* before its extraConfig.
    c.KubeClusterConfig.image = f"{backend['image']['name']}:{backend['image']['tag']}"
    c.KubeClusterConfig.worker_cores = backend["worker"]["cores"]["request"]
    c.KubeClusterConfig.worker_cores_limit = backend["worker"]["cores"]["limit"]
    c.KubeClusterConfig.worker_memory = backend["worker"]["memory"]["request"]
    c.KubeClusterConfig.worker_memory_limit = backend["worker"]["memory"]["limit"]
    for key, snippet in sorted(gateway_values["gateway"]["extraConfig"].items()):
        exec(compile(snippet, f"gateway.extraConfig.{key}", "exec"), {"c": c})  # noqa: S102 - as the chart

    config = KubeClusterConfig(config=c)
    # The gateway runs the hub's image, whose surveyhub gives it the per-user limits of surveyhub.toml.
    assert gateway_values["gateway"]["image"] == {"name": "surveyhub/hub", "tag": __version__}
    from traitlets.utils.importstring import import_item

    from surveyhub.gateway.limits import KubeUserLimits

    assert import_item(c.DaskGateway.backend_class) is KubeUserLimits
    limits = KubeUserLimits(config=c)
    assert limits.max_clusters == settings.gateway.user_max_clusters
    assert limits.max_workers == settings.gateway.user_max_workers
    assert limits.max_cores == settings.gateway.user_max_cores
    assert limits.max_memory == settings.gateway.memory_bytes("user_max_memory")
    assert config.scheduler_cmd == ["dask", "scheduler"]
    assert config.worker_cmd == ["dask", "worker"]
    assert config.cluster_max_workers == settings.gateway.max_workers
    assert config.idle_timeout == settings.gateway.idle_timeout_s
    assert config.worker_cores == settings.gateway.worker_cores
    assert (
        config.worker_memory == KubeClusterConfig(worker_memory=settings.gateway.worker_memory).worker_memory
    )
    assert config.image == f"surveyhub/lab:{__version__}"
    options = c.Backend.cluster_options
    parsed = options.parse_options({"environment": {"AWS_ACCESS_KEY_ID": "AKIA-users-own"}})
    assert options.get_configuration(parsed, user=None) == {
        "environment": {"AWS_ACCESS_KEY_ID": "AKIA-users-own"}
    }
    auth = gateway_values["gateway"]["auth"]
    assert auth["type"] == "jupyterhub"
    assert auth["jupyterhub"]["jupyterhubServiceName"] == "dask-gateway"
    assert gateway_values["gateway"]["prefix"] == "/services/dask-gateway"


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def copy_sources(path: Path) -> list[str]:
    """Sources of every COPY from the build context (not from another stage)."""
    sources = []
    for word, rest in dockerfile_instructions(path):
        if word == "COPY":
            args = shlex.split(rest)
            if any(a.startswith("--from") for a in args):
                continue
            sources.extend(a for a in args[:-1] if not a.startswith("--"))
    return sources


def sent_by_dockerignore(path: Path, source: str) -> bool:
    """Whether ``source`` reaches the build through ``<Dockerfile>.dockerignore`` (last match wins)."""
    sent = True
    for line in path.with_name(path.name + ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!")
        if fnmatch(source, pattern) or source.startswith(pattern.rstrip("/") + "/"):
            sent = negate
    return sent


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfiles_install_the_lock_and_copy_only_what_exists(dockerfile: Path) -> None:
    instructions = dockerfile_instructions(dockerfile)
    [base, *_] = [rest for word, rest in instructions if word == "FROM"]
    assert base.startswith("python:3.11-slim")
    sources = copy_sources(dockerfile)
    assert "images/requirements.lock" in sources
    runs = " ".join(rest for word, rest in instructions if word == "RUN")
    assert "pip install --no-deps -r /tmp/requirements.lock" in runs
    assert "pip install --no-deps /tmp/wheels/" in runs
    for source in sources:
        assert sent_by_dockerignore(dockerfile, source), f"{source} is left out by the .dockerignore"
        if source == "images/requirements.lock" and not LOCK.exists():
            continue  # written by `make lock`; checked below once it exists
        assert (ROOT / source).exists(), (
            f"{dockerfile.relative_to(ROOT)} copies {source}, which is not in the repository"
        )
    user = [rest for word, rest in instructions if word == "USER"]
    assert user == ["1000"]
    if dockerfile.parent.name == "lab":  # every user's server loads the panel: its wheel is built in
        assert "extensions/surveyhub-lab" in sources
        assert "./extensions/surveyhub-lab" in runs
        # the apps and tutorials a pod's postStart hook (surveyhub.hub.tutorials) puts in its home
        assert {"notebooks/apps", "notebooks/tutorials"} <= set(sources)
        env = " ".join(rest for word, rest in instructions if word == "ENV")
        assert "SURVEYHUB_APPS_DIR=" in env
        assert "SURVEYHUB_TUTORIALS_DIR=" in env


def test_the_lock_has_what_the_images_need() -> None:
    if not LOCK.exists():
        pytest.skip("images/requirements.lock is written by `make lock`; it is not there yet")
    pinned = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pinned[re.sub(r"[-_.]+", "-", name.lower())] = version
    assert "surveyhub" not in pinned  # the image installs surveyhub from this repository's wheel
    assert all(version for version in pinned.values()), "every line of the lock pins one version"
    missing = [
        p
        for p in (*HUB_IMAGE_PACKAGES, "jupyterhub", "jupyterlab", "dask-gateway", "distributed")
        if p not in pinned
    ]
    assert not missing, f"the lock lacks {missing}"


def test_settings_file_is_valid_toml_with_every_section() -> None:
    """Every section of the settings is present, so the file documents all of them for operators."""
    data = tomllib.loads((K8S / "surveyhub.toml").read_text())
    assert set(data) >= {"home", "hub", "store", "cloud", "users", "archive", "gateway"}
