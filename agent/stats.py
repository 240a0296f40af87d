"""Node, pod and container cpu and memory, in the shapes kubelet serves them.

``StatsCollector.summary()`` is kubelet's /stats/summary (node{nodeName, cpu, memory},
pods[{podRef, cpu, memory, containers[...]}]) and ``resource_metrics()`` its
/metrics/resource Prometheus text; the API server's metrics.k8s.io reads the summary.
Cumulative cpu time comes from the kernel (/proc/stat for the node) and from the
runtime (``Runtime.stats()``); usageNanoCores is the rate between two readings at least
``min_window`` seconds apart, so the collector keeps recent readings per container. A
background sampler (``start``) reads every ``interval`` seconds so that the first
request after a quiet spell already has an older reading to compare with, as kubelet's
housekeeping does. ``cri_stats`` turns CRI's ListContainerStats into ContainerStats.
"""

import collections
import logging
import os
import threading
import time

from agent.runtime.base import ContainerStats

log = logging.getLogger(__name__)

NS_PER_SECOND = 1_000_000_000
DEFAULT_INTERVAL = 10.0
MIN_WINDOW = 1.0
#: Readings older than this are dropped (the sampler keeps a newer one anyway).
KEEP_SECONDS = 120.0
NODE_KEY = ("", "")
#: usageNanoCores is rounded to this many nanocores (a microcore).
RATE_STEP = 1000


# -- the node, from /proc -----------------------------------------------------------------
def parse_proc_stat(text, clock_ticks):
    """Return (busy cpu ns summed over all cpus, boot time) from /proc/stat's text."""
    busy, boot = 0, None
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            # user nice system idle iowait irq softirq steal [guest guest_nice]: guest
            # time is already in user and nice; idle and iowait are not use.
            values = [int(v) for v in fields[1:9]] + [0] * (8 - len(fields[1:9]))
            busy = sum(values) - values[3] - values[4]
        elif fields and fields[0] == "btime":
            boot = int(fields[1])
    return busy * NS_PER_SECOND // clock_ticks, boot


def parse_meminfo(text):
    """Return (usage, working set, available, total) bytes from /proc/meminfo's text.

    As kubelet counts a node: usage is what is not free, the working set is usage less
    inactive file pages (the kernel can drop them), available is total less working set.
    """
    kib = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            kib[name.strip()] = int(parts[0]) * 1024
    total = kib.get("MemTotal", 0)
    usage = max(0, total - kib.get("MemFree", 0))
    working_set = max(0, usage - kib.get("Inactive(file)", 0))
    return usage, working_set, max(0, total - working_set), total


class ProcNodeReader:
    """Read the node's cumulative cpu and its memory from /proc (``root`` for tests)."""

    def __init__(self, root="/proc", clock_ticks=None):
        self.root = root
        self.clock_ticks = clock_ticks or os.sysconf("SC_CLK_TCK")

    def _text(self, name):
        with open(os.path.join(self.root, name)) as f:
            return f.read()

    def read(self):
        """Return {cpu_ns, boot_time, usage, working_set, available}."""
        cpu_ns, boot = parse_proc_stat(self._text("stat"), self.clock_ticks)
        usage, working_set, available, _ = parse_meminfo(self._text("meminfo"))
        return {"cpu_ns": cpu_ns, "boot_time": boot, "usage": usage,
                "working_set": working_set, "available": available}


# -- CRI --------------------------------------------------------------------------------------
POD_UID = "io.kubernetes.pod.uid"
POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
CONTAINER_NAME = "io.kubernetes.container.name"


def _items(answer, field):
    """A client method's list: the list itself, or the response message's repeated field."""
    return list(answer) if isinstance(answer, (list, tuple)) else list(getattr(answer, field))


def cri_stats(client, labels=None, clock=time.time):
    """Return ContainerStats of the running containers CRI reports (``labels``: ours only).

    ListContainers gives the running containers and their io.kubernetes.* labels (the
    pod and container they belong to); ListContainerStats their cumulative cpu and
    working set. A container without stats yet is left out.
    """
    running = {}
    for container in _items(client.list_containers(label_selector=labels,
                                                   state=CONTAINER_RUNNING), "containers"):
        running[container.id] = dict(container.labels)
    found = []
    for stats in _items(client.list_container_stats(label_selector=labels), "stats"):
        container_labels = running.get(stats.attributes.id)
        if container_labels is None or POD_UID not in container_labels:
            continue
        if not stats.HasField("cpu") or not stats.cpu.HasField("usage_core_nano_seconds"):
            continue
        memory = stats.memory.working_set_bytes.value if stats.HasField("memory") else 0
        stamp = stats.cpu.timestamp / NS_PER_SECOND if stats.cpu.timestamp else clock()
        found.append(ContainerStats(
            container_labels[POD_UID], container_labels.get(POD_NAMESPACE, ""),
            container_labels.get(POD_NAME, ""),
            container_labels.get(CONTAINER_NAME) or stats.attributes.metadata.name,
            stats.cpu.usage_core_nano_seconds.value, memory, stamp))
    return found


