"""A real local cluster per test module, started as a user would: `steer up`.

Each module gets its own ``STEER_HOME`` in a temporary directory and its own
addresses (a random 127.x.y.0/24 for the node IPs, a random loopback range for
ClusterIPs), so it can run next to another module's cluster or a developer's
`make run`. Timings are shortened through `steer up`'s own timing flags (1 s
heartbeats, a 5 s node grace period, eviction 2 s after a node is lost, 1 s
first crash-loop delay). The cluster is stopped with `steer down --purge`.

A module's tests depend on their order (the last ones kill an agent and stop the
cluster): `make test` runs with ``--dist loadfile``, so one xdist worker runs a
whole file, in order, with one cluster.
"""

import contextlib
import json
import os
import random
import signal
import subprocess
import sys

import pytest
import yaml

from cli.local_cluster import LocalCluster, alive
from control.client import ApiException, RestClient, kubeconfig
from control.objects import conditions, kinds
from tests.support.apiproc import eventually
from tests.support.kubectl import run_kubectl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HELLO = os.path.join(ROOT, "examples", "hello-process.yaml")
SHORT_TIMINGS = ["--heartbeat-interval", "1", "--node-monitor-grace-period", "5",
                 "--pod-eviction-timeout", "2", "--backoff-base", "1"]


