"""EndpointSlice controller: the pure reconciler (plan) and the controller's sync and writes."""

import copy
import itertools

import pytest

from control.client import NotFound, ServerError, object_key
from control.controllers import endpointslicing as slicing
from control.controllers.endpointslice import EndpointSliceController, RetryLater
from tests.unit.control.controllers.fakes import FakeInformer

HTTP = {"name": "http", "port": 8080, "protocol": "TCP"}
ZONES = {"n1": "zone-a", "n2": ""}


def zone_of(node):
    return ZONES.get(node)


def service(ports=None, selector=None, name="web", publish=False, labels=None, uid="svc-uid",
            clusterIP="10.96.0.10"):
    spec = {"selector": {"app": "web"} if selector is None else selector,
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]
            if ports is None else ports, "clusterIP": clusterIP}
    if publish:
        spec["publishNotReadyAddresses"] = True
    if not spec["selector"]:
        del spec["selector"]
    meta = {"name": name, "namespace": "default", "uid": uid, "resourceVersion": "3",
            "creationTimestamp": "2026-01-01T00:00:00Z", "labels": labels or {"team": "a"}}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}


def pod(name, ip, ready=True, node="n1", ports=None, deleting=False, phase="Running",
        labels=None):
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}", "resourceVersion": "7",
            "labels": {"app": "web"} if labels is None else labels}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:05:00Z"
    status = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready
                                              else "False",
                                              "lastTransitionTime": "2026-01-01T00:01:00Z"}]}
    if ip:
        status["podIP"], status["podIPs"] = ip, [{"ip": ip}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x",
                                                       "ports": ports or []}]},
            "status": status}


def pods(count, start=0, **kwargs):
    return [pod(f"p{i:04d}", f"10.244.{i // 200}.{i % 200 + 1}", **kwargs)
            for i in range(start, start + count)]


def endpoint(name, ip, ready=True, serving=True, terminating=False, node="n1", zone="zone-a"):
    found = {"addresses": [ip], "conditions": {"ready": ready, "serving": serving,
                                               "terminating": terminating},
             "nodeName": node, "targetRef": {"kind": "Pod", "namespace": "default",
                                             "name": name, "uid": f"uid-{name}"}}
    if zone:
        found["zone"] = zone
    return found


_names = itertools.count()


def stored(endpoint_slice):
    """A slice as the server would have stored it: named, with uid and resourceVersion."""
    obj = copy.deepcopy(endpoint_slice)
    meta = obj["metadata"]
    meta.setdefault("name", meta.pop("generateName", "web-") + f"s{next(_names):04d}")
    meta.update(uid=f"uid-{meta['name']}", resourceVersion="5", generation=1)
    return obj


def apply(plan, existing):
    """The slices after the plan's writes, by name."""
    by_name = {s["metadata"]["name"]: s for s in existing}
    for gone in plan.delete:
        del by_name[gone["metadata"]["name"]]
    for changed in plan.update:
        by_name[changed["metadata"]["name"]] = changed
    for new in plan.create:
        created = stored(new)
        by_name[created["metadata"]["name"]] = created
    return list(by_name.values())


def ips(endpoint_slice):
    return sorted(a for e in endpoint_slice["endpoints"] for a in e["addresses"])


# -- plan: table-driven ----------------------------------------------------------------

def test_new_service_gets_one_slice_owned_and_labelled():
    plan = slicing.plan(service(), [pod("a", "10.244.0.2"), pod("b", "10.244.0.3", node="n2")],
                        zone_of, [])
    assert (len(plan.create), plan.update, plan.delete) == (1, [], [])
    created = plan.create[0]
    assert created["addressType"] == "IPv4" and created["ports"] == [HTTP]
    assert created["endpoints"] == [endpoint("a", "10.244.0.2"),
                                    endpoint("b", "10.244.0.3", node="n2", zone=None)]
    meta = created["metadata"]
    assert meta["generateName"] == "web-" and "name" not in meta
    assert meta["labels"] == {"team": "a", "kubernetes.io/service-name": "web",
                              "endpointslice.kubernetes.io/managed-by":
                                  "endpointslice-controller.k8s.io"}
    assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "Service", "name": "web",
                                        "uid": "svc-uid", "controller": True,
                                        "blockOwnerDeletion": True}]


