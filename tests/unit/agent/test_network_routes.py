"""Host-gw routes to the other nodes' pods: the plan, the Node annotation, the masquerade."""

import json
import subprocess

import pytest

from agent.network import routes
from agent.network.cni import PodNetwork
from agent.network.routes import NODE_IP_ANNOTATION, masq_script, node_ip_of, plan
from agent.node import NodeAgent
from control.client import AlreadyExists, NotFound


def node(name, cidr=None, ip=None, internal_ip=None):
    obj = {"metadata": {"name": name}, "spec": {}, "status": {}}
    if cidr:
        obj["spec"]["podCIDR"] = cidr
    if ip:
        obj["metadata"]["annotations"] = {NODE_IP_ANNOTATION: ip}
    if internal_ip:
        obj["status"]["addresses"] = [{"type": "Hostname", "address": name},
                                      {"type": "InternalIP", "address": internal_ip}]
    return obj


NODES = [node("node-1", "10.244.1.0/24", "172.31.250.1"),
         node("node-2", "10.244.2.0/24", "172.31.250.2"),
         node("node-3", "10.244.3.0/24", "172.31.250.3")]


def test_one_route_per_other_node_through_its_annotated_address():
    replace, delete = plan({}, NODES, "node-1")
    assert replace == [("10.244.2.0/24", "172.31.250.2"), ("10.244.3.0/24", "172.31.250.3")]
    assert delete == []


def test_nothing_to_do_when_the_routes_are_in_place():
    existing = {"10.244.2.0/24": "172.31.250.2", "10.244.3.0/24": "172.31.250.3"}
    assert plan(existing, NODES, "node-1") == ([], [])


def test_a_deleted_node_loses_its_route_and_a_moved_one_is_replaced():
    existing = {"10.244.2.0/24": "172.31.250.2", "10.244.3.0/24": "172.31.250.9"}
    replace, delete = plan(existing, [NODES[0], NODES[2]], "node-1")
    assert replace == [("10.244.3.0/24", "172.31.250.3")]
    assert delete == ["10.244.2.0/24"]


def test_a_changed_pod_cidr_replaces_the_old_route():
    existing = {"10.244.2.0/24": "172.31.250.2"}
    moved = [NODES[0], node("node-2", "10.244.7.0/24", "172.31.250.2")]
    assert plan(existing, moved, "node-1") == ([("10.244.7.0/24", "172.31.250.2")],
                                               ["10.244.2.0/24"])


def test_nodes_without_a_range_or_an_address_wait():
    nodes = [NODES[0], node("node-2", None, "172.31.250.2"), node("node-3", "10.244.3.0/24")]
    assert plan({}, nodes, "node-1") == ([], [])


def test_the_internal_ip_serves_when_there_is_no_annotation():
    assert node_ip_of(node("n", internal_ip="192.168.1.4")) == "192.168.1.4"
    assert node_ip_of(node("n", ip="172.31.250.4", internal_ip="127.0.1.4")) == "172.31.250.4"
    assert node_ip_of(node("n")) is None


def test_no_route_for_our_own_range_our_own_address_or_garbage():
    nodes = [NODES[0],
             node("node-2", "10.244.1.0/24", "172.31.250.2"),     # claims our range
             node("node-3", "10.244.3.0/24", "172.31.250.1"),     # claims our address
             node("node-4", "not-a-cidr", "172.31.250.4"),
             node("node-5", "10.244.5.0/24", "fe80::1"),
             node("node-6", "10.244.6.0/24", "172.31.250.6")]
    replace, _ = plan({}, nodes, "node-1", own_ip="172.31.250.1")
    assert replace == [("10.244.6.0/24", "172.31.250.6")]


def test_two_nodes_claiming_one_range_get_one_route():
    nodes = [NODES[0], node("node-b", "10.244.2.0/24", "172.31.250.3"),
             node("node-a", "10.244.2.0/24", "172.31.250.2")]
    assert plan({}, nodes, "node-1")[0] == [("10.244.2.0/24", "172.31.250.2")]


def test_masquerade_spares_the_cluster_cidr_in_one_transaction():
    script = masq_script("10.244.1.0/24", "10.244.0.0/16")
    # Declared, flushed by delete and rebuilt: one nft -f replaces the whole table.
    assert script.startswith("table ip steer-masq\ndelete table ip steer-masq\n")
    assert "type nat hook postrouting priority srcnat" in script
    assert "ip saddr 10.244.1.0/24 ip daddr != { 10.244.0.0/16, 224.0.0.0/4 } masquerade" \
        in script
    with pytest.raises(ValueError):
        masq_script("10.244.1.1/24", "10.244.0.0/16")


def test_masquerade_script_passes_nft_check():
    nft = routes.find_binary("nft") if subprocess.run(
        ["sh", "-c", "command -v nft || test -x /usr/sbin/nft"],
        capture_output=True).returncode == 0 else None
    if nft is None:
        pytest.skip("nft is not installed")
    done = subprocess.run([nft, "-c", "-f", "-"], capture_output=True,
                          input=masq_script("10.244.1.0/24", "10.244.0.0/16").encode())
    if done.returncode != 0 and b"Operation not permitted" in done.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN")
    assert done.returncode == 0, done.stderr


