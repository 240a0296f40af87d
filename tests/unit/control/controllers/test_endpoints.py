"""Endpoints controller: subsets from (Service, pods), and sync's writes."""

import pytest

from control.client import Forbidden, RateLimitingQueue, ServerError
from control.controllers import endpoints as ep
from control.controllers.endpoints import EndpointsController
from tests.unit.control.controllers.fakes import FakeInformer, FakeRest


class Rest(FakeRest):
    """FakeRest with update (PUT), which the endpoint controller uses."""

    def update(self, resource, namespace, body, subresource=None):
        with self._lock:
            self._check("update", body)
            self.actions.append(("update", resource.plural, namespace, body))
            return body


def service(ports=None, selector=None, name="web", labels=None, publish=False, headless=False,
            annotations=None):
    spec = {"selector": {"app": "web"} if selector is None else selector,
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]
            if ports is None else ports}
    if publish:
        spec["publishNotReadyAddresses"] = True
    if headless:
        spec["clusterIP"] = "None"
    meta = {"name": name, "namespace": "default", "uid": "svc-uid", "resourceVersion": "3",
            "creationTimestamp": "2026-01-01T00:00:00Z"}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}


def pod(name, ip, ready=True, labels=None, node="n1", ports=None, deleting=False, phase="Running",
        ready_at="2026-01-01T00:01:00Z"):
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}", "resourceVersion": "7",
            "labels": {"app": "web"} if labels is None else labels,
            "creationTimestamp": "2026-01-01T00:00:30Z"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:05:00Z"
    status = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready
                                              else "False", "lastTransitionTime": ready_at}]}
    if ip:
        status["podIP"] = ip
    containers = [{"name": "c", "image": "x", "ports": ports or []}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node, "containers": containers}, "status": status}


def addr(name, ip, node="n1"):
    return {"ip": ip, "nodeName": node, "targetRef": {"kind": "Pod", "namespace": "default",
                                                      "name": name, "uid": f"uid-{name}"}}


HTTP = {"name": "http", "port": 8080, "protocol": "TCP"}


@pytest.mark.parametrize("svc, pods, expected", [
    pytest.param(service(), [], [], id="no pods"),
    pytest.param(service(), [pod("b", "10.0.0.2"), pod("a", "10.0.0.1")],
                 [{"addresses": [addr("a", "10.0.0.1"), addr("b", "10.0.0.2")],
                   "ports": [HTTP]}], id="ready pods sorted by IP"),
    pytest.param(service(), [pod("a", "10.0.0.1"), pod("b", "10.0.0.2", ready=False)],
                 [{"addresses": [addr("a", "10.0.0.1")],
                   "notReadyAddresses": [addr("b", "10.0.0.2")], "ports": [HTTP]}],
                 id="not ready"),
    pytest.param(service(publish=True), [pod("b", "10.0.0.2", ready=False)],
                 [{"addresses": [addr("b", "10.0.0.2")], "ports": [HTTP]}],
                 id="publishNotReadyAddresses"),
    pytest.param(service(annotations={ep.TOLERATE_UNREADY_ANNOTATION: "true"}),
                 [pod("b", "10.0.0.2", ready=False)],
                 [{"addresses": [addr("b", "10.0.0.2")], "ports": [HTTP]}],
                 id="tolerate-unready annotation"),
    pytest.param(service(), [pod("a", None), pod("b", "10.0.0.2", deleting=True),
                             pod("c", "10.0.0.3", phase="Succeeded")], [],
                 id="no IP, terminating, finished: skipped"),
    pytest.param(service(publish=True), [pod("b", "10.0.0.2", deleting=True)],
                 [{"addresses": [addr("b", "10.0.0.2")], "ports": [HTTP]}],
                 id="terminating kept when unready tolerated"),
    pytest.param(service(ports=[{"name": "web", "port": 80, "targetPort": "http-port",
                                 "protocol": "TCP"}]),
                 [pod("a", "10.0.0.1", ports=[{"name": "http-port", "containerPort": 9000}]),
                  pod("b", "10.0.0.2", ports=[{"name": "http-port", "containerPort": 9001}]),
                  pod("c", "10.0.0.3", ports=[{"name": "other", "containerPort": 9002}])],
                 [{"addresses": [addr("a", "10.0.0.1")],
                   "ports": [{"name": "web", "port": 9000, "protocol": "TCP"}]},
                  {"addresses": [addr("b", "10.0.0.2")],
                   "ports": [{"name": "web", "port": 9001, "protocol": "TCP"}]}],
                 id="named targetPort: one subset per port set, unresolved pod skipped"),
    pytest.param(service(ports=[{"name": "http", "port": 80, "targetPort": 8080},
                                {"name": "dns", "port": 53, "targetPort": "dns",
                                 "protocol": "UDP"}]),
                 [pod("a", "10.0.0.1", ports=[{"name": "dns", "containerPort": 5353,
                                               "protocol": "UDP"}]),
                  pod("b", "10.0.0.2", ready=False)],
                 [{"addresses": [addr("a", "10.0.0.1")],
                   "ports": [{"name": "dns", "port": 5353, "protocol": "UDP"}, HTTP]},
                  {"notReadyAddresses": [addr("b", "10.0.0.2")], "ports": [HTTP]}],
                 id="multiple ports, partial resolution"),
    pytest.param(service(ports=[], headless=True), [pod("a", "10.0.0.1")],
                 [{"addresses": [addr("a", "10.0.0.1")]}], id="headless without ports"),
    pytest.param(service(ports=[]), [pod("a", "10.0.0.1")], [],
                 id="no ports, not headless: nothing"),
])
def test_compute_subsets(svc, pods, expected):
    listed = [p for p in pods if ep.should_be_listed(p, ep.tolerates_unready(svc))]
    assert ep.compute_subsets(svc, listed)[0] == expected


