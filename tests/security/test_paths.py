"""Path escapes against a real API server: every hostile name or path is a 422 with its field.

The node agent's own refusal (nothing created or removed outside the pod's
directory even if such a pod got through) is tested in tests/unit/agent/test_paths.py.
"""

import os
import stat

import pytest

PODS = "/api/v1/namespaces/default/pods"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


def pod(name, containers=None, volumes=None):
    spec = {"containers": containers or [{"name": "c", "image": "busybox",
                                          "command": ["sleep", "1"]}]}
    if volumes is not None:
        spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def mounting(mount, volume=None):
    return [{"name": "c", "image": "busybox", "command": ["true"], "volumeMounts": [{"name": "v", **mount}]}], \
        [volume or {"name": "v", "emptyDir": {}}]


HOSTILE = [
    ("mount-dotdot", *mounting({"mountPath": "/../../etc"}),
     "spec.containers[0].volumeMounts[0].mountPath", "must not contain '..'"),
    ("subpath-escape", *mounting({"mountPath": "/x", "subPath": "../../etc"}),
     "spec.containers[0].volumeMounts[0].subPath", "must not contain '..'"),
    ("subpath-absolute", *mounting({"mountPath": "/x", "subPath": "/etc"}),
     "spec.containers[0].volumeMounts[0].subPath", "must be a relative path"),
    ("container-name", [{"name": "../x", "command": ["true"]}], None,
     "spec.containers[0].name", "RFC 1123 label"),
    ("volume-name", [{"name": "c", "command": ["true"]}], [{"name": "a/b", "emptyDir": {}}],
     "spec.volumes[0].name", "RFC 1123 label"),
    ("hostpath-dotdot", [{"name": "c", "command": ["true"]}],
     [{"name": "v", "hostPath": {"path": "/var/../etc"}}],
     "spec.volumes[0].hostPath.path", "must not contain '..'"),
    ("item-escape", [{"name": "c", "command": ["true"]}],
     [{"name": "v", "configMap": {"name": "cm", "items": [{"key": "k", "path": "../../k"}]}}],
     "spec.volumes[0].configMap.items[0].path", "must not contain '..'"),
    ("mount-no-volume", *mounting({"mountPath": "/x"}, {"name": "w", "emptyDir": {}}),
     "spec.containers[0].volumeMounts[0].name", 'Not found: "v"'),
]


@pytest.mark.parametrize("name,containers,volumes,field,words", HOSTILE,
                         ids=[case[0] for case in HOSTILE])
def test_hostile_pods_are_invalid(raw, name, containers, volumes, field, words):
    answer = raw.request("POST", PODS, pod(name, containers, volumes))
    assert answer.status == 422, answer
    body = answer.json
    assert body["kind"] == "Status" and body["reason"] == "Invalid"
    causes = {c["field"]: c["message"] for c in body["details"]["causes"]}
    assert field in causes and words in causes[field], causes
    assert raw.request("GET", f"{PODS}/{name}").status == 404


def test_a_hostile_template_is_invalid(raw):
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                  "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
                      "metadata": {"labels": {"a": "b"}},
                      "spec": {"containers": [{"name": "c", "image": "busybox", "volumeMounts": [
                          {"name": "v", "mountPath": "/x", "subPath": "../../etc"}]}],
                          "volumes": [{"name": "v", "emptyDir": {}}]}}}}
    answer = raw.request("POST", DEPLOYMENTS, deployment)
    assert answer.status == 422, answer
    assert "spec.template.spec.containers[0].volumeMounts[0].subPath" in answer.json["message"]


def test_a_valid_pod_still_goes_through(raw):
    containers, volumes = mounting({"mountPath": "/data", "subPath": "a/b"})
    assert raw.request("POST", PODS, pod("fine", containers, volumes)).status == 201


def test_the_store_data_is_private_to_its_member(hostile_server):
    """The journal, dumps and snapshots of every member: 0600 files in 0700 directories."""
    for node in hostile_server.store.nodes:
        assert stat.S_IMODE(os.stat(node.data_dir).st_mode) == 0o700
        for dirpath, dirnames, filenames in os.walk(node.data_dir):
            for name in dirnames:
                assert stat.S_IMODE(os.stat(os.path.join(dirpath, name)).st_mode) == 0o700
            for name in filenames:
                path = os.path.join(dirpath, name)
                assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0, path
