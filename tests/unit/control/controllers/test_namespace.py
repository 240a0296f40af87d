"""Namespace controller: delete the content, report conditions, finalize when empty."""

import datetime

import pytest

from control.client import NotFound, RateLimitingQueue, ServerError
from control.controllers import namespace as nsc
from control.controllers.namespace import NamespaceController
from control.objects import kinds
from tests.unit.control.controllers.fakes import FakeClock, FakeInformer, FakeRest

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
PODS = kinds.lookup("", "v1", "pods")
CONFIGMAPS = kinds.lookup("", "v1", "configmaps")
REPLICASETS = kinds.lookup("apps", "v1", "replicasets")


def namespace(deleting=True, finalizers=("kubernetes",), conditions=None):
    meta = {"name": "x", "uid": "ns-uid", "resourceVersion": "4"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T11:59:00Z"
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": meta,
          "spec": {"finalizers": list(finalizers)},
          "status": {"phase": "Terminating" if deleting else "Active"}}
    if conditions is not None:
        ns["status"]["conditions"] = conditions
    return ns


def item(name, finalizers=(), due=None):
    meta = {"name": name, "namespace": "x"}
    if finalizers:
        meta["finalizers"] = list(finalizers)
    if due is not None:
        meta["deletionTimestamp"] = (NOW + datetime.timedelta(seconds=due)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
    return {"metadata": meta}


class Rest(FakeRest):
    """A namespace and its content: deletecollection removes what has nothing pending."""

    def __init__(self, ns, content=None, fail_delete=()):
        super().__init__([ns])
        self.content = {k: list(v) for k, v in (content or {}).items()}
        self.fail_delete = set(fail_delete)

    def get(self, resource, namespace, name):
        obj = self.objects.get((resource.kind, name))
        if obj is None:
            raise NotFound(404, "NotFound", name)
        return obj

    def path(self, resource, namespace=None, name=None, subresource=None):
        return (resource.plural, namespace)

    def request(self, method, path, **kwargs):
        plural, namespace = path
        self.actions.append(("deletecollection", plural, namespace))
        if plural in self.fail_delete:
            raise ServerError(500, "InternalError", "etcd on fire")
        self.content[plural] = [o for o in self.content.get(plural, ())
                                if o["metadata"].get("finalizers") or
                                o["metadata"].get("deletionTimestamp")]

    def list_all(self, resource, namespace=None, **kwargs):
        return list(self.content.get(resource.plural, ())), "10"

    def update(self, resource, namespace, body, subresource=None):
        self.actions.append(("update", resource.plural, subresource, body))
        return body


def harness(ns, content=None, fail_delete=()):
    rest = Rest(ns, content, fail_delete)
    queue = RateLimitingQueue(clock=FakeClock())
    controller = NamespaceController(rest, FakeInformer([ns]), queue=queue,
                                     wall_clock=lambda: NOW,
                                     resources=[PODS, CONFIGMAPS, REPLICASETS])
    return controller, rest, queue


def conditions_of(rest):
    (update,) = rest.of("update_status")
    return {c["type"]: (c["status"], c["reason"], c["message"])
            for c in update[3]["status"]["conditions"]}


def test_empty_namespace_is_finalized():
    controller, rest, _ = harness(namespace())
    controller.sync("x")
    assert [a[:3] for a in rest.of("deletecollection")] == [
        ("deletecollection", "pods", "x"), ("deletecollection", "configmaps", "x"),
        ("deletecollection", "replicasets", "x")]
    conds = conditions_of(rest)
    assert conds["NamespaceContentRemaining"] == ("False", "ContentRemoved",
                                                  "All content successfully removed")
    assert conds["NamespaceDeletionContentFailure"][:2] == ("False", "ContentDeleted")
    (finalize,) = rest.of("update")
    assert finalize[1:3] == ("namespaces", "finalize")
    assert finalize[3]["spec"]["finalizers"] == []


def test_content_deleted_then_finalized():
    controller, rest, _ = harness(namespace(), {"configmaps": [item("a"), item("b")],
                                                "replicasets": [item("rs")]})
    controller.sync("x")
    assert not any(rest.content.values())
    assert rest.of("update")


def test_graceful_pods_requeue_after_half_their_grace():
    controller, rest, queue = harness(namespace(), {"pods": [item("p", due=30), item("q", due=10)],
                                                    "configmaps": [item("c")]})
    controller.sync("x")
    assert not rest.of("update")         # not finalized while pods remain
    conds = conditions_of(rest)
    assert conds["NamespaceContentRemaining"] == (
        "True", "SomeResourcesRemain", "Some resources are remaining: pods. has 2 resource "
                                       "instances")
    assert conds["NamespaceFinalizersRemaining"][:2] == ("False", "ContentHasNoFinalizers")
    queue.clock.advance(15.9)
    assert queue.get(0) is None
    queue.clock.advance(0.2)        # 30 s / 2 + 1
    assert queue.get(0) == "x"


def test_finalizers_remaining_reported():
    controller, rest, _ = harness(namespace(), {"replicasets": [
        item("rs", finalizers=["foregroundDeletion"], due=0)]})
    controller.sync("x")
    conds = conditions_of(rest)
    assert conds["NamespaceContentRemaining"][2] == \
        "Some resources are remaining: replicasets.apps has 1 resource instances"
    assert conds["NamespaceFinalizersRemaining"] == (
        "True", "SomeFinalizersRemain", "Some content in the namespace has finalizers "
                                        "remaining: foregroundDeletion in 1 resource instances")
    assert not rest.of("update")


def test_failed_deletion_is_reported_and_retried():
    controller, rest, _ = harness(namespace(), {"pods": [item("p")]}, fail_delete={"pods"})
    with pytest.raises(RuntimeError, match="etcd on fire"):
        controller.sync("x")
    conds = conditions_of(rest)
    assert conds["NamespaceDeletionContentFailure"][:2] == ("True", "ContentDeletionFailed")
    assert conds["NamespaceDeletionContentFailure"][2].startswith(
        "Failed to delete all resource types, 1 remaining: pods.: ")
    assert not rest.of("update")


@pytest.mark.parametrize("ns", [
    pytest.param(namespace(deleting=False), id="not being deleted"),
    pytest.param(namespace(finalizers=()), id="already finalized"),
])
def test_nothing_to_do(ns):
    controller, rest, _ = harness(ns, {"pods": [item("p")]})
    controller.sync("x")
    assert rest.actions == []


def test_gone_namespace_is_nothing_to_do():
    controller, rest, _ = harness(namespace())
    rest.objects.clear()
    controller.sync("x")
    assert rest.actions == []


def test_unchanged_conditions_keep_transition_times_and_are_not_rewritten():
    old = nsc.merge_conditions([], nsc.deletion_conditions([], {}, {}), "2026-01-01T11:00:00Z")
    controller, rest, _ = harness(namespace(conditions=old))
    controller.sync("x")
    assert rest.of("update_status") == []
    merged = nsc.merge_conditions(old, nsc.deletion_conditions([], {"pods.": 1}, {}), "T2")
    times = {c["type"]: c["lastTransitionTime"] for c in merged}
    assert times["NamespaceContentRemaining"] == "T2"
    assert times["NamespaceDeletionContentFailure"] == "2026-01-01T11:00:00Z"


def test_handler_enqueues_only_deleting_namespaces():
    informer = FakeInformer()
    queue = RateLimitingQueue()
    NamespaceController(FakeRest(), informer, queue=queue)
    informer.put(namespace(deleting=False))
    assert len(queue) == 0
    informer.put(namespace())
    assert queue.get(0) == "x"


def test_not_found_on_finalize_is_fine():
    controller, rest, _ = harness(namespace())

    def gone(*args, **kwargs):
        raise NotFound(404, "NotFound", "x")
    rest.update = gone
    controller.sync("x")
