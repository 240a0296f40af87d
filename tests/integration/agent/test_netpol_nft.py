"""NetworkPolicy rules in a real kernel: a "node" namespace with a bridge, three "pods".

    node ns: bridge 10.244.77.1/24 ── veth ── pod a: 10.244.77.2 (app=a)
                                   ── veth ── pod b: 10.244.77.3 (app=b)
                                   ── veth ── pod c: 10.244.77.4 (app=c)

Each pod listens on 8080 and 9090 (sockets made inside its namespace by this test).
Pod-to-pod traffic is bridged, so it meets the node's forward hook through
br_netfilter, as on a real node. Everything stays in these namespaces.

A denied connection is one whose SYN the node drops: connect() gets no answer, and
the pod chain's drop counter moves (checked, so a slow answer is never mistaken for
a drop).
"""

import os
import re
import shutil
import subprocess
import threading
import uuid

import pytest

from agent import netns
from agent.network.netpol import compute
from agent.network.netpol_rules import TABLE, build_ruleset, chain_name
from agent.network.nft_apply import Syncer, find_binary, run_script

pytestmark = [
    pytest.mark.skipif(shutil.which("nft") is None and not os.path.exists("/usr/sbin/nft"),
                       reason="nft is not installed (apt-get install -y nftables)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and nftables need root"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 (ip) is not installed"),
    pytest.mark.skipif(not os.path.exists("/proc/sys/net/bridge"),
                       reason="the kernel has no br_netfilter: bridged pod traffic would "
                              "bypass the forward hook"),
]

BRIDGE_IP = "10.244.77.1"
PODS = {"a": "10.244.77.2", "b": "10.244.77.3", "c": "10.244.77.4"}
PORTS = (8080, 9090)
NODE = "node-q"
DENIED_WAIT = 2.0     # how long a dropped SYN is given; the drop counter is the proof


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True)


