"""`steer up` that cannot finish: it says why, stops what it started and forgets it."""

import os

import pytest

from cli import local_containers, local_network
from tests.e2e.conftest import SHORT_TIMINGS, E2ECluster

pytestmark = pytest.mark.e2e


def test_a_failed_up_stops_everything_it_started_and_keeps_the_logs(tmp_path):
    cluster = E2ECluster(tmp_path)
    # 192.0.2.0/24 is reserved for documentation: no machine has these addresses.
    result = cluster.steer("up", "--nodes", "1", "--node-ip-prefix", "192.0.2",
                           "--service-cluster-ip-range", cluster.service_range,
                           *SHORT_TIMINGS, check=False)
    assert result.returncode == 1
    assert "did not come up" in result.stderr and "cannot listen on 192.0.2.1" in \
        result.stderr
    assert "api server ready" in result.stdout        # it got that far
    logs = os.path.join(tmp_path, "cluster", "logs")
    assert {"store-s1.log", "apiserver.log"} <= set(os.listdir(logs))
    assert not os.path.exists(os.path.join(tmp_path, "cluster", "cluster.json"))
    assert not os.path.exists(os.path.join(tmp_path, "config"))
    assert cluster.processes_under_home() == []
    # Nothing of its containers either (where it ran them): sockets, namespaces.
    cluster_id = local_network.cluster_id(str(tmp_path))
    assert not os.path.exists(local_containers.socket_dir(cluster_id))
    namespaces = os.listdir(local_network.NETNS_DIR) \
        if os.path.isdir(local_network.NETNS_DIR) else []
    assert [ns for ns in namespaces if ns.startswith(f"st-{cluster_id}-")] == []
    status = cluster.steer("status", check=False)
    assert status.returncode == 1 and "run `steer up`" in status.stderr
