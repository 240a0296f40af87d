"""`steer-proxy --mode nftables` against a real API server, in namespaces of our own.

    node ns: lo with 10.250.0.1 (the Node's node-ip annotation); veth 10.244.9.1/24
             ── pod ns: eth0 10.244.9.2/24, a TCP server saying "hello <peer>"

The proxy runs in the root namespace and programs the node namespace (``--netns``),
where it also routes the service range on lo. The Service has no selector, so no
controller is needed: the test writes the EndpointSlice itself, as a controller
would. A decoy listens on the node's port 80: a refused connection proves a reject
rule refused it (a local route with no rule would deliver it to the decoy).
"""

import datetime
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

import pytest

from agent import netns
from cli.local_store import free_ports
from control.objects import kinds
from tests.support import children
from tests.support.apiproc import ROOT, eventually

pytestmark = [
    pytest.mark.skipif(shutil.which("nft") is None and not os.path.exists("/usr/sbin/nft"),
                       reason="nft is not installed (apt-get install -y nftables)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and nftables need root"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 (ip) is not installed"),
]

SERVICE_CIDR = "10.96.0.0/16"
SERVER_ARGS = ["--service-cluster-ip-range", SERVICE_CIDR]
NODE_IP, NODE_VETH, POD_IP = "10.250.0.1", "10.244.9.1", "10.244.9.2"
POD_PORT = 8080
TIMEOUT = 30
TRIGGER = "endpoints.kubernetes.io/last-change-trigger-time"

HELLO_SERVER = r"""
import socket, threading
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", PORT)); tcp.listen(128)
print("ready", flush=True)
def serve(conn, peer):
    with conn:
        conn.sendall(f"hello {peer[0]}\n".encode())
while True:
    conn, peer = tcp.accept()
    threading.Thread(target=serve, args=(conn, peer), daemon=True).start()
""".replace("PORT", str(POD_PORT))


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True)


def nft_table_present(netns_path):
    return subprocess.run(["nsenter", f"--net={netns_path}", "nft", "list", "table", "ip",
                           "steer-proxy"], capture_output=True).returncode == 0


class Decoy:
    """The node's own listener on port 80: answers "decoy" to what no rule took."""

    def __init__(self, netns_path):
        self.sock = netns.listen(netns_path, ("0.0.0.0", 80), backlog=128)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"decoy\n")

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def net():
    suffix = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
    node_name, pod_name = f"steer-p-node-{suffix}", f"steer-p-pod-{suffix}"
    veth = f"vp{uuid.uuid4().hex[:8]}"
    server, decoy = None, None
    try:
        node_path = netns.add(node_name)
        netns.add(pod_name)
        ip("-n", node_name, "link", "set", "lo", "up")
        ip("-n", node_name, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
           "netns", pod_name)
        ip("-n", node_name, "addr", "add", f"{NODE_VETH}/24", "dev", veth)
        ip("-n", node_name, "link", "set", veth, "up")
        ip("-n", node_name, "addr", "add", f"{NODE_IP}/32", "dev", "lo")
        ip("-n", pod_name, "addr", "add", f"{POD_IP}/24", "dev", "eth0")
        ip("-n", pod_name, "link", "set", "eth0", "up")
        ip("-n", pod_name, "route", "add", "default", "via", NODE_VETH)
        server = subprocess.Popen(["ip", "netns", "exec", pod_name, sys.executable, "-c",
                                   HELLO_SERVER], stdout=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL)
        assert server.stdout.readline().strip() == b"ready", "the pod's server did not start"
        decoy = Decoy(node_path)
        yield {"node": node_path, "node_name": node_name}
    finally:
        if decoy is not None:
            decoy.close()
        if server is not None:
            server.kill()           # `ip netns exec` execs python: this pid is the server
            server.wait(timeout=10)
        netns.delete(pod_name)
        netns.delete(node_name)


