"""autoscaling/v1 HorizontalPodAutoscalers served by the API from the v2 storage."""

import datetime
import json

import falcon.testing
import pytest

from control.api.app import create_app
from control.api.service import ObjectService
from control.objects.autoscaling_v1 import METRICS
from control.registry import Registry
from tests.support.fake_store import FakeStore

NOW = datetime.datetime(2026, 11, 22, 10, 0, 0, tzinfo=datetime.timezone.utc)
V1 = "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers"
V2 = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


@pytest.fixture
def client():
    service = ObjectService(Registry(FakeStore()), clock=lambda: NOW)
    service.ensure_system_namespaces()
    return falcon.testing.TestClient(create_app(None, service=service))


def hpa(name="web", percent=50, **extra_spec):
    spec = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 5, **extra_spec}
    if percent is not None:
        spec["targetCPUUtilizationPercentage"] = percent
    return {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name}, "spec": spec}


def test_create_get_list_patch_delete_through_v1(client):
    created = client.simulate_post(V1, json=hpa())
    assert created.status_code == 201, created.text
    assert created.json["apiVersion"] == "autoscaling/v1"
    assert created.json["spec"]["targetCPUUtilizationPercentage"] == 50
    stored = client.simulate_get(f"{V2}/web").json
    assert stored["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 50

    listed = client.simulate_get(V1).json
    assert listed["kind"] == "HorizontalPodAutoscalerList"
    assert listed["apiVersion"] == "autoscaling/v1"
    assert listed["items"][0]["spec"]["targetCPUUtilizationPercentage"] == 50

    patched = client.simulate_patch(
        f"{V1}/web", body=json.dumps({"spec": {"targetCPUUtilizationPercentage": 65}}),
        headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert patched.status_code == 200, patched.text
    assert client.simulate_get(f"{V2}/web").json["spec"]["metrics"][0]["resource"][
        "target"]["averageUtilization"] == 65

    deleted = client.simulate_delete(f"{V1}/web")
    assert deleted.status_code == 200, deleted.text
    assert client.simulate_get(f"{V2}/web").status_code == 404


def test_table_through_v1_prints_the_hpa_columns(client):
    client.simulate_post(V1, json=hpa())
    table = client.simulate_get(V1, headers={"Accept": TABLE}).json
    assert [c["name"] for c in table["columnDefinitions"]][:6] == [
        "Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas"]
    assert table["rows"][0]["cells"][:6] == ["web", "Deployment/web", "cpu: <unknown>/50%",
                                             1, 5, 0]


def test_dry_run_through_v1_stores_nothing(client):
    answer = client.simulate_post(V1, json=hpa(), params={"dryRun": "All"})
    assert answer.status_code == 201 and answer.json["apiVersion"] == "autoscaling/v1"
    assert client.simulate_get(f"{V2}/web").status_code == 404


def test_hostile_v1_bodies_are_refused_and_the_server_still_serves(client):
    wrong_type = client.simulate_post(V1, json=hpa(percent="lots"))
    assert wrong_type.status_code == 400
    assert wrong_type.json["message"] == (
        'HorizontalPodAutoscaler in version "v1" cannot be handled: '
        "spec.targetCPUUtilizationPercentage: must be of type integer, got string")

    bad_annotation = hpa()
    bad_annotation["metadata"]["annotations"] = {METRICS: json.dumps([1, "x"])}
    invalid = client.simulate_post(V1, json=bad_annotation)
    assert invalid.status_code == 422, invalid.text
    assert "spec.metrics[0].type" in invalid.json["message"]

    unknown = client.simulate_post(V1, json=hpa(metrics=[]),
                                   params={"fieldValidation": "Strict"})
    assert unknown.status_code == 400
    assert 'unknown field "spec.metrics"' in unknown.json["message"]

    v2_kind = client.simulate_post(V1, json={**hpa(), "apiVersion": "autoscaling/v2"})
    assert v2_kind.status_code == 400
    assert "does not match the request (autoscaling/v1)" in v2_kind.json["message"]

    assert client.simulate_post(V1, json=hpa()).status_code == 201


def test_status_through_v1_reaches_the_stored_current_metrics(client):
    client.simulate_post(V1, json=hpa())
    current = client.simulate_get(f"{V1}/web").json
    current["status"] = {"currentReplicas": 2, "desiredReplicas": 2,
                         "currentCPUUtilizationPercentage": 30}
    answer = client.simulate_put(f"{V1}/web/status", json=current)
    assert answer.status_code == 200, answer.text
    assert answer.json["status"]["currentCPUUtilizationPercentage"] == 30
    stored = client.simulate_get(f"{V2}/web").json["status"]
    assert stored["currentMetrics"][0]["resource"]["current"]["averageUtilization"] == 30


def test_discovery_serves_both_versions_and_prefers_v2(client):
    group = client.simulate_get("/apis/autoscaling").json
    assert [v["version"] for v in group["versions"]] == ["v2", "v1"]
    assert group["preferredVersion"]["version"] == "v2"
    names = [r["name"] for r in client.simulate_get("/apis/autoscaling/v1").json["resources"]]
    assert names == ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]
