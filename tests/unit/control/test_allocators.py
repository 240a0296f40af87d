"""Service clusterIP and nodePort allocation through the API (in-memory store)."""

import json

import falcon.testing
import pytest

from control.api.allocators import ServiceAllocator
from control.api.app import create_app
from control.api.pools import parse_port_range
from control.api.service import ObjectService
from control.registry import Registry
from tests.support.fake_store import FakeStore

SVCS = "/api/v1/namespaces/default/services"
IPS, PORTS = b"/registry/ipallocations/", b"/registry/nodeportallocations/"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def env():
    store, clock = FakeStore(), Clock()
    registry = Registry(store)
    # 10.0.0.0/29: .0 (network), .1 (the kubernetes service) and .7 (broadcast) are
    # never handed out, which leaves .2-.6; three node ports.
    allocator = ServiceAllocator(registry, "10.0.0.0/29", "30000-30002", clock=clock, grace=60)
    service = ObjectService(registry, allocator=allocator)
    client = falcon.testing.TestClient(create_app(store, service=service))
    return client, store, clock, allocator


def svc(name, **spec):
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, **spec}}


def claims(store, prefix):
    return sorted(kv["key"][len(prefix):].decode()
                  for kv in store.get(prefix, range_end=prefix[:-1] + b"0")["kvs"])


def test_parse_port_range():
    assert parse_port_range("30000-32767") == (30000, 32767)
    assert parse_port_range("8080") == (8080, 8080)
    for bad in ("a-b", "0-10", "20-10", "1-70000"):
        with pytest.raises(ValueError):
            parse_port_range(bad)


def test_cluster_ip_is_allocated_and_claimed(env):
    client, store, _, _ = env
    created = client.simulate_post(SVCS, json=svc("web"))
    assert created.status_code == 201, created.json
    spec = created.json["spec"]
    assert spec["clusterIP"] in {f"10.0.0.{n}" for n in range(2, 7)}
    assert spec["clusterIPs"] == [spec["clusterIP"]]
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    assert "nodePort" not in spec["ports"][0]
    assert claims(store, IPS) == [spec["clusterIP"]]
    owner = json.loads(store.get(IPS + spec["clusterIP"].encode())["kvs"][0]["value"])
    assert owner["name"] == "web" and owner["uid"] == created.json["metadata"]["uid"]


@pytest.mark.parametrize("requested,status,message", [
    ("10.0.0.5", 201, None),
    ("10.1.0.5", 422, 'spec.clusterIPs: Invalid value: []string{"10.1.0.5"}: failed to allocate '
                      "IP 10.1.0.5: the provided IP (10.1.0.5) is not in the valid range. The "
                      "range of valid IPs is 10.0.0.0/29"),
    ("10.0.0.1", 422, "is not in the valid range"),
    ("banana", 422, "must be a valid IP address"),
])
def test_requested_cluster_ip(env, requested, status, message):
    client, store, _, _ = env
    created = client.simulate_post(SVCS, json=svc("web", clusterIP=requested))
    assert created.status_code == status, created.json
    if message:
        assert message in created.json["message"]
        assert created.json["reason"] == "Invalid"
        assert claims(store, IPS) == []
    else:
        assert created.json["spec"]["clusterIPs"] == [requested]


def test_requested_cluster_ip_already_allocated(env):
    client, _, _, _ = env
    assert client.simulate_post(SVCS, json=svc("a", clusterIP="10.0.0.4")).status_code == 201
    taken = client.simulate_post(SVCS, json=svc("b", clusterIP="10.0.0.4"))
    assert taken.status_code == 422
    assert taken.json["message"] == (
        'Service "b" is invalid: spec.clusterIPs: Invalid value: []string{"10.0.0.4"}: failed '
        "to allocate IP 10.0.0.4: provided IP is already allocated")


def test_headless_and_external_name_take_nothing(env):
    client, store, _, _ = env
    headless = client.simulate_post(SVCS, json=svc("h", clusterIP="None")).json["spec"]
    assert headless["clusterIPs"] == ["None"] and headless["clusterIP"] == "None"
    external = client.simulate_post(SVCS, json=svc("e", type="ExternalName",
                                                   externalName="example.com")).json["spec"]
    assert "clusterIP" not in external and "clusterIPs" not in external
    assert claims(store, IPS) == [] and claims(store, PORTS) == []


