"""End to end on containers: `steer up --runtime cri`, the hello example from its image.

Each node runs its own containerd inside its own network namespace (cli/local_network.py),
so pod IPs exist only there: the tests reach a pod from its node's namespace
(agent/netns.py), and from the host only through the Service (the proxy) or the API
server (logs, exec). The tests run in file order on one cluster; the last one stops it.
"""

import json
import os
import subprocess

import pytest

from agent import netns
from cli import local_addons, local_containers, local_images, local_network
from cli.local_cluster import alive
from control.objects import kinds
from tests.support import rawhttp
from tests.support.apiproc import eventually

from .conftest import ROOT, running_cluster

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(local_containers.unavailable_reason() is not None,
                                 reason=f"no containers here: "
                                        f"{local_containers.unavailable_reason()}")]

HELLO = os.path.join(ROOT, "examples", "hello.yaml")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory, nodes=2, runtime="cri") as c:
        yield c


@pytest.fixture(scope="module")
def hello(cluster):
    cluster.steer("apply", "-f", HELLO)
    eventually(lambda: cluster.rolled_out(replicas=3), timeout=120,
               message="the hello Deployment to roll out", logs=cluster.logs)
    return cluster


def http_get_in(netns_path, ip, port, path="/"):
    """GET http://ip:port/path from inside a network namespace; the body, stripped."""
    with netns.connect(netns_path, (ip, port), timeout=5) as sock:
        status, body = rawhttp.get(sock, path, host=ip)
    assert status.startswith(b"HTTP/1.") and b" 200 " in status, status
    return body.decode().strip()


def node_netns(cluster, node):
    return cluster.local.state["containerd"][node]["netns"]


def root_routes():
    return subprocess.run(["ip", "route", "show", "table", "all"], capture_output=True,
                          text=True).stdout


def test_every_node_runs_its_own_containerd_in_its_own_namespace(cluster):
    state = cluster.local.state
    assert set(state["containerd"]) == {"node-1", "node-2"}
    nodes = json.loads(cluster.steer("get", "nodes", "-o", "json").stdout)["items"]
    for node in nodes:
        assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
        assert node["spec"].get("podCIDR")
        assert os.path.exists(node_netns(cluster, node["metadata"]["name"]))
    net = local_network.LocalNetwork.from_record(state["network"])
    assert local_network.leftovers(net) == [n.netns for n in net.nodes] + [net.lan_netns]
    # The pod and node ranges live only in the cluster's namespaces.
    routes = root_routes()
    assert "10.244." not in routes and net.network.rsplit(".", 1)[0] not in routes


def test_hello_pods_are_containers_with_their_own_ips(hello):
    pods = hello.ready_pods()
    assert len(pods) == 3
    for pod in pods:
        status = pod["status"]
        assert status["podIP"].startswith("10.244.")
        (container,) = status["containerStatuses"]
        assert container["containerID"].startswith("containerd://")
        assert container["image"] == local_images.HELLO_IMAGE
        assert container["imageID"]
        body = http_get_in(node_netns(hello, pod["spec"]["nodeName"]), status["podIP"], 8080)
        assert body == f"hello from {pod['metadata']['name']}"


def test_hello_serves_through_its_cluster_ip_from_every_node(hello):
    ip = hello.service_cluster_ip("hello")
    assert ip.startswith("10.")     # inside the node namespaces only
    names = {p["metadata"]["name"] for p in hello.ready_pods()}
    seen = set()

    def every_pod_answered():
        body = http_get_in(node_netns(hello, "node-1"), ip, 80)
        assert http_get_in(node_netns(hello, "node-2"), ip, 80).startswith("hello from ")
        assert body.startswith("hello from "), body
        seen.add(body.split()[-1])
        return seen == names

    eventually(every_pod_answered, timeout=30, message="every pod to answer through the Service")


def test_pods_reach_the_service_from_any_node_their_own_included(hello):
    ip = hello.service_cluster_ip("hello")
    def answered(name):
        result = hello.steer("exec", name, "--", "sh", "-c",
                             f"timeout 5 wget -qO- http://{ip}/", check=False)
        return result.returncode == 0 and result.stdout.startswith("hello from ")

    for pod in hello.ready_pods():      # one of them is always its own endpoint (hairpin)
        name = pod["metadata"]["name"]
        eventually(lambda name=name: answered(name), timeout=30,
                   message=f"{name} to reach the hello Service")


