"""Benchmark pod startup: creation to Running, as Kubernetes' pod startup SLO measures it.

Run: ``.venv/bin/python -m bench.pods`` (``--help`` for options). It starts a real
3-node store, `steer-apiserver`, `steer-scheduler` and `steer-controller-manager`,
then:

1. Process runtime: 4 real `steer-agent` processes (loopback node IPs
   127.0.1.1-4) and a Deployment of 100 pods running ``sleep``; each pod's startup
   latency is the time from its first watch event (its creation) to the first
   event that shows it Running with every container started. Also the memory
   (RSS) of each agent with its 25 pods running.
2. Hollow nodes: 100 agents with the fake runtime (kubemark's hollow nodes, 25 per
   process in 4 processes) and Deployments totalling 3,000 pods created at once.

Kubernetes' SLO: p99 of pod startup <= 5 s (stateless pods, no image pulls).
Figures are printed beside it; nothing is asserted.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from control.client import Informer, NotFound  # noqa: E402
from control.objects import kinds  # noqa: E402
from tests.support.apiproc import ROOT, LocalApiServer  # noqa: E402

PODS = kinds.lookup("", "v1", "pods")
DEPLOYMENTS = kinds.lookup("apps", "v1", "deployments")
NAMESPACES = kinds.lookup("", "v1", "namespaces")
NODES = kinds.lookup("", "v1", "nodes")
SLO_P99 = 5.0


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else float("nan")


def _running(pod):
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    return status.get("phase") == "Running" and containers and \
        all("running" in (c.get("state") or {}) for c in containers)


class StartupClock:
    """Watch a namespace's pods: first seen (created), bound, and Running, per pod."""

    def __init__(self, rest, namespace):
        self.created, self.bound, self.running = {}, {}, {}
        self._lock = threading.Lock()
        self.informer = Informer(rest, PODS, namespace=namespace)
        self.informer.add_handler(self._seen, lambda old, new: self._seen(new), None)

    def _seen(self, pod):
        name, now = pod["metadata"]["name"], time.monotonic()
        with self._lock:
            self.created.setdefault(name, now)
            if (pod.get("spec") or {}).get("nodeName"):
                self.bound.setdefault(name, now)
            if _running(pod):
                self.running.setdefault(name, now)

    def wait_running(self, count, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.running) >= count:
                    return True
            time.sleep(0.1)
        return False

    def report(self, label):
        with self._lock:
            names = list(self.running)
            startup = [self.running[n] - self.created[n] for n in names]
            to_bind = [self.bound[n] - self.created[n] for n in names if n in self.bound]
            to_run = [self.running[n] - self.bound[n] for n in names if n in self.bound]
        print(f"  {label}: {len(names)} pods Running; startup p50 {percentile(startup, 0.5):.2f} s, "
              f"p90 {percentile(startup, 0.9):.2f} s, p99 {percentile(startup, 0.99):.2f} s")
        print(f"    of which creation -> bound p50 {percentile(to_bind, 0.5):.2f} s / p99 "
              f"{percentile(to_bind, 0.99):.2f} s, bound -> Running p50 "
              f"{percentile(to_run, 0.5):.2f} s / p99 {percentile(to_run, 0.99):.2f} s")
        return percentile(startup, 0.5), percentile(startup, 0.99)


class Process:
    """A background process of the benchmark, stopped by pid."""

    def __init__(self, argv, log_path):
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, *argv], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
                                     env={**os.environ, "PYTHONPATH": ROOT})

    def rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def deployment(name, replicas, image="busybox", command=("sleep", "3600")):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"terminationGracePeriodSeconds": 2,
                                           "containers": [{"name": "main", "image": image,
                                                           "command": list(command)}]}}}}


