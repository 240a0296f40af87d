"""The served OpenAPI documents describe the API as kube-apiserver's do.

Every served resource has its paths with declared path parameters, list operations
answer the ...List schemas, writes answer 200/201(/202), PATCH takes the four patch
types, every $ref resolves, v2 holds the same paths; the operationIds, paths,
methods, query parameters and response codes match the official client's (which is
generated from kube-apiserver's own document).
"""

import dataclasses
import functools
import json
import pathlib
import re

import falcon.testing
import pytest

from control.api import openapi, openapi_paths
from control.api.app import create_app
from control.objects import kinds, schema
from tests.support.fake_store import FakeStore

BUILTIN = [r for r in kinds.RESOURCES]


def v3(group, version):
    return json.loads(openapi.v3_document(group, version)[0])


def operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method != "parameters":
                yield path, method, item, op


def item_path(r):
    base = f"/apis/{r.group}/{r.version}" if r.group else f"/api/{r.version}"
    ns = "/namespaces/{namespace}" if r.namespaced else ""
    return f"{base}{ns}/{r.plural}"


@pytest.mark.parametrize("resource", BUILTIN, ids=lambda r: f"{r.group or 'core'}/{r.plural}")
def test_every_served_resource_has_its_paths(resource):
    doc = v3(resource.group, resource.version)
    collection = item_path(resource)
    assert ("post" in doc["paths"][collection]) == ("create" in resource.verbs)
    if not resource.stored:
        assert f"{collection}/{{name}}" not in doc["paths"]
        return
    item = doc["paths"][f"{collection}/{{name}}"]
    assert {"get", "put", "patch", "delete"} <= set(item)
    listed = doc["paths"][collection]["get"]
    assert listed["x-kubernetes-action"] == "list"
    if schema.kind_type(resource.api_version, resource.kind) is None:
        pytest.skip(f"k8s_schema.json has no type for {resource.kind}: documented as any object")
    assert listed["responses"]["200"]["content"]["application/json"]["schema"]["$ref"] \
        .endswith(resource.kind + "List")
    for sub in resource.subresources:
        assert f"{collection}/{{name}}/{sub}" in doc["paths"], sub
    if resource.namespaced:
        base = collection.split("/namespaces/")[0]
        everywhere = doc["paths"][f"{base}/{resource.plural}"]["get"]
        assert everywhere["operationId"].endswith(f"{resource.kind}ForAllNamespaces")


@pytest.mark.parametrize("group,version", kinds.group_versions())
def test_path_parameters_declared_and_refs_resolve(group, version):
    doc = v3(group, version)
    schemas = doc["components"]["schemas"]
    for path, method, item, op in operations(doc):
        declared = {p["name"] for p in item.get("parameters", []) + op["parameters"]
                    if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), (path, method)
        assert all(p.get("required") for p in item.get("parameters", []) if p["in"] == "path")
        assert op["responses"]["401"] == {"description": "Unauthorized"}
        assert op["x-kubernetes-group-version-kind"]["version"]
    for ref in re.findall(r'"\$ref":"#/components/schemas/([^"]+)"',
                          openapi.v3_document(group, version)[0].decode()):
        assert ref in schemas, ref


def test_write_responses_and_patch_types():
    doc = v3("apps", "v1")
    collection = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]
    item = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    assert collection["post"]["operationId"] == "createAppsV1NamespacedDeployment"
    assert set(collection["post"]["responses"]) == {"200", "201", "202", "401"}
    assert set(item["put"]["responses"]) == {"200", "201", "401"}
    assert set(item["delete"]["responses"]) == {"200", "202", "401"}
    assert set(item["patch"]["requestBody"]["content"]) == {
        "application/json-patch+json", "application/merge-patch+json",
        "application/strategic-merge-patch+json", "application/apply-patch+yaml"}
    query = {p["name"] for p in collection["get"]["parameters"]}
    assert {"labelSelector", "fieldSelector", "limit", "continue", "resourceVersion",
            "watch", "timeoutSeconds"} <= query
    assert {p["name"] for p in item["patch"]["parameters"]} >= {"dryRun", "fieldManager",
                                                                 "fieldValidation", "force"}
    scale = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["get"]["operationId"] == "readAppsV1NamespacedDeploymentScale"
    assert scale["get"]["x-kubernetes-group-version-kind"]["kind"] == "Scale"