def test_node_shell_runs_a_command_in_the_node_namespace(cluster):
    out = cluster.steer("node-shell", "node-1", "--", "ip", "-o", "-4", "addr").stdout
    assert "eth0" in out and "172.31.250.1/24" in out
    unknown = cluster.steer("node-shell", "node-9", "--", "true", check=False)
    assert unknown.returncode == 1 and "no local node 'node-9'" in unknown.stderr


def test_status_counts_the_containers_and_shows_containerd_and_the_registry(hello):
    out = hello.steer("status").stdout
    for name in ("containerd-node-1", "containerd-node-2", "registry", "registry-door"):
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert "running" in line, line
    # hello's 3 and the cluster DNS addon's (cli/local_addons.py), once those have started.
    want = f"containers running: {3 + local_addons.REPLICAS}"
    eventually(lambda: want in hello.steer("status").stdout, timeout=60,
               message=f"steer status to say {want!r}", logs=hello.logs)


def test_a_privileged_pod_is_refused_by_pod_security(cluster):
    result = cluster.steer("apply", "-f", "-", check=False, input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root-of-node"},
        "spec": {"containers": [{"name": "c", "image": local_images.BUSYBOX_IMAGE,
                                 "securityContext": {"privileged": True}}]}}))
    assert result.returncode != 0
    assert 'violates PodSecurity "baseline:latest": privileged' in result.stderr, result.stderr


def test_logs_of_a_container(hello):
    out = hello.steer("logs", "deployment/hello").stdout
    assert "serving /www on port 8080" in out


@pytest.mark.kubectl
def test_kubectl_exec_runs_in_the_container(hello):
    pod = hello.ready_pods()[0]["metadata"]["name"]
    out = hello.kubectl("exec", pod, "--", "cat", "/www/index.html").stdout
    assert out.strip() == f"hello from {pod}"


def test_top_shows_the_pods(hello):
    def top_lists_hello():
        out = hello.steer("top", "pods", check=False).stdout
        return out.count("hello-") == 3
    eventually(top_lists_hello, timeout=60, message="steer top pods to show the hello pods",
               logs=hello.logs)


#: busybox httpd on 8080 with a CGI script that answers the address a request came from.
PEER_SERVER = ("mkdir -p /www/cgi-bin && "
               "printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' "
               "> /www/cgi-bin/peer && chmod +x /www/cgi-bin/peer && exec httpd -f -p 8080 -h /www")


def test_a_pod_reaches_a_pod_on_another_node_by_ip_without_nat(cluster):
    net = local_network.LocalNetwork.from_record(cluster.local.state["network"])
    for node in net.nodes:       # the address other nodes route this node's pods through
        annotations = cluster.rest.get(kinds.NODES, None, node.name)["metadata"]["annotations"]
        assert annotations["network.steersman.io/node-ip"] == node.address
    for name, node in (("hop-a", "node-1"), ("hop-b", "node-2")):
        cluster.steer("apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [{
                "name": "c", "image": local_images.BUSYBOX_IMAGE,
                "command": ["sh", "-c", PEER_SERVER]}]}}))
    try:
        def running_ips():
            statuses = [cluster.pod(n).get("status") or {} for n in ("hop-a", "hop-b")]
            return all(s.get("phase") == "Running" and s.get("podIP") for s in statuses) \
                and [s["podIP"] for s in statuses]
        ip_a, ip_b = eventually(running_ips, timeout=60, message="the two pods to run",
                                logs=cluster.logs)

        def peer_seen_by_b():
            result = cluster.steer("exec", "hop-a", "--", "timeout", "5", "wget", "-q", "-O",
                                   "-", f"http://{ip_b}:8080/cgi-bin/peer", check=False)
            return result.returncode == 0 and result.stdout.strip()
        seen = eventually(peer_seen_by_b, timeout=60, logs=cluster.logs,
                          message="hop-a on node-1 to reach hop-b on node-2 by its pod IP")
        # busybox httpd writes IPv4 peers as [::ffff:a.b.c.d]; hop-b sees hop-a's own IP.
        assert seen.strip("[]").removeprefix("::ffff:") == ip_a
    finally:
        for name in ("hop-a", "hop-b"):
            cluster.steer("delete", "pod", name, check=False)


def test_image_import_makes_an_image_runnable_with_pull_policy_never(cluster, tmp_path):
    archive = local_images.build_busybox()
    out = cluster.steer("image", "import", archive.path).stdout
    assert out.count("node-") == 2, out
    cluster.steer("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "imported"},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "c", "image": local_images.BUSYBOX_IMAGE, "imagePullPolicy": "Never",
            "command": ["sh", "-c", "echo imported-ok"]}]}}))

    def succeeded():
        return cluster.pod("imported")["status"].get("phase") == "Succeeded"
    eventually(succeeded, timeout=60, message="the imported image's pod to succeed",
               logs=cluster.logs)
    assert "imported-ok" in cluster.steer("logs", "imported").stdout


