"""Server-side apply and server dry runs with the real kubectl (v1.32) and the Python client."""

import json

import pytest
from kubernetes import client as k8s
from kubernetes import config

pytestmark = pytest.mark.kubectl

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ssa
  labels: {app: ssa}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {app: ssa}
  template:
    metadata:
      labels: {app: ssa}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
"""


def manifest(replicas=2):
    return MANIFEST.replace("{replicas}", str(replicas))


def get(server, *args):
    return json.loads(server.kubectl("get", *args, "-o", "json", "--show-managed-fields").stdout)


def test_apply_server_side_twice_conflict_and_force(server):
    first = server.kubectl("apply", "--server-side", "-f", "-", input=manifest())
    assert "deployment.apps/ssa serverside-applied" in first.stdout
    before = get(server, "deploy", "ssa")
    entry = before["metadata"]["managedFields"][0]
    assert (entry["manager"], entry["operation"]) == ("kubectl", "Apply")
    server.kubectl("apply", "--server-side", "-f", "-", input=manifest())
    after = get(server, "deploy", "ssa")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

    refused = server.kubectl("apply", "--server-side", "--field-manager=other", "-f", "-",
                             input=manifest(5), check=False)
    assert refused.returncode != 0
    assert 'Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas' in \
        refused.stderr
    assert "--force-conflicts" in refused.stderr      # kubectl's own advice follows
    forced = server.kubectl("apply", "--server-side", "--field-manager=other",
                            "--force-conflicts", "-f", "-", input=manifest(5))
    assert "serverside-applied" in forced.stdout
    assert get(server, "deploy", "ssa")["spec"]["replicas"] == 5


def test_server_dry_runs_and_diff_store_nothing(server):
    server.kubectl("apply", "--server-side", "-f", "-", input=manifest().replace("ssa", "dry"))
    before = get(server, "deploy", "dry")
    changed = manifest(7).replace("ssa", "dry")
    dry = server.kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", input=changed)
    assert "(server dry run)" in dry.stdout
    dry_csa = server.kubectl("apply", "--dry-run=server", "-f", "-", input=changed)
    assert "(server dry run)" in dry_csa.stdout
    diff = server.kubectl("diff", "-f", "-", input=changed, check=False)
    assert diff.returncode == 1 and "replicas: 7" in diff.stdout, diff.stderr
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dry-cm}\ndata: {a: b}\n"
    created = server.kubectl("create", "--dry-run=server", "-f", "-", input=cm)
    assert "configmap/dry-cm created (server dry run)" in created.stdout
    after = get(server, "deploy", "dry")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["spec"]["replicas"] == 2
    missing = server.kubectl("get", "configmap", "dry-cm", check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr


def test_client_side_apply_then_server_side_apply(server):
    csa = server.kubectl("apply", "-f", "-", input=manifest().replace("ssa", "mixed"))
    assert "deployment.apps/mixed created" in csa.stdout
    managers = {(e["manager"], e["operation"])
                for e in get(server, "deploy", "mixed")["metadata"]["managedFields"]}
    assert ("kubectl-client-side-apply", "Update") in managers
    unchanged = server.kubectl("apply", "-f", "-", input=manifest().replace("ssa", "mixed"))
    assert "unchanged" in unchanged.stdout
    taken = server.kubectl("apply", "--server-side", "-f", "-",
                           input=manifest(3).replace("ssa", "mixed"), check=False)
    assert taken.returncode != 0
    assert 'conflict with "kubectl-client-side-apply" using apps/v1' in taken.stderr


def test_python_client_apply_patch(server):
    api = config.new_client_from_config(config_file=server.kubeconfig)
    core = k8s.CoreV1Api(api)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "py-applied"},
            "data": {"a": "1"}}
    created = core.patch_namespaced_config_map(
        "py-applied", "default", body, field_manager="py",
        _content_type="application/apply-patch+yaml")
    assert created.data == {"a": "1"}
    assert [(e.manager, e.operation) for e in created.metadata.managed_fields] == \
        [("py", "Apply")]
    body["data"] = {"b": "2"}
    replaced = core.patch_namespaced_config_map(
        "py-applied", "default", body, field_manager="py",
        _content_type="application/apply-patch+yaml")
    assert replaced.data == {"b": "2"}      # the field py stopped applying is gone
    with pytest.raises(k8s.exceptions.ApiException) as conflict:
        core.patch_namespaced_config_map("py-applied", "default", {**body, "data": {"b": "3"}},
                                         field_manager="other",
                                         _content_type="application/apply-patch+yaml")
    assert conflict.value.status == 409
    api.close()
