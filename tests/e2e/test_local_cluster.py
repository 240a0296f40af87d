"""End to end: `steer up`, the hello example on three process-runtime nodes, `steer down`.

The tests run in file order on one cluster (see conftest.py; `make test` gives a
whole file to one xdist worker): the last ones kill an agent and stop the
cluster, so they come last.
"""

import os
import signal
import stat
import threading
import time
import urllib.error
import urllib.request

import pytest
import yaml

from cli.local_cluster import alive
from cli.local_store import LocalStoreCluster
from cli.pki import read_identity
from control.client import ApiException
from control.objects import conditions, kinds
from tests.support.apiproc import eventually

pytestmark = pytest.mark.e2e


def fetch(url, timeout=2.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode().strip()


def cluster_ip(cluster):
    """The hello Service's ClusterIP; a missing ClusterIP is a failure."""
    ip = cluster.service_cluster_ip("hello")
    assert ip and ip != "None", f"the hello Service got no ClusterIP: {ip!r}"
    return ip


def restart_count(pod):
    return sum(s.get("restartCount", 0) for s in pod["status"].get("containerStatuses") or [])


# -- steer up / status ---------------------------------------------------------------------
def test_up_writes_config_and_kubeconfig_and_a_second_up_says_already_up(cluster):
    with open(os.path.join(cluster.home, "config")) as f:
        config = yaml.safe_load(f)
    assert config["apiServer"] == cluster.url
    assert config["kubeconfig"] == cluster.kubeconfig
    assert config["clusterDir"] == os.path.join(cluster.home, "cluster")
    with open(cluster.kubeconfig) as f:
        kube = yaml.safe_load(f)
    assert kube["current-context"] == "steersman"
    assert kube["clusters"][0]["cluster"]["server"] == cluster.url
    for name in cluster.local.processes:
        assert os.path.exists(os.path.join(cluster.home, "cluster", "pids", f"{name}.pid"))
        assert os.path.exists(os.path.join(cluster.home, "cluster", "logs", f"{name}.log"))

    again = cluster.steer("up")
    assert "already up" in again.stdout


def test_up_makes_every_credential_private_and_puts_none_on_argv(cluster):
    assert cluster.url.startswith("https://127.0.0.1:")
    for path in ("config", "kubeconfig"):
        assert stat.S_IMODE(os.stat(os.path.join(cluster.home, path)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(cluster.home).st_mode) == 0o700
    with open(cluster.kubeconfig) as f:
        kube = yaml.safe_load(f)
    assert {"client-certificate-data", "client-key-data"} <= set(kube["users"][0]["user"])
    assert "certificate-authority-data" in kube["clusters"][0]["cluster"]
    pki_dir = os.path.join(cluster.home, "pki")
    assert read_identity(os.path.join(pki_dir, "admin.crt")) == ("admin", ["system:masters"])
    assert read_identity(os.path.join(pki_dir, "nodes", "node-1.crt")) == (
        "system:node:node-1", ["system:nodes"])
    for root, _dirs, files in os.walk(pki_dir):
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
        for name in files:
            if name.endswith((".key", ".kubeconfig")):
                assert stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode) == 0o600
    for name, proc in cluster.local.processes.items():
        argv = " ".join(proc["argv"])
        assert "--token " not in argv and "--api-server" not in argv, (name, argv)
        if proc["kind"] in ("scheduler", "controller-manager", "agent", "proxy"):
            assert "--kubeconfig" in proc["argv"], (name, argv)
    # Without the CA nothing trusts the API server; the admin's kubeconfig is what works.
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(cluster.url + "/version", timeout=5)
    assert cluster.steer("get", "ns", "default", "-o", "name").stdout == "namespace/default\n"


def test_status_shows_every_process_running_and_every_node_ready(cluster):
    out = cluster.steer("status").stdout
    for name in ("store-s1", "store-s2", "store-s3", "apiserver", "scheduler",
                 "controller-manager", "node-1", "node-2", "node-3"):
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert "running" in line and str(cluster.pid(name)) in line
    assert "ready" in out
    for n in (1, 2, 3):
        line = next(line for line in out.splitlines() if line.startswith(f"node-{n} ")
                    and "Ready" in line)
        assert f"{cluster.node_prefix}.{n}" in line


# -- the hello example -----------------------------------------------------------------------
def test_hello_pods_answer_on_their_own_ips(hello):
    pods = hello.ready_pods()
    assert len(pods) == 3
    assert len({p["spec"]["nodeName"] for p in pods}) == 3     # one per node: port 8080
    for pod in pods:
        ip = pod["status"]["podIP"]
        assert ip.startswith(hello.node_prefix + ".")
        assert fetch(f"http://{ip}:8080/") == f"hello from {pod['metadata']['name']}"


def test_hello_serves_through_its_cluster_ip(hello):
    ip = cluster_ip(hello)
    names = {p["metadata"]["name"] for p in hello.ready_pods()}
    seen = set()

    def every_pod_answered():
        body = fetch(f"http://{ip}/")
        assert body.startswith("hello from ")
        seen.add(body.split()[-1])
        return seen == names

    eventually(every_pod_answered, timeout=30, message="every pod to answer through the Service")


def nodes_pods_and_logs_shown_by(run, hello):
    """``run`` (steer or kubectl) lists the Ready nodes, the running pods, their logs."""
    nodes = run("get", "nodes").stdout
    assert all(f"node-{n}" in nodes for n in (1, 2, 3)) and "NotReady" not in nodes
    pods = run("get", "pods", "-o", "wide", "-l", "app=hello").stdout
    for pod in hello.pods():
        line = next(line for line in pods.splitlines() if pod["metadata"]["name"] in line)
        assert "Running" in line and pod["status"]["podIP"] in line
    name = hello.pods()[0]["metadata"]["name"]
    assert f"{name} listening on" in run("logs", name).stdout


def test_steer_shows_the_nodes_the_pods_and_their_logs(hello):
    nodes_pods_and_logs_shown_by(hello.steer, hello)


@pytest.mark.kubectl
def test_kubectl_works_against_the_same_cluster(hello):
    nodes_pods_and_logs_shown_by(hello.kubectl, hello)


PROBES = """
apiVersion: v1
kind: Pod
metadata: {name: probes, labels: {app: probes}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: python:3
    command: [python3, -c, "import time; time.sleep(3600)"]
    readinessProbe:                 # ready while the file `ready` exists
      exec: {command: [test, -f, ready]}
      periodSeconds: 1
      failureThreshold: 1
    livenessProbe:                  # fails once when `broken` appears (and removes it)
      exec: {command: [sh, -c, "test ! -f broken || { rm broken; exit 1; }"]}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {name: probes}
spec:
  selector: {app: probes}
  ports: [{port: 80, targetPort: 9999}]
"""


def test_probes_gate_endpoints_and_restart_a_live_container(hello):
    hello.steer("apply", "-f", "-", input=PROBES)
    pod = eventually(lambda: _running(hello.pod("probes")), timeout=60,
                     message="the probes pod to run", logs=hello.logs)
    ip = pod["status"]["podIP"]

    def endpoints(kind):
        ep = hello.rest.get(kinds.ENDPOINTS, "default", "probes")
        return {a["ip"] for subset in ep.get("subsets") or [] for a in subset.get(kind) or []}

    eventually(lambda: endpoints("notReadyAddresses") == {ip}, timeout=30,
               message="the unready pod among notReadyAddresses")
    workdir = hello.container_workdir(pod["metadata"]["uid"])
    open(os.path.join(workdir, "ready"), "w").close()
    eventually(lambda: endpoints("addresses") == {ip}, timeout=30,
               message="the ready pod among the Service's addresses")

    open(os.path.join(workdir, "broken"), "w").close()
    p = eventually(lambda: (lambda p: restart_count(p) == 1 and conditions.is_ready(p) and p)(
        hello.pod("probes")), timeout=60, message="a liveness restart", logs=hello.logs)
    assert p["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] != 0
    hello.steer("delete", "-f", "-", "--wait=false", input=PROBES)


def _running(pod):
    return pod.get("status", {}).get("phase") == "Running" and pod["status"].get("podIP") \
        and pod


def test_a_killed_container_is_restarted(hello):
    pod = hello.ready_pods()[0]
    uid, name = pod["metadata"]["uid"], pod["metadata"]["name"]
    before = restart_count(pod)
    running = {pid: start for pid, start in hello.container_pids(uid).items()
               if alive(pid, start)}
    assert len(running) == 1
    for pid in running:
        os.kill(pid, signal.SIGKILL)

    def restarted_and_ready():
        p = hello.pod(name)
        return restart_count(p) == before + 1 and conditions.is_ready(p) and p

    p = eventually(restarted_and_ready, timeout=60, message=f"{name} to restart",
                   logs=hello.logs)
    last = p["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert last["exitCode"] == 137
    assert fetch(f"http://{p['status']['podIP']}:8080/") == f"hello from {name}"


def answering_pods(ip, requests=12):
    """The pod names that answer ``requests`` requests through the Service."""
    return {fetch(f"http://{ip}/").split()[-1] for _ in range(requests)}


def test_scaling_3_to_1_to_3_moves_the_traffic(hello):
    ip = cluster_ip(hello)
    hello.steer("scale", "deployment/hello", "--replicas=1")
    eventually(lambda: hello.rolled_out(replicas=1) and len(hello.pods(live=False)) == 1,
               timeout=60, message="one hello pod left", logs=hello.logs)
    only = hello.ready_pods()[0]["metadata"]["name"]
    # The endpoints follow the scale-down: every request reaches the pod that is left.
    eventually(lambda: answering_pods(ip) == {only}, timeout=30,
               message="all traffic on the one pod left", logs=hello.logs)
    hello.steer("scale", "deployment/hello", "--replicas=3")
    eventually(lambda: hello.rolled_out(replicas=3), timeout=60,
               message="three hello pods again", logs=hello.logs)
    pods = hello.ready_pods()
    assert len({p["spec"]["nodeName"] for p in pods}) == 3
    names = {p["metadata"]["name"] for p in pods}
    eventually(lambda: answering_pods(ip) == names, timeout=30,
               message="traffic spread over the three pods again", logs=hello.logs)


def rolled_out_to(cluster, greeting):
    """The rollout is complete and every ready pod answers with ``greeting``."""
    return cluster.rolled_out(replicas=3) and all(
        fetch(f"http://{p['status']['podIP']}:8080/").startswith(f"{greeting} from ")
        for p in cluster.ready_pods())


def test_a_rolling_update_replaces_every_pod(hello):
    old = {p["metadata"]["name"] for p in hello.pods()}
    hello.set_env(GREETING="hi")
    eventually(lambda: rolled_out_to(hello, "hi"), timeout=120,
               message="the rollout to finish", logs=hello.logs)
    assert not old & {p["metadata"]["name"] for p in hello.pods()}
    assert len({p["spec"]["nodeName"] for p in hello.ready_pods()}) == 3


def test_a_rolling_update_fails_no_request_through_the_service(hello):
    ip = cluster_ip(hello)
    results = {"ok": 0, "failed": [], "bodies": set()}
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            try:
                results["bodies"].add(fetch(f"http://{ip}/").split()[0])
                results["ok"] += 1
            except OSError as exc:
                results["failed"].append(repr(exc))
            time.sleep(0.02)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        eventually(lambda: results["ok"] >= 5, timeout=30, message="the poller to get answers")
        hello.set_env(GREETING="howdy")
        eventually(lambda: rolled_out_to(hello, "howdy"), timeout=120,
                   message="the rollout to finish", logs=hello.logs)
        eventually(lambda: "howdy" in results["bodies"], timeout=10,
                   message="the new version to answer through the Service")
    finally:
        stop.set()
        poller.join(5)
    assert results["failed"] == [], f"{len(results['failed'])} of " \
        f"{results['ok'] + len(results['failed'])} requests failed: {results['failed'][:5]}"


def test_the_store_leader_killed_during_a_rollout_does_not_stop_it(hello):
    store = LocalStoreCluster.load(os.path.join(hello.home, "cluster", "store"))
    leader = store.nodes[store.leader_index(timeout=30)].name
    hello.set_env(GREETING="bonjour")
    os.kill(hello.pid(f"store-{leader}"), signal.SIGKILL)
    eventually(lambda: _quietly(lambda: rolled_out_to(hello, "bonjour")), timeout=120,
               message="the rollout to finish without the old leader", logs=hello.logs)
    # The supervisor `steer up` started brings the member back by itself and counts it.
    eventually(lambda: hello.local.is_running(f"store-{leader}"), timeout=60,
               message="the store member to run again", logs=hello.logs)
    status = hello.steer("status").stdout
    row = next(line.split() for line in status.splitlines()
               if line.split()[:1] == [f"store-{leader}"])
    assert row[2:4] == ["running", "1"], status


def _quietly(check):
    """``check()``, with a failed request (the store electing a leader) as False."""
    try:
        return check()
    except (OSError, ApiException):
        return False


def test_a_frozen_agent_makes_its_node_not_ready_and_its_pods_move(hello):
    # Three replicas fill the three nodes (one port 8080 each): keep a node free.
    hello.steer("scale", "deployment/hello", "--replicas=2")
    eventually(lambda: hello.rolled_out(replicas=2) and len(hello.pods(live=False)) == 2,
               timeout=60, message="two hello pods", logs=hello.logs)
    victim = hello.ready_pods()[0]
    dead = victim["spec"]["nodeName"]
    # Frozen, not killed: the supervisor would restart a killed agent at once.
    os.kill(hello.pid(dead), signal.SIGSTOP)

    eventually(lambda: not hello.node_ready(dead), timeout=60,
               message=f"{dead} to become NotReady", logs=hello.logs)

    def moved():
        pods = [p for p in hello.ready_pods() if p["spec"]["nodeName"] != dead]
        return len(pods) == 2 and hello.rolled_out(replicas=2) and pods

    pods = eventually(moved, timeout=90, message="the lost pod to be recreated elsewhere",
                      logs=hello.logs)
    assert victim["metadata"]["name"] not in {p["metadata"]["name"] for p in pods}
    for pod in pods:
        assert " from " in fetch(f"http://{pod['status']['podIP']}:8080/")

    # The agent thaws, renews its Lease, and the node is Ready again.
    os.kill(hello.pid(dead), signal.SIGCONT)
    eventually(lambda: hello.node_ready(dead), timeout=60, message=f"{dead} to be Ready again",
               logs=hello.logs)


# -- bad input ---------------------------------------------------------------------------------
def test_bad_input_gets_a_clear_message_and_breaks_nothing(hello, tmp_path):
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("apiVersion: v1\nkind: Gizmo\nmetadata: {name: g}\n")
    refused = hello.steer("apply", "-f", str(unknown), check=False)
    assert refused.returncode == 1 and "Gizmo" in refused.stderr

    huge = tmp_path / "huge.yaml"
    huge.write_text("""apiVersion: v1
kind: Pod
metadata: {name: too-big}
spec:
  containers:
  - {name: c, image: busybox, command: [sleep, "100"], resources: {requests: {cpu: "500"}}}
""")
    bad_command = tmp_path / "bad-command.yaml"
    bad_command.write_text("""apiVersion: v1
kind: Pod
metadata: {name: bad-command}
spec:
  containers:
  - {name: c, image: busybox, command: [/no/such/program]}
""")
    hello.steer("apply", "-f", str(huge))
    hello.steer("apply", "-f", str(bad_command))
    eventually(lambda: "Insufficient cpu" in hello.steer("describe", "pod", "too-big").stdout,
               timeout=60, message="FailedScheduling explained by describe", logs=hello.logs)
    assert "Pending" in hello.steer("get", "pod", "too-big").stdout
    eventually(lambda: any(word in hello.steer("get", "pod", "bad-command").stdout
                           for word in ("CrashLoopBackOff", "StartError", "Error")),
               timeout=60, message="the bad command reported", logs=hello.logs)
    assert "/no/such/program" in hello.steer("describe", "pod", "bad-command").stdout
    # Nothing else broke: the application still serves through its Service.
    eventually(hello.rolled_out, timeout=60, message="hello still rolled out",
               logs=lambda: hello.steer("get", "pods,nodes", "-o", "wide").stdout +
               hello.steer("describe", "deployment", "hello").stdout +
               hello.steer("events").stdout[-3000:])
    assert " from hello-" in fetch(f"http://{cluster_ip(hello)}/")
    hello.steer("delete", "pod", "too-big", "bad-command", "--grace-period", "0")


# -- steer down --------------------------------------------------------------------------------
def test_down_leaves_no_process_behind(cluster):
    pids = {**cluster.recorded_pids(), **cluster.container_pids()}
    assert pids
    # Containers of the agent killed above are still running: down must end them too.
    out = cluster.steer("down", "--timeout", "5").stdout
    assert "stopped" in out
    left = {pid for pid, start in pids.items() if alive(pid, start)}
    assert not left, f"still running after steer down: {left}"
    assert cluster.processes_under_home() == []
    assert cluster.local.running() == []
    status = cluster.steer("status", check=False)
    assert status.returncode == 1 and "down" in status.stdout
