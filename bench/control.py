"""Benchmark the control plane: pods bound per second, and 3,000 pods of Deployments bound.

Run: ``.venv/bin/python -m bench.control`` (``--help`` for options). It starts a
real 3-node store, a real `steer-apiserver`, `steer-scheduler` and
`steer-controller-manager`, and registers 100 hollow nodes (Node objects whose
Leases are renewed every 10 s, as agents would; the pods are never run). Then:

1. Scheduler throughput: with the scheduler stopped, create N bare pods; start
   the scheduler and time how long it takes to bind them all (pods bound per
   second, as Kubernetes' scheduler_perf measures it).
2. Deployments end to end: create Deployments totalling N pods and time until
   every pod exists and is bound (the controllers and the scheduler together).

Binds are observed through a watch (an Informer), not by polling. The figures
are printed beside Kubernetes' threshold (its scheduling throughput test fails
below 100 pods/s); nothing is asserted.
"""

import argparse
import concurrent.futures
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from control.client import Informer  # noqa: E402
from control.objects import kinds  # noqa: E402
from tests.support.apiproc import ROOT, LocalApiServer  # noqa: E402
from tests.support.hollow_nodes import HollowNodes  # noqa: E402

PODS = kinds.lookup("", "v1", "pods")
DEPLOYMENTS = kinds.lookup("apps", "v1", "deployments")
NAMESPACES = kinds.lookup("", "v1", "namespaces")
KUBERNETES_MIN_PODS_PER_SECOND = 100
CONTAINER = {"name": "c", "image": "registry.k8s.io/pause:3.10",
             "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}


class BindClock:
    """Watch pods in one namespace; note when each was first seen bound."""

    def __init__(self, rest, namespace):
        self.first_seen, self.bound_at = {}, {}
        self._lock = threading.Lock()
        self.informer = Informer(rest, PODS, namespace=namespace)
        self.informer.add_handler(self._seen, lambda old, new: self._seen(new), None)

    def _seen(self, pod):
        key, now = pod["metadata"]["name"], time.monotonic()
        with self._lock:
            self.first_seen.setdefault(key, now)
            if pod.get("spec", {}).get("nodeName"):
                self.bound_at.setdefault(key, now)

    def wait_bound(self, count, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.bound_at) >= count:
                    return True
            time.sleep(0.05)
        return False

    def count(self):
        with self._lock:
            return len(self.bound_at)


class Component:
    """One control-plane process (scheduler or controller manager), stopped by pid."""

    def __init__(self, module, kubeconfig, log_path, extra=()):
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "--kubeconfig", kubeconfig, "--log-level", "WARNING",
             "--no-leader-elect", *extra],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": ROOT})

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def _cpu_seconds(pid, tree=True):
    """User + system CPU seconds of ``pid`` and (``tree``) its live descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    total, family = 0, {pid}
    changed = tree
    while changed:
        changed = False
        for child, (parent, _) in stats.items():
            if parent in family and child not in family:
                family.add(child)
                changed = True
    for member in family:
        total += stats.get(member, (0, 0))[1]
    return total / ticks


class CpuMeter:
    """CPU seconds each named process (tree) spends between ``start`` and ``report``."""

    def __init__(self, pids, own_pid):
        self.pids = dict(pids)
        self.own_pid = own_pid
        self.before = {}

    def _now(self):
        used = {name: _cpu_seconds(pid) for name, pid in self.pids.items()}
        used["bench (hollow nodes, watch)"] = _cpu_seconds(self.own_pid, tree=False)
        return used

    def start(self):
        self.before = self._now()

    def report(self, wall):
        parts = []
        for name, total in self._now().items():
            used = total - self.before.get(name, 0.0)
            parts.append(f"{name} {used:.1f} s ({100 * used / wall:.0f}%)")
        print("  CPU used over that time: " + ", ".join(parts))


def component_pids(server, components):
    pids = {f"store-{i}": node.pid for i, node in enumerate(server.store.nodes)}
    pids["apiserver"] = server.proc.pid
    for name, component in components.items():
        pids[name] = component.proc.pid
    return pids


def make_namespace(rest, name):
    rest.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": name}})


def create_pods(rest, namespace, count, clients=16):
    def create(i):
        rest.create(PODS, namespace, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"p-{i:05d}", "namespace": namespace, "labels": {"app": "bare"}},
            "spec": {"containers": [CONTAINER]}})
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(create, range(count)))


def create_deployments(rest, namespace, total, per_deployment):
    names = []
    for i in range(0, total, per_deployment):
        name = f"d-{i // per_deployment:03d}"
        replicas = min(per_deployment, total - i)
        rest.create(DEPLOYMENTS, namespace, {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [CONTAINER]}}}})
        names.append(name)
    return names


def spread(rest, namespace):
    """(nodes used, fewest pods on a used node, most)."""
    per_node = {}
    for pod in rest.list_all(PODS, namespace)[0]:
        node = pod["spec"].get("nodeName")
        per_node[node] = per_node.get(node, 0) + 1
    return len(per_node), min(per_node.values()), max(per_node.values())


def bench_scheduler(rest, server, workdir, pods):
    """Phase 1: N pending pods, then the scheduler alone; pods bound per second."""
    make_namespace(rest, "bench-sched")
    clock = BindClock(rest, "bench-sched")
    clock.informer.start()
    clock.informer.wait_for_sync(60)
    started = time.monotonic()
    create_pods(rest, "bench-sched", pods)
    created = time.monotonic() - started
    print(f"  created {pods} pending pods in {created:.1f} s ({pods / created:.0f} pods/s)")
    scheduler = Component("control.scheduler.main", server.kubeconfig,
                          os.path.join(workdir, "scheduler.log"))
    try:
        launched = time.monotonic()
        if not clock.wait_bound(pods, 600):
            print(f"  only {clock.count()} of {pods} bound within 600 s")
            return None
        times = sorted(clock.bound_at.values())
        first, last = times[0], times[-1]
        rate = (pods - 1) / (last - first) if last > first else float("inf")
        print(f"  {rate:.0f} pods bound/s from the first bind to the last")
        print(f"  scheduler start -> all bound: {last - launched:.1f} s; first bind "
              f"{first - launched:.1f} s after start (process start-up, informer sync)")
        used, low, high = spread(rest, "bench-sched")
        print(f"  spread: {used} nodes, {low}-{high} pods per node")
        return scheduler, rate
    finally:
        clock.informer.stop()


def bench_deployments(rest, workdir, pods, per_deployment, meter=None):
    """Phase 2: Deployments totalling N pods; creation to every pod bound."""
    make_namespace(rest, "bench-deploy")
    clock = BindClock(rest, "bench-deploy")
    clock.informer.start()
    clock.informer.wait_for_sync(60)
    try:
        if meter is not None:
            meter.start()
        started = time.monotonic()
        names = create_deployments(rest, "bench-deploy", pods, per_deployment)
        if not clock.wait_bound(pods, 900):
            print(f"  only {clock.count()} of {pods} bound within 900 s")
            return None
        times = sorted(clock.bound_at.values())
        created = sorted(clock.first_seen.values())
        total = times[-1] - started
        latencies = sorted(clock.bound_at[k] - clock.first_seen[k] for k in clock.bound_at)
        print(f"  {len(names)} Deployments x {per_deployment} replicas: all {pods} pods bound "
              f"{total:.1f} s after the first create ({pods / total:.0f} pods/s end to end)")
        print(f"  pods created by the controllers at {pods / (created[-1] - created[0]):.0f}/s; "
              f"pod creation -> bound p50 {latencies[len(latencies) // 2]:.2f} s, "
              f"p99 {latencies[int(len(latencies) * 0.99)]:.2f} s")
        if meter is not None:
            meter.report(total)
        used, low, high = spread(rest, "bench-deploy")
        print(f"  spread: {used} nodes, {low}-{high} pods per node")
        return total
    finally:
        clock.informer.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--pods", type=int, default=3000)
    parser.add_argument("--per-deployment", type=int, default=100,
                        help="replicas of each Deployment (default 100: 30 Deployments)")
    parser.add_argument("--api-workers", type=int, default=2)
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="steer-bench-control-")
    server = LocalApiServer(workdir, workers=args.api_workers, threads=32)
    components, nodes, rest = [], None, None
    try:
        print(f"starting a 3-node store, an API server ({args.api_workers} workers) and "
              f"{args.nodes} hollow nodes (logs in {workdir})")
        server.start()
        rest = server.rest_client(timeout=60)
        nodes = HollowNodes(server.url, [f"node-{i:03d}" for i in range(args.nodes)],
                            cpu="32", memory="128Gi", max_pods=110, renew_interval=10.0,
                            run_pods=False, client_kwargs=server.client_kwargs).start()
        print(f"\n1. scheduler throughput: {args.pods} pending pods, then the scheduler")
        result = bench_scheduler(rest, server, workdir, args.pods)
        sched_rate = None
        if result is not None:
            scheduler, sched_rate = result
            components.append(scheduler)
        print(f"\n2. Deployments totalling {args.pods} pods, controllers and scheduler running")
        manager = Component("control.controllers.manager", server.kubeconfig,
                            os.path.join(workdir, "controller-manager.log"),
                            ["--controllers", "deployment,replicaset"])
        components.append(manager)
        named = {"controller-manager": manager}
        if result is not None:
            named["scheduler"] = result[0]
        meter = CpuMeter(component_pids(server, named), os.getpid())
        total = bench_deployments(rest, workdir, args.pods, args.per_deployment, meter)
        print("\n| figure | Steersman | Kubernetes threshold |\n|---|---:|---:|")
        if sched_rate is not None:
            print(f"| scheduling throughput (pods bound/s) | {sched_rate:.0f} | "
                  f">= {KUBERNETES_MIN_PODS_PER_SECOND} |")
        if total is not None:
            print(f"| {args.pods} pods of Deployments on {args.nodes} nodes: all bound (s) | "
                  f"{total:.1f} | {args.pods / KUBERNETES_MIN_PODS_PER_SECOND:.0f} "
                  f"at 100 pods/s |")
    finally:
        for component in components:
            component.stop()
        if nodes is not None:
            nodes.stop()
        if rest is not None:
            rest.close()
        server.stop()


if __name__ == "__main__":
    # SIGTERM (a `timeout`, a Ctrl-C'd make) must still run the cleanup in main's finally.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    main()
