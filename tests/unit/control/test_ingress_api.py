"""networking.k8s.io/v1 Ingress and IngressClass over the API: validation, status, Table."""

import falcon.testing
import pytest

from control.api.app import create_app
from tests.support.fake_store import FakeStore

GROUP = "/apis/networking.k8s.io/v1"
INGRESSES = f"{GROUP}/namespaces/default/ingresses"
CLASSES = f"{GROUP}/ingressclasses"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"


def backend(name="web", number=80, port_name=None):
    port = {"name": port_name} if port_name else {"number": number}
    return {"service": {"name": name, "port": port}}


def ingress(name="web", rules=None, **spec):
    if rules is None:
        rules = [{"host": "a.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": backend()}]}}]
    spec = {"rules": rules, **spec} if rules else spec
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name}, "spec": spec}


def path_rule(path="/", path_type="Prefix", back=None, host="a.example.com"):
    entry = {"path": path, "backend": back or backend()}
    if path_type is not None:
        entry["pathType"] = path_type
    rule = {"http": {"paths": [entry]}}
    if host:
        rule["host"] = host
    return [rule]


def ingress_class(name="steer", controller="steersman.io/ingress-nginx", **spec):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": name}, "spec": {"controller": controller, **spec}}


@pytest.fixture
def client():
    return falcon.testing.TestClient(create_app(FakeStore()))


def _causes(response):
    assert response.status_code == 422, response.text
    return [(c["field"], c["reason"], c["message"]) for c in response.json["details"]["causes"]]


P0 = "spec.rules[0].http.paths[0]"
INVALID_INGRESSES = [
    ("no rules, no default", ingress(rules=[]), "spec", "FieldValueInvalid",
     "either `defaultBackend` or `rules` must be specified"),
    ("pathType missing", ingress(rules=path_rule(path_type=None)), f"{P0}.pathType",
     "FieldValueRequired", "pathType must be specified"),
    ("pathType unknown", ingress(rules=path_rule(path_type="Regex")), f"{P0}.pathType",
     "FieldValueNotSupported", '"Exact", "ImplementationSpecific", "Prefix"'),
    ("relative Prefix", ingress(rules=path_rule("foo")), f"{P0}.path", "FieldValueInvalid",
     "must be an absolute path"),
    ("relative ImplementationSpecific",
     ingress(rules=path_rule("foo", "ImplementationSpecific")), f"{P0}.path",
     "FieldValueInvalid", "must be an absolute path"),
    ("double slash", ingress(rules=path_rule("/a//b", "Exact")), f"{P0}.path",
     "FieldValueInvalid", "must not contain '//'"),
    ("dot dot", ingress(rules=path_rule("/a/../b")), f"{P0}.path", "FieldValueInvalid",
     "must not contain '/../'"),
    ("encoded slash", ingress(rules=path_rule("/a%2fb")), f"{P0}.path", "FieldValueInvalid",
     "must not contain '%2f'"),
    ("ends in /.", ingress(rules=path_rule("/a/.")), f"{P0}.path", "FieldValueInvalid",
     "cannot end with '/.'"),
    ("both backends", ingress(rules=path_rule(back={**backend(), "resource": {
        "kind": "Bucket", "name": "b", "apiGroup": "example.com"}})), f"{P0}.backend",
     "FieldValueInvalid", "cannot set both resource and service backends"),
    ("no backend", ingress(rules=path_rule(back={"x": 1})), f"{P0}.backend",
     "FieldValueInvalid", "resource or service backend is required"),
    ("port name and number", ingress(rules=path_rule(back={"service": {
        "name": "web", "port": {"name": "http", "number": 80}}})), f"{P0}.backend",
     "FieldValueInvalid", "cannot set both port name & port number"),
    ("no port", ingress(rules=path_rule(back={"service": {"name": "web", "port": {}}})),
     f"{P0}.backend", "FieldValueRequired", "port name or number is required"),
    ("port out of range", ingress(rules=path_rule(back=backend(number=70000))),
     f"{P0}.backend.service.port.number", "FieldValueInvalid", "between 1 and 65535"),
    ("bad port name", ingress(rules=path_rule(back=backend(port_name="HTTP_x"))),
     f"{P0}.backend.service.port.name", "FieldValueInvalid", "alpha-numeric"),
    ("service name not a DNS label", ingress(rules=path_rule(back=backend("Web.app"))),
     f"{P0}.backend.service.name", "FieldValueInvalid", "DNS-1035 label"),
    ("host an IP", ingress(rules=path_rule(host="10.0.0.1")), "spec.rules[0].host",
     "FieldValueInvalid", "must be a DNS name, not an IP address"),
    ("wildcard not first", ingress(rules=path_rule(host="a.*.example.com")),
     "spec.rules[0].host", "FieldValueInvalid", "wildcard DNS-1123 subdomain"),
    ("uppercase host", ingress(rules=path_rule(host="A.example.com")), "spec.rules[0].host",
     "FieldValueInvalid", "RFC 1123 subdomain"),
    ("no paths", ingress(rules=[{"host": "a.example.com", "http": {"paths": []}}]),
     "spec.rules[0].http.paths", "FieldValueRequired", "Required value"),
    ("tls host", ingress(tls=[{"hosts": ["*.*.example.com"], "secretName": "t"}]),
     "spec.tls[0].hosts[0]", "FieldValueInvalid", "wildcard DNS-1123 subdomain"),
    ("tls secret name", ingress(tls=[{"hosts": ["a.example.com"], "secretName": "Bad_Name"}]),
     "spec.tls[0].secretName", "FieldValueInvalid", "RFC 1123 subdomain"),
    ("class name", ingress(ingressClassName="Steer!"), "spec.ingressClassName",
     "FieldValueInvalid", "RFC 1123 subdomain"),
    ("resource without kind", ingress(rules=[], defaultBackend={"resource": {"name": "b"}}),
     "spec.defaultBackend.resource.kind", "FieldValueRequired", "Required value"),
]


