"""Environment resolution and $(VAR) expansion, as kubelet does them."""

import base64

import pytest

from agent.env import ConfigError, command_line, expand, resolve_env

POD = {"metadata": {"name": "web", "namespace": "prod", "uid": "u1", "labels": {"app": "x"}},
       "spec": {"nodeName": "n1"}, "status": {}}


def lookup(objects):
    return lambda kind, ns, name: objects.get((kind, ns, name))


@pytest.mark.parametrize("text, expected", [
    ("$(A)-$(B)", "1-$(B)"), ("$$(A)", "$(A)"), ("a$b", "a$b"), ("$(A", "$(A"), ("$$", "$")])
def test_expand(text, expected):
    assert expand(text, {"A": "1"}) == expected


def test_values_refer_to_earlier_ones_only():
    container = {"env": [{"name": "A", "value": "x"}, {"name": "B", "value": "$(A)$(C)"},
                         {"name": "C", "value": "z"}]}
    assert resolve_env(POD, container, lookup({}), "10.0.0.5") == \
        {"A": "x", "B": "x$(C)", "C": "z"}


def test_value_from_sources():
    objects = {("ConfigMap", "prod", "cm"): {"data": {"k": "from-cm"}},
               ("Secret", "prod", "s"): {"data": {"p": base64.b64encode(b"pw").decode()}}}
    container = {"env": [
        {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
        {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "p"}}},
        {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "none", "key": "k",
                                                          "optional": True}}},
        *({"name": n, "valueFrom": {"fieldRef": {"fieldPath": p}}} for n, p in (
            ("NAME", "metadata.name"), ("NS", "metadata.namespace"), ("UID", "metadata.uid"),
            ("NODE", "spec.nodeName"), ("IP", "status.podIP"), ("HOST", "status.hostIP"),
            ("APP", "metadata.labels['app']")))]}
    got = resolve_env(POD, container, lookup(objects), "10.0.0.5")
    assert got == {"CM": "from-cm", "S": "pw", "NAME": "web", "NS": "prod", "UID": "u1",
                   "NODE": "n1", "IP": "10.0.0.5", "HOST": "10.0.0.5", "APP": "x"}


def test_env_from_with_prefix():
    objects = {("ConfigMap", "prod", "cm"): {"data": {"a": "1"}}}
    container = {"envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "P_"}]}
    assert resolve_env(POD, container, lookup(objects), "h") == {"P_a": "1"}


@pytest.mark.parametrize("source", [
    {"configMapKeyRef": {"name": "missing", "key": "k"}},
    {"secretKeyRef": {"name": "missing", "key": "k"}},
    {"fieldRef": {"fieldPath": "spec.bogus"}}])
def test_missing_sources_are_config_errors(source):
    with pytest.raises(ConfigError):
        resolve_env(POD, {"env": [{"name": "X", "valueFrom": source}]}, lookup({}), "h")


def test_command_line_expands_and_requires_a_command():
    container = {"name": "c", "command": ["echo", "$(A)"], "args": ["$(B)", "$$(A)"]}
    assert command_line(container, {"A": "1", "B": "2"}) == ["echo", "1", "2", "$(A)"]
    with pytest.raises(ConfigError):
        command_line({"name": "c"}, {})
