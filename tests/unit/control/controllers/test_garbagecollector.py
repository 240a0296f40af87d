"""Garbage collector: the ownerReference graph and each decision it leads to."""

import pytest

from control.client import NotFound, RateLimitingQueue
from control.controllers.garbagecollector import GarbageCollector, Graph, watched_resources
from tests.unit.control.controllers.fakes import FakeInformer


class Cluster:
    """Live objects by uid for GET; deletes and patches are recorded, not applied."""

    def __init__(self, objects=()):
        self.objects = list(objects)
        self.actions = []
        self.gets = 0

    def get(self, resource, namespace, name):
        self.gets += 1
        for obj in self.objects:
            meta = obj["metadata"]
            if obj["kind"] == resource.kind and meta["name"] == name and \
                    meta.get("namespace") == namespace:
                return obj
        raise NotFound(404, "NotFound", name)

    def delete(self, resource, namespace, name, propagation_policy=None, preconditions=None,
               grace_period_seconds=None):
        self.actions.append(("delete", resource.plural, name, propagation_policy,
                             preconditions))

    def patch(self, resource, namespace, name, patch, patch_type="merge", subresource=None):
        self.actions.append(("patch", resource.plural, name, patch["metadata"]))

    def create(self, resource, namespace, body):
        self.actions.append(("event", body["reason"]))
        return body


def ref(owner, block=True, controller=True):
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"],
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": controller, "blockOwnerDeletion": block}


def obj(kind, name, uid=None, owners=(), deleting=False, finalizers=(), namespace="default"):
    api_version = {"Pod": "v1", "ConfigMap": "v1", "Node": "v1"}.get(kind, "apps/v1")
    meta = {"name": name, "uid": uid or f"uid-{name}", "resourceVersion": "5"}
    if namespace:
        meta["namespace"] = namespace
    if owners:
        meta["ownerReferences"] = list(owners)
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    if finalizers:
        meta["finalizers"] = list(finalizers)
    return {"apiVersion": api_version, "kind": kind, "metadata": meta}


RS = obj("ReplicaSet", "rs")
DEPLOY = obj("Deployment", "d")


class Harness:
    def __init__(self, live, cached=None):
        self.rest = Cluster(live)
        self.informer = FakeInformer()
        self.queue = RateLimitingQueue()
        self.gc = GarbageCollector(self.rest, [self.informer], queue=self.queue)
        for o in live if cached is None else cached:
            self.informer.put(o)
        self.drain()

    def drain(self):
        keys = []
        while len(self.queue):
            key = self.queue.get(0)
            self.queue.done(key)
            keys.append(key)
        return keys

    def run(self, key):
        self.rest.actions.clear()
        self.gc.sync(key)
        return self.rest.actions


# -- the graph ----------------------------------------------------------------------
def test_graph_virtual_owner_then_observed():
    graph = Graph()
    pod = obj("Pod", "p", owners=[ref(RS)])
    assert graph.observe(pod) == ["virtual/uid-rs"]
    assert not graph.get("uid-rs").observed
    assert graph.get("uid-rs").namespace == "default"
    assert graph.observe(RS) == []
    assert graph.get("uid-rs").observed
    assert [d.uid for d in graph.blocking_dependents("uid-rs")] == ["uid-p"]


def test_graph_owner_deleted_makes_dependents_due():
    graph = Graph()
    graph.observe(RS)
    graph.observe(obj("Pod", "p", owners=[ref(RS)]))
    graph.observe(obj("Pod", "q", owners=[ref(RS)]))
    assert graph.forget(RS) == ["delete/uid-p", "delete/uid-q"]
    assert graph.get("uid-rs") is None


def test_graph_foreground_transition_and_released_dependent():
    graph = Graph()
    graph.observe(RS)
    graph.observe(obj("Pod", "p", owners=[ref(RS)]))
    assert graph.observe(obj("ReplicaSet", "rs", deleting=True, finalizers=["foregroundDeletion"])) \
        == ["delete/uid-p", "delete/uid-rs"]
    # The pod lets go of its owner: the owner is due to look again.
    assert graph.observe(obj("Pod", "p")) == ["delete/uid-rs"]
    assert graph.blocking_dependents("uid-rs") == []


def test_graph_orphan_finalizer_and_dependent_gone():
    graph = Graph()
    graph.observe(RS)
    pod = obj("Pod", "p", owners=[ref(RS)])
    graph.observe(pod)
    assert graph.observe(obj("ReplicaSet", "rs", deleting=True, finalizers=["orphan"])) == \
        ["orphan/uid-rs"]
    graph.observe(obj("ReplicaSet", "rs", deleting=True, finalizers=["foregroundDeletion"]))
    assert graph.forget(pod) == ["delete/uid-rs"]


