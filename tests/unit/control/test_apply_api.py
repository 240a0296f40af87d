"""Server-side apply, managedFields and dryRun through the API (falcon app, in-memory store)."""

import json

import falcon.testing
import pytest
import yaml

from control.api.app import create_app
from tests.support.fake_store import FakeStore

DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
SERVICES = "/api/v1/namespaces/default/services"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
APPLY = {"Content-Type": "application/apply-patch+yaml"}


def deployment(replicas=2, image="nginx", labels=None, containers=None):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": labels or {"app": "web"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": containers or [
                                      {"name": "web", "image": image}]}}}}


@pytest.fixture
def client():
    return falcon.testing.TestClient(create_app(FakeStore()))


def apply(client, body, manager="a", name="web", url=DEPLOYMENTS, **params):
    text = body if isinstance(body, str) else yaml.safe_dump(body)
    return client.simulate_patch(f"{url}/{name}", body=text, headers=APPLY,
                                 params={"fieldManager": manager, **params})


def merge_patch(client, url, body, content_type="application/merge-patch+json", **params):
    return client.simulate_patch(url, body=json.dumps(body), params=params,
                                 headers={"Content-Type": content_type})


def managers(obj):
    return {(e["manager"], e["operation"]): e for e in obj["metadata"]["managedFields"]}


def test_apply_creates_then_second_apply_changes_nothing(client):
    created = apply(client, deployment())
    assert created.status_code == 201, created.json
    again = apply(client, deployment())
    assert again.status_code == 200
    assert again.json["metadata"]["resourceVersion"] == created.json["metadata"]["resourceVersion"]
    entry = managers(again.json)[("a", "Apply")]
    assert entry["fieldsV1"]["f:spec"]["f:replicas"] == {} and entry["apiVersion"] == "apps/v1"


def test_conflict_is_409_with_causes_and_force_takes_the_field(client):
    apply(client, deployment())
    config = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
              "spec": {"replicas": 5}}
    refused = apply(client, config, manager="b")
    assert refused.status_code == 409 and refused.json["reason"] == "Conflict"
    assert refused.json["message"] == \
        'Apply failed with 1 conflict: conflict with "a": .spec.replicas'
    assert refused.json["details"]["causes"] == [{"reason": "FieldManagerConflict",
                                                 "message": 'conflict with "a"',
                                                 "field": ".spec.replicas"}]
    forced = apply(client, config, manager="b", force="true")
    assert forced.status_code == 200 and forced.json["spec"]["replicas"] == 5
    owned = managers(forced.json)
    assert "f:replicas" not in owned[("a", "Apply")]["fieldsV1"]["f:spec"]
    assert owned[("b", "Apply")]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}


