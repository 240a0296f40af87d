"""ServiceAccount tokens projected into pods, end to end, in a `steer up` cluster.

`steer up` gives the API server a signing key (sa.key) and ServiceAccount
admission, and the controller manager the cluster CA to publish as ConfigMap
kube-root-ca.crt. A pod then gets the projected volume kube-api-access-xxxxx;
its agent asks a token bound to the pod (as system:node:<node>) and writes token,
ca.crt and namespace where the container finds
/var/run/secrets/kubernetes.io/serviceaccount. The token authenticates as the
pod's ServiceAccount, may do what RBAC grants that account, and dies with the pod.
One node keeps the cluster cheap.
"""

import os
import stat

import pytest

from control.client import ApiException, RestClient
from control.objects import kinds
from tests.e2e.conftest import running_cluster
from tests.support.apiproc import eventually

NAMESPACE = "tokens"
MOUNT = "var/run/secrets/kubernetes.io/serviceaccount"
ISSUER = "https://kubernetes.default.svc.cluster.local"
POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "api-user", "namespace": NAMESPACE},
       "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
           "name": "main", "image": "busybox",
           # Shows that the container itself finds the files at their mountPath.
           "command": ["sh", "-c", f'cat "$STEER_ROOT/{MOUNT}/namespace"; echo; '
                                   f'test -s "$STEER_ROOT/{MOUNT}/token" && echo token-ok; '
                                   "exec sleep 3600"]}]}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory, nodes=1) as c:
        yield c


def _create_pod(cluster):
    """Create the pod, retrying while the namespace has no ServiceAccount "default" yet.

    Kubernetes has the same race: ServiceAccount admission refuses a pod created
    before the serviceaccount controller made the account (403 "error looking up
    service account"); controllers retry, and so does this.
    """
    def attempt():
        try:
            return cluster.rest.create(kinds.PODS, NAMESPACE, POD)
        except ApiException as exc:
            if exc.status == 403 and "error looking up service account" in str(exc):
                return None
            raise
    return eventually(attempt, timeout=30, message="the namespace's default ServiceAccount",
                      logs=cluster.logs)


@pytest.fixture(scope="module")
def pod(cluster):
    cluster.rest.create(kinds.NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": NAMESPACE}})
    created = _create_pod(cluster)

    def running():
        p = cluster.rest.get(kinds.PODS, NAMESPACE, "api-user")
        return p if (p.get("status") or {}).get("phase") == "Running" else None
    return created, eventually(running, timeout=60, message="the pod to run", logs=cluster.logs)


@pytest.fixture(scope="module")
def volume_dir(cluster, pod):
    """The directory the container sees at /var/run/secrets/kubernetes.io/serviceaccount."""
    workdir = eventually(lambda: cluster.container_workdir(pod[1]["metadata"]["uid"]),
                         timeout=30, message="the pod's container")
    path = os.path.join(workdir, MOUNT)
    eventually(lambda: os.path.isfile(os.path.join(path, "token")), timeout=30,
               message="the token file", logs=cluster.logs)
    return path


def read(path):
    with open(path) as f:
        return f.read()


def token_client(cluster, token):
    return RestClient(cluster.url, token=token, ca_file=os.path.join(cluster.home, "pki",
                                                                      "ca.crt"),
                      timeout=10, retries=0)


def status_of(call):
    try:
        call()
    except ApiException as exc:
        return exc.status
    return 200


def test_admission_gives_the_pod_its_account_and_the_projected_volume(pod):
    created, _ = pod
    spec = created["spec"]
    assert spec["serviceAccountName"] == "default"
    (volume,) = [v for v in spec["volumes"] if v["name"].startswith("kube-api-access-")]
    sources = volume["projected"]["sources"]
    assert sources[0]["serviceAccountToken"]["path"] == "token"
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    mounts = spec["containers"][0]["volumeMounts"]
    assert {"name": volume["name"], "readOnly": True,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"} in mounts


def test_the_volume_holds_token_ca_and_namespace_as_kubernetes_lays_them_out(cluster,
                                                                             volume_dir):
    real = os.path.realpath(volume_dir)
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o700
    for name in ("token", "ca.crt", "namespace"):
        # defaultMode 0644 (420), as Kubernetes' kube-api-access volume, in a 0700 directory.
        assert stat.S_IMODE(os.stat(os.path.join(real, name)).st_mode) == 0o644, name
    assert read(os.path.join(volume_dir, "namespace")) == NAMESPACE
    assert read(os.path.join(volume_dir, "ca.crt")) == read(
        os.path.join(cluster.home, "pki", "ca.crt"))
    assert read(os.path.join(volume_dir, "token")).count(".") == 2
    logs = eventually(lambda: (lambda out: "token-ok" in out and out)(
        cluster.steer("logs", "-n", NAMESPACE, "api-user", check=False).stdout),
        timeout=30, message="the container to read its files")
    assert logs.splitlines()[:2] == [NAMESPACE, "token-ok"]


def test_token_review_names_the_account_the_pod_and_the_audience(cluster, pod, volume_dir):
    token = read(os.path.join(volume_dir, "token"))
    review = cluster.rest.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", body={
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token}})["status"]
    assert review["authenticated"] is True, review
    assert review["user"]["username"] == f"system:serviceaccount:{NAMESPACE}:default"
    assert f"system:serviceaccounts:{NAMESPACE}" in review["user"]["groups"]
    assert review["user"]["extra"]["authentication.kubernetes.io/pod-name"] == ["api-user"]
    assert review["user"]["extra"]["authentication.kubernetes.io/pod-uid"] == [
        pod[1]["metadata"]["uid"]]
    assert review["audiences"] == [ISSUER]
    other = cluster.rest.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", body={
        "spec": {"token": token, "audiences": ["https://somewhere-else"]}})["status"]
    assert other["authenticated"] is False


def test_the_token_can_do_what_rbac_grants_its_account(cluster, volume_dir):
    client = token_client(cluster, read(os.path.join(volume_dir, "token")))
    assert status_of(lambda: client.list(kinds.PODS, NAMESPACE)) == 403
    cluster.rest.create(kinds.ROLEBINDINGS, NAMESPACE, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "default-view", "namespace": NAMESPACE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": NAMESPACE}]})
    listed = eventually(lambda: status_of(lambda: client.list(kinds.PODS, NAMESPACE)) == 200,
                        timeout=30, message="the RoleBinding to take effect")
    assert listed
    assert [p["metadata"]["name"] for p in client.list(kinds.PODS, NAMESPACE)["items"]] == \
        ["api-user"]
    assert status_of(lambda: client.list(kinds.PODS, "default")) == 403
    assert status_of(lambda: client.delete(kinds.PODS, NAMESPACE, "api-user")) == 403


def test_the_token_dies_with_the_pod(cluster, volume_dir):
    client = token_client(cluster, read(os.path.join(volume_dir, "token")))
    assert status_of(lambda: client.list(kinds.PODS, NAMESPACE)) == 200
    cluster.rest.delete(kinds.PODS, NAMESPACE, "api-user")
    eventually(lambda: status_of(lambda: client.list(kinds.PODS, NAMESPACE)) == 401,
               timeout=30, message="the token to be refused once its pod is deleted")