def test_graph_virtual_owner_dropped_with_its_last_dependent():
    graph = Graph()
    pod = obj("Pod", "p", owners=[ref(RS)])
    graph.observe(pod)
    graph.forget(pod)
    assert len(graph) == 0


# -- attemptToDelete ------------------------------------------------------------------
def pod_of(*owners, **kw):
    return obj("Pod", "p", owners=[ref(o) if "metadata" in o else o
                                   for o in owners], **kw)


@pytest.mark.parametrize("live, expected", [
    pytest.param([RS, pod_of(RS)], [], id="owner present: nothing"),
    pytest.param([pod_of(RS)],
                 [("delete", "pods", "p", "Background", {"uid": "uid-p"})],
                 id="owner absent: background delete with uid precondition"),
    pytest.param([obj("ReplicaSet", "rs", uid="other"), pod_of(RS)],
                 [("delete", "pods", "p", "Background", {"uid": "uid-p"})],
                 id="same name, other uid: absent"),
    pytest.param([DEPLOY, pod_of(RS, DEPLOY)],
                 [("patch", "pods", "p", {"ownerReferences": [ref(DEPLOY)], "uid": "uid-p",
                                          "resourceVersion": "5"})],
                 id="one of two owners gone: dangling reference removed"),
    pytest.param([obj("ReplicaSet", "rs", deleting=True, finalizers=["foregroundDeletion"]),
                  pod_of(RS)],
                 [("delete", "pods", "p", "Background", {"uid": "uid-p"})],
                 id="owner waiting for dependents: delete"),
    pytest.param([obj("ReplicaSet", "rs", deleting=True, finalizers=["foregroundDeletion"]),
                  DEPLOY, pod_of(RS, DEPLOY)],
                 [("patch", "pods", "p", {"ownerReferences": [ref(DEPLOY)], "uid": "uid-p",
                                          "resourceVersion": "5"})],
                 id="waiting owner and a solid one: reference removed"),
    pytest.param([obj("ReplicaSet", "rs", deleting=True), pod_of(RS)], [],
                 id="owner being deleted in the background: still solid"),
    pytest.param([pod_of(RS, finalizers=["orphan"])],
                 [("delete", "pods", "p", "Orphan", {"uid": "uid-p"})],
                 id="dependent's own orphan finalizer chooses the policy"),
    pytest.param([pod_of({"apiVersion": "example.com/v1", "kind": "Widget", "name": "w",
                          "uid": "uid-w"})], [], id="unknown owner kind: never deleted"),
    pytest.param([pod_of(RS, deleting=True)], [], id="dependent already being deleted"),
    pytest.param([RS, pod_of({**ref(RS), "apiVersion": "apps/v1beta2"})], [],
                 id="another version of the owner's group names the same owner"),
    pytest.param([pod_of({**ref(RS), "apiVersion": "apps/v1beta2"})],
                 [("delete", "pods", "p", "Background", {"uid": "uid-p"})],
                 id="another version, owner absent"),
])
def test_attempt_to_delete(live, expected):
    h = Harness(live)
    assert h.run("delete/uid-p") == expected


def test_waiting_owner_and_dependent_with_dependents_deletes_in_foreground():
    deploy = obj("Deployment", "d", deleting=True, finalizers=["foregroundDeletion"])
    rs = obj("ReplicaSet", "rs", owners=[ref(DEPLOY)])
    h = Harness([deploy, rs, pod_of(RS)])
    assert h.run("delete/uid-rs") == [("delete", "replicasets", "rs", "Foreground",
                                       {"uid": "uid-rs"})]


def test_foreground_cycle_unblocks_before_deleting():
    deploy = obj("Deployment", "d", deleting=True, finalizers=["foregroundDeletion"])
    rs = obj("ReplicaSet", "rs", owners=[ref(DEPLOY)])
    pod = pod_of(RS, deleting=True, finalizers=["foregroundDeletion"])
    h = Harness([deploy, rs, pod])
    actions = h.run("delete/uid-rs")
    assert actions[0][:3] == ("patch", "replicasets", "rs")
    assert actions[0][3]["ownerReferences"][0]["blockOwnerDeletion"] is False
    assert actions[1] == ("delete", "replicasets", "rs", "Foreground", {"uid": "uid-rs"})


