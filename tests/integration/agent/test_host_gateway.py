"""Pods on two nodes reach each other by IP through host-gw routes, without NAT.

Two node namespaces on one LAN (cli/local_network.py, as `steer up` makes them),
a containerd in each (tests/support/containerd.py), the Nodes in a real API server
and one HostGateway per node (agent/network/routes.py) keeping the routes inside
the node namespaces. Nothing is added to the root namespace: the test compares its
addresses and routes before and after.
"""

import contextlib
import ipaddress
import os
import subprocess

import pytest

from agent.network import routes
from agent.provision import containerd as provision
from agent.runtime.cri import api_pb2 as api
from agent.runtime.cri.client import CriError
from cli import local_images, local_network
from control.client import NotFound
from control.objects import kinds
from tests.support.apiproc import eventually
from tests.support.containerd import missing_requirements, running_containerd

pytestmark = pytest.mark.skipif(
    missing_requirements() is not None or local_network.unavailable_reason() is not None,
    reason=str(missing_requirements() or local_network.unavailable_reason()))

HTTP_PORT = 8080
POD_CIDRS = {"node-1": "10.244.1.0/24", "node-2": "10.244.2.0/24"}
#: A CGI script that answers with the address the request came from.
WHO_AM_I = ("mkdir -p /www/cgi-bin && "
            "printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' "
            "> /www/cgi-bin/peer && chmod +x /www/cgi-bin/peer && "
            f"exec httpd -f -p {HTTP_PORT} -h /www")


def root_network_state():
    """The root namespace's addresses and routes (nothing of ours may appear)."""
    def ip(*argv):
        return subprocess.run(["ip", *argv], capture_output=True, text=True, check=True).stdout
    return ip("-o", "addr", "show"), ip("route", "show", "table", "all")


def run_pod(node, name, log_dir):
    """A sandbox with busybox httpd answering /cgi-bin/peer; return (sandbox, container, IP)."""
    uid = f"{name}-{os.urandom(4).hex()}"
    config = api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(name=name, namespace="default", uid=uid, attempt=0),
        hostname=name, log_directory=str(log_dir),
        linux=api.LinuxPodSandboxConfig(
            cgroup_parent=provision.pod_cgroup_parent(node.node_name, uid)))
    sandbox_id = node.client.run_pod_sandbox(config)
    container = api.ContainerConfig(
        metadata=api.ContainerMetadata(name="web"),
        image=api.ImageSpec(image=local_images.BUSYBOX_IMAGE),
        command=["sh", "-c", WHO_AM_I], log_path="web.log")
    container_id = node.client.create_container(sandbox_id, container, config)
    node.client.start_container(container_id)
    return sandbox_id, container_id, node.client.pod_sandbox_status(sandbox_id).status.network.ip


def fetch_peer(node, container_id, ip):
    """What the pod at ``ip`` says our address is (wget from inside ``container_id``)."""
    try:
        code, out, err = node.client.exec_sync(
            container_id, ["timeout", "5", "wget", "-q", "-O", "-",
                           f"http://{ip}:{HTTP_PORT}/cgi-bin/peer"], 30)
    except CriError as exc:         # a slow exec on a loaded machine: try again
        print(f"exec in {container_id[:12]} failed: {exc}")
        return None
    if code != 0:
        print(f"wget from {container_id[:12]} to {ip} exited {code}: {err!r}")
        return None
    # busybox httpd listens on IPv6 too and writes IPv4 peers as [::ffff:a.b.c.d].
    return out.decode().strip().strip("[]").removeprefix("::ffff:")


def in_netns(handle, *argv):
    return subprocess.run(["nsenter", f"--net={handle.netns_path}", *argv],
                          capture_output=True, text=True, timeout=30)


