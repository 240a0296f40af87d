"""NetworkPolicy semantics as a pure function (agent/network/netpol.py) and its rules."""

import random

import pytest

from agent.network.netpol import Allow, compute, ip_block_networks, policy_types
from agent.network.netpol_rules import build_ruleset, chain_name
from agent.network.nft_ruleset import update_script

NODE = "n1"
NAMESPACES = [{"metadata": {"name": "default"}},
              {"metadata": {"name": "prod", "labels": {"team": "x"}}},
              {"metadata": {"name": "dev", "labels": {"team": "y"}}}]


def pod(name, ip, ns="default", node=NODE, labels=None, ports=(), **extra):
    spec = {"nodeName": node, "containers": [{"name": "c", "ports": [
        {"name": n, "containerPort": p, "protocol": proto} for n, p, proto in ports]}]}
    spec.update(extra.pop("spec", {}))
    return {"metadata": {"namespace": ns, "name": name, "labels": labels or {"app": name}},
            "spec": spec, "status": {"phase": "Running", "podIP": ip, **extra}}


PODS = [pod("a", "10.0.0.2", ports=[("http", 8080, "TCP")]),
        pod("b", "10.0.0.3", ports=[("http", 9000, "TCP"), ("dns", 53, "UDP")]),
        pod("p", "10.0.1.2", ns="prod", node="n2", labels={"app": "a"},
            ports=[("http", 7000, "TCP")]),
        pod("d", "10.0.2.2", ns="dev", node="n2", labels={"app": "a"})]


def policy(selector=None, ns="default", name="p", **spec):
    return {"metadata": {"namespace": ns, "name": name},
            "spec": {"podSelector": selector if selector is not None else {}, **spec}}


def app(value):
    return {"matchLabels": {"app": value}}


def access(policies, pods=PODS):
    return {a.name: (a.ingress, a.egress) for a in compute(policies, pods, NAMESPACES, NODE)}


ANY = Allow(None, None)

# (case, policies, {local pod: (ingress, egress)}); pods absent from the dict are unrestricted.
CASES = [
    ("no policy: nothing isolated", [], {}),
    ("a policy of another namespace selects nothing here", [policy(ns="prod")], {}),
    ("empty podSelector, no rules: deny all ingress of every pod",
     [policy()], {"a": ((), None), "b": ((), None)}),
    ("Egress only: ingress stays open",
     [policy(app("a"), policyTypes=["Egress"])], {"a": (None, ())}),
    ("egress rules imply Egress as well as Ingress",
     [policy(app("a"), egress=[{}])], {"a": ((), (ANY,))}),
    ("a rule without from or ports allows everything",
     [policy(app("b"), ingress=[{}])], {"b": ((ANY,), None)}),
    ("podSelector peers come from the policy's namespace only",
     [policy(app("b"), ingress=[{"from": [{"podSelector": app("a")}]}])],
     {"b": ((Allow(("10.0.0.2/32",)),), None)}),
    ("namespaceSelector peers: every pod of those namespaces",
     [policy(app("b"), ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"team": "x"}}}]}])],
     {"b": ((Allow(("10.0.1.2/32",)),), None)}),
    ("an empty namespaceSelector means every namespace",
     [policy(app("b"), ingress=[{"from": [{"namespaceSelector": {}, "podSelector": app("a")}]}])],
     {"b": ((Allow(("10.0.0.2/32", "10.0.1.2/32", "10.0.2.2/32")),), None)}),
    ("both selectors in one peer AND together",
     [policy(app("b"), ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"team": "y"}},
                                          "podSelector": app("a")}]}])],
     {"b": ((Allow(("10.0.2.2/32",)),), None)}),
    ("the namespace name label is always there",
     [policy(app("b"), ingress=[{"from": [{"namespaceSelector": {"matchLabels": {
         "kubernetes.io/metadata.name": "dev"}}}]}])],
     {"b": ((Allow(("10.0.2.2/32",)),), None)}),
    ("peers that match no pod allow nothing",
     [policy(app("b"), ingress=[{"from": [{"podSelector": app("nobody")}]}])], {"b": ((), None)}),
    ("ipBlock with except",
     [policy(app("b"), ingress=[{"from": [{"ipBlock": {"cidr": "10.0.0.0/30",
                                                       "except": ["10.0.0.1/32"]}}]}])],
     {"b": ((Allow(("10.0.0.0/32", "10.0.0.2/31")),), None)}),
    ("ports: protocols, endPort ranges, a protocol alone",
     [policy(app("b"), ingress=[{"ports": [{"port": 80}, {"protocol": "UDP", "port": 5000,
                                                          "endPort": 5010},
                                           {"protocol": "SCTP"}]}])],
     {"b": ((Allow(None, (("SCTP", ""), ("TCP", "80"), ("UDP", "5000-5010"))),), None)}),
    ("an ingress named port is resolved on the selected pod itself",
     [policy(ingress=[{"ports": [{"port": "http"}]}])],
     {"a": ((Allow(None, (("TCP", "8080"),)),), None),
      "b": ((Allow(None, (("TCP", "9000"),)),), None)}),
    ("a named port the pod lacks (or with another protocol) allows nothing",
     [policy(app("a"), ingress=[{"ports": [{"port": "dns", "protocol": "UDP"},
                                           {"port": "http", "protocol": "UDP"}]}])],
     {"a": ((), None)}),
    ("an egress named port is resolved on each destination pod",
     [policy(app("a"), policyTypes=["Egress"], egress=[{"ports": [{"port": "http"}]}])],
     {"a": (None, (Allow(("10.0.0.2/32",), (("TCP", "8080"),)),
                   Allow(("10.0.0.3/32",), (("TCP", "9000"),)),
                   Allow(("10.0.1.2/32",), (("TCP", "7000"),))))}),
    ("egress named port to an ipBlock: only pods inside it",
     [policy(app("a"), policyTypes=["Egress"], egress=[{
         "to": [{"ipBlock": {"cidr": "10.0.1.0/24"}}], "ports": [{"port": "http"}]}])],
     {"a": (None, (Allow(("10.0.1.2/32",), (("TCP", "7000"),)),))}),
    ("rules and policies OR together",
     [policy(app("b"), name="one", ingress=[{"from": [{"podSelector": app("a")}]}]),
      policy(app("b"), name="two", ingress=[{"ports": [{"port": 53, "protocol": "UDP"}]}])],
     {"b": ((Allow(None, (("UDP", "53"),)), Allow(("10.0.0.2/32",))), None)}),
]


