"""PV, PVC and StorageClass through the real app: validation, admission, printing."""

import json

import falcon.testing
import pytest

from control.api.app import create_app
from tests.support.fake_store import FakeStore

PVS, SCS = "/api/v1/persistentvolumes", "/apis/storage.k8s.io/v1/storageclasses"
PVCS = "/api/v1/namespaces/default/persistentvolumeclaims"
TABLE = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}


def storage_class(name="local-path", default=True, **fields):
    meta = {"name": name}
    if default:
        meta["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": meta,
            "provisioner": "steersman.io/local-path", "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer", **fields}


def claim(name="data", size="1Gi", **spec):
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": size}}, **spec}}


def volume(name="pv1", **spec):
    body = {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/srv/pv1"}, "persistentVolumeReclaimPolicy": "Retain"}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {k: v for k, v in body.items() if v is not None}}


@pytest.fixture
def client():
    return falcon.testing.TestClient(create_app(FakeStore()))


def patch(client, path, body):
    return client.simulate_patch(path, body=json.dumps(body),
                                 headers={"Content-Type": "application/merge-patch+json"})


def causes(response):
    return {(c["field"], c["message"]) for c in response.json["details"]["causes"]}


@pytest.mark.parametrize("body, field, message", [
    (volume(hostPath=None), "spec", "Required value: must specify a volume type"),
    (volume(accessModes=["Sometimes"]), "spec.accessModes",
     'Unsupported value: "Sometimes": supported values: "ReadOnlyMany", "ReadWriteMany", '
     '"ReadWriteOnce", "ReadWriteOncePod"'),
    (volume(capacity=None), "spec.capacity", "Required value"),
    (volume(capacity={"storage": "lots"}), "spec.capacity[storage]", None),
    (volume(hostPath={"path": "/srv/../etc"}), "spec.hostPath.path",
     "Invalid value: \"/srv/../etc\": must not contain '..'"),
    (volume(persistentVolumeReclaimPolicy="Shred"), "spec.persistentVolumeReclaimPolicy",
     None),
    (volume(nfs={"server": "x", "path": "/"}), "spec.nfs",
     "Forbidden: may not specify more than 1 volume type"),
])
def test_invalid_volumes_are_422_with_kubernetes_causes(client, body, field, message):
    response = client.simulate_post(PVS, json=body)
    assert response.status_code == 422, response.text
    fields = {f: m for f, m in causes(response)}
    assert field in fields and (message is None or fields[field] == message), fields
    assert client.simulate_post(PVS, json=volume()).status_code == 201    # still serving


@pytest.mark.parametrize("body, field, message", [
    (claim(accessModes=[]), "spec.accessModes",
     "Required value: at least 1 access mode is required"),
    (claim(resources={}), "spec.resources[storage]", "Required value"),
    (claim(size="0"), "spec.resources[storage]",
     'Invalid value: "0": must be greater than zero'),
    (claim(selector={"matchLabels": {"a b": "c"}}), "spec.selector.matchLabels", None),
    (claim(size="9e999999999"), "spec.resources[storage]", None),
])
def test_invalid_claims_are_422(client, body, field, message):
    response = client.simulate_post(PVCS, json=body)
    assert response.status_code == 422, response.text
    fields = dict(causes(response))
    assert field in fields and (message is None or fields[field] == message), fields
    assert client.simulate_post(PVCS, json=claim("fine")).status_code == 201


@pytest.mark.parametrize("path, body", [
    (PVCS, {"metadata": {"name": "x"}, "spec": {"accessModes": "ReadWriteOnce"}}),
    (PVCS, {"metadata": {"name": "x"}, "spec": {"resources": "x"}}),
    (PVS, {"metadata": {"name": "p"}, "spec": {"hostPath": "/etc"}}),
    (SCS, {"metadata": {"name": "s"}, "provisioner": "x", "parameters": ["a"]}),
])
def test_mistyped_storage_objects_are_400_and_the_server_lives(client, path, body):
    response = client.simulate_post(path, json=body)
    assert response.status_code == 400 and "must be of type" in response.json["message"]
    assert client.simulate_get(path).status_code == 200


def test_a_claim_without_class_gets_the_default_and_its_finalizer(client):
    assert client.simulate_post(SCS, json=storage_class()).status_code == 201
    created = client.simulate_post(PVCS, json=claim()).json
    assert created["spec"]["storageClassName"] == "local-path"
    assert created["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    explicit = client.simulate_post(PVCS, json=claim("none", storageClassName="")).json
    assert explicit["spec"]["storageClassName"] == ""
    pv = client.simulate_post(PVS, json=volume()).json
    assert pv["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]


def test_a_claim_spec_is_immutable_but_for_binding_and_allowed_growth(client):
    client.simulate_post(SCS, json=storage_class())
    client.simulate_post(PVCS, json=claim())
    path = f"{PVCS}/data"
    response = patch(client, path, {"spec": {"accessModes": ["ReadWriteMany"]}})
    assert response.status_code == 422
    assert ("spec", "Forbidden: spec is immutable after creation except resources.requests "
            "and volumeAttributesClassName for bound claims") in causes(response)
    bound = patch(client, path, {"spec": {"volumeName": "pv1"}})
    assert bound.status_code == 200, bound.text
    grow = {"spec": {"resources": {"requests": {"storage": "2Gi"}}}}
    refused = patch(client, path, grow)
    assert refused.status_code == 403
    assert "storageclass that provisions the pvc must support resize" in \
        refused.json["message"]
    shrink = patch(client, path, {"spec": {"resources": {"requests": {
        "storage": "500Mi"}}}})
    assert shrink.status_code == 422
    assert ("spec.resources.requests.storage",
            "Forbidden: field can not be less than previous value") in causes(shrink)
    patch(client, f"{SCS}/local-path", {"allowVolumeExpansion": True})
    assert patch(client, path, grow).status_code == 200


def test_a_class_keeps_its_provisioner_parameters_and_modes(client):
    client.simulate_post(SCS, json=storage_class(parameters={"a": "b"}))
    response = patch(client, f"{SCS}/local-path", {
        "provisioner": "x.io/other", "parameters": {"a": "c"}, "reclaimPolicy": "Retain",
        "volumeBindingMode": "Immediate"})
    assert response.status_code == 422
    assert causes(response) >= {
        ("provisioner", "Forbidden: updates to provisioner are forbidden."),
        ("parameters", "Forbidden: updates to parameters are forbidden."),
        ("reclaimPolicy", "Forbidden: updates to reclaimPolicy are forbidden."),
        ("volumeBindingMode", 'Invalid value: "Immediate": field is immutable')}
    bad = client.simulate_post(SCS, json=storage_class("bad", provisioner="",
                                                       volumeBindingMode="Later"))
    assert bad.status_code == 422
    assert {f for f, _ in causes(bad)} == {"provisioner", "volumeBindingMode"}


def test_kubectl_get_columns(client):
    client.simulate_post(SCS, json=storage_class())
    client.simulate_post(PVS, json=volume(claimRef={"namespace": "default", "name": "data"},
                                          storageClassName="local-path"))
    client.simulate_post(PVCS, json=claim(volumeName="pv1"))
    table = client.simulate_get(SCS, headers=TABLE).json
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Provisioner", "ReclaimPolicy", "VolumeBindingMode", "AllowVolumeExpansion",
        "Age"]
    assert table["rows"][0]["cells"][:5] == [
        "local-path (default)", "steersman.io/local-path", "Delete", "WaitForFirstConsumer",
        "false"]
    pv = client.simulate_get(PVS, headers=TABLE).json["rows"][0]["cells"]
    assert pv[:8] == ["pv1", "1Gi", "RWO", "Retain", "", "default/data", "local-path",
                      "<unset>"]
    pvc_table = client.simulate_get(PVCS, headers=TABLE).json
    assert [c["name"] for c in pvc_table["columnDefinitions"]][:7] == [
        "Name", "Status", "Volume", "Capacity", "Access Modes", "StorageClass",
        "VolumeAttributesClass"]
    assert pvc_table["rows"][0]["cells"][:6] == ["data", "", "pv1", "", "", "local-path"]