class NftProxyProcess:
    def __init__(self, server, base_dir, node, netns_path):
        self.metrics_port = free_ports(1)[0]
        self.log_path = os.path.join(str(base_dir), "nftproxy.log")
        self.netns_path = netns_path
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agent.proxy", "--mode", "nftables",
                 "--kubeconfig", server.kubeconfig_for("nftproxy", "system:kube-proxy"),
                 "--node-name", node, "--netns", netns_path,
                 "--cluster-cidr", "10.244.0.0/16", "--service-cluster-ip-range", SERVICE_CIDR,
                 "--metrics-addr", f"127.0.0.1:{self.metrics_port}",
                 "--resync-period", "2", "--log-level", "DEBUG"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
                env={**os.environ, "PYTHONPATH": ROOT})

    def get(self, path):
        url = f"http://127.0.0.1:{self.metrics_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return None, ""

    def metric(self, name):
        for line in self.get("/metrics")[1].splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def logs(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-20000:]

    def stop(self):
        children.stop(self.proc, grace=30)


@pytest.fixture(scope="module")
def proxy(server, net, tmp_path_factory):
    rest = server.rest_client(timeout=10)
    rest.create(kinds.NODES, None, {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": net["node_name"],
                     "annotations": {"network.steersman.io/node-ip": NODE_IP}}})
    proc = NftProxyProcess(server, tmp_path_factory.mktemp("nftproxy"), net["node_name"],
                           net["node"])
    try:
        eventually(lambda: proc.get("/healthz")[0] == 200, TIMEOUT, "the proxy's first sync",
                   proc.logs)
        yield proc
    finally:
        proc.stop()
        rest.close()


def now_text():
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def endpoint_slice(name, service, addresses):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service},
                         "annotations": {TRIGGER: now_text()}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [a], "conditions": {"ready": True},
                           "nodeName": "elsewhere"} for a in addresses],
            "ports": [{"name": "http", "port": POD_PORT, "protocol": "TCP"}]}


