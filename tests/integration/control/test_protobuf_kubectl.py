"""kubectl's typed clients speak protobuf: every `kubectl create` generator works.

A real steer-apiserver (tests/integration/conftest.py ``server``); kubectl sends
``application/vnd.kubernetes.protobuf`` bodies and asks for protobuf answers.
The official Python client (JSON) is checked on the same objects.
"""

import json
import threading
import urllib.error
import urllib.request

import pytest

from control.api.protobuf import envelope
from control.objects import kinds
from tests.support.apiproc import eventually

pytestmark = pytest.mark.kubectl
NS = "proto"
MEDIA = "application/vnd.kubernetes.protobuf"

CREATES = [
    ("deployment", ["deployment", "web", "--image=nginx", "--replicas=0", "--port=80"]),
    ("configmap", ["configmap", "settings", "--from-literal=a=b", "--from-literal=c=d"]),
    ("secret", ["secret", "generic", "creds", "--from-literal=password=s3cr3t"]),
    ("service", ["service", "clusterip", "web", "--tcp=8080:80"]),
    ("job", ["job", "once", "--image=busybox", "--", "true"]),
    ("cronjob", ["cronjob", "nightly", "--image=busybox", "--schedule=0 1 * * *", "--", "true"]),
    ("serviceaccount", ["serviceaccount", "robot"]),
]


@pytest.fixture(scope="module")
def namespace(server):
    server.kubectl("create", "namespace", NS)
    return NS


@pytest.mark.parametrize("kind, args", CREATES, ids=[c[0] for c in CREATES])
def test_kubectl_create_generators(server, namespace, kind, args):
    result = server.kubectl("create", args[0], "-n", namespace, "-o", "json", *args[1:])
    created = json.loads(result.stdout)
    assert created["metadata"]["namespace"] == namespace
    assert created["metadata"]["uid"]
    name = created["metadata"]["name"]
    fetched = json.loads(server.kubectl("get", "-n", namespace, kind, name, "-o", "json").stdout)
    assert fetched["metadata"]["uid"] == created["metadata"]["uid"]


def test_created_objects_keep_their_values(server, namespace):
    get = lambda *a: json.loads(server.kubectl("get", "-n", namespace, *a,  # noqa: E731
                                               "-o", "json").stdout)
    deployment = get("deployment", "web")
    assert deployment["spec"]["replicas"] == 0          # a pointer's zero survives
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx" and container["ports"][0]["containerPort"] == 80
    assert get("configmap", "settings")["data"] == {"a": "b", "c": "d"}
    assert get("secret", "creds")["data"] == {"password": "czNjcjN0"}
    port = get("service", "web")["spec"]["ports"][0]
    assert port["port"] == 8080 and port["targetPort"] == 80
    assert get("cronjob", "nightly")["spec"]["schedule"] == "0 1 * * *"
    job = get("job", "once")
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["true"]


def test_kubectl_create_namespace_and_get_names(server, namespace):
    server.kubectl("create", "namespace", "proto-two")
    names = server.kubectl("get", "namespaces", "-o", "name").stdout.split()
    assert "namespace/proto-two" in names
    server.kubectl("delete", "namespace", "proto-two", "--wait=false")
    listed = server.kubectl("get", "configmaps,secrets", "-n", namespace, "-o", "name").stdout
    assert "configmap/settings" in listed and "secret/creds" in listed


def test_kubectl_token_can_i_and_whoami(server, namespace):
    token = server.kubectl("create", "token", "robot", "-n", namespace).stdout.strip()
    assert token.count(".") == 2                        # a JWT, from a protobuf TokenRequest
    assert server.kubectl("auth", "can-i", "create", "pods", "-n", namespace).stdout.strip() \
        == "yes"
    assert "admin" in server.kubectl("auth", "whoami").stdout


def test_kubectl_label_scale_and_delete_still_work(server, namespace):
    server.kubectl("label", "-n", namespace, "configmap", "settings", "tier=a")
    server.kubectl("scale", "-n", namespace, "deployment", "web", "--replicas=0")
    server.kubectl("delete", "-n", namespace, "serviceaccount", "robot")
    gone = server.kubectl("get", "-n", namespace, "serviceaccount", "robot", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_the_official_python_client_reads_the_same_objects(server, namespace):
    kubernetes = pytest.importorskip("kubernetes")
    api_client = kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))
    try:
        core = kubernetes.client.CoreV1Api(api_client)
        assert core.read_namespaced_config_map("settings", namespace).data["a"] == "b"
        apps = kubernetes.client.AppsV1Api(api_client)
        assert apps.read_namespaced_deployment("web", namespace).spec.replicas == 0
    finally:
        api_client.close()


def _get(server, path, accept):
    request = urllib.request.Request(server.url + path, headers={"Accept": accept})
    with server.urlopen(request) as answer:
        return answer.headers.get("Content-Type"), answer.read()


def test_protobuf_and_json_answers_hold_the_same_object(server, namespace):
    path = f"/api/v1/namespaces/{namespace}/configmaps/settings"
    media, raw = _get(server, path, f"{MEDIA},application/json")
    assert media == MEDIA and raw.startswith(envelope.MAGIC)
    media, text = _get(server, path, "application/json")
    assert media.startswith("application/json")
    assert envelope.decode(raw) == json.loads(text)
    media, raw = _get(server, f"/api/v1/namespaces/{namespace}/configmaps",
                      f"{MEDIA},application/json")
    assert media == MEDIA and envelope.decode(raw)["kind"] == "ConfigMapList"


def test_a_protobuf_error_is_a_protobuf_status(server):
    request = urllib.request.Request(server.url + "/api/v1/namespaces/none/pods/nobody",
                                     headers={"Accept": MEDIA})
    with pytest.raises(urllib.error.HTTPError) as caught:
        server.urlopen(request)
    assert caught.value.code == 404
    status = envelope.decode(caught.value.read())
    assert status["kind"] == "Status" and status["code"] == 404 and status["reason"] == "NotFound"



def test_kubectl_run_attach_follows_the_pod_through_a_protobuf_watch(server, namespace, rest):
    """`kubectl run --attach` waits on a typed (protobuf) watch of its pod: the pod's
    phase, set here as a node would, reaches it through protobuf WatchEvent frames."""
    def finish():
        pod = eventually(lambda: _get_pod(rest, namespace, "once-more"), timeout=60,
                         message="kubectl run created its pod")
        pod["status"] = {"phase": "Failed", "reason": "Test"}
        rest.update_status(kinds.PODS, namespace, pod)
    helper = threading.Thread(target=finish, daemon=True)
    helper.start()
    result = server.kubectl("run", "once-more", "-n", namespace, "--image=busybox",
                            "--restart=Never", "--attach", "--pod-running-timeout=60s",
                            "-v=6", check=False, timeout=120)
    helper.join(timeout=60)
    # (client-go logs "Unable to decode ... use of closed network connection" when it
    # closes the watch itself; a frame it cannot read is a "proto:" error.)
    assert "proto:" not in result.stderr, result.stderr[-2000:]
    assert "watch=true 200 OK" in result.stderr, result.stderr[-2000:]
    # It saw the pod end (not a timeout waiting for it): it then asks for its logs.
    assert "timed out waiting for the condition" not in result.stderr, result.stderr[-2000:]


def _get_pod(rest, namespace, name):
    try:
        return rest.get(kinds.PODS, namespace, name)
    except Exception:   # noqa: BLE001 - not there yet
        return None
