"""A real steer-apiserver refuses what kube-apiserver refuses, and keeps serving.

The fuzzer's findings of issue 15: a PUT {} over a bound pod, replicas of 10^30,
10,000 labels, label values of 10,000 characters, lone surrogates, nulls in
typed fields; and the trailing-slash paths the official client uses.
"""

import json
import urllib.error
import urllib.request

import pytest

PODS = "/api/v1/namespaces/default/pods"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


def call(api, method, path, body=None, raw=None):
    """Send a request; return (status, decoded JSON body or text) for 2xx and 4xx alike."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(api.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with api.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    return status, (json.loads(text) if text.startswith(b"{") else text.decode())


def pod(name, **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def deployment(name, replicas=1, labels=None):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": labels or {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}


def assert_still_serving(api):
    status, body = call(api, "GET", "/version")
    assert status == 200 and body["major"] == "1"


@pytest.fixture(scope="module")
def bound_pod(server):
    """A pod bound to node n1 by a Binding, as the scheduler binds it."""
    call(server, "POST", "/api/v1/nodes", {"metadata": {"name": "n1"}})
    status, _ = call(server, "POST", PODS, pod("bound"))
    assert status == 201
    status, _ = call(server, "POST", f"{PODS}/bound/binding", {
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "bound"},
        "target": {"kind": "Node", "name": "n1"}})
    assert status == 201
    return "bound"


def test_put_of_an_empty_object_over_a_bound_pod_is_refused(server, bound_pod):
    _, before = call(server, "GET", f"{PODS}/{bound_pod}")
    assert before["spec"]["nodeName"] == "n1"
    status, body = call(server, "PUT", f"{PODS}/{bound_pod}", {})
    assert status == 422, body
    causes = {(c["field"], c["message"]) for c in body["details"]["causes"]}
    assert ("spec.containers", "Required value") in causes
    _, after = call(server, "GET", f"{PODS}/{bound_pod}")
    assert after == before
    assert_still_serving(server)


def test_a_changed_pod_spec_is_forbidden_but_a_new_image_is_not(server, bound_pod):
    _, current = call(server, "GET", f"{PODS}/{bound_pod}")
    moved = {**current, "spec": {**current["spec"], "nodeName": "n2"}}
    status, body = call(server, "PUT", f"{PODS}/{bound_pod}", moved)
    assert status == 422 and body["details"]["causes"][0]["field"] == "spec"
    assert "pod updates may not change fields other than" in body["message"]
    image = json.loads(json.dumps(current))
    image["spec"]["containers"][0]["image"] = "busybox:1.36"
    status, body = call(server, "PUT", f"{PODS}/{bound_pod}", image)
    assert status == 200, body
    assert body["spec"]["containers"][0]["image"] == "busybox:1.36"


def test_replicas_beyond_int32_are_refused_and_nothing_is_stored(server):
    raw = json.dumps(deployment("huge")).replace('"replicas": 1', '"replicas": ' + "1" + "0" * 30)
    status, body = call(server, "POST", DEPLOYMENTS, raw=raw.encode())
    # kube-apiserver's JSON decoder refuses it (400) before validation sees it.
    assert status == 400, body
    assert "spec.replicas" in body["message"] and "int32" in body["message"]
    assert call(server, "GET", f"{DEPLOYMENTS}/huge")[0] == 404
    status, body = call(server, "POST", DEPLOYMENTS, deployment("negative", replicas=-1))
    assert status == 422
    assert body["details"]["causes"] == [{
        "reason": "FieldValueInvalid", "field": "spec.replicas",
        "message": "Invalid value: -1: must be greater than or equal to 0"}]
    assert_still_serving(server)


def test_ten_thousand_bad_labels_and_a_ten_thousand_character_value_are_refused(server):
    labels = {f"bad key {i}": "v" for i in range(10_000)}
    status, body = call(server, "POST", PODS, {**pod("labels"), "metadata": {
        "name": "labels", "labels": labels}})
    assert status == 422
    assert len(body["details"]["causes"]) == 10_000
    assert body["details"]["causes"][0]["field"] == "metadata.labels"
    long_value = "v" * 10_000
    status, body = call(server, "POST", PODS, {**pod("long"), "metadata": {
        "name": "long", "labels": {"k": long_value}}})
    assert status == 422
    assert body["details"]["causes"][0]["message"] == \
        f'Invalid value: "{long_value}": must be no more than 63 characters'
    assert call(server, "GET", f"{PODS}/labels")[0] == 404
    assert call(server, "GET", f"{PODS}/long")[0] == 404
    assert_still_serving(server)


def test_a_lone_surrogate_is_a_bad_request(server):
    body = json.dumps(pod("surrogate")).replace('"busybox"', '"busy\\ud800box"')
    status, answer = call(server, "POST", PODS, raw=body.encode())
    assert status == 400
    assert "lone UTF-16 surrogate" in answer["message"]
    utf8_encoded = json.dumps(pod("surrogate")).encode().replace(b"busybox",
                                                               b"busy\xed\xa0\x80box")
    assert call(server, "POST", PODS, raw=utf8_encoded)[0] == 400
    assert call(server, "POST", PODS, raw=b'{"metadata": {"name": "x\xff"}}')[0] == 400
    assert call(server, "GET", f"{PODS}/surrogate")[0] == 404
    assert_still_serving(server)


def test_nulls_in_typed_fields_are_unset_as_kubernetes_decodes_them(server):
    body = pod("nulls", nodeSelector=None, tolerations=None)
    body["metadata"]["labels"] = {"a": None}
    body["metadata"]["annotations"] = None
    body["spec"]["containers"][0]["ports"] = None
    status, created = call(server, "POST", PODS, body)
    assert status == 201, created
    assert "nodeSelector" not in created["spec"] and "annotations" not in created["metadata"]
    assert "ports" not in created["spec"]["containers"][0]
    assert created["metadata"]["labels"] == {"a": ""}
    assert ": null" not in json.dumps(created)


def test_trailing_slash_paths_are_served_as_kube_apiserver_serves_them(server):
    status, version = call(server, "GET", "/version/")
    assert status == 200 and version == call(server, "GET", "/version")[1]
    status, namespaces = call(server, "GET", "/api/v1/namespaces/")
    assert status == 200 and namespaces["kind"] == "NamespaceList"
    status, pods = call(server, "GET", PODS + "/")
    assert status == 200 and pods["kind"] == "PodList"
    assert call(server, "GET", "/apis/")[1]["kind"] == "APIGroupList"