@pytest.mark.parametrize("the_pod, expected", [
    (pod("a", "10.244.0.2", ready=False),
     endpoint("a", "10.244.0.2", ready=False, serving=False)),
    (pod("a", "10.244.0.2", deleting=True),
     endpoint("a", "10.244.0.2", ready=False, serving=True, terminating=True)),
    (pod("a", "10.244.0.2", deleting=True, ready=False),
     endpoint("a", "10.244.0.2", ready=False, serving=False, terminating=True)),
], ids=["not ready", "terminating ready", "terminating not ready"])
def test_conditions_follow_the_pod(the_pod, expected):
    assert slicing.plan(service(), [the_pod], zone_of, []).create[0]["endpoints"] == [expected]


def test_publish_not_ready_addresses_makes_every_endpoint_ready():
    plan = slicing.plan(service(publish=True), [pod("a", "10.244.0.2", ready=False,
                                                    deleting=True)], zone_of, [])
    assert plan.create[0]["endpoints"][0]["conditions"] == \
        {"ready": True, "serving": False, "terminating": True}


def test_pods_without_ip_or_finished_are_left_out_and_a_placeholder_stays():
    plan = slicing.plan(service(), [pod("a", None), pod("b", "10.244.0.3", phase="Succeeded")],
                        zone_of, [])
    assert len(plan.create) == 1
    placeholder = plan.create[0]
    assert placeholder["endpoints"] == [] and placeholder["ports"] == []
    again = slicing.plan(service(), [], zone_of, [stored(placeholder)])
    assert again == slicing.Plan([], [], [], [])


def test_scale_up_past_100_makes_two_slices_then_fills_without_churn():
    first = slicing.plan(service(), pods(150), zone_of, [])
    assert sorted(len(s["endpoints"]) for s in first.create) == [50, 100]
    slices = apply(first, [])
    more = slicing.plan(service(), pods(170), zone_of, slices)
    # The 20 new endpoints go into the half-empty slice; the full one is not touched.
    assert (more.create, more.delete, len(more.update)) == ([], [], 1)
    assert len(more.update[0]["endpoints"]) == 70
    slices = apply(more, slices)
    assert sorted(len(s["endpoints"]) for s in slices) == [70, 100]
    assert slicing.plan(service(), pods(170), zone_of, slices) == slicing.Plan([], [], [], [])


def test_scale_down_removes_endpoints_in_place_and_deletes_emptied_slices():
    slices = apply(slicing.plan(service(), pods(150), zone_of, []), [])
    full = next(s for s in slices if len(s["endpoints"]) == 100)
    kept_pods = [p for p in pods(150) if p["status"]["podIP"] in ips(full)][:10]
    plan = slicing.plan(service(), kept_pods, zone_of, slices)
    assert [s["metadata"]["name"] for s in plan.update] == [full["metadata"]["name"]]
    assert len(plan.update[0]["endpoints"]) == 10 and len(plan.delete) == 1
    assert plan.create == []


def test_one_pod_changing_touches_only_its_slice():
    slices = apply(slicing.plan(service(), pods(150), zone_of, []), [])
    changed = pods(150)
    changed[149] = pod("p0149", changed[149]["status"]["podIP"], ready=False)
    plan = slicing.plan(service(), changed, zone_of, slices)
    assert (plan.create, plan.delete, len(plan.update)) == ([], [], 1)
    target = plan.update[0]
    assert changed[149]["status"]["podIP"] in ips(target)
    assert target["metadata"]["resourceVersion"] == "5"    # an update of the cached slice


def test_named_target_port_resolving_differently_splits_slices():
    svc = service(ports=[{"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"}])
    the_pods = [pod("a", "10.244.0.2", ports=[{"name": "http", "containerPort": 9000}]),
                pod("b", "10.244.0.3", ports=[{"name": "http", "containerPort": 9001}]),
                pod("c", "10.244.0.4", ports=[{"name": "http", "containerPort": 9000}])]
    plan = slicing.plan(svc, the_pods, zone_of, [])
    by_port = {s["ports"][0]["port"]: ips(s) for s in plan.create}
    assert by_port == {9000: ["10.244.0.2", "10.244.0.4"], 9001: ["10.244.0.3"]}
    assert all(s["ports"][0]["name"] == "web" for s in plan.create)


