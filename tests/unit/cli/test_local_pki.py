"""`steer up`'s credentials (cli/local_pki.py) and where the CLI finds them (cli/config.py)."""

import datetime
import json
import os
import stat
from types import SimpleNamespace

import pytest
import yaml

from cli import cluster_cmd, config, pki
from cli.local_pki import LocalCredentials
from control.client import kubeconfig

URL = "https://127.0.0.1:6443"
NODES = [("node-1", "127.0.1.1"), ("node-2", "127.0.1.2")]


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def creds(tmp_path):
    return LocalCredentials(str(tmp_path)).ensure(URL, NODES)


def test_every_identity_is_issued(creds):
    expect = {"admin": ("admin", ["system:masters"]),
              "scheduler": ("system:kube-scheduler", []),
              "controller-manager": ("system:kube-controller-manager", []),
              "proxy": ("system:kube-proxy", []),
              "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", ["system:masters"]),
              "apiserver": ("kube-apiserver", []),
              "nodes/node-1": ("system:node:node-1", ["system:nodes"]),
              "nodes/node-2-serving": ("system:node:node-2", [])}
    for name, identity in expect.items():
        assert pki.read_identity(creds.cert(name)[0]) == identity, name
    assert mode(creds.dir) == 0o700 and mode(creds.cert("admin")[1]) == 0o600


def test_component_kubeconfigs_name_their_own_certificates(creds):
    for name in ("scheduler", "controller-manager", "proxy"):
        path = creds.kubeconfig(name)
        assert mode(path) == 0o600
        with open(path) as handle:
            json.load(handle)           # JSON: control.client reads it without PyYAML
        loaded = kubeconfig.load(path)
        assert (loaded.server, loaded.ca_file) == (URL, creds.ca_file)
        assert loaded.cert_file == creds.cert(name)[0]
    agent = kubeconfig.load(creds.agent_kubeconfig("node-2"))
    assert pki.read_identity(agent.cert_file) == ("system:node:node-2", ["system:nodes"])


def test_ensure_reuses_until_rotation_is_due(tmp_path, creds):
    ca_pem = open(creds.ca_file, "rb").read()
    again = LocalCredentials(str(tmp_path)).ensure(URL, NODES)
    assert again.issued == []
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=300)
    rotated = LocalCredentials(str(tmp_path), now=later).ensure(URL, NODES)
    assert "admin" in rotated.issued and "nodes/node-1-serving" in rotated.issued
    assert open(creds.ca_file, "rb").read() == ca_pem      # the CA itself is kept


def test_the_service_account_key_pair_is_made_once_and_kept(tmp_path, creds):
    from control.api.auth import sa_token

    assert mode(creds.service_account_key) == 0o600
    assert mode(creds.service_account_public_key) == 0o644
    key = sa_token.load_signing_key(creds.service_account_key)
    assert key.curve.name == "secp256r1"
    private_pem = open(creds.service_account_key, "rb").read()
    os.remove(creds.service_account_public_key)
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=300)
    LocalCredentials(str(tmp_path), now=later).ensure(URL, NODES)     # rotation time too
    assert open(creds.service_account_key, "rb").read() == private_pem
    (public,) = sa_token.load_verify_keys(creds.service_account_public_key)
    assert sa_token.key_id(public) == sa_token.key_id(key.public_key())
    # What it signs, its public half verifies.
    token, _ = sa_token.TokenSigner(key, "iss").issue("default", "default", "uid-1")
    assert sa_token.TokenVerifier([public], ["iss"], ["iss"]).claims(token)["sub"] == \
        "system:serviceaccount:default:default"


def test_write_config_embeds_the_admin_credentials(tmp_path, creds):
    home = tmp_path / "home"
    kube_path = str(home / "kubeconfig")
    cluster_cmd.write_config(str(home), URL, kube_path, str(home / "cluster"), creds)
    assert mode(home) == 0o700
    assert mode(home / "config") == 0o600 and mode(kube_path) == 0o600
    with open(kube_path) as handle:
        document = yaml.safe_load(handle)
    assert "client-key-data" in document["users"][0]["user"]
    loaded = kubeconfig.load(kube_path)
    assert loaded.server == URL and "BEGIN CERTIFICATE" in loaded.ca_data
    assert pki.read_identity(loaded.cert_file) == ("admin", ["system:masters"])
    # `steer` verbs find the same credentials through $STEER_HOME/config.
    args = SimpleNamespace(server=None, token=None, kubeconfig=None, context=None)
    found = config.load_client_config(args, {"STEER_HOME": str(home)})
    assert found.server == URL and found.cert_file and found.ca_data


def test_token_file_and_the_warning_for_token_on_argv(tmp_path, capsys):
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    args = SimpleNamespace(server="https://h:1", token="argv", token_file=str(token_file),
                           kubeconfig=None, context=None, certificate_authority="/ca.crt")
    found = config.load_client_config(args, {})
    assert (found.token, found.ca_file) == ("from-file", "/ca.crt")
    assert capsys.readouterr().err == ""
    args.token_file = None
    assert config.load_client_config(args, {}).token == "argv"
    assert "visible" in capsys.readouterr().err
