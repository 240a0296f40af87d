"""pods/eviction against an in-memory store: budgets spent once, 429s, hostile bodies.

Also the PodDisruptionBudget's own API: validation (one 422, every cause), a
create that cannot bring its own status, the ``kubectl get pdb`` columns and the
discovery entry kubectl drain looks for.
"""

import datetime
import json

import falcon.testing
import pytest

from control import errors
from control.api import eviction
from control.api.app import create_app
from control.api.protobuf import envelope
from control.objects import kinds
from tests.support.fake_store import FakeStore

PODS = "/api/v1/namespaces/default/pods"
PDBS = "/apis/policy/v1/namespaces/default/poddisruptionbudgets"
NOW = datetime.datetime(2026, 12, 5, 6, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture
def client():
    app = create_app(FakeStore())
    return falcon.testing.TestClient(app)


def make_pod(client, name, labels=None, phase="Running", ready=True):
    created = client.simulate_post(PODS, json={
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    assert created.status_code == 201, created.json
    pod = created.json
    pod["status"] = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}
    updated = client.simulate_put(f"{PODS}/{name}/status", json=pod)
    assert updated.status_code == 200, updated.json
    return updated.json


def make_pdb(client, name="budget", status=None, **spec):
    spec.setdefault("selector", {"matchLabels": {"app": "web"}})
    created = client.simulate_post(PDBS, json={
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
        "spec": spec})
    assert created.status_code == 201, created.json
    if status is None:
        return created.json
    pdb = created.json
    pdb["status"] = {"observedGeneration": 1, "currentHealthy": 3, "desiredHealthy": 3,
                     "expectedPods": 4, **status}
    updated = client.simulate_put(f"{PDBS}/{name}/status", json=pdb)
    assert updated.status_code == 200, updated.json
    return updated.json


def evict(client, name, body=None, **kwargs):
    body = body if body is not None else {"apiVersion": "policy/v1", "kind": "Eviction",
                                          "metadata": {"name": name}}
    return client.simulate_post(f"{PODS}/{name}/eviction", json=body, **kwargs)


def exists(client, name):
    return client.simulate_get(f"{PODS}/{name}").status_code == 200


def pdb_status(client, name="budget"):
    return client.simulate_get(f"{PDBS}/{name}").json["status"]


def test_a_budget_with_no_disruption_left_answers_429_with_kubernetes_message(client):
    make_pod(client, "w1")
    make_pdb(client, maxUnavailable=1, status={"disruptionsAllowed": 0})
    refused = evict(client, "w1")
    assert refused.status_code == 429
    assert refused.json["reason"] == "TooManyRequests"
    assert refused.json["message"] == ("Cannot evict pod as it would violate the pod's "
                                       "disruption budget.")
    assert refused.json["details"]["causes"] == [{
        "reason": "DisruptionBudget",
        "message": "The disruption budget budget needs 3 healthy pods and has 3 currently"}]
    assert exists(client, "w1")


def test_one_allowed_disruption_is_spent_once(client):
    for name in ("w1", "w2"):
        make_pod(client, name)
    make_pdb(client, maxUnavailable=1, status={"disruptionsAllowed": 1, "currentHealthy": 4})
    first = evict(client, "w1")
    assert first.status_code == 201 and first.json["status"] == "Success"
    assert not exists(client, "w1")
    status = pdb_status(client)
    assert status["disruptionsAllowed"] == 0 and "w1" in status["disruptedPods"]
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("DisruptionAllowed", "False", "InsufficientPods")]
    second = evict(client, "w2")
    assert second.status_code == 429 and exists(client, "w2")


def test_a_stale_budget_copy_loses_the_race_and_gets_429():
    """Two evictions read the budget (1 allowed); the second's status write conflicts."""
    app_store = FakeStore()
    client = falcon.testing.TestClient(create_app(app_store))
    for name in ("w1", "w2"):
        make_pod(client, name)
    stale = make_pdb(client, maxUnavailable=1, status={"disruptionsAllowed": 1})
    assert evict(client, "w1").status_code == 201
    service = _service_of(client)
    evictions = eviction.Evictions(service, clock=lambda: NOW, sleep=lambda _: None)
    pod = service.get(kinds.PODS, "default", "w2")
    with pytest.raises(errors.TooManyRequests):
        evictions._spend(pod, stale, dry_run=False)
    assert pdb_status(client)["disruptionsAllowed"] == 0
    assert list(pdb_status(client)["disruptedPods"]) == ["w1"]


def _service_of(client):
    """The object service behind the test app (the subresource handler holds it)."""
    for route in client.app._router._roots:
        stack = [route]
        while stack:
            node = stack.pop()
            resource = getattr(node, "resource", None)
            if resource is not None and hasattr(resource, "evictions"):
                return resource.service
            stack.extend(node.children or ())
    raise AssertionError("no subresource handler found")


def test_a_new_budget_is_still_being_processed(client):
    make_pod(client, "w1")
    created = make_pdb(client, minAvailable=1)
    assert created["status"]["disruptionsAllowed"] == 0
    refused = evict(client, "w1")
    assert refused.status_code == 429
    assert refused.headers.get("Retry-After") == "10"
    assert refused.json["details"]["causes"][0]["message"] == (
        "The disruption budget budget is still being processed by the server.")


def test_a_create_cannot_bring_its_own_status(client):
    created = client.simulate_post(PDBS, json={
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "b"},
        "spec": {"maxUnavailable": 1, "selector": {}}, "status": {"disruptionsAllowed": 9,
                                                                  "observedGeneration": 5}})
    assert created.json["status"]["disruptionsAllowed"] == 0
    assert "observedGeneration" not in created.json["status"]


