"""RBAC rule matching, subjects, aggregation and escalation checks."""

import pytest

from control.api.auth import escalation, rbac, user
from control.api.auth.aggregation import aggregated_rules
from control.api.auth.request_info import RequestInfo, request_info


def res(verb, resource, namespace="default", group="", sub="", name=""):
    return RequestInfo(verb=verb, path="", resource_request=True, api_group=group,
                       namespace=namespace, resource=resource, subresource=sub, name=name)


RULE = {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "pods/log"]}


@pytest.mark.parametrize("rule, info, allowed", [
    (RULE, res("get", "pods"), True),
    (RULE, res("delete", "pods"), False),
    (RULE, res("get", "pods", sub="log"), True),
    (RULE, res("get", "pods", sub="exec"), False),
    (RULE, res("get", "deployments", group="apps"), False),
    ({**RULE, "resourceNames": ["web"]}, res("get", "pods", name="web"), True),
    ({**RULE, "resourceNames": ["web"]}, res("get", "pods", name="db"), False),
    ({**RULE, "resourceNames": ["web"]}, res("list", "pods"), False),
    ({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, res("delete", "x", group="y"), True),
    ({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["*/scale"]},
     res("get", "deployments", group="apps", sub="scale"), True),
    ({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["*/scale"]},
     res("get", "deployments", group="apps"), False),
    ({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*"]},
     request_info("GET", "/apis/apps/v1", {}), True),
    ({"verbs": ["get"], "nonResourceURLs": ["/healthz"]},
     request_info("GET", "/healthz/etcd", {}), False),
    ({"verbs": ["get"], "nonResourceURLs": ["*"]}, res("get", "pods"), False),
])
def test_rule_matching(rule, info, allowed):
    assert rbac.rule_allows(rule, info) is allowed


def test_subjects():
    alice = user.authenticated("alice", ["dev"])
    sa = user.authenticated("system:serviceaccount:ns:builder")
    assert rbac.subject_matches({"kind": "User", "name": "alice"}, alice)
    assert rbac.subject_matches({"kind": "Group", "name": "dev"}, alice)
    assert not rbac.subject_matches({"kind": "Group", "name": "ops"}, alice)
    assert rbac.subject_matches({"kind": "ServiceAccount", "name": "builder"}, sa, "ns")
    assert not rbac.subject_matches({"kind": "ServiceAccount", "name": "builder"}, sa, "other")
    assert rbac.subject_matches({"kind": "ServiceAccount", "name": "builder",
                                 "namespace": "ns"}, sa)


def role(name, rules=(), labels=None, selects=None):
    body = {"metadata": {"name": name, "labels": labels or {}}, "rules": list(rules)}
    if selects:
        body["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {selects: "true"}}]}
    return body


def test_aggregation_follows_chains_to_a_fixpoint():
    view_rule = {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}
    edit_rule = {"verbs": ["create"], "apiGroups": [""], "resources": ["pods"]}
    roles = {r["metadata"]["name"]: r for r in [
        role("admin", selects="to-admin"),
        role("edit", labels={"to-admin": "true"}, selects="to-edit"),
        role("view", labels={"to-edit": "true"}, selects="to-view"),
        role("extra-view", [view_rule], labels={"to-view": "true"}),
        role("extra-edit", [edit_rule], labels={"to-edit": "true"}),
    ]}
    rules = aggregated_rules(roles)
    assert rules["view"] == [view_rule]
    assert rules["edit"] == [edit_rule, view_rule]
    assert sorted(map(str, rules["admin"])) == sorted(map(str, [edit_rule, view_rule]))


def test_escalation_breaks_rules_down_before_comparing():
    owned = [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "secrets"]},
             {"verbs": ["get"], "nonResourceURLs": ["/logs/*"]}]
    assert escalation.uncovered([{"verbs": ["get"], "apiGroups": [""],
                                  "resources": ["pods", "secrets"]}], owned) == []
    assert escalation.uncovered([{"verbs": ["get"], "nonResourceURLs": ["/logs/a"]}], owned) == []
    missing = escalation.uncovered([{"verbs": ["get", "delete"], "apiGroups": [""],
                                     "resources": ["pods"]}], owned)
    assert missing == [{"verbs": ["delete"], "apiGroups": [""], "resources": ["pods"]}]
    assert escalation.uncovered([{"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]}],
                                owned)
    everything = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
    assert escalation.uncovered([{"verbs": ["get"], "apiGroups": ["apps"],
                                  "resources": ["deployments/scale"], "resourceNames": ["x"]}],
                                everything) == []