def test_new_port_set_recycles_the_old_slice_instead_of_delete_and_create():
    slices = apply(slicing.plan(service(), pods(3), zone_of, []), [])
    moved = service(ports=[{"name": "http", "port": 80, "targetPort": 9090}])
    plan = slicing.plan(moved, pods(3), zone_of, slices)
    assert (plan.create, plan.delete) == ([], [])
    assert plan.update[0]["metadata"]["name"] == slices[0]["metadata"]["name"]
    assert plan.update[0]["ports"] == [{"name": "http", "port": 9090, "protocol": "TCP"}]


def test_service_label_change_relabels_slices_and_unowned_slices_go():
    slices = apply(slicing.plan(service(), pods(2), zone_of, []), [])
    plan = slicing.plan(service(labels={"team": "b"}), pods(2), zone_of, slices)
    assert plan.update[0]["metadata"]["labels"]["team"] == "b"
    assert plan.update[0]["endpoints"] == slices[0]["endpoints"]
    recreated = service(uid="new-uid")
    plan = slicing.plan(recreated, pods(2), zone_of, slices)
    # The old Service's slice cannot be recycled (another owner): a new one replaces it.
    assert len(plan.create) == 1 and plan.delete == slices and plan.update == []


def test_unknown_node_leaves_the_pod_out_and_reports_it():
    plan = slicing.plan(service(), [pod("a", "10.244.0.2", node="ghost"),
                                    pod("b", "10.244.0.3")], zone_of, [])
    assert ips(plan.create[0]) == ["10.244.0.3"] and plan.missing_nodes == ["a"]


def test_addresses_the_api_refuses_are_left_out():
    plan = slicing.plan(service(), [pod("a", "127.0.1.2"), pod("b", "10.244.0.3")], zone_of, [])
    assert ips(plan.create[0]) == ["10.244.0.3"]


def test_ipv6_service_and_headless_label():
    svc = service(clusterIP="None")
    svc["spec"]["ipFamilies"] = ["IPv6"]
    dual = pod("a", "10.244.0.2")
    dual["status"]["podIPs"].append({"ip": "fd00::2"})
    plan = slicing.plan(svc, [dual], zone_of, [])
    created = plan.create[0]
    assert created["addressType"] == "IPv6" and ips(created) == ["fd00::2"]
    assert created["metadata"]["labels"]["service.kubernetes.io/headless"] == ""


def test_max_endpoints_per_slice_is_honoured():
    plan = slicing.plan(service(), pods(25), zone_of, [], max_per_slice=10)
    assert sorted(len(s["endpoints"]) for s in plan.create) == [5, 10, 10]


# -- the controller ------------------------------------------------------------------

class Server:
    """A fake API for slices: keeps them, names them, bumps generation on content changes."""

    def __init__(self):
        self.objects, self.actions = {}, []
        self._uids = itertools.count()

    def create(self, resource, namespace, body):
        obj = copy.deepcopy(body)
        meta = obj["metadata"]
        meta["name"] = meta.pop("generateName", "") + f"x{next(self._uids):04d}"
        meta.update(namespace=namespace, uid=f"uid-{meta['name']}", generation=1,
                    resourceVersion="1")
        self.objects[meta["name"]] = obj
        self.actions.append(("create", meta["name"]))
        return obj

    def update(self, resource, namespace, body):
        old = self.objects[body["metadata"]["name"]]
        obj = copy.deepcopy(body)
        meta = obj["metadata"]
        meta["uid"] = old["metadata"]["uid"]
        content = ("endpoints", "ports", "addressType")
        bump = any(obj.get(k) != old.get(k) for k in content)
        meta["generation"] = old["metadata"]["generation"] + bump
        self.objects[meta["name"]] = obj
        self.actions.append(("update", meta["name"]))
        return obj

    def delete(self, resource, namespace, name, **kwargs):
        if name not in self.objects:
            raise NotFound(404, "NotFound", name)
        del self.objects[name]
        self.actions.append(("delete", name))