def test_node_ports_allocated_requested_and_refused(env):
    client, store, _, _ = env
    two = svc("np", type="NodePort", ports=[{"name": "a", "port": 80},
                                            {"name": "b", "port": 81, "nodePort": 30001}])
    created = client.simulate_post(SVCS, json=two)
    assert created.status_code == 201, created.json
    ports = [p["nodePort"] for p in created.json["spec"]["ports"]]
    assert ports[1] == 30001 and ports[0] in (30000, 30002)
    assert claims(store, PORTS) == sorted(str(p) for p in ports)
    taken = client.simulate_post(SVCS, json=svc("x", type="NodePort",
                                                ports=[{"port": 80, "nodePort": 30001}]))
    assert taken.status_code == 422
    assert "spec.ports[0].nodePort: Invalid value: 30001: provided port is already allocated" \
        in taken.json["message"]
    outside = client.simulate_post(SVCS, json=svc("y", type="NodePort",
                                                  ports=[{"port": 80, "nodePort": 80}]))
    assert outside.status_code == 422
    assert ("spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid "
            "range. The range of valid ports is 30000-30002") in outside.json["message"]
    # Neither refusal left a clusterIP claimed.
    assert len(claims(store, IPS)) == 1


def test_ranges_full(env):
    client, store, _, _ = env
    for n in range(5):
        assert client.simulate_post(SVCS, json=svc(f"s{n}")).status_code == 201
    full = client.simulate_post(SVCS, json=svc("s5"))
    assert full.status_code == 500
    assert full.json["message"] == ("Internal error occurred: failed to allocate a serviceIP: "
                                    "range is full")
    client.simulate_delete(f"{SVCS}/s0")
    ports = [{"name": str(n), "port": 80 + n} for n in range(4)]
    full = client.simulate_post(SVCS, json=svc("np", type="NodePort", ports=ports))
    assert full.status_code == 500 and "failed to allocate a nodePort: range is full" \
        in full.json["message"]
    assert claims(store, PORTS) == [] and len(claims(store, IPS)) == 4


def test_delete_releases(env):
    client, store, _, _ = env
    client.simulate_post(SVCS, json=svc("a", type="NodePort", clusterIP="10.0.0.3",
                                        ports=[{"port": 80, "nodePort": 30002}]))
    assert client.simulate_delete(f"{SVCS}/a").status_code == 200
    assert claims(store, IPS) == [] and claims(store, PORTS) == []
    again = client.simulate_post(SVCS, json=svc("b", type="NodePort", clusterIP="10.0.0.3",
                                                ports=[{"port": 80, "nodePort": 30002}]))
    assert again.status_code == 201


def test_failed_create_releases_its_claims(env):
    client, store, _, _ = env
    client.simulate_post(SVCS, json=svc("a", clusterIP="10.0.0.3"))
    duplicate = client.simulate_post(SVCS, json=svc("a", clusterIP="10.0.0.4"))
    assert duplicate.status_code == 409
    assert claims(store, IPS) == ["10.0.0.3"]


