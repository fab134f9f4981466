"""dask-gateway-server's configuration: JupyterHub authentication, limits, and clusters run as users.

The hub runs dask-gateway as a managed service (the daskhub pattern): its HTTP proxy is routed at
``/services/dask-gateway/``, users authenticate with their server's JupyterHub token (which must carry
``access:services!service=dask-gateway``), and schedulers are reached over TCP on the scheduler port.
Clusters run as the requesting user's own system account when the gateway is root, with that account's
Unix groups, so workers read exactly the release versions and team folders the user's server can.

Users choose their workers' size from the notebook (``Gateway().cluster_options()``: ``worker_cores``,
``worker_memory`` in GiB, and a shorter ``idle_timeout``), within bounds from the settings, through
dask-gateway's own ``Options``. What one user may hold at once, over all their clusters together
(clusters, workers, cores, memory), is :mod:`surveyhub.gateway.limits` (``UserLimits`` here,
``KubeUserLimits`` on Kubernetes).
"""

from __future__ import annotations

import grp
import math
import os
import sys
from pathlib import Path
from typing import Any

from dask_gateway_server.backends.local import LocalBackend, UnsafeLocalBackend
from dask_gateway_server.options import Float, Integer, Options

from surveyhub.gateway.limits import UserLimits
from surveyhub.hub.accounts import Account, account_name
from surveyhub.hub.settings import GatewaySettings, Settings

GIB = 2**30
#: The shortest idle timeout a user may choose: shorter would stop clusters between two cells.
IDLE_TIMEOUT_MIN_S = 10

#: The hub's account prefix reaches the gateway through the settings; the backend reads it from here.
_ACCOUNT_PREFIX = {"value": "sh-"}


class SandboxBackend(UserLimits, UnsafeLocalBackend):
    """The single-user sandbox (hub not root): clusters run as the hub's own account, with the same limits."""


class UserAccountBackend(UserLimits, LocalBackend):
    """LocalBackend whose processes run as the platform's account of the hub user (``sh-alice``).

    dask-gateway's LocalBackend looks the hub name up in /etc/passwd directly; the platform's accounts
    carry a prefix (so a hub user named ``root`` never means root), so this maps the name first.
    """

    def _account(self, username: str) -> Account:
        return Account.lookup(account_name(username, _ACCOUNT_PREFIX["value"]))

    def set_file_permissions(self, paths: list[str], username: str) -> None:
        """Give the cluster's working directory (and everything in it) to the account, and nothing else.

        dask-gateway 2026.3's ``setup_working_directory`` appends its TLS paths with ``list.extend(str)``,
        one character at a time starting with ``/``: its LocalBackend would hand the root directory to
        the user. Here only the working directory, which must lie in the clusters directory, is walked.
        """
        account = self._account(username)
        base = os.path.realpath(self.clusters_directory) + os.sep
        workdir = os.path.realpath(paths[0])
        if not workdir.startswith(base):
            raise PermissionError(f"cluster directory {workdir} is outside {base}")
        for folder, dirs, files in os.walk(workdir):
            for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
                os.chown(name, account.uid, account.gid)

    def make_preexec_fn(self, cluster: Any) -> Any:
        account = self._account(cluster.username)
        groups = [g.gr_gid for g in grp.getgrall() if account.name in g.gr_mem]
        workdir = cluster.state["workdir"]

        def preexec() -> None:  # runs in the child, between fork and exec
            os.setgid(account.gid)
            os.setgroups(groups)
            os.setuid(account.uid)
            os.chdir(workdir)
            os.umask(0o002)

        return preexec

    def get_env(self, cluster: Any) -> dict[str, str]:
        env = super().get_env(cluster)
        account = self._account(cluster.username)
        env |= {"USER": account.name, "HOME": account.home}
        return env