@pytest.mark.parametrize("case,body,field,reason,text", INVALID_INGRESSES,
                         ids=[c[0] for c in INVALID_INGRESSES])
def test_invalid_ingress_is_a_422_naming_the_field(client, case, body, field, reason, text):
    causes = _causes(client.simulate_post(INGRESSES, json=body))
    assert any(f == field and r == reason and text in m for f, r, m in causes), causes
    # The server still serves after refusing it.
    assert client.simulate_get(INGRESSES).status_code == 200


VALID_INGRESSES = [
    ingress(),
    ingress(rules=path_rule("/api", "Exact")),
    ingress(rules=path_rule("/a/b", "ImplementationSpecific", host="*.example.com")),
    ingress(rules=path_rule("", "ImplementationSpecific", host="")),
    ingress(rules=[], defaultBackend=backend(port_name="http")),
    ingress(rules=[], defaultBackend={"resource": {"apiGroup": "example.com",
                                                   "kind": "Bucket", "name": "static"}}),
    ingress(tls=[{"hosts": ["a.example.com", "*.b.example.com"], "secretName": "tls"}],
            ingressClassName="steer"),
]


@pytest.mark.parametrize("body", VALID_INGRESSES)
def test_valid_ingress_is_created(client, body):
    created = client.simulate_post(INGRESSES, json=body)
    assert created.status_code == 201, created.text


INVALID_CLASSES = [
    (ingress_class(controller=""), "spec.controller", "FieldValueRequired"),
    (ingress_class(controller="nginx"), "spec.controller", "FieldValueInvalid"),
    (ingress_class(controller="Example.com/x"), "spec.controller", "FieldValueInvalid"),
    (ingress_class(controller="example.com/a b"), "spec.controller", "FieldValueInvalid"),
    (ingress_class(controller="example.com/" + "x" * 250), "spec.controller",
     "FieldValueTooLong"),
    (ingress_class(parameters={"kind": "Params", "name": "p", "scope": "Namespace"}),
     "spec.parameters.namespace", "FieldValueRequired"),
    (ingress_class(parameters={"kind": "Params", "name": "p", "scope": "Cluster",
                               "namespace": "x"}), "spec.parameters.namespace",
     "FieldValueForbidden"),
    (ingress_class(parameters={"kind": "Params", "name": "p", "scope": "Everywhere"}),
     "spec.parameters.scope", "FieldValueNotSupported"),
]