class E2ECluster:
    """Drive `steer up/down/status` in a private STEER_HOME and look at the result."""

    def __init__(self, home, nodes=3, runtime="process"):
        self.home, self.nodes, self.runtime = str(home), nodes, runtime
        rng = random.Random()
        self.node_prefix = f"127.{rng.randint(100, 199)}.{rng.randint(1, 254)}"
        self.service_range = f"127.{rng.randint(200, 250)}.0.0/16"
        self.env = {**os.environ, "STEER_HOME": self.home, "PYTHONPATH": ROOT}
        self.kubeconfig = os.path.join(self.home, "kubeconfig")
        self.url = None
        self.rest = None

    # -- the CLI ----------------------------------------------------------------------
    def steer(self, *args, timeout=180, check=True, input=None):
        """Run `steer ARGS` (``input`` on its stdin); the CompletedProcess, text."""
        result = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT,
                                env=self.env, capture_output=True, text=True, timeout=timeout,
                                input=input, stdin=None if input is not None else subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"steer {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}\n{self.logs()}")
        return result

    def up(self):
        # A containers cluster's ClusterIPs stay inside its own namespaces (the default
        # range); the process runtime's are loopback addresses: a random range each.
        services = ["--service-cluster-ip-range", self.service_range] \
            if self.runtime == "process" else []
        self.steer("up", "--nodes", str(self.nodes), "--runtime", self.runtime,
                   "--node-ip-prefix", self.node_prefix, *services, *SHORT_TIMINGS)
        with open(os.path.join(self.home, "config")) as f:
            self.url = yaml.safe_load(f)["apiServer"]
        # As the admin: the cluster CA and the client certificate of $STEER_HOME/kubeconfig.
        self.rest = RestClient.from_config(kubeconfig.load(self.kubeconfig), timeout=10)
        return self

    def kubectl(self, *args, timeout=60, check=True, input=None):
        """Run the real kubectl against the cluster (kubectl-marked tests only)."""
        return run_kubectl(self.kubeconfig, *args, input=input, timeout=timeout, check=check)

    # -- what runs --------------------------------------------------------------------
    @property
    def local(self):
        return LocalCluster(self.home)

    def pid(self, name):
        return self.local.processes[name]["pid"]

    def recorded_pids(self):
        """{pid: start} of every process `steer up` recorded, ever (restarts included)."""
        return {p["pid"]: p.get("start") for p in self.local.processes.values() if p["pid"]}

    def container_pids(self, pod_uid=None):
        """{pid: start} of the containers the agents started (of one pod, if given)."""
        found = {}
        for state, pid, start in self.local.containers():
            with open(os.path.join(state, "config.json")) as f:
                meta = json.load(f)
            if pod_uid is None or meta["pod_uid"] == pod_uid:
                found[pid] = start
        return found

    def container_workdir(self, pod_uid):
        """The working directory of a pod's running container (where its files appear)."""
        for state, pid, start in self.local.containers():
            with open(os.path.join(state, "config.json")) as f:
                meta = json.load(f)
            if meta["pod_uid"] == pod_uid and alive(pid, start):
                return meta["workdir"]
        return None

    def processes_under_home(self):
        """Pids of any process whose command line mentions this cluster's home."""
        marker = self.home.encode()
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != os.getpid():
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as f:
                        if marker in f.read() and alive(int(entry)):
                            found.append(int(entry))
                except OSError:
                    continue
        return found

    # -- the API ----------------------------------------------------------------------
    def pods(self, selector="app=hello", live=True):
        items = self.rest.list(kinds.PODS, "default", label_selector=selector)["items"]
        if live:
            items = [p for p in items if not p["metadata"].get("deletionTimestamp")]
        return items

    def pod(self, name):
        return self.rest.get(kinds.PODS, "default", name)

    def ready_pods(self, selector="app=hello"):
        return [p for p in self.pods(selector) if conditions.is_ready(p)]

    def deployment(self, name="hello"):
        return self.rest.get(kinds.DEPLOYMENTS, "default", name)

    def set_env(self, name="hello", **env):
        """Set environment variables in every container of a Deployment's pod template.

        What `kubectl set env deployment/NAME K=V` does, through the API: the
        template changes, so the Deployment rolls out.
        """
        for _ in range(10):
            deployment = self.deployment(name)
            for container in deployment["spec"]["template"]["spec"]["containers"]:
                kept = [e for e in container.get("env") or [] if e["name"] not in env]
                container["env"] = kept + [{"name": k, "value": v} for k, v in env.items()]
            try:
                return self.rest.update(kinds.DEPLOYMENTS, "default", deployment)
            except ApiException as exc:
                if exc.status != 409:       # a controller wrote it meanwhile: read again
                    raise
        raise AssertionError(f"deployment/{name} kept changing under set_env")

    def service_cluster_ip(self, name):
        """A Service's ClusterIP: every ClusterIP Service gets one; "None" is headless."""
        return self.rest.get(kinds.SERVICES, "default", name)["spec"].get("clusterIP")

    def rolled_out(self, name="hello", replicas=None):
        """The Deployment's rollout is complete (as `kubectl rollout status` judges)."""
        d = self.deployment(name)
        want = d["spec"]["replicas"] if replicas is None else replicas
        s = d.get("status", {})
        return (s.get("observedGeneration", 0) >= d["metadata"]["generation"]
                and d["spec"]["replicas"] == want
                and s.get("updatedReplicas", 0) == want and s.get("replicas", 0) == want
                and s.get("availableReplicas", 0) == want)

    def node_ready(self, name):
        return conditions.is_ready(self.rest.get(kinds.NODES, None, name))

    def logs(self):
        out = []
        logs_dir = os.path.join(self.home, "cluster", "logs")
        if os.path.isdir(logs_dir):
            for name in sorted(os.listdir(logs_dir)):
                with open(os.path.join(logs_dir, name), errors="replace") as f:
                    out.append(f"--- {name} ---\n{f.read()[-3000:]}")
        return "\n".join(out)

    def stop(self):
        """`steer down --purge`; then, only as a safety net, SIGKILL what it left, by pid."""
        pids = {**self.recorded_pids(), **self.container_pids()}
        self.steer("down", "--purge", "--timeout", "5", check=False)
        for pid, start in pids.items():
            if alive(pid, start):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def running_cluster(tmp_path_factory, nodes=3, runtime="process"):
    """A cluster `steer up` started in a fresh STEER_HOME, stopped on leaving."""
    c = E2ECluster(tmp_path_factory.mktemp("steer-home"), nodes=nodes, runtime=runtime)
    try:
        yield c.up()
    finally:
        c.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory) as c:
        yield c


@pytest.fixture(scope="module")
def hello(cluster):
    """examples/hello.yaml applied and rolled out (3 replicas on the 3 nodes)."""
    cluster.steer("apply", "-f", HELLO)
    eventually(lambda: cluster.rolled_out(replicas=3), timeout=90,
               message="the hello Deployment to roll out", logs=cluster.logs)
    return cluster