#: runtime.v1 ContainerState.CONTAINER_RUNNING (an enum value of the CRI wire format).
CONTAINER_RUNNING = 1


# -- rates ------------------------------------------------------------------------------------
class _Rates:
    """Recent (time, cumulative ns) readings per key; the rate against an old enough one."""

    def __init__(self, min_window=MIN_WINDOW, keep=KEEP_SECONDS):
        self.min_window, self.keep = min_window, keep
        self._history = {}

    def observe(self, key, now, cumulative):
        """Record a reading; return ns per second since one >= min_window older, or None."""
        history = self._history.setdefault(key, collections.deque())
        if history and cumulative < history[-1][1]:
            history.clear()         # the counter restarted: a new container attempt
        while history and history[0][0] < now - self.keep and len(history) > 1 and \
                history[1][0] <= now - self.min_window:
            history.popleft()
        rate = None
        for when, value in reversed(history):
            if when <= now - self.min_window:
                # To the nearest microcore: float timestamps carry more jitter than that.
                rate = round((cumulative - value) / (now - when) / RATE_STEP) * RATE_STEP
                break
        # Readings closer together than half the window add nothing but memory.
        if not history or now - history[-1][0] >= self.min_window / 2:
            history.append((now, cumulative))
        return rate

    def forget_except(self, keys):
        for key in [k for k in self._history if k not in keys]:
            del self._history[key]


