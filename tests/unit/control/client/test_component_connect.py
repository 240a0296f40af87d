"""The components' connection flags: --kubeconfig first, --api-server and --token-file beside it."""

import argparse
import ssl

import pytest

from control.client import component
from tests.unit.control.client.test_tls import write_kubeconfig
from tests.unit.control.client.tls_stub import make_pki


def parse(argv):
    parser = argparse.ArgumentParser()
    component.add_common_flags(parser, "test")
    return parser.parse_args(argv)


def test_kubeconfig_gives_server_trust_and_certificate(tmp_path):
    ca, _, admin = make_pki(tmp_path)
    path = write_kubeconfig(tmp_path / "k", "https://127.0.0.1:6443",
                            {"certificate-authority": ca.cert_path},
                            {"client-certificate": admin.cert, "client-key": admin.key})
    rest = component.connect(parse(["--kubeconfig", path]), timeout=3)
    assert (rest.scheme, rest.host, rest.port, rest.token, rest.timeout) == \
        ("https", "127.0.0.1", 6443, None, 3)
    assert rest.ssl_context.verify_mode == ssl.CERT_REQUIRED


def test_a_missing_tls_file_is_a_clear_exit(tmp_path):
    path = write_kubeconfig(tmp_path / "k", "https://127.0.0.1:6443",
                            {"certificate-authority": "missing-ca.crt"}, {})
    with pytest.raises(SystemExit, match="cannot load the TLS files"):
        component.connect(parse(["--kubeconfig", path]))


def test_api_server_and_token_file_override_the_kubeconfig(tmp_path):
    path = write_kubeconfig(tmp_path / "k", "http://127.0.0.1:1", {}, {"token": "old"})
    (tmp_path / "token").write_text("new\n")
    rest = component.connect(parse(["--kubeconfig", path, "--api-server", "http://10.0.0.1:2/",
                                    "--token-file", str(tmp_path / "token")]))
    assert (rest.host, rest.port, rest.token) == ("10.0.0.1", 2, "new")


def test_api_server_alone_still_works():
    rest = component.rest_client(parse(["--api-server", "http://127.0.0.1:8080"]))
    assert (rest.scheme, rest.ssl_context, rest.token) == ("http", None, None)
    assert rest.timeout == 5.0      # half the renew deadline


def test_without_a_server_or_with_a_broken_kubeconfig_it_exits(tmp_path):
    with pytest.raises(SystemExit, match="--kubeconfig FILE"):
        component.connect(parse([]))
    with pytest.raises(SystemExit, match="cannot read kubeconfig"):
        component.connect(parse(["--kubeconfig", str(tmp_path / "missing")]))
