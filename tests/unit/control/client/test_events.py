"""EventRecorder: one Event per (object, reason, message), repeats counted, never raises."""

from control.client import NotFound, ServerError
from control.client.events import MAX_REMEMBERED, EventRecorder
from tests.unit.control.controllers.fakes import FakeRest

POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1", "resourceVersion": "7"}}
NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "uid": "u2"}}


def recorder(rest):
    return EventRecorder(rest, "deployment-controller", "cm-1", clock=lambda: "T")


def test_first_event_is_created_with_kubernetes_fields():
    rest = FakeRest()
    recorder(rest).event(POD, "Warning", "FailedScheduling", "0/3 nodes are available")
    (verb, plural, namespace, body), = rest.actions
    assert (verb, plural, namespace) == ("create", "events", "shop")
    assert body["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "name": "web-1",
                                      "namespace": "shop", "uid": "u1", "resourceVersion": "7"}
    assert body["metadata"]["name"].startswith("web-1.")
    assert (body["type"], body["reason"], body["count"]) == ("Warning", "FailedScheduling", 1)
    assert body["source"] == {"component": "deployment-controller"}
    assert body["reportingInstance"] == "cm-1"
    assert body["firstTimestamp"] == body["lastTimestamp"] == "T"


def test_repeats_patch_the_count_and_other_messages_are_new_events():
    rest = FakeRest()
    events = recorder(rest)
    for _ in range(3):
        events.event(POD, "Normal", "Pulled", "same")
    events.event(POD, "Normal", "Pulled", "different")
    assert rest.verbs() == ["create", "patch", "patch", "create"]
    assert [a[4]["count"] for a in rest.of("patch")] == [2, 3]


def test_cluster_scoped_objects_report_into_default():
    rest = FakeRest()
    recorder(rest).event(NODE, "Normal", "NodeNotReady", "x")
    assert rest.actions[0][2] == "default"
    assert "namespace" not in rest.actions[0][3]["involvedObject"]


def test_an_expired_event_is_created_again_and_failures_are_swallowed():
    gone = {"patch": lambda *a: NotFound(404, "NotFound", "expired")}
    rest = FakeRest(fail=gone)
    events = recorder(rest)
    events.event(POD, "Normal", "Killing", "m")
    events.event(POD, "Normal", "Killing", "m")
    assert rest.verbs() == ["create", "create"]
    broken = FakeRest(fail={"create": lambda *a: ServerError(500, "InternalError", "down")})
    recorder(broken).event(POD, "Normal", "Killing", "m")     # does not raise
    assert broken.actions == []


def test_memory_of_repeats_is_bounded():
    rest = FakeRest()
    events = recorder(rest)
    for i in range(MAX_REMEMBERED + 10):
        events.event(POD, "Normal", "R", str(i))
    assert len(events._seen) == MAX_REMEMBERED