def test_removing_an_owned_field_removes_it_unless_another_manager_owns_it(client):
    apply(client, deployment(labels={"app": "web", "tier": "x", "team": "y"}))
    apply(client, {"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "web", "labels": {"team": "y"}}}, manager="b")
    result = apply(client, deployment())
    assert result.json["metadata"]["labels"] == {"app": "web", "team": "y"}


def test_apply_of_containers_merges_by_name(client):
    apply(client, deployment())
    sidecar = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"template": {"spec": {"containers": [{"name": "log", "image": "b"}]}}}}
    result = apply(client, sidecar, manager="b")
    assert result.status_code == 200, result.json
    containers = result.json["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("web", "nginx"), ("log", "b")]


def test_client_side_apply_then_server_side_apply(client):
    body = deployment()
    body["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": json.dumps(deployment())}
    created = client.simulate_post(DEPLOYMENTS, json=body,
                                   params={"fieldManager": "kubectl-client-side-apply"})
    assert created.status_code == 201
    entry = managers(created.json)[("kubectl-client-side-apply", "Update")]
    assert "f:kubectl.kubernetes.io/last-applied-configuration" in \
        entry["fieldsV1"]["f:metadata"]["f:annotations"]
    patched = merge_patch(client, f"{DEPLOYMENTS}/web", {"spec": {"replicas": 3}},
                          "application/strategic-merge-patch+json",
                          fieldManager="kubectl-client-side-apply")
    assert patched.status_code == 200 and patched.json["spec"]["replicas"] == 3
    refused = apply(client, deployment(replicas=4), manager="kubectl")
    assert refused.status_code == 409
    assert 'conflict with "kubectl-client-side-apply" using apps/v1' in refused.json["message"]
    assert apply(client, deployment(replicas=4), manager="kubectl",
                 force="true").json["spec"]["replicas"] == 4


def test_update_takes_fields_and_default_manager_is_the_user_agent(client):
    created = client.simulate_post(DEPLOYMENTS, json=deployment(),
                                   headers={"User-Agent": "tool/1.0 (linux)"})
    assert set(managers(created.json)) == {("tool", "Update")}
    current = created.json
    current["spec"]["replicas"] = 9
    replaced = client.simulate_put(f"{DEPLOYMENTS}/web", json=current,
                                   params={"fieldManager": "kubectl-edit"})
    owned = managers(replaced.json)
    assert owned[("kubectl-edit", "Update")]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in owned[("tool", "Update")]["fieldsV1"]["f:spec"]


def test_status_writes_are_recorded_with_their_subresource(client):
    client.simulate_post(DEPLOYMENTS, json=deployment(), params={"fieldManager": "m"})
    status = merge_patch(client, f"{DEPLOYMENTS}/web/status", {"status": {"replicas": 1}},
                         fieldManager="controller")
    entry = managers(status.json)[("controller", "Update")]
    assert entry["subresource"] == "status"
    assert entry["fieldsV1"] == {"f:status": {"f:replicas": {}}}


def test_managed_fields_can_be_cleared_and_never_warn(client):
    created = client.simulate_post(DEPLOYMENTS, json=deployment(), params={"fieldManager": "m"})
    body = created.json
    replaced = client.simulate_put(f"{DEPLOYMENTS}/web", json=body)
    assert "warning" not in replaced.headers
    body = replaced.json
    body["metadata"]["managedFields"] = [{}]
    body["spec"]["replicas"] = 4
    cleared = client.simulate_put(f"{DEPLOYMENTS}/web", json=body)
    assert "managedFields" not in cleared.json["metadata"]


# -- dryRun ------------------------------------------------------------------------------------
def test_dry_run_of_every_write_stores_nothing(client):
    created = client.simulate_post(DEPLOYMENTS, json=deployment(), params={"fieldManager": "m"})
    revision = created.json["metadata"]["resourceVersion"]
    dry = {"dryRun": "All"}
    put = dict(created.json, spec={**created.json["spec"], "replicas": 7})
    answers = [
        client.simulate_put(f"{DEPLOYMENTS}/web", json=put, params=dry),
        merge_patch(client, f"{DEPLOYMENTS}/web", {"spec": {"replicas": 7}}, **dry),
        apply(client, deployment(replicas=7), manager="m2", force="true", **dry),
    ]
    for answer in answers:
        assert answer.status_code == 200 and answer.json["spec"]["replicas"] == 7
    other = dict(deployment(), metadata={"name": "other"})
    assert client.simulate_post(DEPLOYMENTS, json=other, params=dry).status_code == 201
    assert apply(client, other, name="other", **dry).status_code == 201
    deleted = client.simulate_delete(f"{DEPLOYMENTS}/web", params=dry)
    assert deleted.status_code == 200
    listed = client.simulate_get(DEPLOYMENTS).json
    assert [d["metadata"]["name"] for d in listed["items"]] == ["web"]
    stored = listed["items"][0]
    assert stored["metadata"]["resourceVersion"] == revision and stored["spec"]["replicas"] == 2


def test_dry_run_service_create_keeps_no_cluster_ip(client):
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
               "spec": {"type": "NodePort", "ports": [{"port": 80}]}}
    dry = client.simulate_post(SERVICES, json=service, params={"dryRun": "All"})
    assert dry.status_code == 201, dry.json
    ip, node_port = dry.json["spec"]["clusterIP"], dry.json["spec"]["ports"][0]["nodePort"]
    real = dict(service, spec={**service["spec"], "clusterIP": ip,
                               "ports": [{"port": 80, "nodePort": node_port}]})
    assert client.simulate_post(SERVICES, json=real).status_code == 201


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_unknown_dry_run_value_is_422(client, method):
    client.simulate_post(CONFIGMAPS, json={"metadata": {"name": "c"}})
    url = CONFIGMAPS if method == "POST" else f"{CONFIGMAPS}/c"
    answer = client.simulate_request(method, url, body=json.dumps({"metadata": {"name": "c"}}),
                                     params={"dryRun": "Yes"},
                                     headers={"Content-Type": "application/merge-patch+json"
                                              if method == "PATCH" else "application/json"})
    assert answer.status_code == 422, answer.json
    assert "dryRun: Unsupported value" in answer.json["message"]
    assert 'supported values: "All"' in answer.json["message"]