def wait_nodes_ready(rest, count, timeout=120, prefix=""):
    """Wait until ``count`` nodes whose names start with ``prefix`` are Ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        nodes = [n for n in rest.list(NODES)["items"]
                 if n["metadata"]["name"].startswith(prefix)]
        ready = [n for n in nodes if any(c.get("type") == "Ready" and c.get("status") == "True"
                                         for c in (n.get("status") or {}).get("conditions") or ())]
        if len(ready) >= count:
            return True
        time.sleep(0.2)
    return False


def wait_pods_gone(rest, namespace, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not rest.list(PODS, namespace)["items"]:
            return True
        time.sleep(0.2)
    return False


def bench_process_runtime(rest, server, workdir, agents, pods):
    print(f"\n1. process runtime: {agents} agents, a Deployment of {pods} pods running sleep")
    procs = []
    try:
        for i in range(agents):
            data = os.path.join(workdir, f"agent-{i + 1}")
            procs.append(Process(["-m", "agent.main", "--kubeconfig", server.kubeconfig,
                                  "--node-name", f"node-{i + 1}", "--node-ip", f"127.0.1.{i + 1}",
                                  "--port", "0", "--runtime", "process", "--data-dir", data,
                                  *server.agent_tls_args(f"node-{i + 1}", f"127.0.1.{i + 1}"),
                                  "--log-level", "WARNING"],
                                 os.path.join(workdir, f"agent-{i + 1}.log")))
        if not wait_nodes_ready(rest, agents, prefix="node-"):
            print("  the agents' nodes did not become Ready")
            return None
        rest.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": "bench-process"}})
        clock = StartupClock(rest, "bench-process")
        clock.informer.start()
        clock.informer.wait_for_sync(60)
        rest.create(DEPLOYMENTS, "bench-process", deployment("sleepers", pods))
        if not clock.wait_running(pods, 300):
            print(f"  only {len(clock.running)} of {pods} Running within 300 s")
        result = clock.report(f"{pods} pods, process runtime")
        rss = [p.rss_mib() for p in procs]
        print(f"  agent memory (RSS) with ~{pods // agents} pods each: "
              + ", ".join(f"{r:.0f} MiB" for r in rss))
        clock.informer.stop()
        rest.delete(DEPLOYMENTS, "bench-process", "sleepers")
        if not wait_pods_gone(rest, "bench-process"):
            print("  warning: pods still present after 120 s")
        return result, max(rss)
    finally:
        for proc in procs:
            proc.stop()
        # Decommission the stopped agents' nodes, or the scheduler would keep placing
        # pods on them until the node lifecycle controller notices they are gone.
        for i in range(agents):
            try:
                rest.delete(NODES, None, f"node-{i + 1}")
            except NotFound:
                pass


def bench_hollow(rest, server, workdir, nodes, pods, per_process=25):
    print(f"\n2. hollow nodes: {nodes} fake-runtime agents, Deployments totalling {pods} pods")
    procs = []
    try:
        for first in range(0, nodes, per_process):
            count = min(per_process, nodes - first)
            procs.append(Process(["-m", "bench.hollow_agents", "--kubeconfig", server.kubeconfig,
                                  "--first", str(first), "--count", str(count),
                                  "--data-dir", os.path.join(workdir, f"hollow-{first}")],
                                 os.path.join(workdir, f"hollow-{first}.log")))
        if not wait_nodes_ready(rest, nodes, timeout=300, prefix="hollow-"):
            print("  the hollow nodes did not become Ready")
            return None
        rest.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": "bench-hollow"}})
        clock = StartupClock(rest, "bench-hollow")
        clock.informer.start()
        clock.informer.wait_for_sync(60)
        started = time.monotonic()
        for i in range(0, pods, 100):
            rest.create(DEPLOYMENTS, "bench-hollow",
                        deployment(f"hollow-{i // 100:03d}", min(100, pods - i)))
        if not clock.wait_running(pods, 900):
            print(f"  only {len(clock.running)} of {pods} Running within 900 s")
        print(f"  all Running {time.monotonic() - started:.1f} s after the first create")
        result = clock.report(f"{pods} pods on {nodes} hollow nodes")
        print("  hollow agent processes (25 agents each) RSS: "
              + ", ".join(f"{p.rss_mib():.0f} MiB" for p in procs))
        clock.informer.stop()
        return result
    finally:
        for proc in procs:
            proc.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--hollow-nodes", type=int, default=100)
    parser.add_argument("--hollow-pods", type=int, default=3000)
    parser.add_argument("--skip-hollow", action="store_true")
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="steer-bench-pods-")
    server = LocalApiServer(workdir, workers=2, threads=32)
    components, rest = [], None
    try:
        print(f"starting a 3-node store, an API server, the scheduler and the controller "
              f"manager (logs in {workdir})")
        server.start()
        rest = server.rest_client(timeout=60)
        for module, name in (("control.scheduler.main", "scheduler"),
                             ("control.controllers.manager", "controller-manager")):
            components.append(Process(["-m", module, "--kubeconfig", server.kubeconfig,
                                       "--no-leader-elect", "--log-level", "WARNING"],
                                      os.path.join(workdir, f"{name}.log")))
        process = bench_process_runtime(rest, server, workdir, args.agents, args.pods)
        hollow = None if args.skip_hollow else \
            bench_hollow(rest, server, workdir, args.hollow_nodes, args.hollow_pods)
        print("\n| figure | Steersman | Kubernetes SLO |\n|---|---:|---:|")
        if process is not None:
            (p50, p99), rss = process
            print(f"| pod startup p50 / p99, {args.pods} pods, process runtime (s) | "
                  f"{p50:.2f} / {p99:.2f} | p99 <= {SLO_P99:g} |")
            print(f"| agent memory with {args.pods // args.agents} pods (RSS, MiB) | {rss:.0f} | |")
        if hollow is not None:
            p50, p99 = hollow
            print(f"| pod startup p50 / p99, {args.hollow_pods} pods on {args.hollow_nodes} "
                  f"hollow nodes (s) | {p50:.2f} / {p99:.2f} | p99 <= {SLO_P99:g} |")
    finally:
        for component in components:
            component.stop()
        if rest is not None:
            rest.close()
        server.stop()


if __name__ == "__main__":
    # SIGTERM (a `timeout`, a Ctrl-C'd make) must still run the cleanup in main's finally.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        main()
    except NotFound as exc:
        sys.exit(f"bench.pods: {exc}")
