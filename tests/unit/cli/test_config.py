"""Where the CLI finds its server: --server, $STEER_SERVER, $STEER_HOME/config, kubeconfig."""

from types import SimpleNamespace

import pytest
import yaml

from cli.config import NO_CLUSTER, default_namespace, load_connection
from cli.errors import CommandError


def args(**kw):
    return SimpleNamespace(server=kw.get("server"), token=kw.get("token"),
                           namespace=kw.get("namespace"), kubeconfig=kw.get("kubeconfig"),
                           context=kw.get("context"))


@pytest.fixture
def home(tmp_path):
    (tmp_path / "home").mkdir()
    return tmp_path


def env_for(home, **extra):
    return {"STEER_HOME": str(home / "home"), "KUBECONFIG": str(home / "kubeconfig"), **extra}


def write_steer_config(home, **fields):
    (home / "home" / "config").write_text(yaml.safe_dump(fields))


def write_kubeconfig(home, server="http://kube:6443", token="kt", namespace=None):
    context = {"cluster": "c", "user": "u", **({"namespace": namespace} if namespace else {})}
    (home / "kubeconfig").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "steersman",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "steersman", "context": context}]}))


def test_flag_wins_over_everything(home):
    write_steer_config(home, apiServer="http://cfg:1", token="ct")
    write_kubeconfig(home)
    env = env_for(home, STEER_SERVER="http://env:2")
    assert load_connection(args(server="http://flag:3/", token="ft"), env) == ("http://flag:3",
                                                                               "ft")


def test_env_then_steer_config_then_kubeconfig(home):
    write_steer_config(home, apiServer="http://cfg:1", token="ct")
    write_kubeconfig(home)
    assert load_connection(args(), env_for(home, STEER_SERVER="http://env:2",
                                           STEER_TOKEN="et")) == ("http://env:2", "et")
    assert load_connection(args(), env_for(home)) == ("http://cfg:1", "ct")
    (home / "home" / "config").unlink()
    assert load_connection(args(), env_for(home)) == ("http://kube:6443", "kt")


def test_empty_token_means_none(home):
    write_steer_config(home, apiServer="http://cfg:1", token="")
    assert load_connection(args(), env_for(home)) == ("http://cfg:1", None)


def test_no_cluster_says_what_to_do(home):
    with pytest.raises(CommandError) as caught:
        load_connection(args(), env_for(home))
    assert str(caught.value) == NO_CLUSTER
    assert caught.value.exit_code == 1


def test_namespace_resolution(home):
    assert default_namespace(args(namespace="x"), env_for(home)) == "x"
    assert default_namespace(args(), env_for(home)) == "default"
    write_kubeconfig(home, namespace="team")
    assert default_namespace(args(), env_for(home)) == "team"
    write_steer_config(home, apiServer="http://cfg:1", namespace="mine")
    assert default_namespace(args(), env_for(home)) == "mine"


def test_explicit_kubeconfig_and_context(home):
    write_steer_config(home, apiServer="http://cfg:1", token="ct")
    write_kubeconfig(home, namespace="team")
    path = str(home / "kubeconfig")
    env = env_for(home, STEER_SERVER="http://env:2")
    assert load_connection(args(kubeconfig=path), env) == ("http://kube:6443", "kt")
    assert default_namespace(args(kubeconfig=path), env) == "team"
    with pytest.raises(CommandError, match='context "other" does not exist'):
        load_connection(args(kubeconfig=path, context="other"), env)
