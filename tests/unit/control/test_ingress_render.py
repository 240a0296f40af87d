"""The Ingress controller's nginx.conf: hosts, path types and order, TLS, default backend."""

import re

from control.addons.ingress.backends import ready_addresses
from control.addons.ingress.controller import is_ours, node_addresses, our_classes
from control.addons.ingress.render import Settings, locations_for, render
from tests.unit.control.ingress_objects import (
    backend,
    endpoint_slice,
    ingress,
    rule,
    self_signed,
    service,
    tls_secret,
)

SERVICES = [service("foo"), service("bar")]
SLICES = [endpoint_slice("foo", ["10.0.0.1", "10.0.0.2"]), endpoint_slice("bar", ["10.0.0.3"])]


def server_blocks(text):
    """{server_name: block text} of the host servers."""
    blocks = {}
    for block in re.findall(r"    server \{\n(.*?)\n    \}\n", text, re.S):
        name = re.search(r"server_name (\S+);", block)
        if name:
            blocks[name.group(1)] = block
    return blocks


def locations(block):
    """[(modifier, path, action)] in the order nginx.conf lists them."""
    return re.findall(r'location (=? ?)"([^"]*)" \{\n\s*(.*?);', block)


def test_kubernetes_path_types_become_nginx_locations():
    assert locations_for("Exact", "/foo") == [("=", "/foo")]
    # Element-wise prefix: /foo matches /foo and /foo/..., never /foobar.
    assert locations_for("Prefix", "/foo") == [("=", "/foo"), ("", "/foo/")]
    assert locations_for("Prefix", "/foo/") == [("=", "/foo"), ("", "/foo/")]
    assert locations_for("Prefix", "/") == [("", "/")]
    assert locations_for("ImplementationSpecific", "/foo") == [("", "/foo")]
    assert locations_for("ImplementationSpecific", "") == [("", "/")]


def test_hosts_get_servers_and_paths_are_longest_first_exact_before_prefix():
    ing = ingress(rules=[rule("a.example.com", ("/", "Prefix", "bar"), ("/foo", "Prefix", "foo"),
                              ("/foo/exact", "Exact", "bar")),
                         rule("b.example.com", ("/api", "ImplementationSpecific", "foo"))])
    blocks = server_blocks(render([ing], SERVICES, SLICES, []).text)
    assert set(blocks) == {"_", "a.example.com", "b.example.com"}
    assert [(m.strip(), p, a) for m, p, a in locations(blocks["a.example.com"])] == [
        ("=", "/foo/exact", "proxy_pass http://default_bar_80"),
        ("", "/foo/", "proxy_pass http://default_foo_80"),
        ("=", "/foo", "proxy_pass http://default_foo_80"),
        ("", "/", "proxy_pass http://default_bar_80")]
    # A host without "/" gets one: 404 without a default backend.
    assert locations(blocks["b.example.com"])[-1] == ("", "/", "return 404")


def test_exact_wins_a_location_over_prefix_and_the_older_ingress_over_the_newer():
    older = ingress("old", rules=[rule("a.example.com", ("/x", "Prefix", "foo"))],
                    created="2026-01-01")
    newer = ingress("new", rules=[rule("a.example.com", ("/x", "Exact", "bar"),
                                       ("/x/", "ImplementationSpecific", "bar"))],
                    created="2026-02-01")
    found = locations(server_blocks(render([newer, older], SERVICES, SLICES, []).text)
                      ["a.example.com"])
    assert ("= ", "/x", "proxy_pass http://default_bar_80") in found      # Exact over Prefix
    assert ("", "/x/", "proxy_pass http://default_foo_80") in found       # older Ingress
    assert len([f for f in found if f[1] == "/x"]) == 1


def test_upstreams_hold_the_ready_pod_addresses_and_follow_endpoint_changes():
    ing = ingress(rules=[rule("a.example.com", ("/", "Prefix", "foo"))])
    before = render([ing], SERVICES, SLICES, []).text
    assert "server 10.0.0.1:8080 max_fails=0;\n        server 10.0.0.2:8080" in before
    scaled = [endpoint_slice("foo", ["10.0.0.2", "10.0.0.7"], not_ready=["10.0.0.1"])]
    after = render([ing], SERVICES, scaled, []).text
    assert "10.0.0.7:8080" in after and "10.0.0.1:8080" not in after
    # Nothing ready: the location answers 503 and no empty upstream is written.
    none = render([ing], SERVICES, [endpoint_slice("foo", [], not_ready=["10.0.0.1"])], []).text
    assert "upstream default_foo_80" not in none
    assert ("", "/", "return 503") in locations(server_blocks(none)["a.example.com"])
    # The same objects render the same text: an unchanged text means no reload.
    assert render([ing], SERVICES, SLICES, []).text == before


def test_backend_port_by_name_and_missing_service():
    services = [service("named", port=8000, port_name="http")]
    slices = [endpoint_slice("named", ["10.0.1.1"], port=9000, port_name="http")]
    ing = ingress(rules=[{"host": "a.example.com", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": backend("named", "http")},
        {"path": "/gone", "pathType": "Exact", "backend": backend("missing")}]}}])
    text = render([ing], services, slices, []).text
    assert "upstream default_named_http {\n        server 10.0.1.1:9000" in text
    assert ("= ", "/gone", "return 503") in locations(server_blocks(text)["a.example.com"])
    assert ready_addresses(slices, "other") == ()


