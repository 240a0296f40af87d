"""CustomResourceDefinitions in one in-process API server: validation, serving, cleanup."""

import falcon.testing
import pytest

from control.api.app import create_app
from control.api.crd import model, sync, validation
from control.objects import kinds
from tests.support.apiproc import eventually
from tests.support.fake_store import FakeStore

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
GROUP = "unit.example.com"
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io"


def crd(plural="widgets", kind="Widget", **spec):
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{GROUP}"},
            "spec": {"group": GROUP, "scope": "Namespaced",
                     "names": {"plural": plural, "kind": kind},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {
                                       "type": "object", "properties": {"spec": {
                                           "type": "object", "properties": {
                                               "n": {"type": "integer", "default": 3}}}}}},
                                   "additionalPrinterColumns": [
                                       {"name": "N", "type": "integer", "jsonPath": ".spec.n"}]}],
                     **spec}}


@pytest.fixture
def store():
    return FakeStore()


@pytest.fixture
def client(store):
    yield falcon.testing.TestClient(create_app(store))
    for owner in list(kinds.TABLE.custom_owners()):
        kinds.TABLE.remove_custom(owner)


def problems_of(body):
    return {(field, message) for field, _, message in validation.validate(body)}


def test_valid_crd_has_no_problems():
    assert validation.validate(crd()) == []


@pytest.mark.parametrize("change,field,fragment", [
    (lambda c: c["metadata"].update(name="x.example.com"), "metadata.name",
     'must be spec.names.plural+"."+spec.group'),
    (lambda c: c["spec"].update(group="nodots"), "spec.group",
     "should be a domain with at least one dot"),
    (lambda c: c["spec"].update(group="apps.k8s.io"),
     "metadata.annotations[api-approved.kubernetes.io]", "protected groups"),
    (lambda c: c["spec"].update(scope="Global"), "spec.scope", 'Unsupported value: "Global"'),
    (lambda c: c["spec"]["names"].pop("kind"), "spec.names.kind", "Required value"),
    (lambda c: c["spec"]["names"].update(listKind="Widget"), "spec.names.listKind",
     "kind and listKind may not be the same"),
    (lambda c: c["spec"]["names"].update(shortNames=["Bad_Name"]), "spec.names.shortNames[0]",
     "Invalid value"),
    (lambda c: c["spec"]["versions"][0].update(storage=False), "spec.versions",
     "must have exactly one version marked as storage version"),
    (lambda c: c["spec"]["versions"][0].update(served=False), "spec.versions",
     "must have at least one version marked as served"),
    (lambda c: c["spec"]["versions"].append(dict(c["spec"]["versions"][0], storage=False)),
     "spec.versions[1].name", 'Duplicate value: "v1"'),
    (lambda c: c["spec"]["versions"][0].pop("schema"),
     "spec.versions[0].schema.openAPIV3Schema", "Required value: schemas are required"),
    (lambda c: c["spec"]["versions"][0].update(subresources={"scale": {
        "specReplicasPath": "spec.replicas", "statusReplicasPath": ".status.replicas"}}),
     "spec.versions[0].subresources.scale.specReplicasPath", "should be a json path under .spec"),
    (lambda c: c["spec"]["versions"][0]["additionalPrinterColumns"][0].update(type="float"),
     "spec.versions[0].additionalPrinterColumns[0].type", 'Unsupported value: "float"'),
    (lambda c: c["spec"]["versions"][0]["additionalPrinterColumns"][0].update(jsonPath="spec"),
     "spec.versions[0].additionalPrinterColumns[0].jsonPath", "starting with a dot"),
    (lambda c: c["spec"].update(conversion={"strategy": "Webhook"}),
     "spec.conversion.strategy", "Unsupported value"),
])
def test_crd_validation(change, field, fragment):
    body = crd()
    change(body)
    found = problems_of(body)
    assert any(f == field and fragment in m for f, m in found), found