def test_truncate_keeps_ready_first():
    subsets = [{"addresses": [{"ip": f"10.0.0.{i}"} for i in range(3)],
                "notReadyAddresses": [{"ip": "10.0.1.1"}], "ports": [HTTP]},
               {"notReadyAddresses": [{"ip": "10.0.2.1"}], "ports": []}]
    kept, truncated = ep.truncate(subsets, limit=4)
    assert truncated
    assert kept == [{"addresses": subsets[0]["addresses"],
                     "notReadyAddresses": [{"ip": "10.0.1.1"}], "ports": [HTTP]}]
    assert ep.truncate(subsets, limit=5) == (subsets, False)


class Harness:
    def __init__(self, services=(), pods=(), endpoints=(), fail=None):
        self.rest = Rest(fail=fail)
        self.svc_inf, self.pod_inf = FakeInformer(services), FakeInformer(pods)
        self.ep_inf = FakeInformer(endpoints)
        self.queue = RateLimitingQueue()
        self.controller = EndpointsController(self.rest, self.svc_inf, self.pod_inf, self.ep_inf,
                                              queue=self.queue)

    def sync(self, key="default/web"):
        self.rest.actions.clear()
        self.controller.sync(key)
        return self.rest.actions


def test_creates_endpoints_with_labels_and_trigger_time():
    h = Harness([service(labels={"team": "a"})], [pod("a", "10.0.0.1")])
    (action,) = h.sync()
    assert action[:3] == ("create", "endpoints", "default")
    body = action[3]
    assert body["metadata"]["name"] == "web"
    assert body["metadata"]["labels"] == {"team": "a", ep.LABEL_MANAGED_BY: ep.CONTROLLER_NAME}
    # First sync: the Service's creation is the earliest new change.
    assert body["metadata"]["annotations"][ep.TRIGGER_TIME_ANNOTATION] == "2026-01-01T00:00:00Z"
    assert body["subsets"] == [{"addresses": [addr("a", "10.0.0.1")], "ports": [HTTP]}]


def test_trigger_time_tracker_reports_the_earliest_new_change():
    tracker, svc = ep.TriggerTimeTracker(), service()

    def compute(pods, remember=True):
        when, state = tracker.compute("default/web", svc, pods)
        if remember:
            tracker.remember("default/web", state)
        return when

    a, b = pod("a", "10.0.0.1"), pod("b", "10.0.0.2", ready_at="2026-01-01T00:02:00Z")
    assert compute([a], remember=False) == "2026-01-01T00:00:00Z"    # a failed write
    assert compute([a]) == "2026-01-01T00:00:00Z"                    # ...is retried alike
    assert compute([a]) is None                                      # nothing new
    assert compute([a, b]) == "2026-01-01T00:02:00Z"
    a2 = pod("a", "10.0.0.1", ready=False, ready_at="2026-01-01T00:03:00Z")
    b2 = pod("b", "10.0.0.2", ready=False, ready_at="2026-01-01T00:04:00Z")
    assert compute([a2, b2]) == "2026-01-01T00:03:00Z"
    a3 = pod("a", "10.0.0.1", ready=True, ready_at="2026-01-01T00:03:00Z")
    assert compute([a3, b2]) == "2026-01-01T00:03:00Z"       # flipped back in the same second
    tracker.forget("default/web")
    assert compute([a2]) == "2026-01-01T00:00:00Z"