@pytest.mark.parametrize("body,field,reason", INVALID_CLASSES)
def test_invalid_ingress_class_is_a_422(client, body, field, reason):
    causes = _causes(client.simulate_post(CLASSES, json=body))
    assert any(f == field and r == reason for f, r, _ in causes), causes


def test_ingress_class_controller_is_immutable(client):
    created = client.simulate_post(CLASSES, json=ingress_class())
    assert created.status_code == 201, created.text
    changed = dict(created.json, spec={"controller": "example.com/other"})
    causes = _causes(client.simulate_put(f"{CLASSES}/steer", json=changed))
    assert ("spec.controller", "FieldValueInvalid") in [(f, r) for f, r, _ in causes]
    assert "field is immutable" in causes[0][2]
    relabelled = dict(created.json, metadata={**created.json["metadata"],
                                              "labels": {"a": "b"}})
    assert client.simulate_put(f"{CLASSES}/steer", json=relabelled).status_code == 200


def test_status_subresource_sets_the_address_and_is_validated(client):
    created = client.simulate_post(INGRESSES, json=ingress(tls=[{"secretName": "t"}],
                                                           ingressClassName="steer"))
    assert created.status_code == 201, created.text
    body = dict(created.json, status={"loadBalancer": {"ingress": [{"ip": "10.0.0.7"},
                                                                   {"ip": "10.0.0.8"}]}})
    # A write of the main resource keeps the stored (empty) status.
    assert client.simulate_put(f"{INGRESSES}/web", json=body).json.get("status", {}) in \
        ({}, {"loadBalancer": {}})
    updated = client.simulate_put(f"{INGRESSES}/web/status", json=body)
    assert updated.status_code == 200, updated.text
    assert updated.json["status"]["loadBalancer"]["ingress"][1]["ip"] == "10.0.0.8"
    bad = dict(updated.json, status={"loadBalancer": {"ingress": [{"ip": "10.0.0.300"}]}})
    causes = _causes(client.simulate_put(f"{INGRESSES}/web/status", json=bad))
    assert causes[0][0] == "status.loadBalancer.ingress[0].ip"

    table = client.simulate_get(INGRESSES, headers={"Accept": TABLE}).json
    assert [c["name"] for c in table["columnDefinitions"]] == \
        ["Name", "Class", "Hosts", "Address", "Ports", "Age"]
    assert table["rows"][0]["cells"][:5] == ["web", "steer", "a.example.com",
                                             "10.0.0.7,10.0.0.8", "80, 443"]


def test_table_hosts_are_cut_at_three_and_a_class_table_names_the_controller(client):
    rules = [{"host": f"h{i}.example.com", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": backend()}]}} for i in range(5)]
    assert client.simulate_post(INGRESSES, json=ingress("many", rules=rules)).status_code == 201
    assert client.simulate_post(INGRESSES, json=ingress(
        "star", rules=path_rule(host=""))).status_code == 201
    rows = {r["cells"][0]: r["cells"] for r in
            client.simulate_get(INGRESSES, headers={"Accept": TABLE}).json["rows"]}
    assert rows["many"][1:5] == ["<none>", "h0.example.com,h1.example.com,h2.example.com "
                                 "+ 2 more...", "", "80"]
    assert rows["star"][2] == "*"
    assert client.simulate_post(CLASSES, json=ingress_class()).status_code == 201
    table = client.simulate_get(CLASSES, headers={"Accept": TABLE}).json
    assert [c["name"] for c in table["columnDefinitions"]] == \
        ["Name", "Controller", "Parameters", "Age"]
    assert table["rows"][0]["cells"][:3] == ["steer", "steersman.io/ingress-nginx", "<none>"]
