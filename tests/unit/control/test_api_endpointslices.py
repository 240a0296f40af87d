"""discovery.k8s.io/v1 EndpointSlices over the API: discovery, CRUD, validation, watch, Table."""

import json

import falcon.testing
import pytest

from control.api import openapi
from control.api.app import create_app
from control.api.auth import bootstrap
from tests.support.fake_store import FakeStore
from tests.unit.control.auth.test_api_authz import As, binding, make_client, namespace

GROUP = "/apis/discovery.k8s.io/v1"
SLICES = f"{GROUP}/namespaces/default/endpointslices"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"


def endpoint_slice(name="web-abc", address_type="IPv4", endpoints=None, ports=None):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": address_type,
            "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": True},
                           "nodeName": "n1", "zone": "z1",
                           "targetRef": {"kind": "Pod", "namespace": "default", "name": "p"}}]
            if endpoints is None else endpoints,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
            if ports is None else ports}


@pytest.fixture
def client():
    return falcon.testing.TestClient(create_app(FakeStore()))


def test_discovery_lists_the_group_and_resource(client):
    groups = {g["name"]: g for g in client.simulate_get("/apis").json["groups"]}
    assert groups["discovery.k8s.io"]["preferredVersion"]["groupVersion"] == \
        "discovery.k8s.io/v1"
    resources = client.simulate_get(GROUP).json["resources"]
    assert [(r["name"], r["kind"], r["namespaced"]) for r in resources] == \
        [("endpointslices", "EndpointSlice", True)]
    assert set(resources[0]["verbs"]) == {"create", "delete", "deletecollection", "get",
                                          "list", "patch", "update", "watch"}


def test_openapi_has_the_kind():
    body, _ = openapi.v3_document("discovery.k8s.io", "v1")
    doc = json.loads(body)
    assert "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices" in doc["paths"]
    schema = doc["components"]["schemas"]["V1EndpointSlice"]
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": "discovery.k8s.io", "version": "v1", "kind": "EndpointSlice"}]


def test_create_defaults_ports_get_list_by_label_and_everywhere(client):
    created = client.simulate_post(SLICES, json=endpoint_slice(ports=[{"port": 53,
                                                                      "protocol": None}]))
    assert created.status_code == 201, created.text
    assert created.json["ports"] == [{"name": "", "port": 53, "protocol": "TCP"}]
    assert created.json["metadata"]["generation"] == 1
    got = client.simulate_get(f"{SLICES}/web-abc").json
    assert got["endpoints"][0]["zone"] == "z1"
    listed = client.simulate_get(SLICES, params={
        "labelSelector": "kubernetes.io/service-name=web"}).json
    assert listed["kind"] == "EndpointSliceList" and len(listed["items"]) == 1
    assert client.simulate_get(SLICES, params={
        "labelSelector": "kubernetes.io/service-name=other"}).json["items"] == []
    assert len(client.simulate_get(f"{GROUP}/endpointslices").json["items"]) == 1


def _causes(response):
    assert response.status_code == 422, response.text
    return {(c["field"], c["reason"]): c["message"] for c in response.json["details"]["causes"]}