def test_absent_owner_looked_up_once():
    h = Harness([obj("Pod", "p", owners=[ref(RS)]), obj("Pod", "q", owners=[ref(RS)])])
    h.run("delete/uid-p")
    gets = h.rest.gets
    h.run("delete/uid-q")
    assert h.rest.gets == gets + 1      # q itself; the owner is known absent


def test_stale_cache_does_not_delete():
    # The cache shows the pod with no owner present, but the live owner exists.
    h = Harness([RS, pod_of(RS)], cached=[pod_of(RS)])
    assert h.run("delete/uid-p") == []


def test_gone_dependent_is_nothing_to_do():
    h = Harness([], cached=[pod_of(RS)])
    assert h.run("delete/uid-p") == []


# -- foreground owners ------------------------------------------------------------------
FG_RS = obj("ReplicaSet", "rs", deleting=True, finalizers=["foregroundDeletion"])


def test_foreground_owner_waits_for_blocking_dependents():
    h = Harness([FG_RS, pod_of(RS, deleting=True)])
    assert h.run("delete/uid-rs") == []
    assert h.drain() == ["delete/uid-p"]


def test_foreground_owner_with_only_non_blocking_dependents_finishes():
    pod = obj("Pod", "p", owners=[ref(RS, block=False)])
    h = Harness([FG_RS, pod])
    assert h.run("delete/uid-rs") == [("patch", "replicasets", "rs",
                                       {"finalizers": None, "resourceVersion": "5"})]


def test_foreground_owner_finishes_when_last_dependent_goes():
    pod = pod_of(RS, deleting=True)
    h = Harness([FG_RS, pod])
    h.informer.remove(pod)
    assert h.drain() == ["delete/uid-rs"]
    assert h.run("delete/uid-rs") == [("patch", "replicasets", "rs",
                                       {"finalizers": None, "resourceVersion": "5"})]


def test_foreground_keeps_other_finalizers():
    rs = obj("ReplicaSet", "rs", deleting=True, finalizers=["example.com/x", "foregroundDeletion"])
    h = Harness([rs])
    assert h.run("delete/uid-rs")[0][3]["finalizers"] == ["example.com/x"]


# -- orphan -------------------------------------------------------------------------
def test_orphan_releases_dependents_then_the_owner():
    owner = obj("ReplicaSet", "rs", deleting=True, finalizers=["orphan"])
    other = obj("Deployment", "d")
    pods = [obj("Pod", "p", owners=[ref(RS), ref(other)]), obj("Pod", "q", owners=[ref(RS)])]
    h = Harness([owner, other, *pods])
    actions = h.run("orphan/uid-rs")
    patches = sorted(a for a in actions if a[1] == "pods")
    assert patches == [("patch", "pods", "p", {"ownerReferences": [ref(other)], "uid": "uid-p",
                                               "resourceVersion": "5"}),
                       ("patch", "pods", "q", {"ownerReferences": None, "uid": "uid-q",
                                               "resourceVersion": "5"})]
    assert actions[-1] == ("patch", "replicasets", "rs", {"finalizers": None,
                                                          "resourceVersion": "5"})


def test_orphan_without_the_finalizer_is_nothing_to_do():
    h = Harness([obj("ReplicaSet", "rs", deleting=True), pod_of(RS)])
    assert h.run("orphan/uid-rs") == []


# -- virtual owners --------------------------------------------------------------------
def test_virtual_owner_missing_makes_dependents_due():
    h = Harness([pod_of(RS)])
    assert h.run("virtual/uid-rs") == []
    assert h.drain() == ["delete/uid-p"]
    assert h.gc.graph.get("uid-rs") is None


def test_virtual_owner_that_exists_is_kept():
    h = Harness([RS, pod_of(RS)], cached=[pod_of(RS)])
    h.run("virtual/uid-rs")
    assert h.drain() == []
    assert h.gc.graph.get("uid-rs") is not None


def test_cluster_scoped_dependent_with_namespaced_owner_is_kept():
    node = obj("Node", "n1", owners=[ref(RS)], namespace=None)
    h = Harness([node])
    h.gc.sync("virtual/uid-rs")
    assert h.run("delete/uid-n1") == [("event", "OwnerRefInvalidNamespace")]


def test_every_resource_but_events_is_watched():
    plurals = {r.plural for r in watched_resources()}
    assert "events" not in plurals
    assert {"pods", "replicasets", "deployments", "namespaces", "nodes", "configmaps"} <= plurals