def test_update_rules(env):
    client, store, _, _ = env
    created = client.simulate_post(SVCS, json=svc("a", ports=[{"name": "http", "port": 80}])).json
    ip = created["spec"]["clusterIP"]
    # A PUT without the clusterIP keeps it (kubectl replace sends none).
    body = svc("a", ports=[{"name": "http", "port": 80}])
    updated = client.simulate_put(f"{SVCS}/a", json=body)
    assert updated.status_code == 200 and updated.json["spec"]["clusterIP"] == ip
    other = "10.0.0.6" if ip != "10.0.0.6" else "10.0.0.5"
    changed = client.simulate_put(f"{SVCS}/a", json=svc("a", clusterIP=other))
    assert changed.status_code == 422
    # Kubernetes 1.32 (validateUpgradeDowngradeClusterIPs) words it on clusterIPs.
    assert f'spec.clusterIPs[0]: Invalid value: []string{{"{other}"}}: may not change once set' \
        in changed.json["message"]
    # ClusterIP -> NodePort allocates; a later PUT without nodePort keeps it (by port name).
    to_np = client.simulate_put(f"{SVCS}/a", json=svc("a", type="NodePort",
                                                      ports=[{"name": "http", "port": 80}]))
    node_port = to_np.json["spec"]["ports"][0]["nodePort"]
    assert claims(store, PORTS) == [str(node_port)]
    again = client.simulate_put(f"{SVCS}/a", json=svc("a", type="NodePort",
                                                      ports=[{"name": "http", "port": 8080}]))
    assert again.json["spec"]["ports"][0]["nodePort"] == node_port
    # Choosing another nodePort frees the old one.
    new_port = 30000 if node_port != 30000 else 30001
    moved = client.simulate_put(f"{SVCS}/a", json=svc(
        "a", type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": new_port}]))
    assert moved.status_code == 200, moved.json
    assert claims(store, PORTS) == [str(new_port)]
    # NodePort -> ClusterIP releases; the clusterIP stays.
    back = client.simulate_put(f"{SVCS}/a", json=svc("a", ports=[{"name": "http", "port": 80}]))
    assert "nodePort" not in back.json["spec"]["ports"][0]
    assert claims(store, PORTS) == [] and claims(store, IPS) == [ip]
    # -> ExternalName releases the clusterIP too.
    ext = client.simulate_put(f"{SVCS}/a", json=svc("a", type="ExternalName",
                                                    externalName="example.com"))
    assert ext.status_code == 200 and "clusterIP" not in ext.json["spec"]
    assert claims(store, IPS) == []


def test_merge_patch_to_node_port(env):
    client, store, _, _ = env
    client.simulate_post(SVCS, json=svc("a"))
    patched = client.simulate_patch(f"{SVCS}/a", body=json.dumps({"spec": {"type": "NodePort"}}),
                                    content_type="application/merge-patch+json")
    assert patched.status_code == 200, patched.json
    assert claims(store, PORTS) == [str(patched.json["spec"]["ports"][0]["nodePort"])]


def test_repair_releases_leaks_and_claims_unclaimed(env):
    client, store, clock, allocator = env
    kept = client.simulate_post(SVCS, json=svc("kept")).json["spec"]["clusterIP"]
    old_leak = json.dumps({"namespace": "default", "name": "gone", "uid": "u1",
                           "claimedAt": clock.now - 120}).encode()
    young_leak = json.dumps({"namespace": "default", "name": "busy", "uid": "u2",
                             "claimedAt": clock.now - 5}).encode()
    free = [f"10.0.0.{n}" for n in range(2, 7) if f"10.0.0.{n}" != kept]
    store.put(IPS + free[0].encode(), old_leak)
    store.put(IPS + free[1].encode(), young_leak)
    store.put(PORTS + b"30000", old_leak)
    # A Service whose claim vanished (say, written before allocation existed).
    store.txn(success=[{"op": "delete", "key": IPS + kept.encode()}])
    assert allocator.repair() == 2
    assert claims(store, IPS) == sorted([kept, free[1]])
    assert claims(store, PORTS) == []
    clock.now += 60
    assert allocator.repair() == 1
    assert claims(store, IPS) == [kept]


def test_stale_claim_of_a_requested_ip_is_taken_over(env):
    client, store, clock, _ = env
    leak = json.dumps({"namespace": "default", "name": "gone", "uid": "u1",
                       "claimedAt": clock.now - 5}).encode()
    store.put(IPS + b"10.0.0.2", leak)
    assert client.simulate_post(SVCS, json=svc("a", clusterIP="10.0.0.2")).status_code == 422
    clock.now += 100
    assert client.simulate_post(SVCS, json=svc("a", clusterIP="10.0.0.2")).status_code == 201


def test_full_range_repairs_before_giving_up(env):
    client, store, clock, _ = env
    leak = json.dumps({"namespace": "default", "name": "gone", "uid": "u1",
                       "claimedAt": clock.now - 500}).encode()
    for n in range(2, 7):
        store.put(IPS + f"10.0.0.{n}".encode(), leak)
    created = client.simulate_post(SVCS, json=svc("a"))
    assert created.status_code == 201, created.json


def test_load_balancer_node_ports(env):
    client, store, _, _ = env
    lb = client.simulate_post(SVCS, json=svc("lb", type="LoadBalancer")).json["spec"]
    taken = lb["ports"][0]["nodePort"]
    assert taken and lb["clusterIP"]
    free = 30002 if taken != 30002 else 30000
    opted_out = client.simulate_post(SVCS, json=svc(
        "quiet", type="LoadBalancer", allocateLoadBalancerNodePorts=False,
        ports=[{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": free}]))
    assert opted_out.status_code == 201, opted_out.json
    assert [p.get("nodePort") for p in opted_out.json["spec"]["ports"]] == [None, free]
    assert claims(store, PORTS) == sorted([str(taken), str(free)])
    client.simulate_delete(f"{SVCS}/quiet")
    assert claims(store, PORTS) == [str(lb["ports"][0]["nodePort"])]
