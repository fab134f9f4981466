"""Where the work runs: a Dask Gateway cluster in the platform, a local cluster anywhere else.

Inside the platform the hub puts the gateway's address and authentication in the server's environment
(``DASK_GATEWAY__*``), so ``Gateway()`` needs no arguments and the cluster's workers run as the user,
reading what the user can read. :func:`connect` asks for the cluster with the chosen worker size, says
what it is doing while the cluster starts (that takes seconds, and a silent cell looks hung), and returns
an ordinary ``distributed.Client``; outside the platform the same call gives a ``LocalCluster`` so the
same notebook runs on a laptop.

:func:`compute` computes Dask collections with a progress bar: distributed's ``progress`` on the current
client (a widget when ipywidgets is there, text otherwise), ``dask.diagnostics.ProgressBar`` without one.
Tasks whose worker dies are run again by the scheduler; ``retries`` also repeats tasks that raised.
"""

from __future__ import annotations

import importlib.util
import re
import time
import warnings
from collections.abc import Callable
from typing import Any

import dask

#: How often :func:`connect` looks at the workers while it waits for them (seconds).
_POLL_S = 0.5


def on_platform() -> bool:
    """Whether a Dask Gateway is configured here (the hub sets ``DASK_GATEWAY__ADDRESS``)."""
    return bool(dask.config.get("gateway.address", None))


def _workers(client: Any) -> int:
    return len(client.scheduler_info().get("workers", {}))


def connect(
    workers: int = 2,
    *,
    worker_cores: int | None = None,
    worker_memory: float | None = None,
    adaptive: bool = False,
    timeout: float = 300,
    log: Callable[[str], None] | None = print,
) -> Any:
    """A Dask client on a fresh cluster of ``workers`` workers; returns a ``distributed.Client``.

    ``worker_cores`` and ``worker_memory`` (GiB) are the gateway's cluster options (see
    ``Gateway().cluster_options()``: the platform bounds them and limits what one user holds in total);
    ``None`` keeps the platform's defaults. ``adaptive=True`` lets the cluster grow to ``workers`` and
    shrink when idle instead of holding them. Waits up to ``timeout`` seconds for the workers, printing
    progress through ``log``. ``client.cluster`` is the cluster: ``client.cluster.close()`` stops it (it
    also stops when the kernel ends). Outside the platform a ``LocalCluster`` of processes is made.
    """
    say = log or (lambda _message: None)
    if not on_platform():
        from distributed import Client, LocalCluster

        say(f"No Dask Gateway here: starting a local cluster of {workers} worker processes")
        cluster = LocalCluster(
            n_workers=0 if adaptive else workers,
            threads_per_worker=worker_cores or 1,
            memory_limit=f"{worker_memory}GiB" if worker_memory else "auto",
            processes=True,
            dashboard_address=":0",
        )
        if adaptive:
            cluster.adapt(minimum=0, maximum=workers)
        client = Client(cluster)
        say(f"Local cluster ready: dashboard {client.dashboard_link}")
        return client

    from dask_gateway import Gateway, GatewayWarning

    gateway = Gateway()
    options = gateway.cluster_options()
    if worker_cores is not None:
        options.worker_cores = int(worker_cores)  # raises here, clearly, if beyond what the platform allows
    if worker_memory is not None:
        options.worker_memory = float(worker_memory)
    size = f"{options.worker_cores} core(s), {options.worker_memory:g} GiB each"
    say(f"Starting a Dask Gateway cluster ({workers} workers of {size})...")
    started = time.monotonic()
    cluster = gateway.new_cluster(options, shutdown_on_close=True)
    say(f"Cluster {cluster.name} is up after {time.monotonic() - started:.0f} s; asking for workers")
    wanted = workers
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GatewayWarning)
        if adaptive:
            cluster.adapt(minimum=0, maximum=workers)
            wanted = 0
        else:
            cluster.scale(workers)
    for warning in caught:  # the gateway scaled down to what the user's limits leave: say so, wait for that
        say(f"Dask Gateway: {warning.message}")
        if issubclass(warning.category, GatewayWarning):
            granted = re.search(r"[Ss]caling to (\d+)", str(warning.message))
            wanted = min(wanted, int(granted.group(1)) if granted else 1)
    client = cluster.get_client()
    seen = -1
    deadline = time.monotonic() + timeout
    while (n := _workers(client)) < wanted and time.monotonic() < deadline:
        if n != seen:
            say(f"  workers {n}/{wanted}")
            seen = n
        time.sleep(_POLL_S)
    n = _workers(client)
    if n < wanted:
        say(f"Only {n} of {wanted} workers started within {timeout:g} s; work runs on those that did")
    say(f"Ready: {n} worker(s); dashboard {cluster.dashboard_link}")
    return client


def _current_client() -> Any:
    try:
        from distributed import get_client
    except ImportError:  # pragma: no cover - distributed is a dependency of the platform
        return None
    try:
        return get_client()
    except ValueError:
        return None


def _as_collection(obj: Any) -> Any:
    """lsdb catalogs compute through their Dask DataFrame (their own ``compute`` has its own bar)."""
    from surveyhub.analysis.query import is_lsdb

    return obj.to_dask_dataframe() if is_lsdb(obj) else obj


def compute(*collections: Any, progress: bool = True, retries: int = 2) -> tuple[Any, ...]:
    """Compute Dask collections (and lsdb catalogs) together, showing progress; returns their results.

    >>> import dask
    >>> compute(dask.delayed(sum)([1, 2, 3]), progress=False)
    (6,)
    """
    collections = tuple(_as_collection(c) for c in collections)
    client = _current_client()
    if client is not None:
        futures = client.compute(list(collections), retries=retries)
        if progress:
            from distributed import progress as show
            from distributed.utils import is_kernel

            show(futures, notebook=is_kernel() and importlib.util.find_spec("ipywidgets") is not None)
        return tuple(client.gather(futures))
    if progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            return dask.compute(*collections)
    return dask.compute(*collections)
