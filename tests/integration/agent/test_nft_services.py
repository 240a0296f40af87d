"""Service rules in a real kernel: a "node" and a "pod" network namespace of our own.

    node ns: lo with 10.250.0.1 (the node's address) and the agent's route for the
             service CIDR (on lo: agent/network/service_routes.py);
             veth 10.244.7.1/24 ── pod ns: eth0 10.244.7.2/24, echo server

Everything stays inside these two namespaces: the service CIDR is routed to the node's
own loopback, so nothing is ever routed towards the machine's network.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pytest

from agent import netns
from agent.network import service_routes
from agent.network.nft_apply import Syncer, run_script
from agent.network.nft_rules import NodeView, build_ruleset, build_script

pytestmark = [
    pytest.mark.skipif(shutil.which("nft") is None and not os.path.exists("/usr/sbin/nft"),
                       reason="nft is not installed (apt-get install -y nftables)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and nftables need root"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 (ip) is not installed"),
]

NODE_IP, NODE_VETH, POD_IP = "10.250.0.1", "10.244.7.1", "10.244.7.2"
CLUSTER_IP, SERVICE_CIDR, CLUSTER_CIDR = "10.96.0.10", "10.96.0.0/16", "10.244.0.0/16"
POD_PORT, NODE_PORT = 8080, 30080
VIEW = NodeView("node-1", (NODE_IP,), CLUSTER_CIDR, SERVICE_CIDR)

ECHO_SERVER = r"""
import socket, sys, threading
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", PORT)); tcp.listen(64)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("0.0.0.0", PORT))
def serve(conn, peer):
    conn.sendall(f"hello {peer[0]}\n".encode())
    while data := conn.recv(4096):
        conn.sendall(data)
    conn.close()
def udp_loop():
    while True:
        data, peer = udp.recvfrom(4096)
        udp.sendto(b"udp " + peer[0].encode() + b" " + data, peer)
threading.Thread(target=udp_loop, daemon=True).start()
print("ready", flush=True)
while True:
    conn, peer = tcp.accept()
    threading.Thread(target=serve, args=(conn, peer), daemon=True).start()
