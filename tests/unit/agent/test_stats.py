"""The agent's stats: /proc parsing, rates between readings, the summary's shape."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error

import pytest

from agent import stats
from agent.runtime import procstats
from agent.runtime.base import ContainerConfig, ContainerStats
from agent.runtime.fake import FAKE_MEMORY_BYTES, FakeRuntime
from agent.runtime.process import ProcessRuntime
from agent.server import AgentServer, server_context
from tests.unit.agent import test_server
from tests.unit.agent.test_server import open_url

pki = test_server.pki      # the module's certificates fixture, shared

PROC_STAT = """cpu  100 5 50 1000 20 3 2 0 7 0
cpu0 50 5 25 500 10 1 1 0 7 0
intr 1 2 3
btime 1700000000
"""
MEMINFO = """MemTotal:       1000 kB
MemFree:         400 kB
Inactive(file):  100 kB
"""


class FakeClock:
    def __init__(self, now=1_700_000_100.0):
        self.now = now

    def __call__(self):
        return self.now


class FakeNode:
    """A node whose busy cpu grows by ``per_second`` core-ns per clock second."""

    def __init__(self, clock, per_second=500_000_000):
        self.clock, self.per_second = clock, per_second

    def read(self):
        return {"cpu_ns": int(self.clock() * self.per_second), "boot_time": 1_700_000_000,
                "usage": 600 * 1024, "working_set": 500 * 1024, "available": 500 * 1024}


class StaticRuntime:
    def __init__(self):
        self.readings = []

    def stats(self):
        return list(self.readings)


def pod(uid, name="web", namespace="default"):
    return {"metadata": {"uid": uid, "name": name, "namespace": namespace},
            "status": {"startTime": "2026-12-04T21:00:00Z"}}


def test_proc_stat_counts_busy_time_without_idle_and_iowait():
    cpu_ns, boot = stats.parse_proc_stat(PROC_STAT, clock_ticks=100)
    # user+nice+system+irq+softirq+steal = 100+5+50+3+2+0 ticks; guest is inside user.
    assert cpu_ns == 160 * 10_000_000
    assert boot == 1_700_000_000


def test_meminfo_working_set_is_usage_less_inactive_file():
    usage, working_set, available, total = stats.parse_meminfo(MEMINFO)
    assert (usage, working_set, available, total) == (600 * 1024, 500 * 1024, 500 * 1024,
                                                      1000 * 1024)


def test_proc_node_reader_reads_files(tmp_path):
    (tmp_path / "stat").write_text(PROC_STAT)
    (tmp_path / "meminfo").write_text(MEMINFO)
    reading = stats.ProcNodeReader(str(tmp_path), clock_ticks=100).read()
    assert reading["cpu_ns"] == 1_600_000_000 and reading["working_set"] == 500 * 1024


def test_rates_need_a_reading_old_enough_and_reset_on_restart():
    rates = stats._Rates(min_window=1.0)
    assert rates.observe("c", 10.0, 0) is None
    assert rates.observe("c", 10.2, 100) is None              # too close to compare
    assert rates.observe("c", 12.0, 2_000_000_000) == 1_000_000_000   # 2 s of cpu in 2 s
    # A new attempt starts its counter from zero: no rate until a second reading.
    assert rates.observe("c", 13.0, 5) is None
    assert rates.observe("c", 14.0, 500_000_005) == 500_000_000


def test_rates_keep_bounded_history():
    rates = stats._Rates(min_window=1.0, keep=10.0)
    for step in range(1000):
        rates.observe("c", step * 0.1, step)
    assert len(rates._history["c"]) <= 10.0 / 0.5 + 3


def test_summary_shape_with_rates_from_a_fake_clock():
    clock = FakeClock()
    runtime = StaticRuntime()
    pods = {"u1": pod("u1"), "u2": pod("u2", "db")}
    collector = stats.StatsCollector("n1", runtime, lambda: pods, clock=clock,
                                     node_reader=FakeNode(clock))

    def readings(cpu_a, cpu_b):
        runtime.readings = [
            ContainerStats("u1", "", "", "app", cpu_a, 4096, clock()),
            ContainerStats("u1", "", "", "sidecar", cpu_b, 8192, clock()),
            ContainerStats("gone", "", "", "x", 1, 1, clock()),       # not our pod: left out
        ]
    readings(0, 0)
    first = collector.summary()
    assert "usageNanoCores" not in first["node"]["cpu"]
    assert "usageNanoCores" not in first["pods"][0]["containers"][0]["cpu"]
    clock.now += 10
    readings(2_000_000_000, 500_000_000)
    summary = collector.summary()
    json.dumps(summary)             # plain JSON
    node = summary["node"]
    assert node["nodeName"] == "n1"
    assert node["cpu"]["usageNanoCores"] == 500_000_000
    assert node["memory"]["workingSetBytes"] == 500 * 1024
    assert node["memory"]["availableBytes"] == 500 * 1024
    assert node["startTime"] == "2023-11-14T22:13:20Z"
    [entry] = summary["pods"]
    assert entry["podRef"] == {"name": "web", "namespace": "default", "uid": "u1"}
    app, sidecar = entry["containers"]
    assert (app["name"], app["cpu"]["usageNanoCores"]) == ("app", 200_000_000)
    assert sidecar["cpu"]["usageNanoCores"] == 50_000_000
    assert sidecar["memory"]["workingSetBytes"] == 8192
    assert entry["cpu"]["usageNanoCores"] == 250_000_000
    assert entry["cpu"]["usageCoreNanoSeconds"] == 2_500_000_000
    assert entry["memory"]["workingSetBytes"] == 12288
    assert entry["cpu"]["time"].endswith("Z")


def test_resource_metrics_text():
    clock = FakeClock()
    runtime = StaticRuntime()
    runtime.readings = [ContainerStats("u1", "", "", "app", 1_500_000_000, 4096, clock())]
    collector = stats.StatsCollector("n1", runtime, lambda: {"u1": pod("u1")}, clock=clock,
                                     node_reader=FakeNode(clock))
    text = collector.resource_metrics()
    assert 'container_cpu_usage_seconds_total{container="app",namespace="default",' \
           'pod="web"} 1.5 1700000100000' in text
    assert 'pod_memory_working_set_bytes{namespace="default",pod="web"} 4096' in text
    assert "# TYPE node_cpu_usage_seconds_total counter" in text
    assert "resource_scrape_error 0" in text


def test_a_failing_runtime_leaves_pods_out_not_the_node():
    class Broken:
        def stats(self):
            raise OSError("socket gone")
    clock = FakeClock()
    collector = stats.StatsCollector("n1", Broken(), dict, clock=clock,
                                     node_reader=FakeNode(clock))
    summary = collector.summary()
    assert summary["pods"] == [] and summary["node"]["nodeName"] == "n1"


def test_fake_runtime_reports_small_fixed_usage():
    clock = FakeClock()
    runtime = FakeRuntime(clock=clock)
    runtime.start(ContainerConfig("u1", "default/web", "app", 0, ["serve"], {}, "/", "/x.log"))
    clock.now += 5
    [reading] = runtime.stats()
    assert reading.cpu_usage_core_ns == 5_000_000 and reading.memory_working_set == \
        FAKE_MEMORY_BYTES


def test_parse_stat_handles_odd_command_names():
    data = b"42 (a) b (c)) S 1 40 40 0 -1 0 0 0 0 0 7 3 2 1 20 0 1 0 100 1000 25 rest"
    assert procstats.parse_stat(data) == (40, 13, 25)


def test_cgroup_usage_reads_v2_files(tmp_path):
    (tmp_path / "cpu.stat").write_text("usage_usec 2500\nuser_usec 2000\n")
    (tmp_path / "memory.current").write_text("10000\n")
    (tmp_path / "memory.stat").write_text("anon 5000\ninactive_file 3000\n")
    assert procstats.cgroup_usage(str(tmp_path)) == (2_500_000, 7000)
    assert procstats.cgroup_usage(str(tmp_path / "missing")) is None


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_process_group_usage_of_a_real_process():
    child = subprocess.Popen([sys.executable, "-c", "import time\nx = bytearray(8 << 20)\n"
                              "end = time.time() + 30\nwhile time.time() < end: pass"],
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            cpu, rss = procstats.group_usage().get(child.pid, (0, 0))
            if cpu > 0 and rss > 8 << 20:
                break
            time.sleep(0.05)
        assert cpu > 0 and rss > 8 << 20
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def test_process_runtime_stats_of_a_running_container(tmp_path):
    runtime = ProcessRuntime(str(tmp_path))
    record = runtime.start(ContainerConfig("u1", "default/web", "app", 0, ["sleep", "30"],
                                           {}, str(tmp_path), str(tmp_path / "app.log")))
    try:
        [reading] = runtime.stats()
        assert (reading.pod_uid, reading.container) == ("u1", "app")
        assert reading.memory_working_set > 0
    finally:
        runtime.signal(record.container_id, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while runtime.inspect(record.container_id).running and time.monotonic() < deadline:
            time.sleep(0.02)
        assert runtime.stats() == []
        runtime.remove(record.container_id)


def test_agent_port_serves_summary_to_the_api_server_only(pki):
    clock = FakeClock()
    runtime = StaticRuntime()
    runtime.readings = [ContainerStats("u1", "", "", "app", 10, 4096, clock())]
    collector = stats.StatsCollector("n1", runtime, lambda: {"u1": pod("u1")}, clock=clock,
                                     node_reader=FakeNode(clock))
    context = server_context(pki.serving.cert, pki.serving.key, pki.ca_file)
    server = AgentServer("127.0.0.1", 0, None, ssl_context=context, stats=collector).start()
    server.pki = pki
    try:
        with open_url(server, "/stats/summary") as response:
            assert response.headers["Content-Type"] == "application/json"
            summary = json.load(response)
        assert summary["pods"][0]["containers"][0]["memory"]["workingSetBytes"] == 4096
        with open_url(server, "/metrics/resource") as response:
            assert b"container_memory_working_set_bytes" in response.read()
        with pytest.raises(urllib.error.HTTPError) as refused:
            open_url(server, "/stats/summary", client="node")
        assert refused.value.code == 403
    finally:
        server.stop()


class FakeCriClient:
    """ListContainers and ListContainerStats answers built from real CRI messages."""

    def __init__(self, api):
        self.api, self.asked = api, []

    def list_containers(self, label_selector=None, state=None):
        self.asked.append(("containers", label_selector, state))
        labels = {stats.POD_UID: "u1", stats.POD_NAME: "web", stats.POD_NAMESPACE: "default",
                  stats.CONTAINER_NAME: "app"}
        return [self.api.Container(id="c1", labels=labels),
                self.api.Container(id="c3", labels={"other": "x"})]

    def list_container_stats(self, label_selector=None):
        self.asked.append(("stats", label_selector))
        api = self.api

        def usage(cid, cpu=None, memory=None):
            out = api.ContainerStats(attributes=api.ContainerAttributes(
                id=cid, metadata=api.ContainerMetadata(name="app")))
            if cpu is not None:
                out.cpu.CopyFrom(api.CpuUsage(timestamp=1_700_000_000_500_000_000,
                                              usage_core_nano_seconds=api.UInt64Value(value=cpu)))
            if memory is not None:
                out.memory.CopyFrom(api.MemoryUsage(working_set_bytes=api.UInt64Value(
                    value=memory)))
            return out
        # c1 runs; c2 has stopped (not in ListContainers); c3 is not a pod's; c4 has no cpu.
        return [usage("c1", 42_000, 8192), usage("c2", 1, 1), usage("c3", 1, 1), usage("c4")]


def test_cri_stats_joins_running_containers_and_their_labels():
    api = pytest.importorskip("agent.runtime.cri.api_pb2")
    client = FakeCriClient(api)
    found = stats.cri_stats(client, labels={"steersman.io/node": "n1"})
    assert found == [ContainerStats("u1", "default", "web", "app", 42_000, 8192, 1_700_000_000.5)]
    assert client.asked[0] == ("containers", {"steersman.io/node": "n1"},
                               api.CONTAINER_RUNNING)