def test_list_fields_carry_the_servers_merge_keys():
    """kubectl apply computes strategic merge patches from these (v3, SMP declared)."""
    spec = v3("", "v1")["components"]["schemas"]["V1PodSpec"]["properties"]
    assert spec["containers"]["x-kubernetes-patch-merge-key"] == "name"
    assert spec["containers"]["x-kubernetes-patch-strategy"] == "merge"
    meta = v3("", "v1")["components"]["schemas"]["V1ObjectMeta"]["properties"]
    assert meta["finalizers"]["x-kubernetes-patch-strategy"] == "merge"


def _snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@functools.cache
def _client_operations():
    """{ClassName.method: (resource path, HTTP method, query names, response codes)}."""
    client = pytest.importorskip("kubernetes.client")
    api_dir = pathlib.Path(client.__file__).parent / "api"
    found = {}
    for path in api_dir.glob("*_api.py"):
        source = path.read_text()
        cls = re.search(r"^class (\w+)", source, re.M).group(1)
        for match in re.finditer(r"    def _(\w+)_serialize\((.*?)(?=\n    @validate_call|\Z)",
                                 source, re.S):
            body = match.group(2)
            resource_path = re.search(r"resource_path='([^']+)'", body)
            method = re.search(r"method='(\w+)'", body)
            if resource_path and method:
                found[f"{cls}.{match.group(1)}"] = (
                    resource_path.group(1), method.group(1),
                    set(re.findall(r"_query_params.append\(\('(\w+)'", body)), set())
        for match in re.finditer(r"    def (\w+)_with_http_info\(.*?_response_types_map: "
                                 r"Dict\[str, Optional\[str\]\] = \{(.*?)\}", source, re.S):
            key = f"{cls}.{match.group(1)}"
            if key in found:
                found[key][3].update(re.findall(r"'(\d+)':", match.group(2)))
    return found


#: Query parameters newer than Kubernetes 1.32 in the client.
NEWER_QUERY = {"shardSelector"}
#: Operations Steersman serves that kube-apiserver does not (its kinds table allows them).
NOT_IN_KUBERNETES = {"deleteCoreV1CollectionNamespace"}


@pytest.mark.parametrize("group,version", kinds.group_versions())
def test_operations_match_the_official_client(group, version):
    client_ops = _client_operations()
    prefix = openapi_paths.group_prefix(group, version)
    for path, method, item, op in operations(v3(group, version)):
        op_id = op["operationId"]
        if op_id in NOT_IN_KUBERNETES or group == "apiextensions.k8s.io":
            continue
        verb = re.match(r"[a-z]+", op_id).group(0)
        assert op_id[len(verb):].startswith(prefix), op_id
        key = f"{prefix}Api.{verb}_{_snake(op_id[len(verb) + len(prefix):])}"
        assert key in client_ops, f"{op_id}: no {key} in the official client"
        their_path, their_method, their_query, their_codes = client_ops[key]
        assert (their_path, their_method) == (path, method.upper()), op_id
        mine = {p["name"] for p in item.get("parameters", []) + op["parameters"]
                if p["in"] == "query"}
        assert mine == their_query - NEWER_QUERY, op_id
        assert set(op["responses"]) == their_codes, op_id


def test_v2_holds_the_same_paths_and_definitions():
    doc = json.loads(openapi.v2_document())
    assert doc["swagger"] == "2.0"
    v3_paths = set()
    for group, version in openapi.group_versions():
        v3_paths |= set(v3(group, version)["paths"])
    assert set(doc["paths"]) == v3_paths
    create = doc["paths"]["/api/v1/namespaces/{namespace}/pods"]["post"]
    body = [p for p in create["parameters"] if p["in"] == "body"]
    assert body[0]["schema"] == {"$ref": "#/definitions/V1Pod"}
    assert create["responses"]["201"]["schema"] == {"$ref": "#/definitions/V1Pod"}
    patch = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" in patch["consumes"]
    text = openapi.v2_document().decode()
    for ref in re.findall(r'"\$ref":"#/definitions/([^"]+)"', text):
        assert ref in doc["definitions"], ref
    assert "#/components/" not in text


@pytest.fixture
def client():
    return falcon.testing.TestClient(create_app(FakeStore()))


def test_v2_answers_json_and_refuses_protobuf_only(client):
    assert client.simulate_get("/openapi/v2").json["swagger"] == "2.0"
    assert client.simulate_get("/openapi/v2", headers={"Accept": "application/json"}) \
        .status_code == 200
    refused = client.simulate_get("/openapi/v2", headers={"Accept": openapi.V2_PROTOBUF})
    assert refused.status_code == 406 and "application/json" in refused.json["message"]
    both = client.simulate_get("/openapi/v2",
                               headers={"Accept": f"{openapi.V2_PROTOBUF}, application/json"})
    assert both.status_code == 200
    assert client.simulate_get("/version").status_code == 200     # still serving