""".replace("PORT", str(POD_PORT))


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def net():
    """The two namespaces, the veth between them, and the echo server in the pod."""
    suffix = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
    node_name, pod_name = f"steer-j-node-{suffix}", f"steer-j-pod-{suffix}"
    veth = f"vj{uuid.uuid4().hex[:8]}"
    server, decoys = None, []
    try:
        node_path, pod_path = netns.add(node_name), netns.add(pod_name)
        ip("-n", node_name, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
           "netns", pod_name)
        ip("-n", node_name, "addr", "add", f"{NODE_VETH}/24", "dev", veth)
        ip("-n", node_name, "link", "set", veth, "up")
        ip("-n", node_name, "addr", "add", f"{NODE_IP}/32", "dev", "lo")
        # The route the agent makes, from the node's address (its own connections).
        service_routes.prepare(node_path, SERVICE_CIDR, NODE_IP)
        ip("-n", pod_name, "addr", "add", f"{POD_IP}/24", "dev", "eth0")
        ip("-n", pod_name, "link", "set", "eth0", "up")
        ip("-n", pod_name, "route", "add", "default", "via", NODE_VETH)
        subprocess.run(["ip", "netns", "exec", node_name, "sysctl", "-qw",
                        "net.ipv4.ip_forward=1"], check=True, capture_output=True)
        server = subprocess.Popen(["ip", "netns", "exec", pod_name, sys.executable, "-c",
                                   ECHO_SERVER], stdout=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL)
        assert server.stdout.readline().strip() == b"ready", "the echo server did not start"
        # Decoys: listeners of the node itself on the ports under test. Without the
        # reject rules the node's own miss would time out on lo (or, were the service
        # CIDR a local route, reach them), so a refusal proves a rule refused it.
        decoys = [netns.listen(node_path, ("0.0.0.0", port)) for port in (80, 81, NODE_PORT)]
        yield {"node": node_path, "pod": pod_path, "node_name": node_name}
    finally:
        for sock in decoys:
            sock.close()
        if server is not None:
            server.kill()           # `ip netns exec` execs python: this pid is the server
            server.wait(timeout=10)
        netns.delete(pod_name)
        netns.delete(node_name)


def web_service(node_port=True, **spec):
    port = {"name": "http", "port": 80, "protocol": "TCP"}
    ports = [port, {"name": "dns", "port": 53, "protocol": "UDP"}]
    if node_port:
        port["nodePort"] = NODE_PORT
    return {"metadata": {"namespace": "default", "name": "web"},
            "spec": {"clusterIP": CLUSTER_IP, "ports": ports,
                     "type": "NodePort" if node_port else "ClusterIP", **spec}}


def web_slice(addresses=(POD_IP,)):
    return {"metadata": {"namespace": "default", "name": "web-abc",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [a], "nodeName": "node-1",
                           "conditions": {"ready": True}} for a in addresses],
            "ports": [{"name": "http", "port": POD_PORT, "protocol": "TCP"},
                      {"name": "dns", "port": POD_PORT, "protocol": "UDP"}]}


def script(with_endpoint=True, **spec):
    return build_script([web_service(**spec)], [web_slice()] if with_endpoint else [], VIEW)


def hello(ns_path, address):
    """Connect from ``ns_path``; return (socket, the address the server saw us as)."""
    sock = netns.connect(ns_path, address, timeout=10)
    sock.settimeout(10)
    line = sock.makefile("rb").readline().decode().split()
    assert line[0] == "hello", line
    return sock, line[1]


def echo(sock, payload=b"ping\n"):
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(4096)
        assert chunk, "connection closed"
        got += chunk
    return got


def refused(ns_path, address):
    """True when a connection is actively refused (not a timeout)."""
    try:
        netns.connect(ns_path, address, timeout=10).close()
    except ConnectionRefusedError:
        return True
    return False


def test_clusterip_reaches_the_pod(net):
    run_script(script(), net["node"])
    sock, _peer = hello(net["node"], (CLUSTER_IP, 80))
    with sock:
        assert echo(sock) == b"ping\n"


def test_udp_clusterip_reaches_the_pod(net):
    run_script(script(), net["node"])
    sock = netns.run_in(net["node"], lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    with sock:
        sock.settimeout(10)
        sock.sendto(b"q", (CLUSTER_IP, 53))
        data, _ = sock.recvfrom(4096)
    assert data.startswith(b"udp ") and data.endswith(b" q")


def test_nodeport_on_the_node_address_reaches_the_pod(net):
    run_script(script(), net["node"])
    sock, peer = hello(net["node"], (NODE_IP, NODE_PORT))
    with sock:
        assert echo(sock, b"ok\n") == b"ok\n"
    assert peer == NODE_VETH        # NodePort traffic is masqueraded


def test_a_pod_reaches_itself_through_its_service(net):
    run_script(script(), net["node"])
    sock, peer = hello(net["pod"], (CLUSTER_IP, 80))
    with sock:
        assert echo(sock) == b"ping\n"
    assert peer == NODE_VETH        # hairpin: masqueraded, so the reply comes back via the node


def test_no_endpoints_is_refused_at_once(net):
    run_script(script(with_endpoint=False), net["node"])
    assert refused(net["node"], (CLUSTER_IP, 80))
    assert refused(net["node"], (NODE_IP, NODE_PORT))
    assert refused(net["pod"], (CLUSTER_IP, 80))


def test_a_service_ip_or_port_without_a_service_is_refused(net):
    run_script(script(), net["node"])
    assert refused(net["node"], (CLUSTER_IP, 81))
    assert refused(net["node"], ("10.96.3.3", 80))
    assert refused(net["pod"], ("10.96.3.3", 80))


@pytest.mark.parametrize("how", ["replace", "change"])
def test_established_connections_survive_losing_their_endpoint(net, how):
    syncer = Syncer(net["node"])
    syncer.sync(build_ruleset([web_service()], [web_slice()], VIEW))
    sock, _peer = hello(net["node"], (CLUSTER_IP, 80))
    with sock:
        empty = build_ruleset([web_service()], [], VIEW)
        if how == "replace":
            run_script(empty.script(), net["node"])
        else:
            syncer.sync(empty)
            assert syncer.incremental_count == 1
        assert refused(net["node"], (CLUSTER_IP, 80))
        assert echo(sock, b"still here\n") == b"still here\n"


def test_external_traffic_policy_local_with_no_local_endpoint_drops(net):
    remote = web_slice()
    remote["endpoints"][0]["nodeName"] = "node-2"
    run_script(build_script([web_service(externalTrafficPolicy="Local")], [remote], VIEW),
               net["node"])
    # From the node itself kube-proxy's short-cut still reaches the (remote) endpoint.
    sock, _peer = hello(net["node"], (NODE_IP, NODE_PORT))
    sock.close()


def test_an_unchanged_script_is_not_applied_again(net):
    syncer = Syncer(net["node"])
    text = script()
    assert syncer.sync(text) is True
    assert syncer.sync(text) is False
    listed = subprocess.run(["nsenter", f"--net={net['node']}", "nft", "list", "table", "ip",
                             "steer-proxy"], capture_output=True, check=True, text=True).stdout
    assert f"{CLUSTER_IP} . tcp . 80 : goto service-" in listed


def test_a_thousand_services_apply_in_one_transaction(net):
    services, slices = [], []
    for i in range(1000):
        svc = web_service()
        svc["metadata"]["name"] = f"s{i}"
        svc["spec"]["clusterIP"] = f"10.96.{10 + i // 250}.{i % 250 + 1}"
        svc["spec"]["ports"][0]["nodePort"] = 30000 + i
        sl = web_slice([f"10.244.{100 + i // 250}.{(i % 250) + j}" for j in range(1, 11)])
        sl["metadata"]["labels"]["kubernetes.io/service-name"] = f"s{i}"
        services.append(svc)
        slices.append(sl)
    text = build_script(services, slices, VIEW)
    started = time.monotonic()
    run_script(text, net["node"])
    print(f"\n1000 services x 10 endpoints: {len(text)} bytes, "
          f"applied in {time.monotonic() - started:.2f}s")
    run_script(script(), net["node"])     # back to the small table for other tests


def table_state(ns_path):
    """The table as the kernel has it, without handles and in a stable order."""
    listed = subprocess.run(["nsenter", f"--net={ns_path}", "nft", "-j", "list", "table",
                             "ip", "steer-proxy"], capture_output=True, check=True).stdout
    objects, rules = set(), {}
    for item in json.loads(listed)["nftables"]:
        (kind, body), = item.items()
        if kind == "metainfo":
            continue
        body = {k: v for k, v in body.items() if k != "handle"}
        if kind == "rule":
            rules.setdefault(body["chain"], []).append(json.dumps(body["expr"], sort_keys=True))
            continue
        if "elem" in body:
            body["elem"] = sorted(json.dumps(e, sort_keys=True) for e in body["elem"])
        objects.add(json.dumps({kind: body}, sort_keys=True))
    return objects, rules


def _objects(web_addresses, extra):
    services = [web_service(sessionAffinity="ClientIP")]
    slices = [web_slice(web_addresses)]
    for name, ip, addresses, spec in extra:
        svc = web_service(**spec)
        svc["metadata"]["name"] = name
        svc["spec"]["clusterIP"] = ip
        svc["spec"]["ports"][0]["nodePort"] = NODE_PORT + len(name)
        sl = web_slice(addresses)
        sl["metadata"]["labels"]["kubernetes.io/service-name"] = name
        services.append(svc)
        slices.append(sl)
    return build_ruleset(services, slices, VIEW)


def test_a_change_script_leaves_the_same_table_as_a_replace(net):
    before = _objects([POD_IP, "10.244.7.3"], [("gone", "10.96.0.20", ["10.244.7.9"], {})])
    after = _objects([POD_IP, "10.244.7.4"],
                     [("fresh", "10.96.0.21", ["10.244.7.5", "10.244.7.6"],
                       {"externalTrafficPolicy": "Local"}),
                      ("none", "10.96.0.22", [], {})])
    syncer = Syncer(net["node"])
    syncer.sync(before)
    syncer.sync(after)
    assert syncer.incremental_count == 1
    changed = table_state(net["node"])
    run_script(after.script(), net["node"])
    assert table_state(net["node"]) == changed


def test_session_affinity_survives_a_change_elsewhere(net):
    syncer = Syncer(net["node"])
    syncer.sync(_objects([POD_IP], []))
    sock, _peer = hello(net["node"], (CLUSTER_IP, 80))
    sock.close()
    syncer.sync(_objects([POD_IP], [("more", "10.96.0.23", ["10.244.7.8"], {})]))
    assert syncer.incremental_count == 1
    listed = subprocess.run(["nsenter", f"--net={net['node']}", "nft", "list", "table", "ip",
                             "steer-proxy"], capture_output=True, check=True, text=True).stdout
    remembered = [line.split()[3] for line in listed.splitlines() if "expires" in line]
    assert remembered == [NODE_IP], listed     # the client we were, in web/tcp/80's set
