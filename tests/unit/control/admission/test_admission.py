"""Admission through the real app: ServiceAccount and PodSecurity, with Kubernetes' answers."""

import falcon.testing
import pytest

from control.api import admission
from control.api.admission import pod_security
from control.api.app import create_app
from tests.support.fake_store import FakeStore

PODS = "/api/v1/namespaces/default/pods"


def pod(name="p", **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def _client(plugins):
    return falcon.testing.TestClient(create_app(FakeStore(), admission_plugins=plugins))


@pytest.fixture
def sa_client():
    client = _client(["ServiceAccount"])
    client.simulate_post("/api/v1/namespaces/default/serviceaccounts",
                         json={"metadata": {"name": "default"}})
    return client


def test_without_plugins_pods_are_unchanged():
    created = _client(None).simulate_post(PODS, json=pod()).json
    assert "serviceAccountName" not in created["spec"] and "volumes" not in created["spec"]


def test_unknown_plugin_names_are_refused():
    with pytest.raises(ValueError, match="unknown admission plugins: Nope"):
        admission.parse("ServiceAccount,Nope")
    assert admission.parse(" ServiceAccount , PodSecurity ") == ["ServiceAccount", "PodSecurity"]


def test_a_pod_gets_the_default_account_and_its_token_volume(sa_client):
    answer = sa_client.simulate_post(PODS, json=pod(initContainers=[{"name": "i",
                                                                      "image": "busybox"}]))
    assert answer.status_code == 201, answer.json
    spec = answer.json["spec"]
    assert spec["serviceAccountName"] == "default"
    (volume,) = spec["volumes"]
    assert volume["name"].startswith("kube-api-access-") and len(volume["name"]) == 21
    sources = volume["projected"]["sources"]
    assert sources[0]["serviceAccountToken"]["path"] == "token"
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    assert sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] == "metadata.namespace"
    for container in spec["containers"] + spec["initContainers"]:
        assert container["volumeMounts"] == [{
            "name": volume["name"], "readOnly": True,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]


def test_a_missing_account_is_forbidden(sa_client):
    answer = sa_client.simulate_post(PODS, json=pod(serviceAccountName="robot"))
    assert answer.status_code == 403
    assert answer.json["message"] == (
        'pods "p" is forbidden: error looking up service account default/robot: '
        'serviceaccount "robot" not found')


@pytest.mark.parametrize("pod_flag,account_flag,mounted", [
    (None, None, True), (False, None, False), (None, False, False), (True, False, True)])
def test_automount_pod_then_account(sa_client, pod_flag, account_flag, mounted):
    sa_client.simulate_post("/api/v1/namespaces/default/serviceaccounts",
                            json={"metadata": {"name": "robot"},
                                  "automountServiceAccountToken": account_flag})
    spec = {"serviceAccountName": "robot"}
    if pod_flag is not None:
        spec["automountServiceAccountToken"] = pod_flag
    created = sa_client.simulate_post(PODS, json=pod(**spec)).json
    assert bool(created["spec"].get("volumes")) is mounted


def test_updates_and_status_writes_are_not_mutated(sa_client):
    created = sa_client.simulate_post(PODS, json=pod()).json
    created["metadata"]["labels"] = {"a": "b"}
    updated = sa_client.simulate_put(f"{PODS}/p", json=created).json
    assert len(updated["spec"]["volumes"]) == 1



def _account_with_pull_secrets(client, name="robot"):
    client.simulate_post("/api/v1/namespaces/default/serviceaccounts", json={
        "metadata": {"name": name},
        "imagePullSecrets": [{"name": "regcred"}, {"name": "mirror"}]})


def test_a_pod_without_pull_secrets_gets_the_accounts(sa_client):
    _account_with_pull_secrets(sa_client)
    created = sa_client.simulate_post(PODS, json=pod(serviceAccountName="robot")).json
    assert created["spec"]["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror"}]


def test_a_pod_with_pull_secrets_keeps_its_own(sa_client):
    _account_with_pull_secrets(sa_client)
    created = sa_client.simulate_post(PODS, json=pod(
        serviceAccountName="robot", imagePullSecrets=[{"name": "mine"}])).json
    assert created["spec"]["imagePullSecrets"] == [{"name": "mine"}]


def test_pull_secrets_are_copied_without_the_token(sa_client):
    _account_with_pull_secrets(sa_client)
    created = sa_client.simulate_post(PODS, json=pod(
        serviceAccountName="robot", automountServiceAccountToken=False)).json
    assert created["spec"]["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror"}]
    assert not created["spec"].get("volumes")


def test_an_account_without_pull_secrets_adds_none(sa_client):
    created = sa_client.simulate_post(PODS, json=pod()).json
    assert "imagePullSecrets" not in created["spec"]

# -- PodSecurity ------------------------------------------------------------------------


@pytest.fixture
def ps_client():
    return _client(["PodSecurity"])


def test_baseline_refuses_with_kubernetes_message(ps_client):
    hostile = pod(hostNetwork=True, hostPID=True,
                  containers=[{"name": "a", "image": "busybox",
                               "securityContext": {"privileged": True},
                               "ports": [{"containerPort": 8080, "hostPort": 8080}]},
                              {"name": "b", "image": "busybox", "securityContext": {"capabilities": {
                                  "add": ["NET_ADMIN", "CHOWN", "SYS_ADMIN"]}}}],
                  volumes=[{"name": "h", "hostPath": {"path": "/etc"}}])
    answer = ps_client.simulate_post(PODS, json=hostile)
    assert answer.status_code == 403
    assert answer.json["message"] == (
        'pods "p" is forbidden: violates PodSecurity "baseline:latest": '
        'host namespaces (hostNetwork=true, hostPID=true), '
        'privileged (container "a" must not set securityContext.privileged=true), '
        'non-default capabilities (container "b" must not include "NET_ADMIN", "SYS_ADMIN" '
        'in securityContext.capabilities.add), '
        'hostPath volumes (volume "h"), '
        'hostPort (container "a" uses hostPort 8080)')


def test_baseline_allows_a_plain_pod(ps_client):
    assert ps_client.simulate_post(PODS, json=pod()).status_code == 201


def test_a_privileged_namespace_allows_everything(ps_client):
    ps_client.simulate_post("/api/v1/namespaces", json={"metadata": {
        "name": "ops", "labels": {pod_security.ENFORCE_LABEL: "privileged"}}})
    answer = ps_client.simulate_post("/api/v1/namespaces/ops/pods",
                                     json=pod(hostNetwork=True))
    assert answer.status_code == 201


def test_kube_system_is_exempt(ps_client):
    answer = ps_client.simulate_post("/api/v1/namespaces/kube-system/pods",
                                     json=pod(hostNetwork=True))
    assert answer.status_code == 201


def test_seccomp_and_proc_mount():
    spec = {"securityContext": {"seccompProfile": {"type": "Unconfined"}},
            "containers": [{"name": "c", "securityContext": {"procMount": "Unmasked"}}]}
    reasons = [reason for reason, _ in pod_security.baseline_violations(spec)]
    assert reasons == ["seccompProfile", "procMount"]
