"""The Ingress addon's objects: the YAML in examples/, RBAC, and `up` on the process runtime."""

import os
import types

import pytest
import yaml

from cli import local_ingress, local_ingress_image
from cli.cluster_cmd import Failure
from control.addons import ingress as controller_package
from control.objects import validation_kinds

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples", "ingress")


def test_the_example_yaml_is_what_steer_up_creates():
    with open(os.path.join(EXAMPLE, "controller.yaml")) as f:
        documents = list(yaml.safe_load_all(f))
    objects = local_ingress.ingress_objects(local_ingress_image.INGRESS_IMAGE)
    assert documents == [body for _, _, body in objects]


def test_cli_names_the_class_and_controller_the_controller_claims():
    assert local_ingress.CLASS_NAME == controller_package.CLASS_NAME
    assert local_ingress.CONTROLLER_NAME == controller_package.CONTROLLER_NAME


def test_objects_are_valid_and_rbac_is_least_privilege():
    objects = local_ingress.ingress_objects("steer.local/steer-ingress:1")
    for resource, _, body in objects:
        assert validation_kinds.errors_for(body["kind"], body, resource.namespaced) == [], body
    rules = [rule for _, _, body in objects for rule in body.get("rules") or []]
    for rule in rules:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
    writes = {(r, v) for rule in rules for r in rule["resources"] for v in rule["verbs"]
              if v not in ("get", "list", "watch")}
    # Pods are patched (each controller pod annotates itself) only in its own namespace.
    assert writes == {("ingresses/status", "update"), ("events", "create"),
                      ("events", "patch"), ("pods", "patch")}
    [pods_rule] = [body for _, _, body in objects if body["kind"] == "Role"]
    assert pods_rule["metadata"]["namespace"] == local_ingress.NAMESPACE
    assert [r["resources"] for r in pods_rule["rules"]] == [["pods"]]
    cluster_wide = [r for _, _, body in objects if body["kind"] == "ClusterRole"
                    for r in body["rules"]]
    assert not any("pods" in r["resources"] for r in cluster_wide)
    [daemonset] = [body for _, _, body in objects if body["kind"] == "DaemonSet"]
    ports = daemonset["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert {p.get("hostPort") for p in ports} == {80, 443, None}
    assert daemonset["spec"]["template"]["spec"]["hostNetwork"] is True


def test_on_the_process_runtime_the_addon_says_it_needs_containers():
    ctx = types.SimpleNamespace(containers=False, say=print)
    with pytest.raises(Failure, match="needs a containers cluster"):
        local_ingress.start(ctx)