def rfc3339(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _cpu(now, cumulative, rate):
    cpu = {"time": rfc3339(now), "usageCoreNanoSeconds": cumulative}
    if rate is not None:
        cpu["usageNanoCores"] = rate
    return cpu


class StatsCollector:
    """Read the node and its containers; answer kubelet's summary and resource metrics.

    ``pods()`` returns {uid: pod object} of the pods the agent runs: only their
    containers are reported, under the pod's name and namespace.
    """

    def __init__(self, node_name, runtime, pods, clock=time.time, node_reader=None,
                 min_window=MIN_WINDOW):
        self.node_name, self.runtime, self.pods, self.clock = node_name, runtime, pods, clock
        self.node_reader = node_reader or ProcNodeReader()
        self._rates = _Rates(min_window)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    def sample(self):
        """Read everything now; return (node reading, [(ContainerStats, pod, rate)])."""
        now = self.clock()
        node = self.node_reader.read()
        try:
            containers = self.runtime.stats()
        except Exception as exc:     # noqa: BLE001 - a runtime hiccup leaves pods out, no more
            # A container created a moment ago has no stats yet (containerd 1.6 answers
            # NOT_FOUND for the whole list): this round leaves the pods out.
            log.info("msg=cannot read container stats from the runtime error=%s", exc)
            containers = []
        pods = self.pods()
        found = []
        with self._lock:
            node["rate"] = self._rates.observe(NODE_KEY, now, node["cpu_ns"])
            node["time"] = now
            for stats in containers:
                pod = pods.get(stats.pod_uid)
                if pod is None:
                    continue            # not (or no longer) one of this agent's pods
                key = (stats.pod_uid, stats.container)
                found.append((stats, pod, self._rates.observe(key, stats.timestamp,
                                                               stats.cpu_usage_core_ns)))
            self._rates.forget_except({NODE_KEY} | {(s.pod_uid, s.container)
                                                    for s, _, _ in found})
        return node, found

    def summary(self):
        """Return kubelet's /stats/summary document (cpu and memory only)."""
        node, containers = self.sample()
        node_doc = {"nodeName": self.node_name,
                    "cpu": _cpu(node["time"], node["cpu_ns"], node["rate"]),
                    "memory": {"time": rfc3339(node["time"]),
                               "availableBytes": node["available"],
                               "usageBytes": node["usage"],
                               "workingSetBytes": node["working_set"]}}
        if node.get("boot_time"):
            node_doc["startTime"] = rfc3339(node["boot_time"])
        by_pod = {}
        for stats, pod, rate in containers:
            by_pod.setdefault(stats.pod_uid, (pod, []))[1].append((stats, rate))
        return {"node": node_doc,
                "pods": [_pod_doc(pod, entries) for pod, entries in by_pod.values()]}

    def resource_metrics(self):
        """Return kubelet's /metrics/resource: cumulative cpu seconds, working set bytes."""
        node, containers = self.sample()
        stamp = int(node["time"] * 1000)
        lines = []

        def family(name, kind, help_text, samples):
            lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"])
            lines.extend(f"{name}{labels} {value} {when}" for labels, value, when in samples)

        family("node_cpu_usage_seconds_total", "counter",
               "Cumulative cpu time consumed by the node in core-seconds",
               [("", node["cpu_ns"] / NS_PER_SECOND, stamp)])
        family("node_memory_working_set_bytes", "gauge",
               "Current working set of the node in bytes", [("", node["working_set"], stamp)])
        rows = [(pod, stats, int(stats.timestamp * 1000)) for stats, pod, _ in containers]
        family("container_cpu_usage_seconds_total", "counter",
               "Cumulative cpu time consumed by the container in core-seconds",
               [(_labels(pod, s.container), s.cpu_usage_core_ns / NS_PER_SECOND, when)
                for pod, s, when in rows])
        family("container_memory_working_set_bytes", "gauge",
               "Current working set of the container in bytes",
               [(_labels(pod, s.container), s.memory_working_set, when) for pod, s, when in rows])
        pods = {}
        for pod, stats, when in rows:
            key = _labels(pod, None)
            cpu, memory, _ = pods.get(key, (0, 0, 0))
            pods[key] = (cpu + stats.cpu_usage_core_ns, memory + stats.memory_working_set, when)
        family("pod_cpu_usage_seconds_total", "counter",
               "Cumulative cpu time consumed by the pod in core-seconds",
               [(k, cpu / NS_PER_SECOND, when) for k, (cpu, _, when) in pods.items()])
        family("pod_memory_working_set_bytes", "gauge",
               "Current working set of the pod in bytes",
               [(k, memory, when) for k, (_, memory, when) in pods.items()])
        family("resource_scrape_error", "gauge",
               "1 if there was an error while getting container metrics, 0 otherwise",
               [("", 0, stamp)])
        return "\n".join(lines) + "\n"

    # -- the background sampler ---------------------------------------------------------
    def start(self, interval=DEFAULT_INTERVAL):
        """Sample every ``interval`` seconds on a daemon thread (0: never)."""
        if interval and self._thread is None:
            self._thread = threading.Thread(target=self._loop, args=(interval,),
                                            name="agent-stats", daemon=True)
            self._thread.start()
        return self

    def _loop(self, interval):
        while not self._stop.wait(interval):
            try:
                self.sample()
            except Exception as exc:     # noqa: BLE001 - keep sampling; say why once a round
                log.warning("msg=stats sampling failed error=%s", exc)

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def _labels(pod, container):
    meta = pod["metadata"]
    pairs = ([("container", container)] if container is not None else []) + \
        [("namespace", meta.get("namespace", "")), ("pod", meta.get("name", ""))]
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _pod_doc(pod, entries):
    """One pod of the summary: its containers and their sums."""
    meta = pod["metadata"]
    containers, cpu_total, rate_total, memory_total, when = [], 0, 0, 0, 0
    for stats, rate in entries:
        containers.append({"name": stats.container,
                           "cpu": _cpu(stats.timestamp, stats.cpu_usage_core_ns, rate),
                           "memory": {"time": rfc3339(stats.timestamp),
                                      "workingSetBytes": stats.memory_working_set}})
        cpu_total += stats.cpu_usage_core_ns
        memory_total += stats.memory_working_set
        rate_total = None if rate is None or rate_total is None else rate_total + rate
        when = max(when, stats.timestamp)
    doc = {"podRef": {"name": meta.get("name", ""), "namespace": meta.get("namespace", ""),
                      "uid": meta.get("uid", "")},
           "containers": sorted(containers, key=lambda c: c["name"]),
           "cpu": _cpu(when, cpu_total, rate_total),
           "memory": {"time": rfc3339(when), "workingSetBytes": memory_total}}
    start = (pod.get("status") or {}).get("startTime")
    if start:
        doc["startTime"] = start
    return doc