@pytest.fixture
def lan(tmp_path, server):
    """Two node namespaces on a LAN, a containerd in each, their Nodes and HostGateways."""
    before = root_network_state()
    net = local_network.plan(str(tmp_path / "home"), list(POD_CIDRS))
    rest = server.rest_client()
    names = {n.name: f"hg-{os.getpid()}-{n.name}" for n in net.nodes}
    gateways = []
    with contextlib.ExitStack() as stack:
        stack.callback(local_network.delete, net)
        local_network.create(net)
        handles = {n.name: stack.enter_context(running_containerd(
            tmp_path / n.name, pod_cidr=POD_CIDRS[n.name], images=("pause", "busybox"),
            netns_name=n.netns)) for n in net.nodes}
        for n in net.nodes:
            rest.create(kinds.NODES, None, {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": names[n.name],
                             "annotations": {routes.NODE_IP_ANNOTATION: n.address}},
                "spec": {"podCIDR": POD_CIDRS[n.name]}})
            stack.callback(_delete_node, rest, names[n.name])
        for n in net.nodes:
            gateway = routes.HostGateway(rest, names[n.name], n.netns_path, own_ip=n.address,
                                         resync=0.5).start()
            gateways.append(gateway)
            stack.callback(gateway.stop)
        yield {"net": net, "nodes": handles, "names": names, "rest": rest,
               "gateways": gateways, "before": before}
    assert local_network.leftovers(net) == []
    assert root_network_state() == before


def _delete_node(rest, name):
    try:
        rest.delete(kinds.NODES, None, name)
    except NotFound:
        pass


def test_pods_on_two_nodes_reach_each_other_without_nat(lan, tmp_path):
    net, nodes = lan["net"], lan["nodes"]
    one, two = nodes["node-1"], nodes["node-2"]
    addr = {n.name: n.address for n in net.nodes}

    def routed():
        return routes.list_routes(one.netns_path) == {POD_CIDRS["node-2"]: addr["node-2"]} \
            and routes.list_routes(two.netns_path) == {POD_CIDRS["node-1"]: addr["node-1"]}
    eventually(routed, 30, "each node to route the other's podCIDR via its LAN address")
    masq = in_netns(one, "nft", "list", "table", "ip", routes.MASQ_TABLE).stdout
    assert "ip saddr 10.244.1.0/24 ip daddr != { 10.244.0.0/16, 224.0.0.0/4 } masquerade" in masq

    pods = []
    try:
        pods.append((one,) + run_pod(one, "pod-a", tmp_path / "logs-a"))
        pods.append((two,) + run_pod(two, "pod-b", tmp_path / "logs-b"))
        (_, _, cid_a, ip_a), (_, _, cid_b, ip_b) = pods
        assert ipaddress.ip_address(ip_a) in ipaddress.ip_network(POD_CIDRS["node-1"])
        assert ipaddress.ip_address(ip_b) in ipaddress.ip_network(POD_CIDRS["node-2"])
        # Each pod sees the other's own address as the source: no NAT between nodes.
        assert eventually(lambda: fetch_peer(one, cid_a, ip_b), 30,
                          "pod-a to reach pod-b across the LAN") == ip_a
        assert eventually(lambda: fetch_peer(two, cid_b, ip_a), 30,
                          "pod-b to reach pod-a across the LAN") == ip_b

        # A route deleted by hand comes back at the next resync.
        in_netns(one, "ip", "route", "del", POD_CIDRS["node-2"])
        eventually(routed, 30, "the deleted route to come back")

        # Node 2 leaves the cluster: node 1 forgets its route, and only ours went.
        lan["rest"].delete(kinds.NODES, None, lan["names"]["node-2"])
        eventually(lambda: routes.list_routes(one.netns_path) == {}, 30,
                   "node-1's route to node-2's pods to go")
        assert POD_CIDRS["node-2"] not in in_netns(one, "ip", "route", "show").stdout
        assert "10.244.1.0/24 dev cni0" in in_netns(one, "ip", "route", "show").stdout
        assert fetch_peer(one, cid_a, ip_b) is None
    finally:
        for handle, sandbox_id, _, _ in pods:
            handle.client.stop_pod_sandbox(sandbox_id)
            handle.client.remove_pod_sandbox(sandbox_id)