def serve(listener):
    """Answer every connection with "hello <peer>" and then echo, until closed."""
    def handle(conn, peer):
        with conn:
            conn.sendall(f"hello {peer[0]}\n".encode())
            while data := conn.recv(4096):
                conn.sendall(data)

    def loop():
        while True:
            try:
                conn, peer = listener.accept()
            except OSError:
                return      # the listener was closed in teardown
            threading.Thread(target=handle, args=(conn, peer), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()


@pytest.fixture(scope="module")
def net():
    suffix = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
    node = f"steer-q-node-{suffix}"
    names = {pod: f"steer-q-{pod}-{suffix}" for pod in PODS}
    listeners, created = [], []
    try:
        node_path = netns.add(node)
        created.append(node)
        ip("-n", node, "link", "add", "br0", "type", "bridge")
        ip("-n", node, "addr", "add", f"{BRIDGE_IP}/24", "dev", "br0")
        ip("-n", node, "link", "set", "br0", "up")
        for key in ("net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1"):
            subprocess.run(["ip", "netns", "exec", node, "sysctl", "-qw", key], check=True,
                           capture_output=True)
        paths = {}
        for pod, address in PODS.items():
            paths[pod] = netns.add(names[pod])
            created.append(names[pod])
            veth = f"vq{pod}{uuid.uuid4().hex[:6]}"
            ip("-n", node, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
               "netns", names[pod])
            ip("-n", node, "link", "set", veth, "master", "br0")
            # As the CNI bridge's hairpinMode: a pod's frame may leave by the port it came in.
            ip("-n", node, "link", "set", veth, "type", "bridge_slave", "hairpin", "on")
            ip("-n", node, "link", "set", veth, "up")
            ip("-n", names[pod], "addr", "add", f"{address}/24", "dev", "eth0")
            ip("-n", names[pod], "link", "set", "eth0", "up")
            ip("-n", names[pod], "route", "add", "default", "via", BRIDGE_IP)
            for port in PORTS:
                listener = netns.listen(paths[pod], ("0.0.0.0", port), backlog=64)
                listeners.append(listener)
                serve(listener)
        yield {"node": node_path, "pods": paths, "syncer": Syncer(node_path)}
    finally:
        for listener in listeners:
            listener.close()
        for name in reversed(created):
            netns.delete(name)


def pod(name, labels=None):
    return {"metadata": {"namespace": "default", "name": name,
                         "labels": labels or {"app": name}},
            "spec": {"nodeName": NODE, "containers": [{"name": "main", "ports": [
                {"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "podIP": PODS[name]}}


def policy(name, selected, **spec):
    return {"metadata": {"namespace": "default", "name": name},
            "spec": {"podSelector": {"matchLabels": {"app": selected}}, **spec}}


def apply(net, *policies):
    accesses = compute(policies, [pod(p) for p in PODS], [{"metadata": {"name": "default"}}],
                       NODE)
    net["syncer"].sync(build_ruleset(accesses))


def connects(net, source, target, port=8080):
    """Whether ``source`` gets a "hello" from ``target``:port (raises on a refusal)."""
    try:
        sock = netns.connect(net["pods"][source], (PODS[target], port), timeout=DENIED_WAIT)
    except TimeoutError:
        return False
    with sock:
        sock.settimeout(10)
        line = sock.makefile("rb").readline().decode().split()
    assert line == ["hello", PODS[source]], line
    return True


def drops(net, chain):
    """The packets counted by ``chain``'s final drop rule (0 when the chain is gone)."""
    argv = ["nsenter", f"--net={net['node']}", find_binary("nft"), "list", "chain", "inet",
            TABLE, chain]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    found = re.search(r"counter packets (\d+) bytes \d+ drop", done.stdout)
    return int(found.group(1)) if found else 0


def denied(net, source, target, port, chain):
    """A connection is dropped by ``chain`` (not merely slow)."""
    before = drops(net, chain)
    return not connects(net, source, target, port) and drops(net, chain) > before


def test_no_policy_allows_everything(net):
    apply(net)
    assert connects(net, "a", "b") and connects(net, "c", "b", 9090)
    assert connects(net, "b", "a") and connects(net, "a", "c")


def test_deny_all_ingress_isolates_b_but_b_still_connects_out(net):
    apply(net, policy("deny-b", "b", policyTypes=["Ingress"]))
    in_b = chain_name("in", "default", "b")
    assert denied(net, "a", "b", 8080, in_b)
    assert denied(net, "c", "b", 9090, in_b)
    assert connects(net, "b", "a")          # egress unrestricted, the reply is established
    assert connects(net, "a", "c")          # others untouched


def test_ingress_from_pods_labelled_app_a_only(net):
    apply(net, policy("from-a", "b", ingress=[
        {"from": [{"podSelector": {"matchLabels": {"app": "a"}}}]}]))
    assert connects(net, "a", "b") and connects(net, "a", "b", 9090)
    assert denied(net, "c", "b", 8080, chain_name("in", "default", "b"))


def test_egress_from_a_only_to_b_on_8080(net):
    apply(net, policy("a-out", "a", policyTypes=["Egress"], egress=[
        {"to": [{"podSelector": {"matchLabels": {"app": "b"}}}], "ports": [{"port": 8080}]}]))
    out_a = chain_name("out", "default", "a")
    assert connects(net, "a", "b", 8080)
    assert denied(net, "a", "b", 9090, out_a)
    assert denied(net, "a", "c", 8080, out_a)
    assert connects(net, "c", "a")          # ingress to a stays open


def test_named_port_resolved_on_the_target_pod(net):
    apply(net, policy("b-http", "b", ingress=[{"ports": [{"port": "http"}]}]))
    assert connects(net, "c", "b", 8080)
    assert denied(net, "c", "b", 9090, chain_name("in", "default", "b"))


def test_ip_block_with_except(net):
    apply(net, policy("block", "b", ingress=[{"from": [
        {"ipBlock": {"cidr": "10.244.77.0/24", "except": [f"{PODS['c']}/32"]}}]}]))
    assert connects(net, "a", "b")
    assert denied(net, "c", "b", 8080, chain_name("in", "default", "b"))


def test_an_established_connection_survives_a_policy_that_denies_new_ones(net):
    """Kubernetes leaves this to the implementation: here replies and later packets of a
    connection already accepted pass (ct state established), new connections do not."""
    apply(net)
    sock = netns.connect(net["pods"]["c"], (PODS["b"], 8080), timeout=10)
    with sock:
        sock.settimeout(10)
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"hello")
        apply(net, policy("deny-b", "b", policyTypes=["Ingress"]))
        sock.sendall(b"still here\n")
        assert reader.readline() == b"still here\n"
    assert denied(net, "c", "b", 8080, chain_name("in", "default", "b"))


def test_updates_are_incremental_and_the_table_lives_only_in_the_node(net):
    syncer = net["syncer"]
    before = syncer.incremental_count
    apply(net, policy("deny-b", "b", policyTypes=["Ingress"]))
    apply(net, policy("deny-a", "a", policyTypes=["Ingress", "Egress"]))
    assert syncer.incremental_count >= before + 1
    assert denied(net, "a", "b", 8080, chain_name("out", "default", "a"))
    assert connects(net, "c", "b")
    root = subprocess.run([find_binary("nft"), "list", "table", "inet", TABLE],
                          capture_output=True, check=False)
    assert root.returncode != 0, "the policy table must not exist in the machine's namespace"


HAIRPIN_NAT = f"""
table ip steer-q-hairpin {{
    chain pre {{ type nat hook prerouting priority dstnat; ip daddr 10.96.0.10 tcp dport 80 dnat to {PODS['b']}:8080; }}
    chain post {{ type nat hook postrouting priority srcnat; ip saddr {PODS['b']} ip daddr {PODS['b']} masquerade; }}
}}
"""


def test_a_pod_isolated_from_everyone_still_reaches_itself_through_a_service(net):
    """Hairpin: DNAT sends b's packet back to b across the bridge; the policy lets it by."""
    run_script(HAIRPIN_NAT, net["node"])
    try:
        apply(net, policy("deny-b", "b", policyTypes=["Ingress", "Egress"]))
        sock = netns.connect(net["pods"]["b"], ("10.96.0.10", 80), timeout=10)
        with sock:
            sock.settimeout(10)
            assert sock.makefile("rb").readline() == f"hello {BRIDGE_IP}\n".encode()
        assert denied(net, "a", "b", 8080, chain_name("in", "default", "b"))
    finally:
        run_script("delete table ip steer-q-hairpin\n", net["node"])
