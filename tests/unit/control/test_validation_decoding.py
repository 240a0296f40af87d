"""What Kubernetes' decoder does before validation: nulls, integer widths, Unicode, slashes.

Through the real falcon app over an in-memory store: a null typed field is unset
(a null list item or map value becomes its zero value), an integer its Go field
cannot hold is a 400, a lone surrogate is a 400, and trailing-slash paths are
served as kube-apiserver serves them.
"""

import json

import falcon.testing
import pytest

from control.api.app import create_app
from control.objects import validation
from tests.support.fake_store import FakeStore

PODS = "/api/v1/namespaces/default/pods"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


@pytest.fixture
def client():
    return falcon.testing.TestClient(create_app(FakeStore()))


def pod(name="p", **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def deployment(replicas):
    return ('{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, '
            '"spec": {"replicas": %s, "selector": {"matchLabels": {"a": "b"}}, "template": '
            '{"metadata": {"labels": {"a": "b"}}, "spec": {"containers": '
            '[{"name": "c", "image": "busybox"}]}}}}' % replicas)


def test_drop_nulls_unsets_fields_and_zeroes_items():
    body = {"metadata": {"name": "p", "labels": {"a": None}, "annotations": None},
            "spec": {"nodeSelector": None, "containers": [None, {"name": "c", "ports": None,
                                                                 "args": ["x", None]}]}}
    assert validation.drop_nulls(body, "V1Pod") == {
        "metadata": {"name": "p", "labels": {"a": ""}},
        "spec": {"containers": [{}, {"name": "c", "args": ["x", ""]}]}}


def test_drop_nulls_leaves_free_form_fields_alone():
    body = {"metadata": {"name": "x"}, "data": None}
    assert validation.drop_nulls(body, "V1ConfigMap") == {"metadata": {"name": "x"}}


def test_a_null_container_becomes_an_empty_one_and_is_refused(client):
    answer = client.simulate_post(PODS, json={**pod(), "spec": {"containers": [None]}})
    assert answer.status_code == 422
    fields = {c["field"] for c in answer.json["details"]["causes"]}
    assert {"spec.containers[0].name", "spec.containers[0].image"} <= fields


def test_a_null_spec_over_a_stored_pod_is_refused_and_changes_nothing(client):
    created = client.simulate_post(PODS, json=pod()).json
    answer = client.simulate_put(f"{PODS}/p", json={"metadata": {"name": "p"}, "spec": None})
    assert answer.status_code == 422
    assert client.simulate_get(f"{PODS}/p").json == created


@pytest.mark.parametrize("replicas", [str(2**31), str(-2**31 - 1), "1" + "0" * 30])
def test_replicas_an_int32_cannot_hold_are_a_bad_request(client, replicas):
    answer = client.simulate_post(DEPLOYMENTS, body=deployment(replicas),
                                  headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert f"spec.replicas: cannot unmarshal number {replicas} into a field of type int32" \
        in answer.json["message"]
    assert client.simulate_get(f"{DEPLOYMENTS}/d").status_code == 404


def test_the_largest_int32_is_decoded(client):
    answer = client.simulate_post(DEPLOYMENTS, body=deployment(2**31 - 1),
                                  headers={"Content-Type": "application/json"})
    assert answer.status_code == 201 and answer.json["spec"]["replicas"] == 2**31 - 1


def test_int64_fields_hold_more_than_int32_and_validation_bounds_them(client):
    answer = client.simulate_post(PODS, json=pod(activeDeadlineSeconds=2**40))
    assert answer.status_code == 422
    assert answer.json["details"]["causes"] == [{
        "reason": "FieldValueInvalid", "field": "spec.activeDeadlineSeconds",
        "message": f"Invalid value: {2**40}: must be between 1 and 2147483647, inclusive"}]
    too_big = client.simulate_post(PODS, json=pod(terminationGracePeriodSeconds=2**63))
    assert too_big.status_code == 400 and "int64" in too_big.json["message"]


@pytest.mark.parametrize("raw", [
    b'{"metadata": {"name": "p\\ud800"}}',
    b'{"metadata": {"name": "p", "labels": {"\\udc00k": "v"}}}',
    b'{"metadata": {"name": "p\xed\xa0\x80"}}',
])
def test_lone_surrogates_are_a_bad_request(client, raw):
    answer = client.simulate_post(PODS, body=raw, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert "lone UTF-16 surrogate" in answer.json["message"]
    assert client.simulate_get("/version").status_code == 200


def test_a_surrogate_pair_is_a_character(client):
    body = json.dumps(pod()).replace('"metadata": {"name": "p"}',
                                     '"metadata": {"name": "p", "annotations": '
                                     '{"a": "\\ud83d\\ude00"}}')
    answer = client.simulate_post(PODS, body=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 201 and answer.json["metadata"]["annotations"]["a"] == "\U0001F600"


@pytest.mark.parametrize("path, kind", [
    ("/version/", None), ("/api/", "APIVersions"), ("/apis/", "APIGroupList"),
    ("/api/v1/", "APIResourceList"), ("/api/v1/namespaces/", "NamespaceList"),
    (PODS + "/", "PodList"), ("/apis/apps/v1/", "APIResourceList"),
])
def test_trailing_slash_paths_are_served(client, path, kind):
    answer = client.simulate_get(path)
    assert answer.status_code == 200
    assert answer.json.get("kind") == kind