def test_a_registered_source_adds_a_group_version():
    resource = dataclasses.replace(kinds.lookup("", "v1", "configmaps"), group="example.com",
                                   kind="Widget", plural="widgets", subresources=("status",
                                                                                 "scale"))
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "size": {"type": "integer", "nullable": True}}}}}

    def source():
        return [(resource, schema)]
    before = openapi.v3_index()["paths"]
    openapi.register_source(source)
    try:
        index = openapi.v3_index()["paths"]
        assert "apis/example.com/v1" in index and "apis/example.com/v1" not in before
        doc = v3("example.com", "v1")
        collection = doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets"]
        assert collection["get"]["operationId"] == "listExampleComV1NamespacedWidget"
        widget = doc["components"]["schemas"]["com.example.v1.Widget"]
        assert widget["x-kubernetes-group-version-kind"] == [
            {"group": "example.com", "version": "v1", "kind": "Widget"}]
        assert "/apis/example.com/v1/namespaces/{namespace}/widgets/{name}/scale" in doc["paths"]
        v2 = json.loads(openapi.v2_document())
        assert "nullable" not in json.dumps(v2["definitions"]["com.example.v1.Widget"])
        schema["properties"]["spec"]["properties"]["colour"] = {"type": "string"}
        assert openapi.v3_index()["paths"]["apis/example.com/v1"] != \
            index["apis/example.com/v1"]                       # a changed schema, a new hash
    finally:
        openapi.unregister_source(source)
    assert "apis/example.com/v1" not in openapi.v3_index()["paths"]


def test_a_crd_resource_is_documented_from_its_schema():
    """Resources a CRD serves (kinds.TABLE, with ``custom.schema``) get paths and schemas."""
    model = pytest.importorskip("control.api.crd.model")
    crd = {"metadata": {"name": "crontabs.stable.example.com"},
           "spec": {"group": "stable.example.com", "scope": "Namespaced",
                    "names": {"plural": "crontabs", "kind": "CronTab"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "subresources": {"status": {}},
                                  "schema": {"openAPIV3Schema": {
                                      "type": "object", "properties": {"spec": {
                                          "type": "object", "properties": {
                                              "cronSpec": {"type": "string"}}}}}}}]},
           "status": {"conditions": [{"type": "Established", "status": "True"}]}}
    kinds.TABLE.set_custom("crontabs.stable.example.com", model.resources_for(crd))
    try:
        assert "apis/stable.example.com/v1" in openapi.v3_index()["paths"]
        doc = v3("stable.example.com", "v1")
        item = doc["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"]
        assert item["get"]["operationId"] == "readStableExampleComV1NamespacedCronTab"
        assert "/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}/status" \
            in doc["paths"]
        crontab = doc["components"]["schemas"]["com.example.stable.v1.CronTab"]
        assert crontab["properties"]["spec"]["properties"]["cronSpec"] == {"type": "string"}
        assert "com.example.stable.v1.CronTabList" in doc["components"]["schemas"]
    finally:
        kinds.TABLE.remove_custom("crontabs.stable.example.com")
    assert "apis/stable.example.com/v1" not in openapi.v3_index()["paths"]


def test_schemathesis_reads_every_operation_of_v2_and_v3():
    """Both documents load as valid OpenAPI: every operation, no schema errors."""
    schemathesis = pytest.importorskip("schemathesis")
    from schemathesis.core.result import Err
    for document in [json.loads(openapi.v2_document()), v3("", "v1"), v3("apps", "v1")]:
        results = list(schemathesis.openapi.from_dict(document).get_all_operations())
        errors = [r.err() for r in results if isinstance(r, Err)]
        assert not errors, errors[:3]
        assert len(results) > 40


def test_built_in_kinds_advertise_protobuf_custom_ones_do_not():
    pods = json.loads(openapi.v3_document("", "v1")[0])["paths"]
    answers = pods["/api/v1/namespaces/{namespace}/pods"]["get"]["responses"]["200"]["content"]
    assert {"application/vnd.kubernetes.protobuf",
            "application/vnd.kubernetes.protobuf;stream=watch"} <= set(answers)
    crds = json.loads(openapi.v3_document("apiextensions.k8s.io", "v1")[0])["paths"]
    crd_get = crds["/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"]["get"]
    assert "application/vnd.kubernetes.protobuf" not in crd_get["responses"]["200"]["content"]
