"""Container stats from a real containerd: cri_stats and the summary built on it.

A sandbox and a busybox container are made straight through CRI (no agent), labelled
as the cri runtime labels them; ``agent.stats.cri_stats`` must find the running
container under its pod's identity with a working set and cpu time, and the
StatsCollector must turn two readings into a cpu rate.
"""

import time
import uuid

import pytest

from agent import stats
from agent.provision import containerd as provision
from agent.runtime.cri import api_pb2 as api
from agent.runtime.cri import labels as labelmod
from agent.runtime.cri import sandbox
from cli.local_images import BUSYBOX_IMAGE
from tests.support import containerd as ctd
from tests.support.apiproc import eventually

pytestmark = pytest.mark.skipif(ctd.missing_requirements() is not None,
                                reason=f"no real containerd: {ctd.missing_requirements()}")


class CriRuntimeStats:
    """The one Runtime method the collector needs, as the cri runtime answers it."""

    def __init__(self, client, node):
        self.client, self.node = client, node

    def stats(self):
        return stats.cri_stats(self.client, labels=labelmod.ours(self.node))


def test_cri_stats_of_a_running_container(tmp_path):
    with ctd.running_containerd(tmp_path, pod_cidr="10.244.29.0/24") as handle:
        node, client = handle.node_name, handle.client
        pod = {"metadata": {"name": "busy", "namespace": "default", "uid": str(uuid.uuid4())},
               "spec": {}}
        logs = tmp_path / "logs"
        logs.mkdir()
        config = sandbox.build(pod, node=node, attempt=0, log_directory=str(logs),
                               cgroup_parent=provision.pod_cgroup_parent(
                                   node, pod["metadata"]["uid"]))
        sandbox_id = client.run_pod_sandbox(config)
        container = api.ContainerConfig(
            metadata=api.ContainerMetadata(name="spin", attempt=0),
            image=api.ImageSpec(image=BUSYBOX_IMAGE),
            # A little cpu, then idle: the counter must move, the machine stay free.
            command=["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; "
                                 "sleep 3600"],
            labels=labelmod.container_labels(pod, "spin", node), log_path="spin.log")
        container_id = client.create_container(sandbox_id, container, config)
        client.start_container(container_id)

        def found():
            readings = stats.cri_stats(client, labels=labelmod.ours(node))
            return readings if readings and readings[0].cpu_usage_core_ns > 0 else None
        [reading] = eventually(found, timeout=30, message="cpu time of the container")
        assert (reading.pod_uid, reading.pod_namespace, reading.pod_name, reading.container) \
            == (pod["metadata"]["uid"], "default", "busy", "spin")
        assert reading.memory_working_set > 0
        assert abs(reading.timestamp - time.time()) < 300

        collector = stats.StatsCollector(node, CriRuntimeStats(client, node),
                                         lambda: {pod["metadata"]["uid"]: pod}, min_window=0.5)

        def rated():
            summary = collector.summary()
            entries = summary["pods"]
            return entries if entries and "usageNanoCores" in entries[0]["cpu"] else None
        [entry] = eventually(rated, timeout=30, message="a cpu rate from two readings")
        assert entry["podRef"]["name"] == "busy"
        assert entry["containers"][0]["memory"]["workingSetBytes"] > 0