def test_default_backend_serves_unmatched_paths_and_unknown_hosts():
    ing = ingress(rules=[rule("a.example.com", ("/foo", "Prefix", "foo"))],
                  default=backend("bar"))
    blocks = server_blocks(render([ing], SERVICES, SLICES, []).text)
    assert locations(blocks["a.example.com"])[-1] == ("", "/", "proxy_pass http://default_bar_80")
    assert locations(blocks["_"]) == [("", "/", "proxy_pass http://default_bar_80")]
    assert "listen 80 default_server;" in blocks["_"]
    bare = server_blocks(render([], SERVICES, SLICES, []).text)
    assert locations(bare["_"]) == [("", "/", "return 404")]


def test_hostless_rules_go_to_the_default_server_and_wildcards_match_one_label():
    ing = ingress(rules=[rule("", ("/any", "Prefix", "foo")),
                         rule("*.example.com", ("/", "Prefix", "bar"))])
    blocks = server_blocks(render([ing], SERVICES, SLICES, []).text)
    assert ("= ", "/any", "proxy_pass http://default_foo_80") in locations(blocks["_"])
    wildcard = next(name for name in blocks if "example" in name)
    pattern = wildcard.strip('"').lstrip("~")
    assert re.match(pattern, "a.example.com") and not re.match(pattern, "a.b.example.com")


def test_tls_host_listens_on_443_with_the_secret_as_a_0600_file_named_by_content():
    cert, key = self_signed("a.example.com")
    ing = ingress(rules=[rule("a.example.com", ("/", "Prefix", "foo"))],
                  tls=[{"hosts": ["a.example.com"], "secretName": "a-tls"}])
    settings = Settings(tls_dir="/run/x/tls")
    rendered = render([ing], SERVICES, SLICES, [tls_secret("a-tls", cert, key)], settings)
    [(name, data)] = rendered.files.items()
    assert re.fullmatch(r"default-a-tls-[0-9a-f]{12}\.pem", name)
    assert data.startswith(cert) and data.endswith(key)
    block = server_blocks(rendered.text)["a.example.com"]
    assert "listen 443 ssl;" in block and f"ssl_certificate /run/x/tls/{name};" in block
    assert "ssl_reject_handshake on;" in server_blocks(rendered.text)["_"]
    # No secret text in nginx.conf itself.
    assert "PRIVATE KEY" not in rendered.text


def test_a_missing_or_wrong_secret_is_reported_and_the_host_stays_on_http():
    ing = ingress(rules=[rule("a.example.com", ("/", "Prefix", "foo"))],
                  tls=[{"hosts": ["a.example.com"], "secretName": "a-tls"},
                       {"hosts": ["a.example.com"], "secretName": "opaque"}])
    opaque = tls_secret("opaque", b"x", b"y", kind="Opaque")
    rendered = render([ing], SERVICES, SLICES, [opaque])
    assert [r for _, r, _ in rendered.problems] == ["InvalidSecret", "InvalidSecret"]
    assert "does not exist" in rendered.problems[0][2]
    assert "443" not in server_blocks(rendered.text)["a.example.com"]
    assert rendered.files == {}


def test_hostile_paths_and_hosts_are_left_out_not_written_into_the_config():
    attack = '/x" { return 200 "owned"; } location "/y'
    ing = ingress(rules=[rule("a.example.com", (attack, "ImplementationSpecific", "foo"),
                              ("/ok", "Exact", "foo")),
                         rule("evil.com;}", ("/", "Prefix", "foo"))])
    rendered = render([ing], SERVICES, SLICES, [])
    assert "owned" not in rendered.text and "evil" not in rendered.text
    assert {r for _, r, _ in rendered.problems} == {"InvalidPath", "InvalidHost"}
    assert ("= ", "/ok", "proxy_pass http://default_foo_80") in locations(
        server_blocks(rendered.text)["a.example.com"])


def test_class_selection_and_status_addresses():
    classes = [{"metadata": {"name": "steer", "annotations": {
        "ingressclass.kubernetes.io/is-default-class": "true"}},
        "spec": {"controller": "steersman.io/ingress-nginx"}},
        {"metadata": {"name": "other"}, "spec": {"controller": "example.com/else"}}]
    names, default = our_classes(classes)
    assert names == {"steer"} and default
    assert is_ours(ingress(class_name="steer"), names, default)
    assert not is_ours(ingress(class_name="other"), names, default)
    assert is_ours(ingress(class_name=None), names, default)
    assert not is_ours(ingress(class_name=None), names, False)
    assert is_ours(ingress(class_name=None, annotations={"kubernetes.io/ingress.class": "steer"}),
                   names, False)
    ready = [{"type": "Ready", "status": "True"}]
    pods = [{"status": {"phase": "Running", "hostIP": "172.31.250.12", "conditions": ready}},
            {"status": {"phase": "Running", "hostIP": "172.31.250.11", "conditions": ready}},
            {"status": {"phase": "Pending", "hostIP": "172.31.250.13"}},
            {"status": {"phase": "Running", "hostIP": "172.31.250.14",
                        "conditions": [{"type": "Ready", "status": "False"}]}}]
    assert node_addresses(pods) == ["172.31.250.11", "172.31.250.12"]
