"""Per-user limits on dask-gateway's Kubernetes backend (``surveyhub.gateway.limits.KubeUserLimits``).

No Kubernetes runs here, so the Kubernetes API is a recorder (:class:`KubeApi`): it keeps the
``DaskCluster`` objects the backend creates and the patches it sends. Everything else is dask-gateway's
own code: its option handling and cluster configuration, the object it builds, and ``sync_cluster``,
the step of its informer loop that turns a listed object into the backend's cache. On the local
backends the same policy runs against real clusters (``tests/integration/test_gateway.py``).
"""

from __future__ import annotations

import asyncio
import copy
from collections import defaultdict
from typing import Any

import pytest
from dask_gateway_server import models
from dask_gateway_server.backends.base import PublicException
from dask_gateway_server.utils import Flag
from traitlets.config import Config

from surveyhub.gateway.limits import KubeUserLimits

NAMESPACE = "surveyhub"


class KubeApi:
    """The two Kubernetes API calls the backend makes here, answered as the API server would."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.patches: list[tuple[str, list[dict[str, Any]]]] = []

    async def create_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, obj: dict[str, Any]
    ) -> dict[str, Any]:
        await asyncio.sleep(0.01)  # a round trip: another request may run meanwhile
        stored = copy.deepcopy(obj)
        stored["metadata"] |= {"namespace": namespace, "creationTimestamp": "2026-12-01T00:00:00Z"}
        self.objects[f"{namespace}.{obj['metadata']['name']}"] = stored
        return stored

    async def patch_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, patch: list[dict[str, Any]]
    ) -> None:
        self.patches.append((f"{namespace}.{name}", patch))
        for op in patch:
            key = op["path"].rsplit("/", 1)[-1]
            self.objects[f"{namespace}.{name}"]["spec"][key] = op["value"]


def make_backend(**limits: Any) -> tuple[KubeUserLimits, KubeApi]:
    c = Config()
    c.KubeBackend.gateway_instance = "surveyhub-test"
    c.KubeClusterConfig.namespace = NAMESPACE
    c.KubeClusterConfig.worker_cores = 2.0
    c.KubeClusterConfig.worker_memory = "8G"
    c.KubeClusterConfig.cluster_max_workers = 20
    for name, value in limits.items():
        setattr(c.KubeUserLimits, name, value)
    backend = KubeUserLimits(config=c)
    api = KubeApi()
    # What KubeBackend.setup() makes, without a cluster to connect to.
    backend.custom_client = api
    backend.clusters = {}
    backend.username_to_clusters = defaultdict(dict)
    backend.cluster_waiters = defaultdict(Flag)
    backend.informer = api.objects  # the informer's cache: .get(name) of the listed objects
    return backend, api


async def listed(backend: KubeUserLimits, api: KubeApi, *, phase: str = "Pending") -> None:
    """Kubernetes lists every object, with ``phase``: the backend's own sync step updates its cache."""
    for name, obj in api.objects.items():
        obj.setdefault("status", {})["phase"] = phase
        await backend.sync_cluster(name)


def test_clusters_beyond_the_limit_are_refused_even_when_asked_for_at_once() -> None:
    async def main() -> None:
        backend, api = make_backend(max_clusters=2)
        alice = models.User("alice")
        results = await asyncio.gather(
            *(backend.start_cluster(alice, {}) for _ in range(3)), return_exceptions=True
        )
        refused = [r for r in results if isinstance(r, BaseException)]
        assert len(refused) == 1
        assert isinstance(refused[0], PublicException)
        assert "alice already has 2 Dask clusters" in str(refused[0])
        assert "the limit is 2 per user" in str(refused[0])
        assert "Gateway().stop_cluster(name)" in str(refused[0])
        assert len(api.objects) == 2  # the refused one never reached Kubernetes

        await listed(backend, api)  # now the backend's cache has them (no longer only "pending")
        with pytest.raises(PublicException, match="already has 2 Dask clusters"):
            await backend.start_cluster(alice, {})
        assert await backend.start_cluster(models.User("bob"), {})  # bob's count is his own

        first = sorted(n for n, o in api.objects.items() if o["spec"]["username"] == "alice")[0]
        api.objects[first]["status"] = {"phase": "Stopped", "completionTime": "2026-12-01T00:01:00Z"}
        await backend.sync_cluster(first)
        assert await backend.start_cluster(alice, {})  # a stopped cluster no longer counts

    asyncio.run(main())


def test_a_clusters_ceiling_is_what_the_users_other_clusters_leave() -> None:
    async def main() -> None:
        # workers of 2 cores and 8 GiB; alice may hold 5 workers, 12 cores and 32 GiB in all
        backend, api = make_backend(max_workers=5, max_cores=12.0, max_memory="32G")
        alice = models.User("alice")
        first = await backend.start_cluster(alice, {})
        second = await backend.start_cluster(alice, {})
        other = await backend.start_cluster(models.User("bob"), {})
        await listed(backend, api, phase="Running")

        await backend.on_cluster_heartbeat(first, _beat(3))  # 3 workers: 6 cores, 24 GiB
        assert api.patches[-1] == (first, [{"op": "add", "path": "/spec/replicas", "value": 3}])
        # what is left for the second: 2 workers, 3 workers' cores, 1 worker's memory: memory binds
        model = await backend.get_cluster(second)
        assert model.config["cluster_max_workers"] == 1
        assert backend.clusters[second].config["cluster_max_workers"] == 20  # the cache keeps its own

        # adaptive scaling asks for 4 through the heartbeat: the controller is told 1
        await backend.on_cluster_heartbeat(second, _beat(4))
        assert api.patches[-1] == (second, [{"op": "add", "path": "/spec/replicas", "value": 1}])
        assert api.objects[second]["spec"]["replicas"] == 1

        # and the first cannot grow past what the second now holds: 32 GiB - 8 GiB is 3 workers
        await backend.on_cluster_heartbeat(first, _beat(4))
        assert api.objects[first]["spec"]["replicas"] == 3
        # bob is counted apart from alice
        assert (await backend.get_cluster(other)).config["cluster_max_workers"] == 4

    asyncio.run(main())


def test_no_limits_leave_the_clusters_own_ceiling() -> None:
    async def main() -> None:
        backend, api = make_backend()
        name = await backend.start_cluster(models.User("alice"), {})
        await listed(backend, api, phase="Running")
        assert (await backend.get_cluster(name)).config["cluster_max_workers"] == 20
        await backend.on_cluster_heartbeat(name, _beat(30))  # dask-gateway's own per-cluster bound
        assert api.objects[name]["spec"]["replicas"] == 20

    asyncio.run(main())


def _beat(count: int) -> dict[str, Any]:
    return {"count": count, "active_workers": [], "closing_workers": [], "closed_workers": []}
