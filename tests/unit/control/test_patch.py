"""Merge patch, JSON patch and strategic merge patch, alone and through the API."""

import json

import falcon.testing
import pytest

from control.api.app import create_app
from control.objects.patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from tests.support.fake_store import FakeStore

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "1"},
                                                       "finalizers": ["x"]},
       "spec": {"containers": [
           {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}],
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
           {"name": "side", "image": "busybox", "args": ["sleep", "1"]}]}}


def test_merge_patch_merges_maps_deletes_nulls_replaces_lists():
    result = merge_patch(POD, {"metadata": {"labels": {"a": None, "b": "2"}},
                               "spec": {"containers": [{"name": "only"}]}})
    assert result["metadata"]["labels"] == {"b": "2"}
    assert result["spec"]["containers"] == [{"name": "only"}]
    assert POD["metadata"]["labels"] == {"a": "1"}       # the input is not mutated


def test_json_patch_operations():
    ops = [{"op": "add", "path": "/metadata/labels/b", "value": "2"},
           {"op": "replace", "path": "/spec/containers/0/image", "value": "nginx:2"},
           {"op": "remove", "path": "/spec/containers/1"},
           {"op": "copy", "from": "/metadata/labels/a", "path": "/metadata/labels/c"},
           {"op": "move", "from": "/metadata/labels/c", "path": "/metadata/labels/d"},
           {"op": "add", "path": "/spec/containers/0/env/-", "value": {"name": "C"}},
           {"op": "test", "path": "/metadata/name", "value": "p"}]
    result = json_patch(POD, ops)
    assert result["metadata"]["labels"] == {"a": "1", "b": "2", "d": "1"}
    assert [c["name"] for c in result["spec"]["containers"]] == ["web"]
    assert result["spec"]["containers"][0]["env"][-1] == {"name": "C"}


@pytest.mark.parametrize("ops", [
    [{"op": "remove", "path": "/nope"}],
    [{"op": "test", "path": "/metadata/name", "value": "other"}],
    [{"op": "replace", "path": "/spec/containers/9/image", "value": "x"}],
    [{"op": "frobnicate", "path": "/a"}],
    [{"op": "add", "path": "no-slash", "value": 1}],
    {"op": "add"},
])
def test_json_patch_errors(ops):
    with pytest.raises(PatchError):
        json_patch(POD, ops)


def test_strategic_merge_merges_containers_by_name_and_env_by_name():
    patch = {"spec": {"containers": [
        {"name": "web", "image": "nginx:2", "env": [{"name": "B", "value": "20"},
                                                     {"name": "C", "value": "3"}]},
        {"name": "new", "image": "redis"}]}}
    result = strategic_merge_patch(POD, patch, "V1Pod")
    web, side, new = result["spec"]["containers"]
    assert web["image"] == "nginx:2" and web["ports"] == [{"containerPort": 80}]
    assert web["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "20"},
                          {"name": "C", "value": "3"}]
    assert side["args"] == ["sleep", "1"] and new == {"name": "new", "image": "redis"}


def test_strategic_merge_directives():
    deleted = strategic_merge_patch(POD, {"spec": {"containers": [
        {"name": "side", "$patch": "delete"}]}}, "V1Pod")
    assert [c["name"] for c in deleted["spec"]["containers"]] == ["web"]
    replaced = strategic_merge_patch(POD, {"spec": {"containers": [
        {"name": "solo", "image": "x"}, {"$patch": "replace"}]}}, "V1Pod")
    assert replaced["spec"]["containers"] == [{"name": "solo", "image": "x"}]
    primitive = strategic_merge_patch(POD, {"metadata": {"finalizers": ["y"]}}, "V1Pod")
    assert primitive["metadata"]["finalizers"] == ["x", "y"]
    dropped = strategic_merge_patch(POD, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}, "V1Pod")
    assert dropped["metadata"]["finalizers"] == []
    ordered = strategic_merge_patch(POD, {"$setElementOrder/spec": [], "metadata": {"labels": {"z": "9"}}}, "V1Pod")
    assert "$setElementOrder/spec" not in ordered and ordered["metadata"]["labels"]["z"] == "9"


def test_strategic_merge_service_ports_by_port():
    svc = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}
    result = strategic_merge_patch(svc, {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}},
                                   "V1Service")
    assert result["spec"]["ports"] == [{"port": 80, "targetPort": 9090}, {"port": 443}]


@pytest.fixture
def client():
    return falcon.testing.TestClient(create_app(FakeStore()))


def send_patch(client, url, body, content_type):
    return client.simulate_patch(url, body=json.dumps(body),
                                 headers={"Content-Type": content_type})


def test_patch_through_the_api(client):
    url = "/api/v1/namespaces/default/pods"
    assert client.simulate_post(url, json=POD).status_code == 201
    merged = send_patch(client, f"{url}/p", {"metadata": {"labels": {"b": "2"}}}, "application/merge-patch+json")
    assert merged.status_code == 200 and merged.json["metadata"]["labels"] == {"a": "1", "b": "2"}
    strategic = send_patch(client,
        f"{url}/p", {"spec": {"containers": [{"name": "web", "image": "nginx:3"}]}}, "application/strategic-merge-patch+json")
    assert [c["image"] for c in strategic.json["spec"]["containers"]] == ["nginx:3", "busybox"]
    assert strategic.json["metadata"]["generation"] == 2
    status = send_patch(client, f"{url}/p/status", {"status": {"phase": "Running"}}, "application/merge-patch+json")
    assert status.json["status"] == {"phase": "Running"}
    bad = send_patch(client, f"{url}/p", [{"op": "remove", "path": "/nope"}], "application/json-patch+json")
    assert bad.status_code == 422 and bad.json["kind"] == "Status"
    stale = send_patch(client, f"{url}/p", {"metadata": {"resourceVersion": "1"}}, "application/merge-patch+json")
    assert stale.status_code == 409
    apply = client.simulate_patch(f"{url}/p", body="metadata: {}",
                                  headers={"Content-Type": "application/apply-patch+yaml"})
    assert apply.status_code == 422 and "fieldManager" in apply.json["message"]
    missing = send_patch(client, f"{url}/missing", {}, "application/merge-patch+json")
    assert missing.status_code == 404


# -- caps against hostile patches (issue 10) ------------------------------------------
def test_json_patch_copy_bomb_stops_at_the_copy_cap():
    from control.objects.patch import PatchError, json_patch
    doc = {"data": {"a": "x" * 100}}
    bomb = [{"op": "copy", "from": "/data", "path": f"/data/k{n}"} for n in range(60)]
    with pytest.raises(PatchError, match="copy"):
        json_patch(doc, bomb, max_copied_bytes=100_000)


def test_json_patch_operation_count_is_capped():
    from control.objects.patch import PatchError, json_patch
    ops = [{"op": "test", "path": "/a", "value": 1}] * 11
    with pytest.raises(PatchError, match="at most 10"):
        json_patch({"a": 1}, ops, max_operations=10)
    assert json_patch({"a": 1}, ops[:10], max_operations=10) == {"a": 1}


def test_json_patch_paths_must_be_strings():
    from control.objects.patch import PatchError, json_patch
    with pytest.raises(PatchError, match="strings"):
        json_patch({}, [{"op": "add", "path": 5, "value": 1}])