# -- refusals and hostile bodies -----------------------------------------------------------------
@pytest.mark.parametrize("params, expected", [
    ({}, "fieldManager: Required value"),
    ({"fieldManager": "x" * 129}, "fieldManager: Too long"),
    ({"fieldManager": "a\x01b"}, "printable characters"),
])
def test_apply_options_are_checked(client, params, expected):
    answer = client.simulate_patch(f"{DEPLOYMENTS}/web", body=yaml.safe_dump(deployment()),
                                   headers=APPLY, params=params)
    assert answer.status_code == 422 and expected in answer.json["message"]


def test_force_on_a_merge_patch_is_refused(client):
    answer = merge_patch(client, f"{CONFIGMAPS}/c", {}, force="true")
    assert answer.status_code == 422 and "force" in answer.json["message"]


@pytest.mark.parametrize("body, status, expected", [
    ("- a\n- b\n", 400, "must be an object"),
    ("kind: [unclosed\n", 400, ""),
    ("metadata: {name: web}\n", 400, "apiVersion and kind"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: web}\n", 400, "does not match"),
    ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: other}\n", 400, "URL"),
    ("[" * 5000, 400, ""),
    ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n"
     "    spec:\n      containers: [{name: a, image: x}, {name: a, image: y}]\n", 422,
     "same keys"),
])
def test_hostile_or_malformed_apply_bodies_are_4xx(client, body, status, expected):
    answer = client.simulate_patch(f"{DEPLOYMENTS}/web", body=body, headers=APPLY,
                                   params={"fieldManager": "a"})
    assert answer.status_code == status, answer.json
    assert expected in answer.json["message"]
    assert client.simulate_get(DEPLOYMENTS).status_code == 200


def test_huge_apply_body_is_413_and_deep_one_is_refused(client):
    huge = "data:\n" + "".join(f"  k{n}: {'x' * 1000}\n" for n in range(3200))
    answer = client.simulate_patch(f"{CONFIGMAPS}/c", body=huge, headers=APPLY,
                                   params={"fieldManager": "a"})
    assert answer.status_code == 413
    deep = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: " + "{a: " * 300 + \
        "1" + "}" * 300 + "\n"
    answer = client.simulate_patch(f"{CONFIGMAPS}/c", body=deep, headers=APPLY,
                                   params={"fieldManager": "a"})
    assert 400 <= answer.status_code < 500
    assert client.simulate_get(CONFIGMAPS).status_code == 200


def test_scale_writes_name_their_manager(client):
    client.simulate_post(DEPLOYMENTS, json=deployment(), params={"fieldManager": "m"})
    scaled = merge_patch(client, f"{DEPLOYMENTS}/web/scale", {"spec": {"replicas": 4}},
                         fieldManager="kubectl-scale")
    assert scaled.status_code == 200 and scaled.json["spec"]["replicas"] == 4
    owned = managers(client.simulate_get(f"{DEPLOYMENTS}/web").json)
    assert owned[("kubectl-scale", "Update")]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}


@pytest.mark.parametrize("sent", [
    [{"manager": "x", "operation": "Bogus"}],
    [{"manager": "x", "operation": "Update", "fieldsV1": {"nope": {}}}],
    "not a list",
])
def test_unreadable_managed_fields_sent_by_a_client_are_ignored(client, sent):
    body = {"metadata": {"name": "c", "managedFields": sent}, "data": {"a": "b"}}
    created = client.simulate_post(CONFIGMAPS, json=body, params={"fieldManager": "m"})
    assert created.status_code in (201, 400), created.json
    if created.status_code == 201:
        assert [e["manager"] for e in created.json["metadata"]["managedFields"]] == ["m"]
    assert client.simulate_get(CONFIGMAPS).status_code == 200
