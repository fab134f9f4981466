"""Dask Gateway through the real platform hub, from inside a user's server, with surveyhub.analysis.

One hub built by ``surveyhub.hub.configure`` with small per-user limits; one user, dora (no group: she
reads the public DEMO v2). Every step runs in a kernel of her own server, as her system account, with
only the environment the hub gave it: cluster options, a cluster with the memory she chose, the limits
(a third cluster refused, a scale beyond her cores cut down, with messages saying so), listing and
stopping her clusters, the idle timeout, and a stack over the release on her gateway cluster, saved to
her cloud space. The steps share the kernel and run in order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from surveyhub import analysis as sa
from surveyhub.releases.registry import ReleaseStore
from tests.support.lab import Kernel
from tests.support.platform import Platform, reachable_dir, running_platform

pytestmark = [
    pytest.mark.xdist_group("hub"),
    pytest.mark.skipif(os.geteuid() != 0, reason="clusters run as users' accounts only under a root hub"),
]

GIB = 2**30
#: Small limits, so that going beyond them takes two clusters of one worker each.
GATEWAY = {
    "worker_memory": "1G",
    "max_worker_memory": "2G",
    "max_worker_cores": 2,
    "user_max_clusters": 2,
    "user_max_cores": 2.0,
    "user_max_memory": "4G",
    "user_max_workers": 4,
    "idle_timeout_s": 600,
}
QUERY = {"where": "snrg > 3", "classes": ["STAR", "GALAXY"]}
#: What the steps learn (cluster names) and later steps check.
seen: dict[str, str] = {}


@pytest.fixture(scope="module")
def platform(platform_store: ReleaseStore) -> Iterator[Platform]:
    base = reachable_dir("surveyhub-analysis-")
    with running_platform(base, platform_store.url.removeprefix("file://"), gateway=GATEWAY) as p:
        p.add_user("dora")
        p.spawn("dora")
        yield p


@pytest.fixture(scope="module")
def kernel(platform: Platform) -> Iterator[Kernel]:
    imports = (
        "import json, time, warnings\nfrom dask_gateway import Gateway\nfrom surveyhub import analysis as sa"
    )
    with platform.kernel("dora") as k:
        k.check(imports)
        yield k


def _last_json(output: str) -> object:
    return json.loads(output.strip().splitlines()[-1])


def test_cluster_options_show_the_platform_bounds(kernel: Kernel) -> None:
    options = _last_json(kernel.check("print(json.dumps(dict(Gateway().cluster_options())))"))
    assert options == {"worker_cores": 1, "worker_memory": 1.0, "idle_timeout": 600}
    result = kernel.run("o = Gateway().cluster_options()\no.worker_cores = 3")
    assert result.error is not None
    assert result.error[0] == "ValueError"
    assert "worker_cores must be <= 2" in result.error[1]


def _connect_starts_a_cluster_with_the_chosen_worker_memory(platform: Platform, kernel: Kernel) -> None:
    output = kernel.check(
        "client = sa.connect(workers=1, worker_memory=1.5)\n"
        "workers = client.scheduler_info()['workers'].values()\n"
        "who = list(client.run(__import__('getpass').getuser).values())\n"
        "print(json.dumps({'name': client.cluster.name, 'address': client.scheduler.address,\n"
        "                  'memory': [w['memory_limit'] for w in workers], 'who': who}))",
        timeout=240,
    )
    assert "Starting a Dask Gateway cluster (1 workers of 1 core(s), 1.5 GiB each)" in output
    assert "Ready: 1 worker(s)" in output
    info = _last_json(output)
    assert info["address"].startswith("gateway://")
    assert info["memory"] == [int(1.5 * GIB)]
    assert info["who"] == [platform.account("dora")]
    seen["first"] = info["name"]


def _limits_cut_a_scale_down_and_refuse_a_third_cluster(kernel: Kernel) -> None:
    # The first cluster holds 1 of dora's 2 worker cores: a second cluster asking for 3 workers gets 1.
    output = kernel.check(
        "g = Gateway()\n"
        "second = g.new_cluster(worker_memory=1.0)\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    second.scale(3)\n"
        "second_client = second.get_client(set_as_default=False)\n"
        "second_client.wait_for_workers(1, timeout=180)\n"
        "time.sleep(3)\n"
        "print(json.dumps({'name': second.name, 'warnings': [str(w.message) for w in caught],\n"
        "                  'workers': len(second_client.scheduler_info()['workers'])}))",
        timeout=240,
    )
    info = _last_json(output)
    seen["second"] = info["name"]
    assert info["workers"] == 1
    assert any("Scaling to 1 instead" in w for w in info["warnings"]), info["warnings"]
    refused = kernel.run("third = g.new_cluster()", timeout=120)
    assert refused.error is not None
    name, message = refused.error
    assert name == "ValueError"
    assert "already has 2 Dask clusters" in message
    assert "the limit is 2 per user" in message
    assert "Gateway().stop_cluster(name)" in message


def _user_lists_and_stops_clusters_through_the_hub(kernel: Kernel) -> None:
    listed = _last_json(
        kernel.check(
            "before = sorted(c.name for c in g.list_clusters())\n"
            "g.stop_cluster(second.name)\n"
            "after = sorted(c.name for c in g.list_clusters())\n"
            "print(json.dumps([before, after]))"
        )
    )
    assert listed == [sorted([seen["first"], seen["second"]]), [seen["first"]]]
    # Below the limit again: a new cluster is allowed; with a short idle timeout it stops by itself.
    gone = _last_json(
        kernel.check(
            "idle = g.submit(idle_timeout=10)\n"
            "deadline = time.monotonic() + 120\n"
            "while idle in [c.name for c in g.list_clusters()] and time.monotonic() < deadline:\n"
            "    time.sleep(1)\n"
            "print(json.dumps([idle not in [c.name for c in g.list_clusters()],\n"
            "                  [c.name for c in g.list_clusters()]]))",
            timeout=180,
        )
    )
    assert gone == [True, [seen["first"]]]


def _a_stack_runs_on_the_gateway_cluster_and_lands_in_the_cloud_space(
    platform: Platform, platform_store: ReleaseStore, kernel: Kernel
) -> None:
    output = kernel.check(
        "import numpy as np, distributed\n"
        f"q = sa.select('DEMO', 'v2', where={QUERY['where']!r}, classes={QUERY['classes']!r})\n"
        "stack = sa.stack_spectra(q.open_spectra(), by='class')\n"
        "url = sa.write_result(stack, 'stacks/by-class', query=q)\n"
        "print(json.dumps({'labels': stack.labels, 'count': stack.count.tolist(),\n"
        "                  'flux': np.nan_to_num(stack.flux).sum(axis=1).tolist(), 'url': url,\n"
        "                  'scheduler': distributed.get_client().scheduler.address}))\n"
        "client.cluster.close()",
        timeout=300,
    )
    got = _last_json(output)
    assert got["scheduler"].startswith("gateway://")  # computed on dora's gateway cluster
    version = platform_store.version("DEMO", "v2", set())
    query = sa.Query(version, where=QUERY["where"], classes=tuple(QUERY["classes"]))
    expected = sa.stack_spectra(query.open_spectra(), by="class", progress=False)
    assert got["labels"] == expected.labels
    assert got["count"] == expected.count.tolist()
    np.testing.assert_allclose(got["flux"], np.nan_to_num(expected.flux).sum(axis=1), rtol=1e-9)
    cloud = Path(platform.settings.cloud.user_url_for("dora").removeprefix("file://"))
    assert got["url"] == f"file://{cloud}/stacks/by-class.parquet"
    written = pq.read_table(cloud / "stacks" / "by-class.parquet")
    record = json.loads(written.schema.metadata[b"surveyhub"])
    assert record["query"]["release"] == "DEMO"
    assert record["query"]["version"] == "v2"
    assert record["query"]["classes"] == QUERY["classes"]
    assert written.column("label").to_pylist() == expected.labels
    assert (cloud / "stacks" / "by-class.query.json").exists()


def test_a_users_clusters_from_start_to_stop(
    platform: Platform, platform_store: ReleaseStore, kernel: Kernel
) -> None:
    """One story in one kernel, in order (xdist may reorder separate tests): connect with chosen options,
    hit the per-user limits, list and stop through the hub, then a stack on the gateway cluster."""
    _connect_starts_a_cluster_with_the_chosen_worker_memory(platform, kernel)
    _limits_cut_a_scale_down_and_refuse_a_third_cluster(kernel)
    _user_lists_and_stops_clusters_through_the_hub(kernel)
    _a_stack_runs_on_the_gateway_cluster_and_lands_in_the_cloud_space(platform, platform_store, kernel)
