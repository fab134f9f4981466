"""What one user may hold at once over all their Dask clusters, on either of the platform's gateway backends.

dask-gateway 2026.3 bounds each cluster (``ClusterConfig.cluster_max_*``) but not a user's clusters
together, so the platform's backends do, where dask-gateway decides:

- a new cluster beyond ``max_clusters`` is refused with a message naming the limit and how to stop one;
- a cluster's worker ceiling (``cluster_max_workers``, which dask-gateway's scale and adapt routes read
  from :meth:`get_cluster` and its heartbeat handling applies) is lowered to what the user's other
  clusters leave of ``max_workers``, ``max_cores`` and ``max_memory``, so ``cluster.scale(n)`` beyond it
  scales to the ceiling and warns, and adaptive scaling (which asks through heartbeats) stops there.

The policy (:class:`PerUserLimits`) is the same for both; what differs is where a user's clusters are
counted. :class:`UserLimits` reads dask-gateway's database (the local backends of the embedded default);
:class:`KubeUserLimits` reads the Kubernetes backend's own cache of the ``DaskCluster`` resources, each
cluster counted at the workers its resource asks for (``spec.replicas``, what the controller runs).
"""

from __future__ import annotations

import asyncio
import copy
import math
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dask_gateway_server import models
from dask_gateway_server.backends.base import PublicException
from dask_gateway_server.backends.db_base import DBBackendBase
from dask_gateway_server.backends.kubernetes import KubeBackend
from dask_gateway_server.traitlets import MemoryLimit
from dask_gateway_server.utils import format_bytes
from traitlets import Float as FloatTrait
from traitlets import Integer as IntegerTrait
from traitlets.config import LoggingConfigurable

#: Seconds a cluster this gateway created is counted before Kubernetes lists it (it lists within seconds).
PENDING_S = 120.0


@dataclass(frozen=True)
class ClusterUse:
    """One active cluster of a user, as the limits count it."""

    name: str
    workers: int  # what it asks for, or what runs if that is more
    worker_cores: float
    worker_memory: int


