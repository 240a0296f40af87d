"""The API server's falcon app over an in-memory store: discovery, CRUD, errors, watch."""

import json

import falcon.testing
import pytest

from control.api.app import create_app
from tests.support.fake_store import FakeStore

DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


def deployment(name="web", replicas=2):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}


@pytest.fixture
def client():
    return falcon.testing.TestClient(create_app(FakeStore()))


def test_discovery_documents(client):
    assert client.simulate_get("/version").json["major"] == "1"
    assert client.simulate_get("/api").json["versions"] == ["v1"]
    groups = {g["name"] for g in client.simulate_get("/apis").json["groups"]}
    assert groups == {"apps", "batch", "coordination.k8s.io", "discovery.k8s.io",
                      "networking.k8s.io",
                      "rbac.authorization.k8s.io",
                      "authorization.k8s.io", "authentication.k8s.io", "metrics.k8s.io",
                      "certificates.k8s.io", "apiextensions.k8s.io", "policy",
                      "storage.k8s.io", "autoscaling"}
    core = {r["name"]: r for r in client.simulate_get("/api/v1").json["resources"]}
    assert core["pods"]["namespaced"] and not core["nodes"]["namespaced"]
    assert core["pods"]["shortNames"] == ["po"] and "pods/status" in core
    apps = {r["name"] for r in client.simulate_get("/apis/apps/v1").json["resources"]}
    assert {"deployments", "deployments/scale", "replicasets", "statefulsets"} <= apps
    assert client.simulate_get("/apis/nope/v1").status_code == 404


def test_system_namespaces_exist_at_start(client):
    names = {n["metadata"]["name"] for n in client.simulate_get("/api/v1/namespaces").json["items"]}
    assert names == {"default", "kube-system", "kube-public", "kube-node-lease"}


def test_create_get_list_and_server_set_metadata(client):
    created = client.simulate_post(DEPLOYMENTS, json=deployment())
    assert created.status_code == 201
    meta = created.json["metadata"]
    assert meta["namespace"] == "default" and meta["generation"] == 1
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    got = client.simulate_get(f"{DEPLOYMENTS}/web").json
    assert got["metadata"]["resourceVersion"] == meta["resourceVersion"]
    listed = client.simulate_get(DEPLOYMENTS).json
    assert listed["kind"] == "DeploymentList"
    assert [d["metadata"]["name"] for d in listed["items"]] == ["web"]
    assert int(listed["metadata"]["resourceVersion"]) >= int(meta["resourceVersion"])
    everywhere = client.simulate_get("/apis/apps/v1/deployments").json["items"]
    assert [d["metadata"]["name"] for d in everywhere] == ["web"]


def test_generate_name(client):
    body = deployment()
    del body["metadata"]["name"]
    body["metadata"]["generateName"] = "web-"
    name = client.simulate_post(DEPLOYMENTS, json=body).json["metadata"]["name"]
    assert name.startswith("web-") and len(name) == len("web-") + 5


def test_update_bumps_generation_on_spec_change_and_conflicts_when_stale(client):
    created = client.simulate_post(DEPLOYMENTS, json=deployment()).json
    changed = {**created, "spec": {**created["spec"], "replicas": 5}}
    updated = client.simulate_put(f"{DEPLOYMENTS}/web", json=changed)
    assert updated.status_code == 200
    assert updated.json["metadata"]["generation"] == 2
    stale = client.simulate_put(f"{DEPLOYMENTS}/web", json=changed)
    assert stale.status_code == 409 and stale.json["reason"] == "Conflict"
    labels_only = dict(updated.json)
    labels_only["metadata"] = {**labels_only["metadata"], "labels": {"x": "y"}}
    again = client.simulate_put(f"{DEPLOYMENTS}/web", json=labels_only).json
    assert again["metadata"]["generation"] == 2


def test_status_subresource_changes_only_status(client):
    created = client.simulate_post(DEPLOYMENTS, json=deployment()).json
    body = {**created, "spec": {"replicas": 99}, "status": {"replicas": 2}}
    result = client.simulate_put(f"{DEPLOYMENTS}/web/status", json=body).json
    assert result["status"] == {"replicas": 2} and result["spec"]["replicas"] == 2
    main = {**result, "status": {"replicas": 7}}
    result = client.simulate_put(f"{DEPLOYMENTS}/web", json=main).json
    assert result["status"] == {"replicas": 2}


def test_delete_and_not_found(client):
    client.simulate_post(DEPLOYMENTS, json=deployment())
    assert client.simulate_delete(f"{DEPLOYMENTS}/web").status_code == 200
    missing = client.simulate_get(f"{DEPLOYMENTS}/web")
    assert missing.status_code == 404
    assert missing.json["message"] == 'deployments.apps "web" not found'
    assert client.simulate_delete(f"{DEPLOYMENTS}/web").status_code == 404


