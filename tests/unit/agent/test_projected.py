"""Projected volumes as ServiceAccount admission adds them: token, CA and namespace files."""

import os
import stat

import pytest

from agent import volumes
from agent.env import ConfigError
from agent.kubelet import ApiAdapter
from control.api.admission.service_account import api_access_volume
from control.client import NotFound


def _pod():
    return {"metadata": {"name": "web", "namespace": "prod", "uid": "u1"},
            "spec": {"serviceAccountName": "robot",
                     "volumes": [api_access_volume("kube-api-access-abcde")]}}


class FakeRest:
    """What ApiAdapter needs: path() and request(), recording the TokenRequests."""

    def __init__(self, answer=None, error=None):
        self.requests, self.answer, self.error = [], answer, error

    def path(self, resource, namespace, name, subresource=None):
        return f"/api/v1/namespaces/{namespace}/{resource.plural}/{name}/{subresource}"

    def request(self, method, path, body=None, **kwargs):
        self.requests.append((method, path, body))
        if self.error:
            raise self.error
        return self.answer


def test_the_api_access_volume_is_materialised(tmp_path):
    get = lambda kind, ns, name: {"data": {"ca.crt": "PEM"}} \
        if (kind, ns, name) == ("ConfigMap", "prod", "kube-root-ca.crt") else None  # noqa
    asked = []

    def token(pod, source):
        asked.append(source)
        return "jwt"
    paths = volumes.materialise(_pod(), str(tmp_path / "pod"), get, token=token,
                                secret_dir=str(tmp_path / "shm"))
    target = paths["kube-api-access-abcde"]
    assert target.startswith(str(tmp_path / "shm"))
    files = {name: open(os.path.join(target, name)).read() for name in os.listdir(target)}
    assert files == {"token": "jwt", "ca.crt": "PEM", "namespace": "prod"}
    assert stat.S_IMODE(os.stat(os.path.join(target, "token")).st_mode) == 0o644
    assert asked == [{"expirationSeconds": 3607, "path": "token"}]


def test_without_a_token_client_the_mount_fails_clearly(tmp_path):
    with pytest.raises(ConfigError, match="cannot request tokens"):
        volumes.materialise(_pod(), str(tmp_path), lambda *a: {"data": {"ca.crt": "x"}})


def test_the_adapter_asks_the_token_request_api_bound_to_the_pod():
    rest = FakeRest(answer={"status": {"token": "jwt", "expirationTimestamp": "x"}})
    token = ApiAdapter(rest).request_token(_pod(), {"expirationSeconds": 3607,
                                                    "audience": "vault"})
    assert token == "jwt"
    (method, path, body), = rest.requests
    assert (method, path) == ("POST", "/api/v1/namespaces/prod/serviceaccounts/robot/token")
    assert body == {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {
        "expirationSeconds": 3607, "audiences": ["vault"],
        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web", "uid": "u1"}}}


def test_a_refused_token_request_is_a_mount_error():
    rest = FakeRest(error=NotFound(404, "NotFound", "no such subresource"))
    with pytest.raises(ConfigError, match="failed to fetch token"):
        ApiAdapter(rest).request_token(_pod(), {})
