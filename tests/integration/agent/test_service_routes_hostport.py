"""A hostPort and the service CIDR in one node namespace: the real route, rules and portmap.

    node ns: lo 10.250.0.1, the service route (agent/network/service_routes.py),
             the steer-proxy table, and the CNI portmap plugin's iptables rules
       ├── web pod 10.244.7.2: the endpoint of Service web (10.96.0.10:443 -> 8080)
       ├── hostport pod 10.244.7.3: hostPort 443 -> 8443
       └── client pod 10.244.7.4

The portmap plugin DNATs any destination of address type LOCAL on its hostPort, so a
service CIDR routed as ``local`` let a hostPort 443 capture every ClusterIP:443 (the
API server's Service included). Both orders of the two nat chains at priority -100 are
tried: which one DNATs first depends on the order they were registered in, and the
proxy's table is recreated now and then. Everything stays in the namespaces this module
makes.
"""

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from agent import netns
from agent.network import service_routes
from agent.network.nft_apply import run_script
from agent.network.nft_rules import NodeView, build_script
from tests.support.children import stop

PORTMAP = "/usr/lib/cni/portmap"

pytestmark = [
    pytest.mark.skipif(shutil.which("nft") is None and not os.path.exists("/usr/sbin/nft"),
                       reason="nft is not installed (apt-get install -y nftables)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and nftables need root"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 (ip) is not installed"),
    pytest.mark.skipif(not os.path.exists(PORTMAP),
                       reason="the CNI portmap plugin is not installed "
                              "(apt-get install -y containernetworking-plugins)"),
    pytest.mark.skipif(shutil.which("iptables") is None,
                       reason="iptables is not installed (the portmap plugin runs it)"),
]

NODE_IP, GATEWAY = "10.250.0.1", "10.244.7.1"
WEB_IP, HOSTPORT_IP, CLIENT_IP = "10.244.7.2", "10.244.7.3", "10.244.7.4"
CLUSTER_IP, SERVICE_CIDR, CLUSTER_CIDR = "10.96.0.10", "10.96.0.0/16", "10.244.0.0/16"
VIEW = NodeView("node-1", (NODE_IP,), CLUSTER_CIDR, SERVICE_CIDR)

SERVER = r"""
import socket, sys, threading
name, port = sys.argv[1], int(sys.argv[2])
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", port)); tcp.listen(64)
print("ready", flush=True)
while True:
    conn, peer = tcp.accept()
    conn.sendall(f"{name} {peer[0]}\n".encode()); conn.close()
"""


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True)