def test_pending_finished_and_unbudgeted_pods_are_deleted_without_a_check(client):
    make_pdb(client, maxUnavailable=1, status={"disruptionsAllowed": 0})
    make_pod(client, "pending", phase="Pending", ready=False)
    make_pod(client, "done", phase="Succeeded", ready=False)
    make_pod(client, "other", labels={"app": "other"})
    for name in ("pending", "done", "other"):
        assert evict(client, name).status_code == 201, name
        assert not exists(client, name)
    assert pdb_status(client)["disruptionsAllowed"] == 0


def test_an_unready_pod_is_free_when_the_budget_is_healthy_or_always_allow(client):
    make_pod(client, "sick", ready=False)
    make_pdb(client, maxUnavailable=1, status={"disruptionsAllowed": 0, "currentHealthy": 3})
    assert evict(client, "sick").status_code == 201
    assert not exists(client, "sick")

    make_pod(client, "sick2", labels={"app": "db"}, ready=False)
    make_pdb(client, "db", maxUnavailable=1, selector={"matchLabels": {"app": "db"}},
             unhealthyPodEvictionPolicy="AlwaysAllow",
             status={"disruptionsAllowed": 0, "currentHealthy": 0})
    assert evict(client, "sick2").status_code == 201

    make_pod(client, "sick3", labels={"app": "q"}, ready=False)
    make_pdb(client, "q", maxUnavailable=1, selector={"matchLabels": {"app": "q"}},
             status={"disruptionsAllowed": 0, "currentHealthy": 2})
    assert evict(client, "sick3").status_code == 429     # IfHealthyBudget, budget unhealthy


def test_more_than_one_budget_is_refused(client):
    make_pod(client, "w1")
    make_pdb(client, "a", maxUnavailable=1, status={"disruptionsAllowed": 1})
    make_pdb(client, "b", minAvailable=1, status={"disruptionsAllowed": 1})
    refused = evict(client, "w1")
    assert refused.status_code == 500
    assert refused.json["message"] == eviction.MULTIPLE_BUDGETS
    assert exists(client, "w1")


