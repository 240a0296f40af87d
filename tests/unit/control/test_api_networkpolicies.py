"""networking.k8s.io/v1 NetworkPolicies over the API: discovery, defaults, validation, Table, RBAC."""

import json

import falcon.testing
import pytest

from control.api import openapi
from control.api.app import create_app
from control.api.auth import bootstrap
from tests.support.fake_store import FakeStore
from tests.unit.control.auth.test_api_authz import As, binding, make_client, namespace

GROUP = "/apis/networking.k8s.io/v1"
POLICIES = f"{GROUP}/namespaces/default/networkpolicies"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"


def network_policy(name="web", **spec):
    spec.setdefault("podSelector", {"matchLabels": {"app": "web"}})
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name}, "spec": spec}


@pytest.fixture
def client():
    return falcon.testing.TestClient(create_app(FakeStore()))


def test_discovery_lists_the_group_and_resource(client):
    groups = {g["name"]: g for g in client.simulate_get("/apis").json["groups"]}
    assert groups["networking.k8s.io"]["preferredVersion"]["groupVersion"] == \
        "networking.k8s.io/v1"
    resources = client.simulate_get(GROUP).json["resources"]
    assert ("networkpolicies", "NetworkPolicy", True, ["netpol"]) in \
        [(r["name"], r["kind"], r["namespaced"], r.get("shortNames")) for r in resources]


def test_openapi_has_the_kind():
    body, _ = openapi.v3_document("networking.k8s.io", "v1")
    doc = json.loads(body)
    assert "/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies" in doc["paths"]
    assert doc["components"]["schemas"]["V1NetworkPolicy"]["x-kubernetes-group-version-kind"] \
        == [{"group": "networking.k8s.io", "version": "v1", "kind": "NetworkPolicy"}]


def test_create_defaults_policy_types_ports_and_selector(client):
    created = client.simulate_post(POLICIES, json=network_policy(
        egress=[{"ports": [{"port": 53}]}], ingress=[{"ports": [{"port": "http"}]}]))
    assert created.status_code == 201, created.text
    spec = created.json["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["egress"][0]["ports"] == [{"port": 53, "protocol": "TCP"}]
    assert spec["ingress"][0]["ports"] == [{"port": "http", "protocol": "TCP"}]
    bare = client.simulate_post(POLICIES, json={"metadata": {"name": "all"}, "spec": {}})
    assert bare.status_code == 201, bare.text
    assert bare.json["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    explicit = client.simulate_post(POLICIES, json=network_policy("eg", policyTypes=["Egress"]))
    assert explicit.json["spec"]["policyTypes"] == ["Egress"]
    assert len(client.simulate_get(f"{GROUP}/networkpolicies").json["items"]) == 3


def _causes(response):
    assert response.status_code == 422, response.text
    return {(c["field"], c["reason"]): c["message"] for c in response.json["details"]["causes"]}


def _ingress_port(port):
    return network_policy(ingress=[{"ports": [port]}])


def _ingress_peer(peer):
    return network_policy(ingress=[{"from": [peer]}])


@pytest.mark.parametrize("body, field, reason, words", [
    (network_policy(policyTypes=["Ingress", "Sideways"]), "spec.policyTypes[1]",
     "FieldValueNotSupported", 'Unsupported value: "Sideways": supported values: '
     '"Ingress", "Egress"'),
    (network_policy(policyTypes=["Ingress", "Egress", "Ingress"]), "spec.policyTypes",
     "FieldValueInvalid", "may not specify more than two policyTypes"),
    (network_policy(podSelector={"matchLabels": {"bad key!": "x"}}),
     "spec.podSelector.matchLabels", "FieldValueInvalid", "name part must consist of"),
    (_ingress_port({"protocol": "ICMP", "port": 1}), "spec.ingress[0].ports[0].protocol",
     "FieldValueNotSupported", 'supported values: "TCP", "UDP", "SCTP"'),
    (_ingress_port({"port": 70000}), "spec.ingress[0].ports[0].port", "FieldValueInvalid",
     "must be between 1 and 65535, inclusive"),
    (_ingress_port({"port": 9000, "endPort": 8000}), "spec.ingress[0].ports[0].endPort",
     "FieldValueInvalid", "must be greater than or equal to `port`"),
    (_ingress_port({"port": "http", "endPort": 8000}), "spec.ingress[0].ports[0].endPort",
     "FieldValueInvalid", "may not be specified when `port` is non-numeric"),
    (_ingress_port({"endPort": 8000}), "spec.ingress[0].ports[0].endPort",
     "FieldValueInvalid", "may not be specified when `port` is not specified"),
    (_ingress_port({"port": "Not_A-Name"}), "spec.ingress[0].ports[0].port",
     "FieldValueInvalid", "must contain only alpha-numeric characters"),
    (_ingress_port({"port": "80"}), "spec.ingress[0].ports[0].port",
     "FieldValueInvalid", "must contain at least one letter (a-z)"),
    (_ingress_peer({}), "spec.ingress[0].from[0]", "FieldValueRequired", "must specify a peer"),
    (_ingress_peer({"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}),
     "spec.ingress[0].from[0]", "FieldValueForbidden",
     "may not specify both ipBlock and another peer"),
    (_ingress_peer({"ipBlock": {"cidr": "10.0.0.0/33"}}), "spec.ingress[0].from[0].ipBlock.cidr",
     "FieldValueInvalid", "must be a valid CIDR value"),
    (_ingress_peer({"ipBlock": {"cidr": ""}}), "spec.ingress[0].from[0].ipBlock.cidr",
     "FieldValueRequired", "Required value"),
    (_ingress_peer({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}),
     "spec.ingress[0].from[0].ipBlock.except[0]", "FieldValueInvalid",
     "must be a strict subset of `cidr`"),
    (_ingress_peer({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}}),
     "spec.ingress[0].from[0].ipBlock.except[0]", "FieldValueInvalid",
     "must be a strict subset of `cidr`"),
    (network_policy(egress=[{"to": [{"namespaceSelector": {"matchExpressions": [
        {"key": "team", "operator": "In"}]}}]}]),
     "spec.egress[0].to[0].namespaceSelector.matchExpressions[0].values",
     "FieldValueRequired", "must be specified when `operator` is 'In' or 'NotIn'"),
], ids=["policy type", "three types", "selector key", "protocol", "port number", "endPort below",
        "endPort named", "endPort alone", "port name chars", "port name digits", "empty peer",
        "ipBlock and selector", "bad cidr", "no cidr", "except outside", "except equal",
        "egress selector"])
def test_invalid_policies_get_422_naming_the_field(client, body, field, reason, words):
    causes = _causes(client.simulate_post(POLICIES, json=body))
    assert (field, reason) in causes, causes
    assert words in causes[(field, reason)]


def test_valid_peers_and_ports_are_accepted(client):
    body = network_policy(ingress=[{"from": [
        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.2.0.0/24"]}},
        {"ipBlock": {"cidr": "fd00::/8", "except": ["fd00::/16"]}},
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "a"}}}],
        "ports": [{"port": 8000, "endPort": 8080}, {"protocol": "SCTP"}, {"port": "metrics"}]}])
    response = client.simulate_post(POLICIES, json=body)
    assert response.status_code == 201, response.text