def test_finalizers_hold_deletion(client):
    body = deployment()
    body["metadata"]["finalizers"] = ["example.com/hold"]
    client.simulate_post(DEPLOYMENTS, json=body)
    held = client.simulate_delete(f"{DEPLOYMENTS}/web")
    assert held.status_code == 202 and held.json["metadata"]["deletionTimestamp"]
    assert client.simulate_get(f"{DEPLOYMENTS}/web").status_code == 200


@pytest.mark.parametrize("body, code, reason", [
    (b"{not json", 400, "BadRequest"),
    (b"[1, 2]", 400, "BadRequest"),
    (b"", 400, "BadRequest"),
    (json.dumps({**deployment(), "kind": "Pod"}).encode(), 400, "BadRequest"),
    (json.dumps(deployment(name="Bad_Name")).encode(), 422, "Invalid"),
    (b"x" * (3 * 1024 * 1024 + 1), 413, "RequestEntityTooLarge"),
])
def test_bad_bodies_get_status_errors_and_store_nothing(client, body, code, reason):
    response = client.simulate_post(DEPLOYMENTS, body=body,
                                    headers={"Content-Type": "application/json"})
    assert response.status_code == code, response.text
    assert response.json["kind"] == "Status" and response.json["reason"] == reason
    assert client.simulate_get(DEPLOYMENTS).json["items"] == []


def test_invalid_name_names_the_field(client):
    response = client.simulate_post(DEPLOYMENTS, json=deployment(name="Bad_Name"))
    causes = response.json["details"]["causes"]
    assert causes[0]["field"] == "metadata.name"


def test_yaml_body_is_accepted(client):
    body = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n"
            "data:\n  mode: fast\n")
    response = client.simulate_post("/api/v1/namespaces/default/configmaps", body=body,
                                    headers={"Content-Type": "application/yaml"})
    assert response.status_code == 201 and response.json["data"] == {"mode": "fast"}


def test_objects_in_missing_or_terminating_namespaces_are_refused(client):
    missing = client.simulate_post("/apis/apps/v1/namespaces/nowhere/deployments",
                                   json=deployment())
    assert missing.status_code == 404 and 'namespaces "nowhere" not found' in missing.json["message"]
    client.simulate_post("/api/v1/namespaces", json={"metadata": {"name": "going"}})
    assert client.simulate_delete("/api/v1/namespaces/going").status_code == 202
    refused = client.simulate_post("/apis/apps/v1/namespaces/going/deployments",
                                   json=deployment())
    assert refused.status_code == 403
    assert "being terminated" in refused.json["message"]
    assert refused.json["details"]["causes"][0]["reason"] == "NamespaceTerminating"


def test_paging_with_limit_and_continue(client):
    for i in range(5):
        client.simulate_post("/api/v1/namespaces/default/configmaps",
                             json={"metadata": {"name": f"cm-{i}"}})
    names, token, first_rv = [], None, None
    while True:
        params = {"limit": "2", **({"continue": token} if token else {})}
        page = client.simulate_get("/api/v1/namespaces/default/configmaps", params=params).json
        first_rv = first_rv or page["metadata"]["resourceVersion"]
        assert page["metadata"]["resourceVersion"] == first_rv   # one consistent snapshot
        names += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
    assert names == [f"cm-{i}" for i in range(5)]
    bad = client.simulate_get("/api/v1/namespaces/default/configmaps",
                              params={"limit": "2", "continue": "garbage"})
    assert bad.status_code == 400


def test_watch_streams_events_from_a_resource_version(client):
    created = client.simulate_post(DEPLOYMENTS, json=deployment()).json
    rv = created["metadata"]["resourceVersion"]
    client.simulate_delete(f"{DEPLOYMENTS}/web")
    streamed = client.simulate_get(DEPLOYMENTS, params={
        "watch": "true", "resourceVersion": str(int(rv) - 1), "timeoutSeconds": "1"})
    events = [json.loads(line) for line in streamed.text.splitlines()]
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]
    assert events[0]["object"]["metadata"]["name"] == "web"


def test_watch_from_a_compacted_version_gets_410(client):
    store = FakeStore()
    app_client = falcon.testing.TestClient(create_app(store))
    app_client.simulate_post(DEPLOYMENTS, json=deployment())
    app_client.simulate_post(DEPLOYMENTS, json=deployment("other"))
    store.compact(store.machine.revision)
    streamed = app_client.simulate_get(DEPLOYMENTS, params={
        "watch": "true", "resourceVersion": "2", "timeoutSeconds": "1"})
    event = json.loads(streamed.text.splitlines()[0])
    assert event["type"] == "ERROR" and event["object"]["code"] == 410