def test_dry_run_checks_and_writes_nothing(client):
    make_pod(client, "w1")
    make_pdb(client, maxUnavailable=1, status={"disruptionsAllowed": 1})
    assert evict(client, "w1", params={"dryRun": "All"}).status_code == 201
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "w1"},
            "deleteOptions": {"dryRun": ["All"]}}
    assert evict(client, "w1", body).status_code == 201
    assert exists(client, "w1")
    assert pdb_status(client)["disruptionsAllowed"] == 1
    assert "disruptedPods" not in pdb_status(client)


def test_a_missing_pod_is_404_and_a_protobuf_eviction_works(client):
    assert evict(client, "ghost").status_code == 404
    make_pod(client, "w1")
    raw = envelope.encode({"apiVersion": "policy/v1", "kind": "Eviction",
                           "metadata": {"name": "w1", "namespace": "default"}})
    answer = client.simulate_post(f"{PODS}/w1/eviction", body=raw, headers={
        "Content-Type": "application/vnd.kubernetes.protobuf"})
    assert answer.status_code == 201, answer.text
    assert not exists(client, "w1")


def test_the_evicted_pod_is_marked_disruption_target(client):
    pod = make_pod(client, "w1")
    pod["spec"]["nodeName"] = "n1"      # bound: the delete waits for the node's agent
    store = _service_of(client).registry
    store.update(kinds.PODS, pod)
    assert evict(client, "w1").status_code == 201
    marked = client.simulate_get(f"{PODS}/w1").json
    assert marked["metadata"].get("deletionTimestamp")
    assert {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"} \
        .items() <= next(c for c in marked["status"]["conditions"]
                         if c["type"] == "DisruptionTarget").items()


HOSTILE = [
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "w1"}}, 400, "Eviction"),
    ({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "other"}}, 400,
     "name in URL does not match"),
    ({"apiVersion": "policy/v1", "kind": "Eviction"}, 400, "metadata.name"),
    ({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "w1"},
      "deleteOptions": "now"}, 400, "deleteOptions must be an object"),
    ({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "w1"},
      "deleteOptions": {"gracePeriodSeconds": "soon"}}, 400, "gracePeriodSeconds"),
    ({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "w1"},
      "deleteOptions": {"propagationPolicy": "Sideways"}}, 422, "Sideways"),
    ({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "w1"},
      "deleteOptions": {"dryRun": ["Maybe"]}}, 422, "dryRun"),
    ({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "w1"},
      "deleteOptions": {"preconditions": {"uid": "not-this-one"}}}, 409, "UID"),
    ({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "w1"},
      "deleteOptions": {"dryRun": 5}}, 400, "dryRun must be an array"),
    ({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": 7}}, 400,
     "name in URL does not match"),
    ({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": "w1"}, 400, "metadata.name"),
    ([1, 2, 3], 400, "must be an object"),
]


@pytest.mark.parametrize("body,code,text", HOSTILE)
def test_hostile_eviction_bodies_are_refused_and_the_server_still_serves(client, body, code,
                                                                         text):
    make_pod(client, "w1")
    answer = evict(client, "w1", body)
    assert answer.status_code == code, answer.json
    assert text in answer.json["message"]
    assert exists(client, "w1")


def test_a_huge_eviction_body_is_413_and_dry_run_mismatch_400(client):
    make_pod(client, "w1")
    huge = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {
        "name": "w1", "annotations": {"x": "y" * (4 * 1024 * 1024)}}}
    answer = client.simulate_post(f"{PODS}/w1/eviction", body=json.dumps(huge),
                                  headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "w1"},
            "deleteOptions": {"dryRun": ["All"]}}
    mismatch = evict(client, "w1", body, params={"dryRun": "Nope"})
    assert mismatch.status_code in (400, 422)
    assert exists(client, "w1")
    assert client.simulate_get("/api/v1/namespaces/default/pods").status_code == 200