@pytest.mark.parametrize("body, field, reason, words", [
    (endpoint_slice(address_type="IPv5"), "addressType", "FieldValueNotSupported",
     'Unsupported value: "IPv5": supported values: "FQDN", "IPv4", "IPv6"'),
    (endpoint_slice(address_type=""), "addressType", "FieldValueRequired", "Required value"),
    (endpoint_slice(endpoints=[{"addresses": []}]), "endpoints[0].addresses",
     "FieldValueRequired", "must contain at least 1 address"),
    (endpoint_slice(endpoints=[{"addresses": ["10.0.0.1"] * 101}]), "endpoints[0].addresses",
     "FieldValueTooMany", "Too many: 101: must have at most 100 items"),
    (endpoint_slice(endpoints=[{"addresses": ["fe80::1"]}]), "endpoints[0].addresses[0]",
     "FieldValueInvalid", "must be a valid IPv4 address"),
    (endpoint_slice(endpoints=[{"addresses": ["127.0.0.1"]}]), "endpoints[0].addresses[0]",
     "FieldValueInvalid", "may not be in the loopback range"),
    (endpoint_slice(address_type="IPv6", endpoints=[{"addresses": ["fe80::1"]}]),
     "endpoints[0].addresses[0]", "FieldValueInvalid", "may not be in the link-local range"),
    (endpoint_slice(address_type="FQDN", endpoints=[{"addresses": ["localhost"]}]),
     "endpoints[0].addresses[0]", "FieldValueInvalid", "at least two segments"),
    (endpoint_slice(ports=[{"name": "a", "port": 1}, {"name": "a", "port": 2}]),
     "ports[1].name", "FieldValueDuplicate", 'Duplicate value: "a"'),
    (endpoint_slice(ports=[{"name": "Bad_Name", "port": 1}]), "ports[0].name",
     "FieldValueInvalid", "RFC 1123 label"),
    (endpoint_slice(ports=[{"name": "a", "port": 1, "protocol": "ICMP"}]), "ports[0].protocol",
     "FieldValueNotSupported", '"SCTP", "TCP", "UDP"'),
    (endpoint_slice(endpoints=[{"addresses": ["10.0.0.1"], "hostname": "Not.A.Label"}]),
     "endpoints[0].hostname", "FieldValueInvalid", "RFC 1123 label"),
    (endpoint_slice(endpoints=[{"addresses": ["10.0.0.1"], "hints": {
        "forZones": [{"name": "a"}, {"name": "a"}]}}]),
     "endpoints[0].hints.forZones[1].name", "FieldValueDuplicate", 'Duplicate value: "a"'),
    (endpoint_slice(endpoints=[{"addresses": ["10.0.0.1"], "hints": {
        "forZones": [{"name": f"z{i}"} for i in range(9)]}}]),
     "endpoints[0].hints.forZones", "FieldValueTooMany", "must have at most 8 items"),
], ids=["bad type", "no type", "no address", "101 addresses", "v6 in v4", "loopback",
        "link-local", "fqdn one label", "duplicate port", "port name", "protocol", "hostname",
        "duplicate zone hint", "nine zone hints"])
def test_invalid_slices_get_422_naming_the_field(client, body, field, reason, words):
    causes = _causes(client.simulate_post(SLICES, json=body))
    assert (field, reason) in causes, causes
    assert words in causes[(field, reason)]


def test_more_than_1000_endpoints_is_refused(client):
    body = endpoint_slice(endpoints=[{"addresses": [f"10.1.{i // 250}.{i % 250 + 1}"]}
                                     for i in range(1001)])
    response = client.simulate_post(SLICES, json=body)
    causes = _causes(response)
    assert causes[("endpoints", "FieldValueTooMany")] == \
        "Too many: 1001: must have at most 1000 items"
    assert response.json["message"].startswith('EndpointSlice "web-abc" is invalid: endpoints')
    ok = endpoint_slice(endpoints=body["endpoints"][:1000])
    assert client.simulate_post(SLICES, json=ok).status_code == 201


def test_address_type_is_immutable_and_content_changes_bump_generation(client):
    created = client.simulate_post(SLICES, json=endpoint_slice()).json
    changed = {**created, "addressType": "FQDN",
               "endpoints": [{"addresses": ["web.example.com"]}]}
    causes = _causes(client.simulate_put(f"{SLICES}/web-abc", json=changed))
    assert causes[("addressType", "FieldValueInvalid")] == \
        'Invalid value: "FQDN": field is immutable'
    relabelled = json.loads(json.dumps(created))
    relabelled["metadata"]["labels"]["extra"] = "x"
    after_label = client.simulate_put(f"{SLICES}/web-abc", json=relabelled).json
    assert after_label["metadata"]["generation"] == 1
    after_label["endpoints"][0]["conditions"]["ready"] = False
    after_change = client.simulate_put(f"{SLICES}/web-abc", json=after_label)
    assert after_change.status_code == 200, after_change.text
    assert after_change.json["metadata"]["generation"] == 2
    patched = client.simulate_patch(
        f"{SLICES}/web-abc", body=json.dumps({"endpoints": [{"addresses": ["10.244.1.6"]}]}),
        headers={"Content-Type": "application/merge-patch+json"})
    assert patched.status_code == 200, patched.text
    assert patched.json["endpoints"] == [{"addresses": ["10.244.1.6"]}]
    assert client.simulate_delete(f"{SLICES}/web-abc").status_code == 200
    assert client.simulate_get(f"{SLICES}/web-abc").status_code == 404


