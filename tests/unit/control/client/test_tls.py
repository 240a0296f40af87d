"""RestClient and kubeconfigs over real TLS on loopback, with certificates from cli/pki.py."""

import base64
import os
import stat

import pytest
import yaml

from control.client import errors
from control.client import kubeconfig as kc
from control.client.rest import RestClient
from control.objects import kinds
from tests.unit.control.client.tls_stub import TlsStub, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def stub(pki):
    ca, serving, _ = pki
    with TlsStub(ca, serving) as server:
        yield server


def b64(path):
    with open(path, "rb") as handle:
        return base64.b64encode(handle.read()).decode()


def write_kubeconfig(path, server, cluster, user, namespace=None):
    context = {"cluster": "c", "user": "u", **({"namespace": namespace} if namespace else {})}
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "ctx",
        "clusters": [{"name": "c", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": context}]}))
    return str(path)


def test_client_certificate_reaches_the_server(pki, stub):
    ca, _, admin = pki
    client = RestClient(stub.url, ca_file=ca.cert_path, cert_file=admin.cert,
                        key_file=admin.key, retries=0)
    assert client.request("GET", "/who") == {"user": "admin", "auth": None}
    first = client._local.conn.sock
    # The keep-alive TLS connection is reused for a second request.
    assert client.request("GET", "/who")["user"] == "admin"
    assert client._local.conn.sock is first


def test_token_without_certificate(pki, stub):
    ca, _, _ = pki
    client = RestClient(stub.url, token="s3cret", ca_file=ca.cert_path, retries=0)
    assert client.request("GET", "/who") == {"user": "", "auth": "Bearer s3cret"}


def test_unknown_ca_is_refused(stub, tmp_path):
    other = make_pki(tmp_path)[0]
    client = RestClient(stub.url, ca_file=other.cert_path, retries=0)
    with pytest.raises(errors.ConnectionFailed, match="CERTIFICATE_VERIFY_FAILED"):
        client.request("GET", "/who")


def test_hostname_is_checked(pki, stub):
    ca, _, _ = pki
    # The serving certificate names 127.0.0.1 and localhost, not 127.0.0.2.
    client = RestClient(stub.url.replace("127.0.0.1", "127.0.0.2"), ca_file=ca.cert_path,
                        retries=0)
    with pytest.raises(errors.ConnectionFailed):
        client.request("GET", "/who")


def test_watch_over_tls(pki, stub):
    ca, _, admin = pki
    client = RestClient(stub.url, ca_file=ca.cert_path, cert_file=admin.cert,
                        key_file=admin.key)
    pods = kinds.lookup("", "v1", "pods")
    with client.watch(pods, "default") as watch:
        names = [obj["metadata"]["name"] for _, obj in watch]
    assert names == ["a", "b"]


def test_kubeconfig_with_files(pki, stub, tmp_path):
    ca, _, admin = pki
    path = write_kubeconfig(tmp_path / "kubeconfig", stub.url,
                            {"certificate-authority": os.path.relpath(ca.cert_path, tmp_path)},
                            {"client-certificate": admin.cert, "client-key": admin.key},
                            namespace="team")
    config = kc.load(path)
    assert config.ca_file == ca.cert_path     # relative to the kubeconfig's directory
    assert config.namespace == "team"
    client = RestClient.from_config(config, retries=0)
    assert client.request("GET", "/who")["user"] == "admin"


def test_kubeconfig_with_data(pki, stub, tmp_path):
    ca, _, admin = pki
    path = write_kubeconfig(tmp_path / "kubeconfig", stub.url,
                            {"certificate-authority-data": b64(ca.cert_path)},
                            {"client-certificate-data": b64(admin.cert),
                             "client-key-data": b64(admin.key)})
    config = kc.load(path)
    assert config.ca_file is None and "BEGIN CERTIFICATE" in config.ca_data
    # The key became a private file in a private directory.
    assert stat.S_IMODE(os.stat(config.key_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(config.key_file)).st_mode) == 0o700
    assert RestClient.from_config(config, retries=0).request("GET", "/who")["user"] == "admin"


def test_kubeconfig_token_file_and_named_context(tmp_path):
    (tmp_path / "token").write_text("abc\n")
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "current-context": "one",
        "clusters": [{"name": "c1", "cluster": {"server": "http://127.0.0.1:1/"}},
                     {"name": "c2", "cluster": {"server": "https://127.0.0.1:2",
                                                "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"tokenFile": "token"}}],
        "contexts": [{"name": "one", "context": {"cluster": "c1", "user": "u"}},
                     {"name": "two", "context": {"cluster": "c2", "user": "u"}}]}))
    one = kc.load(str(path))
    assert (one.server, one.token, one.ssl_context()) == ("http://127.0.0.1:1", "abc", None)
    two = kc.load(str(path), context="two")
    assert two.insecure_skip_tls_verify and not two.ssl_context().check_hostname


@pytest.mark.parametrize("document, message", [
    ({"current-context": "x"}, "does not exist"),
    ({}, "no current-context"),
    ({"current-context": "x", "contexts": [{"name": "x", "context": {"cluster": "c"}}]},
     "no cluster server"),
    ({"current-context": "x", "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
      "clusters": [{"name": "c", "cluster": {"server": "https://h"}}],
      "users": [{"name": "u", "user": {"client-certificate": "/x.crt"}}]}, "without its key"),
    ({"current-context": "x", "contexts": [{"name": "x", "context": {"cluster": "c"}}],
      "clusters": [{"name": "c", "cluster": {"server": "https://h",
                                             "certificate-authority-data": "!!"}}]},
     "not base64"),
])
def test_bad_kubeconfigs(tmp_path, document, message):
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(kc.KubeconfigError, match=message):
        kc.load(str(path))


def test_missing_kubeconfig(tmp_path):
    with pytest.raises(kc.KubeconfigError, match="cannot read"):
        kc.load(str(tmp_path / "nope"))