def test_sync_applies_the_plan_and_writes_masquerade_when_missing(monkeypatch):
    calls = []
    existing = {"10.244.9.0/24": "172.31.250.9"}
    monkeypatch.setattr(routes, "list_routes", lambda ns: dict(existing))
    monkeypatch.setattr(routes, "replace_route", lambda ns, c, g: calls.append(("rep", ns, c, g)))
    monkeypatch.setattr(routes, "delete_route", lambda ns, c: calls.append(("del", ns, c)))
    monkeypatch.setattr(routes, "run_script", lambda s, ns: calls.append(("nft", ns)))
    monkeypatch.setattr(routes, "masq_table_present", lambda ns: ("nft", ns) in calls)

    class Store:
        def list(self):
            return NODES[:2]

    class Informer:
        store = Store()

    gateway = routes.HostGateway(None, "node-1", "/run/netns/x", informer=Informer())
    gateway.sync()
    gateway.sync()
    assert calls.count(("del", "/run/netns/x", "10.244.9.0/24")) == 2
    assert ("rep", "/run/netns/x", "10.244.2.0/24", "172.31.250.2") in calls
    assert calls.count(("nft", "/run/netns/x")) == 1
    calls.remove(("nft", "/run/netns/x"))      # the table was flushed by hand: back it comes
    gateway.sync()
    assert calls.count(("nft", "/run/netns/x")) == 1


# -- the annotation on the agent's Node --------------------------------------------------
def merge(target, patch):
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value


class FakeRest:
    def __init__(self):
        self.objects, self.patches = {}, []

    def create(self, resource, namespace, body):
        key = (resource.plural, body["metadata"]["name"])
        if key in self.objects:
            raise AlreadyExists("exists")
        self.objects[key] = {**body, "metadata": {**body["metadata"], "uid": "u1"}}
        return self.objects[key]

    def get(self, resource, namespace, name):
        if (resource.plural, name) not in self.objects:
            raise NotFound("nope")
        return self.objects[(resource.plural, name)]

    def patch(self, resource, namespace, name, patch, subresource=None):
        if (resource.plural, name) not in self.objects:
            raise NotFound("nope")
        self.patches.append((resource.plural, patch))
        merge(self.objects[(resource.plural, name)], patch)


def agent(rest, ip="172.31.250.1"):
    return NodeAgent(rest, "node-1", "127.0.1.1", 10250, annotations={NODE_IP_ANNOTATION: ip})


def annotations(rest):
    return rest.objects[("nodes", "node-1")]["metadata"].get("annotations")


def test_the_node_is_registered_with_its_pod_network_address():
    rest = FakeRest()
    agent(rest).register()
    assert annotations(rest) == {NODE_IP_ANNOTATION: "172.31.250.1"}


def test_an_existing_node_gets_the_new_address_and_keeps_other_annotations():
    rest = FakeRest()
    rest.objects[("nodes", "node-1")] = {"metadata": {"name": "node-1", "uid": "u0", "annotations": {
        NODE_IP_ANNOTATION: "172.31.250.7", "other": "x"}}, "spec": {}}
    agent(rest).register()
    assert annotations(rest) == {NODE_IP_ANNOTATION: "172.31.250.1", "other": "x"}


def test_a_heartbeat_puts_a_removed_or_changed_annotation_back():
    rest = FakeRest()
    a = agent(rest)
    a.register()
    del rest.objects[("nodes", "node-1")]["metadata"]["annotations"]
    rest.patches.clear()
    a.heartbeat_once()
    assert annotations(rest) == {NODE_IP_ANNOTATION: "172.31.250.1"}
    rest.patches.clear()
    a.heartbeat_once()      # in place: no annotation patch
    assert not [p for _, p in rest.patches if "annotations" in p.get("metadata", {})]


def test_the_bridge_masquerades_only_where_no_host_gateway_does(tmp_path):
    for ip_masq in (False, True):
        conf_dir = tmp_path / str(ip_masq) / "cni"
        PodNetwork(None, "n1", str(conf_dir), ip_masq=ip_masq).observe(
            node("n1", "10.244.1.0/24"))
        (path,) = conf_dir.iterdir()
        assert json.loads(path.read_text())["plugins"][0]["ipMasq"] is ip_masq


def test_the_agent_runs_a_host_gateway_only_in_a_node_namespace():
    from agent.main import build_host_gateway, parse_args
    args = parse_args(["--runtime", "cri"])
    assert args.cluster_cidr == "10.244.0.0/16" and args.pod_network_ip is None
    assert build_host_gateway(args, None, "10.0.0.1") is None      # the machine's own: never
    args = parse_args(["--runtime", "cri", "--node-netns", "/run/netns/x",
                       "--pod-network-ip", "172.31.250.1", "--cluster-cidr", "10.9.0.0/16"])
    gateway = build_host_gateway(args, None, args.pod_network_ip)
    assert (gateway.netns_path, gateway.own_ip, gateway.cluster_cidr) == \
        ("/run/netns/x", "172.31.250.1", "10.9.0.0/16")
