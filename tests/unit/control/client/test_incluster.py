"""control/client/incluster.py: a pod's own access to the API server."""

import os

import pytest

from control.client import RestClient, incluster


@pytest.fixture
def account(tmp_path):
    (tmp_path / "token").write_text("first\n")
    (tmp_path / "ca.crt").write_text("not read here\n")
    (tmp_path / "namespace").write_text("kube-system")
    return tmp_path


ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def test_load_builds_the_config_from_the_variables_and_the_mounted_files(account):
    config = incluster.load(ENV, str(account))
    assert config.server == "https://10.96.0.1:443"
    assert config.ca_file == os.path.join(account, "ca.crt")
    assert config.namespace == "kube-system"
    assert f"Bearer {config.token}" == "Bearer first"


def test_an_ipv6_host_is_bracketed(account):
    config = incluster.load({"KUBERNETES_SERVICE_HOST": "fd00::1",
                             "KUBERNETES_SERVICE_PORT": "443"}, str(account))
    assert config.server == "https://[fd00::1]:443"


def test_outside_a_pod_the_error_says_so(account):
    with pytest.raises(incluster.InClusterError, match="KUBERNETES_SERVICE_HOST"):
        incluster.load({}, str(account))
    assert not incluster.available({}, str(account))


def test_a_missing_token_is_named(tmp_path):
    with pytest.raises(incluster.InClusterError, match="ServiceAccount token"):
        incluster.load(ENV, str(tmp_path))


def test_the_token_is_read_again_after_the_refresh_period(account):
    now = [0.0]
    token = incluster.FileToken(str(account / "token"), refresh=60, clock=lambda: now[0])
    assert str(token) == "first"
    (account / "token").write_text("second")
    now[0] = 30.0
    assert str(token) == "first"
    now[0] = 61.0
    assert str(token) == "second"


def test_a_rest_client_sends_the_current_token(account):
    now = [0.0]
    token = incluster.FileToken(str(account / "token"), refresh=1, clock=lambda: now[0])
    rest = RestClient("https://10.96.0.1:443", token=token)
    assert rest.token and f"Bearer {rest.token}" == "Bearer first"
    (account / "token").write_text("rotated")
    now[0] = 2.0
    assert f"Bearer {rest.token}" == "Bearer rotated"