def test_version_priority_is_kubernetes():
    names = ["v1alpha1", "foo", "v2", "v1beta1", "v1", "v1beta2", "v10"]
    assert sorted(names, key=model.version_priority) == \
        ["v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]


def test_crd_lifecycle_in_process(client):
    created = client.simulate_post(CRDS, json=crd())
    assert created.status_code == 201, created.json
    assert model.is_established(created.json)
    path = f"/apis/{GROUP}/v1/namespaces/default/widgets"
    made = client.simulate_post(path, json={"apiVersion": f"{GROUP}/v1", "kind": "Widget",
                                            "metadata": {"name": "a"}, "spec": {}})
    assert made.status_code == 201 and made.json["spec"] == {"n": 3}
    table = client.simulate_get(path, headers={"Accept": TABLE_ACCEPT}).json
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "N"]
    assert table["rows"][0]["cells"] == ["a", 3]
    invalid = client.simulate_post(path, json={"metadata": {"name": "b"}, "spec": {"n": "x"}})
    assert invalid.status_code == 422
    assert invalid.json["message"] == (
        f'Widget.{GROUP} "b" is invalid: spec.n: Invalid value: "x": spec.n in body must be '
        'of type integer: "x"')
    # A changed CRD is served at once: here the column goes.
    current = client.simulate_get(f"{CRDS}/widgets.{GROUP}").json
    del current["spec"]["versions"][0]["additionalPrinterColumns"]
    assert client.simulate_put(f"{CRDS}/widgets.{GROUP}", json=current).status_code == 200
    eventually(lambda: [c["name"] for c in client.simulate_get(path, headers={
        "Accept": TABLE_ACCEPT}).json["columnDefinitions"]] == ["Name", "Age"],
        message="the changed CRD served (the process's CRD watch)")
    scope_change = client.simulate_get(f"{CRDS}/widgets.{GROUP}").json
    scope_change["spec"]["scope"] = "Cluster"
    refused = client.simulate_put(f"{CRDS}/widgets.{GROUP}", json=scope_change)
    assert refused.status_code == 422 and "spec.scope" in refused.json["message"]


def test_kind_conflict_is_not_established(client):
    assert client.simulate_post(CRDS, json=crd()).status_code == 201
    other = client.simulate_post(CRDS, json=crd(plural="others", kind="Widget")).json
    accepted = model.condition(other, "NamesAccepted")
    assert accepted["status"] == "False" and accepted["reason"] == "KindConflict"
    assert not model.is_established(other)
    assert client.simulate_get(f"/apis/{GROUP}/v1/namespaces/default/others").status_code == 404


def test_another_process_learns_of_a_crd_on_a_miss(client, store):
    assert client.simulate_post(CRDS, json=crd()).status_code == 201
    kinds.TABLE.remove_custom(f"widgets.{GROUP}")     # as if this process had not seen it
    assert client.simulate_get(f"/apis/{GROUP}/v1/namespaces/default/widgets").status_code \
        == 200


def test_cleanup_deletes_objects_then_the_finalizer(client, store):
    assert client.simulate_post(CRDS, json=crd()).status_code == 201
    path = f"/apis/{GROUP}/v1/namespaces/default/widgets"
    client.simulate_post(path, json={"metadata": {"name": "a"}, "spec": {}})
    client.simulate_post(path, json={"metadata": {"name": "held", "finalizers": ["x/y"]},
                                     "spec": {}})
    service_sync = sync.CRDSync(_service_of(store))
    assert client.simulate_delete(f"{CRDS}/widgets.{GROUP}").status_code == 202
    eventually(lambda: kinds.lookup(GROUP, "v1", "widgets").custom.terminating,
               message="the CRD seen terminating")
    refused = client.simulate_post(path, json={"metadata": {"name": "late"}, "spec": {}})
    assert refused.status_code == 405 and "terminating" in refused.json["message"]
    assert service_sync.cleanup_pass(f"widgets.{GROUP}") is False   # "held" waits
    terminating = client.simulate_get(f"{CRDS}/widgets.{GROUP}").json
    assert model.condition(terminating, "Terminating")["reason"] == "InstanceDeletionInProgress"
    held = client.simulate_get(f"{path}/held").json
    held["metadata"]["finalizers"] = []
    assert client.simulate_put(f"{path}/held", json=held).status_code == 200
    assert service_sync.cleanup_pass(f"widgets.{GROUP}") is True
    assert client.simulate_get(f"{CRDS}/widgets.{GROUP}").status_code == 404


def _service_of(store):
    from control.api.service import for_store
    return for_store(store)


def test_custom_objects_get_object_meta_validation(client):
    assert client.simulate_post(CRDS, json=crd()).status_code == 201
    path = f"/apis/{GROUP}/v1/namespaces/default/widgets"
    bad = client.simulate_post(path, json={"metadata": {"name": "Bad_Name",
                                                        "labels": {"k": "v" * 70}}, "spec": {}})
    assert bad.status_code == 422
    assert "metadata.name" in bad.json["message"] and "metadata.labels" in bad.json["message"]


def test_a_crd_may_not_take_over_a_group_the_server_serves(client):
    body = crd()
    body["spec"]["group"] = "metrics.k8s.io"
    body["metadata"] = {"name": "widgets.metrics.k8s.io",
                        "annotations": {validation.APPROVAL: "approved"}}
    refused = client.simulate_post(CRDS, json=body)
    assert refused.status_code == 422
    assert "is served by the API server itself" in refused.json["message"]