@pytest.mark.parametrize("policies,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_semantics(policies, expected):
    assert access(policies) == expected


def test_pods_without_an_own_ip_are_neither_targets_nor_peers():
    pods = [pod("a", "10.0.0.2"),
            pod("host", "192.168.1.5", labels={"app": "a"}, spec={"hostNetwork": True}),
            pod("done", "10.0.0.9", labels={"app": "a"}, phase="Succeeded"),
            pod("pending", "", labels={"app": "a"})]
    got = access([policy(ingress=[{"from": [{"podSelector": app("a")}]}])], pods)
    assert got == {"a": ((Allow(("10.0.0.2/32",)),), None)}


def test_dual_stack_pod_ips():
    dual = pod("a", "10.0.0.2", podIPs=[{"ip": "10.0.0.2"}, {"ip": "fd00::2"}])
    [result] = compute([policy(app("a"))], [dual], NAMESPACES, NODE)
    assert result.ips == ("10.0.0.2", "fd00::2")
    ruleset = build_ruleset([result])
    assert dict(ruleset.elements)["ingress_v6"] == (("fd00::2", "jump in/default/a"),)


def test_policy_types_default_as_kubernetes():
    assert policy_types(policy()) == ("Ingress",)
    assert policy_types(policy(egress=[{}])) == ("Ingress", "Egress")
    assert policy_types(policy(policyTypes=["Egress"], ingress=[{}])) == ("Egress",)


def test_ip_block_except_outside_the_cidr_changes_nothing():
    assert [str(n) for n in ip_block_networks({"cidr": "10.1.0.0/16",
                                               "except": ["10.2.0.0/16", "fd00::/8"]})] == \
        ["10.1.0.0/16"]
    assert ip_block_networks({"cidr": "10.1.0.0/16", "except": ["10.0.0.0/8"]}) == []


POLICIES = [policy(app("b"), name="b", ingress=[{"from": [{"podSelector": app("a")},
                                                          {"ipBlock": {"cidr": "10.9.0.0/16"}}],
                                                 "ports": [{"port": 80}, {"port": 53,
                                                                          "protocol": "UDP"}]}]),
            policy(app("a"), name="a", policyTypes=["Egress"],
                   egress=[{"to": [{"podSelector": app("b")}], "ports": [{"port": 9000}]}])]


def test_ruleset_layout():
    ruleset = build_ruleset(compute(POLICIES, PODS, NAMESPACES, NODE))
    assert ruleset.family == "inet" and ruleset.table == "steer-netpol"
    chains = {c.name: c for c in ruleset.chains}
    assert chains["in/default/b"].rules == (
        "ip saddr { 10.0.0.3/32 } accept",
        "ip saddr { 10.0.0.2/32, 10.9.0.0/16 } tcp dport { 80 } accept",
        "ip saddr { 10.0.0.2/32, 10.9.0.0/16 } udp dport { 53 } accept",
        "counter drop")
    assert chains["out/default/a"].rules == (
        "ip daddr { 10.0.0.2/32 } return",
        "ip daddr { 10.0.0.3/32 } tcp dport { 9000 } return", "counter drop")
    assert chains["forward"].rules[0] == "ct state established,related accept"
    elements = dict(ruleset.elements)
    assert elements["ingress_v4"] == (("10.0.0.3", "jump in/default/b"),)
    assert elements["egress_v4"] == (("10.0.0.2", "jump out/default/a"),)
    assert "table inet steer-netpol {" in ruleset.script()


def test_output_does_not_depend_on_input_order():
    expected = build_ruleset(compute(POLICIES, PODS, NAMESPACES, NODE)).script()
    rng = random.Random(7)
    for _ in range(5):
        pods, policies = PODS[:], POLICIES[:]
        rng.shuffle(pods)
        rng.shuffle(policies)
        assert build_ruleset(compute(policies, pods, NAMESPACES, NODE)).script() == expected


def test_a_policy_change_updates_only_the_changed_chain():
    old = build_ruleset(compute(POLICIES, PODS, NAMESPACES, NODE))
    new = build_ruleset(compute(POLICIES[:1], PODS, NAMESPACES, NODE))
    script = update_script(old, new)
    assert "delete element inet steer-netpol egress_v4 { 10.0.0.2 }" in script
    assert "delete chain inet steer-netpol out/default/a" in script
    assert "in/default/b" not in script


def test_long_pod_names_get_a_short_unique_chain_name():
    name = chain_name("in", "default", "x" * 253)
    assert len(name) <= 200 and name != chain_name("in", "default", "x" * 252)