def test_an_image_pushed_through_the_registry_door_runs_as_steer_local(cluster):
    door = cluster.local.state["registry"]["door"]
    archive = local_images.build_busybox()

    def pushed():
        result = subprocess.run(
            ["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
             f"docker-archive:{archive.path}", f"docker://{door}/mybox:2"],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        return result.returncode == 0 or print(result.stderr)
    eventually(pushed, timeout=30, message="a push to the registry through its door")
    cluster.steer("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pushed"},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "c", "image": "steer.local/mybox:2", "imagePullPolicy": "Always",
            "command": ["sh", "-c", "echo pushed-ok"]}]}}))

    def succeeded():
        return cluster.pod("pushed")["status"].get("phase") == "Succeeded"
    eventually(succeeded, timeout=60, message="the pushed image's pod to succeed",
               logs=cluster.logs)
    assert "pushed-ok" in cluster.steer("logs", "pushed").stdout


ACCESS_POLICY = {
    "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
    "metadata": {"name": "hello-access", "namespace": "default"},
    "spec": {"podSelector": {"matchLabels": {"app": "hello"}},
             "ingress": [{"from": [{"podSelector": {"matchLabels": {"access": "true"}}}]}]}}


def fetches(cluster, client, ips):
    """{ip: whether ``client`` got a hello page from ip:8080}, one exec for all."""
    script = "; ".join(f"timeout 3 wget -qO- http://{ip}:8080/ >/dev/null 2>&1 "
                       f"&& echo ok {ip} || echo no {ip}" for ip in ips)
    out = cluster.steer("exec", client, "--", "sh", "-c", script, check=False).stdout
    answers = dict(line.split()[::-1] for line in out.splitlines() if line.strip())
    return {ip: answers.get(ip) == "ok" for ip in ips}


def test_network_policy_lets_in_only_the_labelled_pods_until_it_is_deleted(hello):
    """Each node's steer-proxy enforces it for its own hello pods (same bridge or not)."""
    clients = {"np-plain": {}, "np-access": {"access": "true"}}
    for name, labels in clients.items():
        hello.steer("apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": "node-1", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": local_images.BUSYBOX_IMAGE,
                                     "command": ["sleep", "3600"]}]}}))
    try:
        eventually(lambda: all(hello.pod(n).get("status", {}).get("phase") == "Running"
                               for n in clients),
                   timeout=60, message="the two client pods to run", logs=hello.logs)
        ips = [p["status"]["podIP"] for p in hello.ready_pods()]
        hello.steer("apply", "-f", "-", input=json.dumps(ACCESS_POLICY))

        def only_the_labelled_pod_gets_in():
            return (not any(fetches(hello, "np-plain", ips).values())
                    and all(fetches(hello, "np-access", ips).values()))
        eventually(only_the_labelled_pod_gets_in, timeout=60, logs=hello.logs,
                   message="the policy to keep np-plain out and let np-access in")

        hello.steer("delete", "networkpolicy", "hello-access")

        def both_get_in():
            return all(fetches(hello, "np-plain", ips).values()) and \
                all(fetches(hello, "np-access", ips).values())
        eventually(both_get_in, timeout=60, logs=hello.logs,
                   message="both clients to reach every hello pod once the policy is gone")
    finally:
        hello.steer("delete", "networkpolicy", "hello-access", check=False)
        for name in clients:
            hello.steer("delete", "pod", name, check=False)


def test_down_leaves_no_containerd_shim_namespace_or_cgroup(cluster):
    state = cluster.local.state
    net = local_network.LocalNetwork.from_record(state["network"])
    containerd_pids = {cluster.local.processes[info["process"]]["pid"]:
                       cluster.local.processes[info["process"]].get("start")
                       for info in state["containerd"].values()}
    cluster.steer("down", "--timeout", "5")
    assert not [pid for pid, start in containerd_pids.items() if alive(pid, start)]
    assert local_network.leftovers(net) == []
    sockets = [info["socket"] for info in state["containerd"].values()]
    shims = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().decode(errors="replace")
            except OSError:
                continue
            if "containerd-shim" in argv and any(s in argv for s in sockets):
                shims.append(entry)
    assert shims == []
    for info in state["containerd"].values():
        for root in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup"):
            assert not os.path.exists(os.path.join(root, "steer", info["cgroupNode"]))
