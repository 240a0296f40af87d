"""DELETE as kube-apiserver does it: grace periods, propagation, finalizers, namespaces."""

import datetime
import json

import falcon.testing
import pytest

from control.api.app import create_app
from control.api.service import ObjectService
from control.registry import Registry
from tests.support.fake_store import FakeStore

NOW = datetime.datetime(2026, 11, 22, 10, 0, 0, tzinfo=datetime.timezone.utc)
PODS = "/api/v1/namespaces/default/pods"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


@pytest.fixture
def client():
    service = ObjectService(Registry(FakeStore()), clock=lambda: NOW)
    return falcon.testing.TestClient(create_app(None, service=service))


def pod(name="web", node=None, grace=None, finalizers=None):
    spec = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    metadata = {"name": name, **({"finalizers": finalizers} if finalizers else {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def delete(client, url, body=None, **params):
    kwargs = {"params": params} if params else {}
    if body is not None:
        kwargs["body"] = json.dumps(body)
        kwargs["headers"] = {"Content-Type": "application/json"}
    return client.simulate_delete(url, **kwargs)


def test_bound_pod_waits_for_its_grace_period(client):
    client.simulate_post(PODS, json=pod(node="n1", grace=20))
    marked = delete(client, f"{PODS}/web")
    meta = marked.json["metadata"]
    assert meta["deletionTimestamp"] == "2026-11-22T10:00:20Z"
    assert meta["deletionGracePeriodSeconds"] == 20
    assert client.simulate_get(f"{PODS}/web").status_code == 200
    # A longer or equal grace period changes nothing; a shorter one moves the deadline.
    again = delete(client, f"{PODS}/web", {"gracePeriodSeconds": 60}).json["metadata"]
    assert again["deletionTimestamp"] == "2026-11-22T10:00:20Z"
    shorter = delete(client, f"{PODS}/web", gracePeriodSeconds="5").json["metadata"]
    assert shorter["deletionTimestamp"] == "2026-11-22T10:00:05Z"
    assert shorter["deletionGracePeriodSeconds"] == 5
    # The node agent removes it once its containers stopped.
    assert delete(client, f"{PODS}/web", {"gracePeriodSeconds": 0}).status_code == 200
    assert client.simulate_get(f"{PODS}/web").status_code == 404


def test_default_grace_is_thirty_seconds(client):
    client.simulate_post(PODS, json=pod(node="n1"))
    meta = delete(client, f"{PODS}/web").json["metadata"]
    assert meta["deletionGracePeriodSeconds"] == 30


@pytest.mark.parametrize("body", [None, {"gracePeriodSeconds": 0}])
def test_unbound_pods_and_grace_zero_go_at_once(client, body):
    client.simulate_post(PODS, json=pod("unbound"))
    client.simulate_post(PODS, json=pod("bound", node="n1"))
    assert delete(client, f"{PODS}/unbound", body).status_code == 200
    assert client.simulate_get(f"{PODS}/unbound").status_code == 404
    if body is not None:
        delete(client, f"{PODS}/bound", body)
        assert client.simulate_get(f"{PODS}/bound").status_code == 404


@pytest.mark.parametrize("policy, finalizer", [("Foreground", "foregroundDeletion"),
                                               ("Orphan", "orphan")])
def test_propagation_policy_adds_the_collectors_finalizer(client, policy, finalizer):
    client.simulate_post(CONFIGMAPS, json={"metadata": {"name": "cm"}})
    marked = delete(client, f"{CONFIGMAPS}/cm", {"kind": "DeleteOptions", "apiVersion": "v1",
                                                 "propagationPolicy": policy})
    meta = marked.json["metadata"]
    assert meta["finalizers"] == [finalizer]
    assert meta["deletionTimestamp"] == "2026-11-22T10:00:00Z"
    assert meta["deletionGracePeriodSeconds"] == 0
    # The garbage collector removing its finalizer by an update deletes the object.
    current = client.simulate_get(f"{CONFIGMAPS}/cm").json
    current["metadata"]["finalizers"] = []
    assert client.simulate_put(f"{CONFIGMAPS}/cm", json=current).status_code == 200
    assert client.simulate_get(f"{CONFIGMAPS}/cm").status_code == 404


def test_background_deletes_now_and_orphan_dependents_maps_to_a_policy(client):
    client.simulate_post(CONFIGMAPS, json={"metadata": {"name": "a"}})
    client.simulate_post(CONFIGMAPS, json={"metadata": {"name": "b"}})
    assert delete(client, f"{CONFIGMAPS}/a", propagationPolicy="Background").status_code == 200
    assert client.simulate_get(f"{CONFIGMAPS}/a").status_code == 404
    orphaned = delete(client, f"{CONFIGMAPS}/b", {"orphanDependents": True})
    assert orphaned.json["metadata"]["finalizers"] == ["orphan"]


def test_bad_delete_options_are_refused(client):
    client.simulate_post(CONFIGMAPS, json={"metadata": {"name": "cm"}})
    bad = delete(client, f"{CONFIGMAPS}/cm", propagationPolicy="Sideways")
    assert bad.status_code == 422 and "Unsupported value" in bad.json["message"]
    both = delete(client, f"{CONFIGMAPS}/cm", {"propagationPolicy": "Orphan",
                                               "orphanDependents": True})
    assert both.status_code == 422
    stale = delete(client, f"{CONFIGMAPS}/cm", {"preconditions": {"resourceVersion": "1"}})
    assert stale.status_code == 409 and "Precondition failed" in stale.json["message"]
    wrong_uid = delete(client, f"{CONFIGMAPS}/cm", {"preconditions": {"uid": "nope"}})
    assert wrong_uid.status_code == 409
    assert client.simulate_get(f"{CONFIGMAPS}/cm").status_code == 200


def test_dry_run_deletes_nothing(client):
    client.simulate_post(CONFIGMAPS, json={"metadata": {"name": "cm"}})
    assert delete(client, f"{CONFIGMAPS}/cm", dryRun="All").status_code == 200
    assert client.simulate_get(f"{CONFIGMAPS}/cm").status_code == 200


def test_removing_the_last_finalizer_of_a_graceful_pod_leaves_it_to_the_agent(client):
    client.simulate_post(PODS, json=pod(node="n1", finalizers=["example.com/x"]))
    delete(client, f"{PODS}/web")
    current = client.simulate_get(f"{PODS}/web").json
    current["metadata"]["finalizers"] = []
    assert client.simulate_put(f"{PODS}/web", json=current).status_code == 200
    assert client.simulate_get(f"{PODS}/web").status_code == 200
    delete(client, f"{PODS}/web", gracePeriodSeconds="0")
    assert client.simulate_get(f"{PODS}/web").status_code == 404


def test_deletecollection_applies_the_options(client):
    for name in ("a", "b"):
        client.simulate_post(PODS, json=pod(name, node="n1"))
    client.simulate_post(PODS, json=pod("c"))
    listed = delete(client, PODS, {"gracePeriodSeconds": 7})
    assert listed.status_code == 200
    left = {p["metadata"]["name"]: p["metadata"]["deletionGracePeriodSeconds"]
            for p in client.simulate_get(PODS).json["items"]}
    assert left == {"a": 7, "b": 7}


def test_namespace_finalize_subresource(client):
    client.simulate_post("/api/v1/namespaces", json={"metadata": {"name": "team"}})
    body = client.simulate_get("/api/v1/namespaces/team").json
    # A plain update cannot change spec.finalizers; only finalize can.
    body["spec"]["finalizers"] = []
    kept = client.simulate_put("/api/v1/namespaces/team", json=body).json
    assert kept["spec"]["finalizers"] == ["kubernetes"]
    assert client.simulate_delete("/api/v1/namespaces/team").status_code == 202
    terminating = client.simulate_get("/api/v1/namespaces/team").json
    assert terminating["status"]["phase"] == "Terminating"
    assert client.simulate_get("/api/v1/namespaces/team/finalize").status_code == 405
    terminating["spec"]["finalizers"] = []
    finalized = client.simulate_put("/api/v1/namespaces/team/finalize", json=terminating)
    assert finalized.status_code == 200 and finalized.json["spec"]["finalizers"] == []
    assert client.simulate_get("/api/v1/namespaces/team").status_code == 404


def test_namespace_status_is_served_on_its_own_path(client):
    ns = client.simulate_get("/api/v1/namespaces/default/status")
    assert ns.status_code == 200 and ns.json["metadata"]["name"] == "default"
    finalize_live = client.simulate_get("/api/v1/namespaces/default").json
    finalize_live["spec"]["finalizers"] = ["kubernetes", "example.com/x"]
    active = client.simulate_put("/api/v1/namespaces/default/finalize", json=finalize_live)
    assert active.json["spec"]["finalizers"] == ["kubernetes", "example.com/x"]
    assert client.simulate_get("/api/v1/namespaces/default").status_code == 200