def add_pod(node, pod, address):
    """A ptp-style pod: a veth, a /32 on each side, a default route via the node."""
    veth = f"vh{uuid.uuid4().hex[:8]}"
    ip("-n", node, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", pod)
    ip("-n", node, "addr", "add", f"{GATEWAY}/32", "dev", veth)
    ip("-n", node, "link", "set", veth, "up")
    ip("-n", node, "route", "add", f"{address}/32", "dev", veth)
    ip("-n", pod, "addr", "add", f"{address}/32", "dev", "eth0")
    ip("-n", pod, "link", "set", "eth0", "up")
    ip("-n", pod, "link", "set", "lo", "up")
    ip("-n", pod, "route", "add", GATEWAY, "dev", "eth0")
    ip("-n", pod, "route", "add", "default", "via", GATEWAY)


def serve(pod, name, port):
    proc = subprocess.Popen(["ip", "netns", "exec", pod, sys.executable, "-c", SERVER, name,
                             str(port)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout.readline().strip() == b"ready", f"the {name} server did not start"
    return proc


def portmap(command, node_path, pod_path, container_id):
    """Run the CNI portmap plugin in the node namespace: hostPort 443 -> HOSTPORT_IP:8443."""
    config = {
        "cniVersion": "1.0.0", "name": "steer-test", "type": "portmap",
        "capabilities": {"portMappings": True}, "snat": True,
        "runtimeConfig": {"portMappings": [
            {"hostPort": 443, "containerPort": 8443, "protocol": "tcp"}]},
        "prevResult": {"cniVersion": "1.0.0",
                       "interfaces": [{"name": "eth0", "sandbox": pod_path}],
                       "ips": [{"address": f"{HOSTPORT_IP}/32", "interface": 0}]},
    }
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command,
           "CNI_CONTAINERID": container_id, "CNI_NETNS": pod_path, "CNI_IFNAME": "eth0",
           "CNI_PATH": os.path.dirname(PORTMAP)}
    done = subprocess.run(["nsenter", f"--net={node_path}", PORTMAP], input=json.dumps(config),
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"portmap {command} failed: {done.stdout} {done.stderr}"


@pytest.fixture(scope="module")
def net():
    suffix = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
    names = {role: f"steer-hp-{role}-{suffix}" for role in ("node", "web", "hostport", "client")}
    servers, made = [], []
    try:
        for name in names.values():
            netns.add(name)
            made.append(name)
        paths = {role: netns.path_for(name) for role, name in names.items()}
        ip("-n", names["node"], "link", "set", "lo", "up")
        ip("-n", names["node"], "addr", "add", f"{NODE_IP}/32", "dev", "lo")
        for role, address in (("web", WEB_IP), ("hostport", HOSTPORT_IP),
                              ("client", CLIENT_IP)):
            add_pod(names["node"], names[role], address)
        # What an older agent left: the service CIDR as a local route. prepare replaces it.
        ip("-n", names["node"], "route", "add", "local", SERVICE_CIDR, "dev", "lo",
           "table", "local")
        service_routes.prepare(paths["node"], SERVICE_CIDR, NODE_IP)
        service_routes.prepare(paths["node"], SERVICE_CIDR, NODE_IP)    # idempotent
        servers = [serve(names["web"], "web", 8080), serve(names["hostport"], "hostport", 8443)]
        yield {**paths, "id": uuid.uuid4().hex, "node_name": names["node"]}
    finally:
        for proc in servers:
            stop(proc, grace=5)
        for name in reversed(made):
            netns.delete(name)


def web_service():
    return {"metadata": {"namespace": "default", "name": "web"},
            "spec": {"clusterIP": CLUSTER_IP, "type": "ClusterIP",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}}


def web_slice():
    return {"metadata": {"namespace": "default", "name": "web-abc",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [WEB_IP], "nodeName": "node-1",
                           "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": 8080, "protocol": "TCP"}]}


def who(ns_path, address):
    """Connect from ``ns_path``: the name of the server that answered."""
    with netns.connect(ns_path, address, timeout=10) as sock:
        sock.settimeout(10)
        return sock.makefile("rb").readline().decode().split()[0]


def refused(ns_path, address):
    try:
        netns.connect(ns_path, address, timeout=10).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.fixture(params=["proxy-table-first", "portmap-first"])
def hostport(request, net):
    """The Service rules and the hostPort, the two nat chains registered in either order."""
    rules = build_script([web_service()], [web_slice()], VIEW)
    run_script("table ip steer-proxy {}\ndelete table ip steer-proxy\n", net["node"])
    if request.param == "proxy-table-first":
        run_script(rules, net["node"])
    portmap("ADD", net["node"], net["hostport"], net["id"])
    try:
        if request.param == "portmap-first":
            run_script(rules, net["node"])
        yield net
    finally:
        portmap("DEL", net["node"], net["hostport"], net["id"])


def test_a_clusterip_on_the_hostport_reaches_its_service_from_a_pod(hostport):
    assert who(hostport["client"], (CLUSTER_IP, 443)) == "web"


def test_a_clusterip_on_the_hostport_reaches_its_service_from_the_node(hostport):
    assert who(hostport["node"], (CLUSTER_IP, 443)) == "web"


def test_the_hostport_still_answers_on_the_node_address(hostport):
    assert who(hostport["client"], (NODE_IP, 443)) == "hostport"
    assert who(hostport["node"], (NODE_IP, 443)) == "hostport"


def test_a_clusterip_without_a_service_on_the_hostport_is_refused(hostport):
    assert refused(hostport["client"], ("10.96.3.3", 443))
    assert refused(hostport["node"], ("10.96.3.3", 443))
    assert refused(hostport["node"], (CLUSTER_IP, 80))


def test_the_service_cidr_is_routed_on_lo_and_is_not_local(net):
    routes = subprocess.run(["ip", "-n", net["node_name"], "route", "show", "table", "all",
                             SERVICE_CIDR], capture_output=True, text=True, check=True).stdout
    assert routes.split("\n")[0].split()[:3] == [SERVICE_CIDR, "dev", "lo"], routes
    assert f"src {NODE_IP}" in routes
    assert "local" not in routes, routes       # the older agent's route is gone
