"""Argument parsing: TYPE NAME, TYPE/NAME, TYPE,TYPE, label changes, global flags."""

import pytest

from cli.errors import CommandError
from cli.kube import Discovery, parse_targets
from cli.label_cmd import split_changes
from cli.main import build_parser


@pytest.mark.parametrize("words,pairs", [
    (["pods"], [("pods", None)]),
    (["pods", "a", "b"], [("pods", "a"), ("pods", "b")]),
    (["pod/a", "deploy/b"], [("pod", "a"), ("deploy", "b")]),
    (["pods,svc"], [("pods", None), ("svc", None)]),
    (["pods,svc", "x"], [("pods", "x"), ("svc", "x")]),
])
def test_parse_targets(words, pairs):
    assert parse_targets(words) == pairs


def test_mixed_forms_are_refused():
    with pytest.raises(CommandError, match="no need to specify a resource type"):
        parse_targets(["pods", "pod/a"])
    with pytest.raises(CommandError):
        parse_targets([])


def test_label_changes_split():
    assert split_changes(["deploy", "web", "a=b", "c-"]) == (["deploy", "web"], {"a": "b"}, ["c"])
    assert split_changes(["pod/x", "k="]) == (["pod/x"], {"k": ""}, [])


class FakeRest:
    def request(self, method, path, **kw):
        docs = {
            "/api": {"versions": ["v1"]},
            "/apis": {"groups": [{"name": "apps", "preferredVersion": {"version": "v1"}}]},
            "/api/v1": {"resources": [
                {"name": "pods", "kind": "Pod", "namespaced": True, "shortNames": ["po"],
                 "categories": ["all"], "verbs": ["get"]},
                {"name": "pods/log", "kind": "Pod", "namespaced": True}]},
            "/apis/apps/v1": {"resources": [
                {"name": "deployments", "kind": "Deployment", "namespaced": True,
                 "shortNames": ["deploy"], "categories": ["all"]}]},
        }
        return docs[path]


@pytest.mark.parametrize("text,plural", [
    ("po", "pods"), ("pod", "pods"), ("Pods", "pods"), ("deploy", "deployments"),
    ("deployment", "deployments"), ("deployments.apps", "deployments"),
    ("deployments.v1.apps", "deployments"),
])
def test_discovery_resolves_names(text, plural):
    assert Discovery(FakeRest()).resolve(text).plural == plural


def test_discovery_unknown_type_is_kubectls_message():
    with pytest.raises(CommandError) as caught:
        Discovery(FakeRest()).resolve("foos")
    assert str(caught.value) == 'the server doesn\'t have a resource type "foos"'
    discovery = Discovery(FakeRest())
    assert [r.plural for r in discovery.by_category("all")] == ["pods", "deployments"]
    assert discovery.for_kind("apps/v1", "Deployment").plural == "deployments"
    assert discovery.for_kind("v1", "Foo") is None


def test_global_flags_before_or_after_the_verb():
    parser = build_parser()
    before = parser.parse_args(["-n", "x", "--server", "http://s:1", "get", "pods"])
    after = parser.parse_args(["get", "pods", "-n", "x", "-A", "--server", "http://s:1"])
    assert before.namespace == after.namespace == "x"
    assert before.server == after.server == "http://s:1"
    assert after.all_namespaces and not getattr(before, "all_namespaces", False)