class PerUserLimits(LoggingConfigurable):
    """The policy; a backend mixing it in says where its clusters are (:meth:`cluster_uses`).

    Configured as ``c.UserLimits.<trait>`` (local backends) or ``c.KubeUserLimits.<trait>``; ``None`` is no
    limit.
    """

    max_clusters = IntegerTrait(None, allow_none=True, min=1, config=True, help="Active clusters per user.")
    max_workers = IntegerTrait(None, allow_none=True, min=1, config=True, help="Workers per user.")
    max_cores = FloatTrait(None, allow_none=True, min=0.0, config=True, help="Worker cores per user.")
    max_memory = MemoryLimit(None, allow_none=True, min=0, config=True, help="Worker memory per user.")

    def cluster_uses(self, username: str) -> Iterable[ClusterUse]:
        """The user's active clusters (the backend knows where they are)."""
        raise NotImplementedError

    def worker_ceiling_for(self, username: str, name: str, config: dict[str, Any]) -> int | None:
        """The most workers cluster ``name`` (with ``config``) may have now, beside the user's others."""
        others = [u for u in self.cluster_uses(username) if u.name != name]
        workers = sum(u.workers for u in others)
        cores = sum(u.workers * u.worker_cores for u in others)
        memory = sum(u.workers * u.worker_memory for u in others)
        ceilings = [config.get("cluster_max_workers")]
        if self.max_workers is not None:
            ceilings.append(self.max_workers - workers)
        if self.max_cores is not None:
            ceilings.append(math.floor((self.max_cores - cores) / config["worker_cores"] + 1e-9))
        if self.max_memory is not None:
            ceilings.append((self.max_memory - memory) // config["worker_memory"])
        known = [int(c) for c in ceilings if c is not None]
        return max(0, min(known)) if known else None

    def describe(self) -> str:
        """The user limits in words, for messages."""
        parts = []
        if self.max_workers is not None:
            parts.append(f"{self.max_workers} workers")
        if self.max_cores is not None:
            parts.append(f"{self.max_cores:g} worker cores")
        if self.max_memory is not None:
            parts.append(f"{format_bytes(self.max_memory)} of worker memory")
        return ", ".join(parts) or "no worker limit"

    def check_new_cluster(self, username: str) -> None:
        """Refuse (PublicException: the user sees it) a cluster beyond ``max_clusters``."""
        active = sorted(u.name for u in self.cluster_uses(username))
        if self.max_clusters is not None and len(active) >= self.max_clusters:
            raise PublicException(
                f"{username} already has {len(active)} Dask clusters ({', '.join(active)}); the limit is "
                f"{self.max_clusters} per user. Stop one first: Gateway().list_clusters() lists them and "
                "Gateway().stop_cluster(name) stops one."
            )

    def clamp_heartbeat(self, username: str, name: str, config: dict[str, Any], msg: dict[str, Any]) -> dict:
        """A heartbeat's wanted worker count, lowered to the ceiling (adaptive scaling asks this way)."""
        ceiling = self.worker_ceiling_for(username, name, config)
        if ceiling is None or msg["count"] <= ceiling:
            return msg
        self.log.info(
            "Cluster %s of %s asks for %d workers; the user's limits (%s) leave %d",
            name,
            username,
            msg["count"],
            self.describe(),
            ceiling,
        )
        return {**msg, "count": ceiling}


class UserLimits(PerUserLimits, DBBackendBase):
    """The limits on dask-gateway's database-backed (local) backends."""

    def cluster_uses(self, username: str) -> Iterable[ClusterUse]:
        for cluster in self.db.list_clusters(username=username):
            yield ClusterUse(
                cluster.name,
                max(cluster.count, len(cluster.active_workers())),
                cluster.config["worker_cores"],
                cluster.config["worker_memory"],
            )

    async def start_cluster(self, user: Any, cluster_options: dict[str, Any]) -> str:
        # DBBackendBase.start_cluster, with the check between the options and the record: nothing awaits
        # between counting the user's clusters and adding the new one, so two requests cannot both pass.
        options, config = await self.process_cluster_options(user, cluster_options)
        self.check_new_cluster(user.name)
        cluster = self.db.create_cluster(user.name, options, config.to_dict())
        self.log.info("Created cluster %s for user %s", cluster.name, user.name)
        self.queue.put(cluster)
        return cluster.name

    async def get_cluster(self, cluster_name: str, wait: bool = False) -> Any:
        # The scale and adapt routes read the worker ceiling from the model's config: give them the one
        # the user's other clusters leave (a copy; the record keeps the cluster's own ceiling).
        model = await super().get_cluster(cluster_name, wait=wait)
        record = self.db.get_cluster(cluster_name)
        if model is not None and record is not None:
            ceiling = self.worker_ceiling_for(record.username, record.name, record.config)
            model.config = {**model.config, "cluster_max_workers": ceiling}
        return model

    async def on_cluster_heartbeat(self, cluster_name: str, msg: dict[str, Any]) -> None:
        record = self.db.get_cluster(cluster_name)
        if record is not None and record.is_active():
            msg = self.clamp_heartbeat(record.username, record.name, record.config, msg)
        await super().on_cluster_heartbeat(cluster_name, msg)


class KubeUserLimits(PerUserLimits, KubeBackend):
    """The limits on dask-gateway's Kubernetes backend (``deploy/k8s/dask-gateway-values.yaml``).

    The backend learns of clusters from Kubernetes (an informer on the ``DaskCluster`` resources), a
    moment after it creates them, so creations are serialised per user and a cluster this gateway has
    just created counts until Kubernetes lists it: two requests at once cannot both pass the limit.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._creating: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._pending: dict[str, dict[str, tuple[float, dict[str, Any]]]] = defaultdict(dict)

    def cluster_uses(self, username: str) -> Iterable[ClusterUse]:
        listed = getattr(self, "username_to_clusters", {}).get(username, {})
        pending = self._pending.get(username, {})
        now = time.monotonic()
        for name, (since, _) in list(pending.items()):
            if name in listed or now - since > PENDING_S:
                del pending[name]
        for cluster in listed.values():
            if cluster.status > models.ClusterStatus.RUNNING:
                continue
            spec = (self.informer.get(cluster.name) or {}).get("spec", {})
            yield ClusterUse(
                cluster.name,
                int(spec.get("replicas") or 0),
                cluster.config["worker_cores"],
                cluster.config["worker_memory"],
            )
        for name, (_, config) in pending.items():
            yield ClusterUse(name, 0, config["worker_cores"], config["worker_memory"])

    async def start_cluster(self, user: Any, cluster_options: dict[str, Any]) -> str:
        async with self._creating[user.name]:
            self.check_new_cluster(user.name)
            _, config = await self.process_cluster_options(user, cluster_options)
            name = await super().start_cluster(user, cluster_options)
            self._pending[user.name][name] = (time.monotonic(), config.to_dict())
            return name

    async def get_cluster(self, cluster_name: str, wait: bool = False) -> Any:
        # The backend's cache holds one model per cluster, shared with its sync loop: the routes get a
        # copy whose ceiling is what the user's other clusters leave.
        model = await super().get_cluster(cluster_name, wait=wait)
        if model is None:
            return None
        ceiling = self.worker_ceiling_for(model.username, model.name, model.config)
        shown = copy.copy(model)
        shown.config = {**model.config, "cluster_max_workers": ceiling}
        return shown

    async def on_cluster_heartbeat(self, cluster_name: str, msg: dict[str, Any]) -> None:
        cluster = self.clusters.get(cluster_name)
        if cluster is not None and cluster.status <= models.ClusterStatus.RUNNING:
            msg = self.clamp_heartbeat(cluster.username, cluster.name, cluster.config, msg)
        await super().on_cluster_heartbeat(cluster_name, msg)