def cluster_options(gateway: GatewaySettings) -> Options:
    """The options users set from notebooks: worker cores and memory, and a shorter idle timeout.

    Each is bounded by the settings. A cluster's own worker ceiling follows from the worker size: no more
    workers of that size than the user's limits hold (fewer still while their other clusters hold some,
    see :class:`UserLimits`). The idle timeout can only be shortened (a cluster left running with no work
    holds its workers from everyone else's share of the machine).

    >>> options = cluster_options(GatewaySettings())
    >>> [(f["field"], f["default"], f["spec"]["max"]) for f in options.get_specification()]
    [('worker_cores', 1, 2), ('worker_memory', 2.0, 4.0), ('idle_timeout', 1800, 1800)]
    >>> config = options.get_configuration(options.parse_options({"worker_memory": 1.5}), user=None)
    >>> config["worker_memory"], config["cluster_max_workers"], config["idle_timeout"]
    (1610612736, 2, 1800.0)
    """
    user_memory = gateway.memory_bytes("user_max_memory")

    def handler(options: Any) -> dict[str, Any]:
        cores = int(options.worker_cores)
        memory = int(options.worker_memory * GIB)
        fits = min(
            gateway.max_workers,
            gateway.user_max_workers,
            math.floor(gateway.user_max_cores / cores + 1e-9),
            user_memory // memory,
        )
        config = {
            "worker_cores": cores,
            "worker_threads": cores,
            "worker_memory": memory,
            "cluster_max_workers": fits,
        }
        if "idle_timeout" in options:
            config["idle_timeout"] = float(options.idle_timeout)
        return config

    fields: list[Any] = [
        Integer(
            "worker_cores",
            default=int(gateway.worker_cores),
            min=1,
            max=gateway.max_worker_cores,
            label="Worker cores",
        ),
        Float(
            "worker_memory",
            default=gateway.memory_bytes("worker_memory") / GIB,
            min=0.25,
            max=gateway.memory_bytes("max_worker_memory") / GIB,
            label="Worker memory (GiB)",
        ),
    ]
    if gateway.idle_timeout_s > 0:  # 0 is no timeout at all: nothing to shorten
        fields.append(
            Integer(
                "idle_timeout",
                default=gateway.idle_timeout_s,
                min=min(IDLE_TIMEOUT_MIN_S, gateway.idle_timeout_s),
                max=gateway.idle_timeout_s,
                label="Stop when idle for (s)",
            )
        )
    return Options(*fields, handler=handler)


def configure_gateway(c: Any, settings: Settings) -> None:
    """Fill dask-gateway-server's config object ``c``."""
    gateway = settings.gateway
    bin_dir = Path(sys.executable).parent
    c.DaskGateway.address = f"127.0.0.1:{gateway.api_port}"
    c.Proxy.address = f"127.0.0.1:{gateway.proxy_port}"
    c.Proxy.tcp_address = f"127.0.0.1:{gateway.scheduler_port}"
    c.Proxy.prefix = "/services/dask-gateway"
    c.DaskGateway.authenticator_class = "dask_gateway_server.auth.JupyterHubAuthenticator"
    if os.geteuid() == 0:
        _ACCOUNT_PREFIX["value"] = settings.users.account_prefix
        c.DaskGateway.backend_class = UserAccountBackend
    else:  # the single-user sandbox: clusters run as the one trusted user
        c.DaskGateway.backend_class = SandboxBackend
    clusters = Path(settings.home) / "dask-clusters"  # not under hub/ (0700): accounts enter their own
    clusters.mkdir(parents=True, exist_ok=True)
    clusters.chmod(0o711)  # each cluster's folder is its user's own, mode 0700
    c.LocalBackend.clusters_directory = str(clusters)
    # distributed no longer installs dask-scheduler / dask-worker; the `dask` command has both.
    c.ClusterConfig.scheduler_cmd = [str(bin_dir / "dask"), "scheduler"]
    c.ClusterConfig.worker_cmd = [str(bin_dir / "dask"), "worker"]
    c.ClusterConfig.cluster_max_workers = gateway.max_workers
    c.ClusterConfig.worker_cores = gateway.worker_cores
    c.ClusterConfig.worker_memory = gateway.worker_memory
    c.ClusterConfig.idle_timeout = float(gateway.idle_timeout_s)
    c.Backend.cluster_options = cluster_options(gateway)
    c.UserLimits.max_clusters = gateway.user_max_clusters
    c.UserLimits.max_workers = gateway.user_max_workers
    c.UserLimits.max_cores = float(gateway.user_max_cores)
    c.UserLimits.max_memory = gateway.memory_bytes("user_max_memory")
    c.ClusterConfig.environment = {
        k: v for k, v in os.environ.items() if k.startswith(("SURVEYHUB_STORE", "AWS_ENDPOINT"))
    }