def nodes():
    return [{"metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "zone-a"}}},
            {"metadata": {"name": "n2"}}]


def make(services, the_pods, slices=(), max_per_slice=100):
    server = Server()
    informers = [FakeInformer(services), FakeInformer(the_pods), FakeInformer(slices),
                 FakeInformer(nodes())]
    controller = EndpointSliceController(server, *informers, max_endpoints_per_slice=max_per_slice)
    return controller, server, informers


def catch_up(server, slice_informer):
    """Let the slice cache see what the server holds, as the informer would."""
    for obj in list(slice_informer.store.list()):
        if obj["metadata"]["name"] not in server.objects:
            slice_informer.remove(obj)
    for obj in server.objects.values():
        slice_informer.put(copy.deepcopy(obj))


def test_sync_writes_then_is_idempotent_once_the_cache_caught_up():
    controller, server, informers = make([service()], pods(120))
    controller.sync("default/web")
    assert [a[0] for a in server.actions] == ["create", "create"]
    assert all("endpoints.kubernetes.io/last-change-trigger-time" in s["metadata"]["annotations"]
               for s in server.objects.values())
    with pytest.raises(RetryLater, match="out of date"):
        controller.sync("default/web")      # the cache has not seen the creates yet
    catch_up(server, informers[2])
    server.actions.clear()
    controller.sync("default/web")
    assert server.actions == []


def test_a_hand_edit_of_a_managed_slice_is_noticed_and_undone():
    controller, server, informers = make([service()], pods(2))
    controller.sync("default/web")
    catch_up(server, informers[2])
    while controller.queue.get(timeout=0):     # drain: the controller's own writes queue nothing
        pass
    name = next(iter(server.objects))
    edited = copy.deepcopy(server.objects[name])
    edited["endpoints"] = []
    edited["metadata"]["generation"] = 2
    server.objects[name] = edited
    informers[2].put(edited)
    assert controller.queue.get(timeout=1) == "default/web"
    controller.sync("default/web")
    assert len(server.objects[name]["endpoints"]) == 2


def test_service_without_selector_or_deleted_loses_only_managed_slices():
    manual = stored({"apiVersion": slicing.API_VERSION, "kind": "EndpointSlice",
                     "metadata": {"name": "web-manual", "namespace": "default",
                                  "labels": {"kubernetes.io/service-name": "web"}},
                     "addressType": "IPv4", "endpoints": [], "ports": []})
    controller, server, informers = make([service()], pods(3), [manual])
    server.objects["web-manual"] = manual
    controller.sync("default/web")
    catch_up(server, informers[2])
    assert len(server.objects) == 2
    informers[0].put(service(selector={}))
    controller.sync("default/web")
    assert list(server.objects) == ["web-manual"]
    catch_up(server, informers[2])
    informers[0].put(service())
    controller.sync("default/web")
    catch_up(server, informers[2])
    informers[0].remove(service())
    controller.sync("default/web")
    assert list(server.objects) == ["web-manual"]


def test_a_failed_delete_does_not_leave_the_cache_looking_stale():
    controller, server, informers = make([service()], pods(2))
    controller.sync("default/web")
    catch_up(server, informers[2])
    informers[0].put(service(selector={}))

    def refuse(*args, **kwargs):
        raise ServerError(500, "InternalError", "store down")

    server.delete = refuse
    with pytest.raises(ServerError):
        controller.sync("default/web")
    informers[0].put(service())
    controller.sync("default/web")          # not RetryLater: the slice is expected as cached


def test_pod_events_queue_the_services_selecting_them():
    other = service(name="other", selector={"app": "other"}, uid="u2")
    controller, _, informers = make([service(), other], [])
    informers[1].put(pod("a", "10.244.0.2"))
    assert controller.queue.get(timeout=1) == "default/web"
    moved = pod("a", "10.244.0.2", labels={"app": "other"})
    moved["metadata"]["resourceVersion"] = "8"
    controller.queue.done("default/web")
    informers[1].put(moved)
    keys = {controller.queue.get(timeout=1), controller.queue.get(timeout=1)}
    assert keys == {"default/web", "default/other"}


def test_node_zone_change_requeues_services():
    controller, _, informers = make([service()], [])
    old = nodes()[1]
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"topology.kubernetes.io/zone": "zone-b"}
    informers[3].put(new)
    assert controller.queue.get(timeout=1) == object_key(service())


def test_max_endpoints_per_slice_is_checked():
    with pytest.raises(ValueError, match="between 1 and 1000"):
        make([], [], max_per_slice=1001)