def test_updated_endpoints_note_when_the_change_happened():
    svc = service()
    h = Harness([svc], [pod("a", "10.0.0.1")], [stored(svc, [pod("a", "10.0.0.1")])])
    h.sync()
    h.pod_inf.put(pod("a", "10.0.0.1", ready=False, ready_at="2026-01-01T00:07:00Z"))
    (action,) = h.sync()
    assert action[3]["metadata"]["annotations"][ep.TRIGGER_TIME_ANNOTATION] == \
        "2026-01-01T00:07:00Z"


def stored(svc, pods):
    body, _ = ep.desired_endpoints(svc, pods)
    body["metadata"].update(uid="ep-uid", resourceVersion="9")
    return body


def test_no_write_when_nothing_changed():
    svc, pods = service(), [pod("a", "10.0.0.1")]
    h = Harness([svc], pods, [stored(svc, pods)])
    assert h.sync() == []


def test_trigger_time_alone_does_not_write():
    svc = service()
    old = stored(svc, [pod("a", "10.0.0.1", ready_at="2026-01-01T00:00:40Z")])
    h = Harness([svc], [pod("a", "10.0.0.1")], [old])
    assert h.sync() == []


def test_updates_when_a_pod_becomes_unready():
    svc = service()
    h = Harness([svc], [pod("a", "10.0.0.1", ready=False)], [stored(svc, [pod("a", "10.0.0.1")])])
    (action,) = h.sync()
    assert action[0] == "update"
    assert action[3]["metadata"]["resourceVersion"] == "9"
    assert action[3]["subsets"] == [{"notReadyAddresses": [addr("a", "10.0.0.1")],
                                     "ports": [HTTP]}]


def test_pods_of_other_selectors_ignored():
    svc = service()
    h = Harness([svc], [pod("x", "10.0.0.9", labels={"app": "db"})])
    (action,) = h.sync()
    assert action[3]["subsets"] == []


def test_service_without_selector_leaves_endpoints_alone():
    manual = {"apiVersion": "v1", "kind": "Endpoints",
              "metadata": {"name": "web", "namespace": "default", "resourceVersion": "2"},
              "subsets": [{"addresses": [{"ip": "1.2.3.4"}], "ports": [{"port": 5}]}]}
    h = Harness([service(selector={})], [pod("a", "10.0.0.1")], [manual])
    assert h.sync() == []


def test_deleted_service_loses_its_endpoints():
    svc, pods = service(), [pod("a", "10.0.0.1")]
    h = Harness([], pods, [stored(svc, pods)])
    assert h.sync() == [("delete", "endpoints", "default", "web")]
    assert Harness([], pods, []).sync() == []       # nothing cached: nothing to delete


def test_terminating_namespace_is_not_retried():
    def refuse(body):
        return Forbidden(403, "Forbidden", "unable to create new content in namespace default "
                                           "because it is being terminated")
    h = Harness([service()], [pod("a", "10.0.0.1")], fail={"create": refuse})
    h.sync()        # no exception: nothing to retry


def test_failed_write_raises_and_records_event():
    def broken(body):
        if body.get("kind") == "Endpoints":
            return ServerError(500, "InternalError", "boom")
        return None
    h = Harness([service()], [pod("a", "10.0.0.1")], fail={"create": broken})
    with pytest.raises(Exception, match="boom"):
        h.sync()
    events = [a[3] for a in h.rest.of("create") if a[3]["kind"] == "Event"]
    assert [e["reason"] for e in events] == ["FailedToCreateEndpoint"]
    assert events[0]["involvedObject"]["kind"] == "Endpoints"
    assert events[0]["message"] == ("Failed to create endpoint for service default/web: (500) "
                                    "InternalError: boom")
    h.rest.fail.clear()
    (retried,) = h.sync()       # the retry still notes when the change happened
    assert retried[3]["metadata"]["annotations"][ep.TRIGGER_TIME_ANNOTATION] == \
        "2026-01-01T00:00:00Z"


def test_pod_events_enqueue_matching_services():
    h = Harness([service(), service(name="db", selector={"app": "db"})])
    h.pod_inf.put(pod("a", "10.0.0.1"))
    assert h.queue.get(0) == "default/web"
    h.queue.done("default/web")
    moved = pod("a", "10.0.0.1", labels={"app": "db"})
    moved["metadata"]["resourceVersion"] = "8"
    h.pod_inf.put(moved)
    assert sorted([h.queue.get(0), h.queue.get(0)]) == ["default/db", "default/web"]