def test_eviction_is_post_only_and_discovered_as_kubectl_drain_expects(client):
    make_pod(client, "w1")
    assert client.simulate_get(f"{PODS}/w1/eviction").status_code == 405
    entries = client.simulate_get("/api/v1").json["resources"]
    assert {"name": "pods/eviction", "singularName": "", "group": "policy", "version": "v1",
            "namespaced": True, "kind": "Eviction", "verbs": ["create"]} in entries


def test_pdb_validation_reports_every_cause_in_one_422(client):
    answer = client.simulate_post(PDBS, json={
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "bad"},
        "spec": {"minAvailable": -1, "maxUnavailable": "150%",
                 "selector": {"matchExpressions": [{"key": "a", "operator": "In"}]},
                 "unhealthyPodEvictionPolicy": "Never"}})
    assert answer.status_code == 422
    causes = {(c["field"], c["reason"]) for c in answer.json["details"]["causes"]}
    assert causes == {("spec", "FieldValueInvalid"),
                      ("spec.minAvailable", "FieldValueInvalid"),
                      ("spec.maxUnavailable", "FieldValueInvalid"),
                      ("spec.selector.matchExpressions[0].values", "FieldValueRequired"),
                      ("spec.unhealthyPodEvictionPolicy", "FieldValueNotSupported")}
    assert "minAvailable and maxUnavailable cannot be both set" in answer.json["message"]
    assert "must not be greater than 100%" in answer.json["message"]


def test_pdb_status_counts_may_not_be_negative(client):
    pdb = make_pdb(client, maxUnavailable="25%")
    pdb["status"] = {"disruptionsAllowed": -1, "currentHealthy": 0, "desiredHealthy": 0,
                     "expectedPods": 0}
    answer = client.simulate_put(f"{PDBS}/budget/status", json=pdb)
    assert answer.status_code == 422
    assert answer.json["details"]["causes"][0]["field"] == "status.disruptionsAllowed"


def test_kubectl_get_pdb_columns(client):
    make_pdb(client, maxUnavailable=1, status={"disruptionsAllowed": 1})
    make_pdb(client, "pct", minAvailable="50%", selector={"matchLabels": {"app": "x"}})
    table = client.simulate_get(PDBS, headers={
        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}).json
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Min Available", "Max Unavailable", "Allowed Disruptions", "Age"]
    rows = {r["cells"][0]: r["cells"][1:4] for r in table["rows"]}
    assert rows == {"budget": ["N/A", "1", 1], "pct": ["50%", "N/A", 0]}


def test_rbac_eviction_is_create_on_pods_eviction_granted_by_edit_not_view():
    from control.api.auth import bootstrap, rbac
    from control.api.auth.request_info import request_info
    info = request_info("POST", "/api/v1/namespaces/default/pods/w1/eviction", {})
    assert (info.verb, info.resource, info.subresource) == ("create", "pods", "eviction")
    assert any(rbac.rule_allows(r, info) for r in bootstrap.EDIT_RULES)
    assert not any(rbac.rule_allows(r, info) for r in bootstrap.VIEW_RULES)
    controller = bootstrap.CLUSTER_ROLES["system:controller:disruption-controller"][0]["rules"]
    status = request_info("PUT", "/apis/policy/v1/namespaces/default/poddisruptionbudgets/b/"
                                 "status", {})
    assert any(rbac.rule_allows(r, status) for r in controller)
    for method, path in (("DELETE", "/api/v1/namespaces/default/pods/w1"),
                         ("POST", "/api/v1/namespaces/default/pods/w1/eviction"),
                         ("PUT", "/apis/policy/v1/namespaces/default/poddisruptionbudgets/b"),
                         ("GET", "/api/v1/namespaces/default/secrets/s")):
        assert not any(rbac.rule_allows(r, request_info(method, path, {})) for r in controller)