def make_service(rest, name):
    return rest.create(kinds.SERVICES, "default", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": POD_PORT}]}})


def answer(netns_path, address):
    """What the first line from ``address`` says: "hello ...", "decoy", or "refused"."""
    try:
        sock = netns.connect(netns_path, address, timeout=5)
    except ConnectionRefusedError:
        return "refused"
    with sock:
        sock.settimeout(5)
        return sock.makefile("rb").readline().decode().strip()


def test_the_node_namespace_is_prepared(proxy, net):
    routes = subprocess.run(["ip", "-n", os.path.basename(net["node"]), "route", "show",
                             "table", "all", SERVICE_CIDR], capture_output=True,
                            text=True, check=True).stdout
    # Unicast on lo, not local: a hostPort must not capture ClusterIPs (service_routes).
    assert routes.startswith(f"{SERVICE_CIDR} dev lo") and f"src {NODE_IP}" in routes
    assert "local" not in routes, routes
    forward = subprocess.run(["nsenter", f"--net={net['node']}", "sysctl", "-n",
                              "net.ipv4.ip_forward"], capture_output=True, text=True)
    assert forward.stdout.strip() == "1"


def test_a_service_reaches_its_endpoint_and_refuses_without_one(server, proxy, net):
    rest = server.rest_client(timeout=10)
    cluster_ip = make_service(rest, "web")["spec"]["clusterIP"]
    # No slice yet: refused by the rules (no endpoints, or nothing in the service
    # range yet), never answered by the decoy.
    eventually(lambda: answer(net["node"], (cluster_ip, 80)) == "refused", TIMEOUT,
               "a Service without endpoints refused", proxy.logs)
    rest.create(kinds.ENDPOINTSLICES, "default", endpoint_slice("web-1", "web", [POD_IP]))
    said = eventually(lambda: (lambda a: a if a.startswith("hello") else None)(
        answer(net["node"], (cluster_ip, 80))), TIMEOUT, "the ClusterIP reaching the pod",
        proxy.logs)
    assert said.startswith("hello ")
    slice_ = rest.get(kinds.ENDPOINTSLICES, "default", "web-1")
    slice_["endpoints"] = []
    rest.update(kinds.ENDPOINTSLICES, "default", slice_)
    eventually(lambda: answer(net["node"], (cluster_ip, 80)) == "refused", TIMEOUT,
               "new connections refused once the endpoint is gone", proxy.logs)
    assert answer(net["node"], ("10.96.255.254", 80)) == "refused"    # no Service there
    # The counter moves just after the rules are in place: wait for it, do not race it.
    eventually(lambda: proxy.metric("steer_proxy_syncs_total") >= 3, TIMEOUT, "3 syncs counted")


def test_a_table_deleted_by_hand_comes_back(proxy, net):
    subprocess.run(["nsenter", f"--net={net['node']}", "nft", "delete", "table", "ip",
                    "steer-proxy"], check=True, capture_output=True)
    eventually(lambda: nft_table_present(net["node"]), TIMEOUT,
               "the periodic resync restoring the table", proxy.logs)


def in_place(present, said):
    """Whether a client's answer shows the endpoint ``present`` (or gone) in the rules."""
    return said.startswith("hello") if present else said == "refused"


def test_endpoint_change_to_rule_latency(server, proxy, net):
    """Flip one endpoint in and out 20 times; print p50/p99 (no timing assertion)."""
    rest = server.rest_client(timeout=10)
    cluster_ip = make_service(rest, "flip")["spec"]["clusterIP"]
    rest.create(kinds.ENDPOINTSLICES, "default", endpoint_slice("flip-1", "flip", []))
    eventually(lambda: answer(net["node"], (cluster_ip, 80)) == "refused", TIMEOUT,
               "the flip Service refusing", proxy.logs)
    observed, reported = [], []
    for i in range(20):
        present = i % 2 == 0
        slice_ = rest.get(kinds.ENDPOINTSLICES, "default", "flip-1")
        fresh = endpoint_slice("flip-1", "flip", [POD_IP] if present else [])
        slice_.update(endpoints=fresh["endpoints"])
        slice_["metadata"]["annotations"] = fresh["metadata"]["annotations"]
        syncs = proxy.metric("steer_proxy_syncs_total")
        started = time.monotonic()
        rest.update(kinds.ENDPOINTSLICES, "default", slice_)
        eventually(lambda p=present: in_place(p, answer(net["node"], (cluster_ip, 80))),
                   TIMEOUT, f"change {i} in place", proxy.logs)
        observed.append(time.monotonic() - started)
        eventually(lambda n=syncs: proxy.metric("steer_proxy_syncs_total") > n, TIMEOUT,
                   "the sync counted", proxy.logs)
        reported.append(proxy.metric("steer_proxy_last_endpoint_change_latency_seconds"))

    def pct(values, q):
        return statistics.quantiles(values, n=100, method="inclusive")[q - 1]
    print(f"\nendpoint change -> rule in place over {len(observed)} changes: "
          f"seen by a client p50={pct(observed, 50) * 1000:.0f}ms "
          f"p99={pct(observed, 99) * 1000:.0f}ms; "
          f"proxy's trigger-time metric p50={pct(reported, 50) * 1000:.0f}ms "
          f"p99={pct(reported, 99) * 1000:.0f}ms")


def test_sigterm_keeps_the_table_and_cleanup_removes_it(proxy, net):
    assert nft_table_present(net["node"])
    proxy.stop()
    assert proxy.proc.returncode == 0, proxy.logs()
    # Services keep answering while a proxy restarts (kube-proxy leaves its rules too).
    assert nft_table_present(net["node"])
    done = subprocess.run([sys.executable, "-m", "agent.proxy", "--mode", "nftables",
                           "--cleanup", "--netns", net["node"]], cwd=ROOT, timeout=60,
                          capture_output=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert done.returncode == 0, done.stderr.decode()
    assert not nft_table_present(net["node"])