def test_field_validation_strict_warn_ignore(client):
    body = deployment()
    body["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    body["spec"]["replicaz"] = 3
    strict = client.simulate_post(DEPLOYMENTS, json=body, params={"fieldValidation": "Strict"})
    assert strict.status_code == 400
    assert 'unknown field "spec.replicaz"' in strict.json["message"]
    assert 'unknown field "spec.template.spec.containers[0].imagePullPolcy"' in strict.json["message"]
    warned = client.simulate_post(DEPLOYMENTS, json=body)
    assert warned.status_code == 201
    assert "replicaz" not in warned.json["spec"]
    assert "imagePullPolcy" not in warned.json["spec"]["template"]["spec"]["containers"][0]
    warnings = warned.headers.get("warning", "")
    assert 'unknown field \\"spec.replicaz\\"' in warnings
    body["metadata"]["name"] = "quiet"
    ignored = client.simulate_post(DEPLOYMENTS, json=body, params={"fieldValidation": "Ignore"})
    assert ignored.status_code == 201 and "warning" not in ignored.headers


def test_wrong_types_are_a_bad_request(client):
    body = deployment()
    body["spec"]["replicas"] = "two"
    response = client.simulate_post(DEPLOYMENTS, json=body)
    assert response.status_code == 400 and "spec.replicas" in response.json["message"]


def test_label_and_field_selectors_filter_lists(client):
    url = "/api/v1/namespaces/default/configmaps"
    for name, tier in (("a", "web"), ("b", "db"), ("c", "web")):
        client.simulate_post(url, json={"metadata": {"name": name, "labels": {"tier": tier}}})
    names = lambda params: [i["metadata"]["name"]  # noqa: E731
                            for i in client.simulate_get(url, params=params).json["items"]]
    assert names({"labelSelector": "tier=web"}) == ["a", "c"]
    assert names({"labelSelector": "tier in (db),!missing"}) == ["b"]
    assert names({"fieldSelector": "metadata.name!=a", "labelSelector": "tier=web"}) == ["c"]
    bad = client.simulate_get(url, params={"labelSelector": "tier=,"})
    assert bad.status_code == 400 and bad.json["kind"] == "Status"
    unsupported = client.simulate_get(url, params={"fieldSelector": "spec.nodeName=x"})
    assert unsupported.status_code == 400
    assert "field label not supported" in unsupported.json["message"]


def test_openapi_v3_index_and_documents(client):
    index = client.simulate_get("/openapi/v3").json["paths"]
    assert set(index) == {"api/v1", "apis/apps/v1", "apis/batch/v1", "apis/coordination.k8s.io/v1",
                          "apis/discovery.k8s.io/v1", "apis/networking.k8s.io/v1",
                          "apis/rbac.authorization.k8s.io/v1", "apis/authorization.k8s.io/v1",
                          "apis/authentication.k8s.io/v1", "apis/certificates.k8s.io/v1",
                          "apis/apiextensions.k8s.io/v1", "apis/policy/v1",
                          "apis/storage.k8s.io/v1", "apis/autoscaling/v2",
                          "apis/autoscaling/v1"}
    doc = client.simulate_get(index["apis/apps/v1"]["serverRelativeURL"]).json
    deployment_schema = doc["components"]["schemas"]["V1Deployment"]
    assert {"group": "apps", "version": "v1", "kind": "Deployment"} in \
        deployment_schema["x-kubernetes-group-version-kind"]
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert any(p["name"] == "fieldValidation" for p in patch["parameters"])
    assert client.simulate_get("/openapi/v2").json["swagger"] == "2.0"


def test_scale_subresource_get_put_patch(client):
    client.simulate_post(DEPLOYMENTS, json=deployment(replicas=2))
    scale = client.simulate_get(f"{DEPLOYMENTS}/web/scale").json
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 2} and scale["status"]["selector"] == "app=web"
    scale["spec"]["replicas"] = 4
    put = client.simulate_put(f"{DEPLOYMENTS}/web/scale", json=scale)
    assert put.status_code == 200 and put.json["spec"]["replicas"] == 4
    patched = client.simulate_patch(f"{DEPLOYMENTS}/web/scale",
                                    body=json.dumps({"spec": {"replicas": 1}}),
                                    headers={"Content-Type": "application/merge-patch+json"})
    assert patched.json["spec"]["replicas"] == 1
    assert client.simulate_get(f"{DEPLOYMENTS}/web").json["spec"]["replicas"] == 1
    stale = client.simulate_put(f"{DEPLOYMENTS}/web/scale", json=scale)
    assert stale.status_code == 409
    negative = client.simulate_put(f"{DEPLOYMENTS}/web/scale",
                                   json={"spec": {"replicas": -1}})
    assert negative.status_code == 422
    assert client.simulate_get("/api/v1/namespaces/default/configmaps/x/scale").status_code == 404


def test_dry_run_create_answers_the_object_and_stores_nothing(client):
    response = client.simulate_post(DEPLOYMENTS, json=deployment(), params={"dryRun": "All"})
    assert response.status_code == 201 and response.json["metadata"]["name"] == "web"
    assert client.simulate_get(DEPLOYMENTS).json["items"] == []
