"""The real kubectl (/usr/bin/kubectl, v1.32) against a real API server and store."""

import subprocess
import threading
import time

import pytest

from tests.support.kubectl import kubectl_argv

pytestmark = pytest.mark.kubectl

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 80
"""


@pytest.fixture(scope="module")
def api(server):
    return server


def test_apply_get_and_yaml(api):
    applied = api.kubectl("apply", "-f", "-", input=MANIFEST)
    assert "deployment.apps/web created" in applied.stdout
    assert "service/web created" in applied.stdout
    assert "unchanged" in api.kubectl("apply", "-f", "-", input=MANIFEST).stdout
    names = api.kubectl("get", "deploy,svc", "-o", "name").stdout.split()
    assert names == ["deployment.apps/web", "service/web"]
    yaml_out = api.kubectl("get", "deploy", "web", "-o", "yaml").stdout
    assert "kubectl.kubernetes.io/last-applied-configuration" in yaml_out
    assert "image: nginx:1.27" in yaml_out


def test_apply_rejects_unknown_fields(api):
    bad = MANIFEST.replace("replicas: 2", "replicas: 2\n  replicaz: 3").split("---")[0]
    result = api.kubectl("apply", "-f", "-", input=bad.replace("name: web", "name: typo", 1),
                         check=False)
    assert result.returncode != 0
    assert "replicaz" in result.stderr


def test_scale_label_describe(api):
    api.kubectl("apply", "-f", "-", input=MANIFEST)
    api.kubectl("scale", "deploy", "web", "--replicas=3")
    assert api.kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}").stdout == "3"
    api.kubectl("label", "deploy", "web", "tier=front", "--overwrite")
    assert api.kubectl("get", "deploy", "-l", "tier=front", "-o", "name").stdout.split() == \
        ["deployment.apps/web"]
    described = api.kubectl("describe", "deploy", "web").stdout
    assert "tier=front" in described and "nginx:1.27" in described


def test_get_watch_sees_a_change(api):
    api.kubectl("apply", "-f", "-", input=MANIFEST)
    watcher = subprocess.Popen(kubectl_argv(api.kubeconfig, "get", "cm", "-w", "-o", "name"),
                               stdout=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(watcher.stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        created = False
        while time.monotonic() < deadline and "configmap/watched" not in "".join(lines):
            if not created and watcher.poll() is None:
                # Create after the watch is likely open; the list+watch sees it either way.
                api.kubectl("create", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\n"
                            "metadata: {name: watched}\n")
                created = True
            time.sleep(0.1)
        assert "configmap/watched" in "".join(lines)
    finally:
        watcher.kill()
        watcher.wait()


def test_explain(api):
    explained = api.kubectl("explain", "pods.spec").stdout
    assert "KIND:" in explained and "containers" in explained and "restartPolicy" in explained


def test_delete(api):
    api.kubectl("apply", "-f", "-", input=MANIFEST)
    deleted = api.kubectl("delete", "-f", "-", input=MANIFEST).stdout
    assert 'deployment.apps "web" deleted' in deleted
    missing = api.kubectl("get", "deploy", "web", check=False)
    assert missing.returncode == 1 and "NotFound" in missing.stderr