def test_spec_changes_bump_generation(client):
    created = client.simulate_post(POLICIES, json=network_policy()).json
    assert created["metadata"]["generation"] == 1
    created["spec"]["ingress"] = [{}]
    updated = client.simulate_put(f"{POLICIES}/web", json=created)
    assert updated.status_code == 200, updated.text
    assert updated.json["metadata"]["generation"] == 2


def test_table_has_kubectl_columns(client):
    client.simulate_post(POLICIES, json=network_policy())
    client.simulate_post(POLICIES, json=network_policy("all", podSelector={}))
    table = client.simulate_get(POLICIES, headers={"Accept": TABLE}).json
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Pod-Selector", "Age"]
    rows = {r["cells"][0]: r["cells"][1] for r in table["rows"]}
    assert rows == {"web": "app=web", "all": "<none>"}


def test_rbac_bootstrap_roles():
    def grants(rules):
        return [r for r in rules if "networking.k8s.io" in r["apiGroups"]]
    assert grants(bootstrap.VIEW_RULES)[0]["verbs"] == ["get", "list", "watch"]
    assert {"create", "update", "patch", "delete"} <= set(grants(bootstrap.EDIT_RULES)[0]["verbs"])
    node = grants(bootstrap.CLUSTER_ROLES["system:node"][0]["rules"])
    assert node and set(node[0]["verbs"]) == {"get", "list", "watch"}


@pytest.mark.parametrize("who, role, method, path, code", [
    ("alice", "view", "GET", f"{GROUP}/namespaces/team/networkpolicies", 200),
    ("alice", "view", "POST", f"{GROUP}/namespaces/team/networkpolicies", 403),
    ("alice", "edit", "POST", f"{GROUP}/namespaces/team/networkpolicies", 201),
    ("alice", "admin", "POST", f"{GROUP}/namespaces/team/networkpolicies", 201),
    ("n1", None, "GET", f"{GROUP}/networkpolicies", 200),
    ("n1", None, "DELETE", f"{GROUP}/namespaces/team/networkpolicies/x", 403),
    ("bob", None, "GET", f"{GROUP}/namespaces/team/networkpolicies", 403),
], ids=["viewer reads", "viewer cannot write", "editor writes", "admin writes", "node lists",
        "node cannot delete", "stranger cannot read"])
def test_who_may_read_and_write_policies(tmp_path, who, role, method, path, code):
    authz_client = make_client(tmp_path)
    admin = As(authz_client, "admin")
    admin.simulate_post("/api/v1/namespaces", json=namespace("team"))
    if role:
        admin.simulate_post("/apis/rbac.authorization.k8s.io/v1/namespaces/team/rolebindings",
                            json=binding(f"{who}-{role}", role, "User", who, "team"))
    body = network_policy() if method == "POST" else None
    response = As(authz_client, who).simulate_request(method, path, json=body)
    assert response.status_code == code, response.text