def test_watch_streams_slice_events(client):
    created = client.simulate_post(SLICES, json=endpoint_slice()).json
    rv = created["metadata"]["resourceVersion"]
    client.simulate_delete(f"{SLICES}/web-abc")
    streamed = client.simulate_get(SLICES, params={
        "watch": "true", "resourceVersion": str(int(rv) - 1), "timeoutSeconds": "1"})
    events = [json.loads(line) for line in streamed.text.splitlines()]
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]
    assert events[0]["object"]["kind"] == "EndpointSlice"


def test_table_has_kubectl_columns(client):
    many = [{"addresses": [f"10.244.0.{i}"]} for i in range(1, 6)]
    client.simulate_post(SLICES, json=endpoint_slice(
        "web-many", endpoints=many,
        ports=[{"name": n, "port": p} for n, p in (("a", 1), ("b", 2), ("c", 3), ("d", 4))]))
    client.simulate_post(SLICES, json=endpoint_slice("web-empty", endpoints=[], ports=[]))
    client.simulate_post(SLICES, json=endpoint_slice("web-named", ports=[{"name": "dns"}]))
    table = client.simulate_get(SLICES, headers={"Accept": TABLE}).json
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == \
        ["Name", "AddressType", "Ports", "Endpoints", "Age"]
    rows = {r["cells"][0]: r["cells"][1:4] for r in table["rows"]}
    assert rows["web-many"] == ["IPv4", "1,2,3 + 1 more...",
                                "10.244.0.1,10.244.0.2,10.244.0.3 + 2 more..."]
    assert rows["web-empty"] == ["IPv4", "<unset>", "<unset>"]
    assert rows["web-named"] == ["IPv4", "dns", "10.244.1.5"]


def test_rbac_bootstrap_grants_reads_and_the_controller_role():
    view = [r for r in bootstrap.VIEW_RULES if "discovery.k8s.io" in r["apiGroups"]]
    assert view == [{"verbs": ["get", "list", "watch"], "apiGroups": ["discovery.k8s.io"],
                     "resources": ["endpointslices"]}]
    assert not [r for r in bootstrap.EDIT_RULES if "discovery.k8s.io" in r["apiGroups"]]
    role = bootstrap.CLUSTER_ROLES["system:controller:endpointslice-controller"][0]
    slices = [r for r in role["rules"] if r["apiGroups"] == ["discovery.k8s.io"]][0]
    assert {"create", "update", "delete", "list", "watch"} <= set(slices["verbs"])
    for name in ("system:node-proxier", "system:node"):
        rules = bootstrap.CLUSTER_ROLES[name][0]["rules"]
        assert any(r["apiGroups"] == ["discovery.k8s.io"] and "watch" in r["verbs"]
                   for r in rules)


@pytest.mark.parametrize("who, method, path, code", [
    ("alice", "GET", "/apis/discovery.k8s.io/v1/namespaces/team/endpointslices", 200),
    ("alice", "POST", "/apis/discovery.k8s.io/v1/namespaces/team/endpointslices", 403),
    ("n1", "GET", "/apis/discovery.k8s.io/v1/endpointslices", 200),
    ("n1", "DELETE", "/apis/discovery.k8s.io/v1/namespaces/team/endpointslices/x", 403),
    ("bob", "GET", "/apis/discovery.k8s.io/v1/namespaces/team/endpointslices", 403),
], ids=["viewer reads", "viewer cannot write", "node reads", "node cannot delete",
        "stranger cannot read"])
def test_who_may_read_and_write_slices(tmp_path, who, method, path, code):
    authz_client = make_client(tmp_path)
    admin = As(authz_client, "admin")
    admin.simulate_post("/api/v1/namespaces", json=namespace("team"))
    admin.simulate_post("/apis/rbac.authorization.k8s.io/v1/namespaces/team/rolebindings",
                        json=binding("alice-view", "view", "User", "alice", "team"))
    body = endpoint_slice() if method == "POST" else None
    response = As(authz_client, who).simulate_request(method, path, json=body)
    assert response.status_code == code, response.text
