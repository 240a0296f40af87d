"""`steer node join` by bootstrap token: the token, its Secret, the joining host's plan."""

import dataclasses
import datetime
import json
import os
import re
import stat

import pytest

from agent.provision import plan as planmod
from cli.baremetal import jointoken
from cli.baremetal import topology as topo
from cli.baremetal.credentials import ClusterCredentials
from control.api.auth.tokens import BOOTSTRAP_TOKEN, BootstrapTokens, InvalidCredentials

NOW = datetime.datetime(2026, 12, 5, 3, 0, tzinfo=datetime.timezone.utc)


def joined_topology():
    t = topo.build("t", "0.1.0", ["root@192.0.2.1"], ["root@192.0.2.4"], resolve=lambda n: n)
    t.hosts.append(dataclasses.replace(topo.make_host("root@192.0.2.9", resolve=lambda n: n),
                                       bootstrap=True))
    return t


def test_a_new_token_has_kubeadms_shape_and_differs_each_time():
    tokens = {jointoken.new_token() for _ in range(20)}
    assert len(tokens) == 20
    assert all(BOOTSTRAP_TOKEN.fullmatch(t) for t in tokens)


def test_the_secret_authenticates_the_token_until_it_expires():
    token = jointoken.new_token()
    secret = jointoken.token_secret(token, "192.0.2.9", NOW, ttl=600)
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    assert secret["metadata"] == {"name": f"bootstrap-token-{token[:6]}",
                                  "namespace": "kube-system",
                                  "labels": {"steersman.io/node-join": "192.0.2.9"}}
    assert secret["stringData"]["expiration"] == "2026-12-05T03:10:00Z"

    def authenticate(at):
        tokens = BootstrapTokens(lambda kind, ns, name: secret, lambda: at)
        return tokens.authenticate_token(token)
    who = authenticate(NOW + datetime.timedelta(seconds=599))
    assert who.name == f"system:bootstrap:{token[:6]}"
    assert "system:bootstrappers" in who.groups and jointoken.EXTRA_GROUP in who.groups
    with pytest.raises(InvalidCredentials, match="expired"):
        authenticate(NOW + datetime.timedelta(seconds=600))


def test_a_token_joined_worker_gets_no_node_certificate_but_a_token_kubeconfig(tmp_path):
    spec = topo.to_spec(joined_topology())
    joiner = spec.host("192.0.2.9")
    creds = ClusterCredentials(tmp_path / "pki")
    with pytest.raises(ValueError, match="run `steer node join` again"):
        creds.host_files(spec, joiner)
    creds.save_bootstrap_token(joiner.name, "abcdef.0123456789abcdef")
    token_file = tmp_path / "pki" / "hosts" / joiner.name / "bootstrap-token"
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    files = creds.host_files(spec, joiner)
    assert not {"node.crt", "node.key", "node-serving.crt", "node-serving.key"} & set(files)
    assert files["bootstrap-token"] == b"abcdef.0123456789abcdef\n"
    plan = planmod.plan_host(spec, joiner, files)
    agent = plan.service("steersman-agent").argv
    flags = dict(zip(agent[1::2], agent[2::2]))
    assert flags["--bootstrap-kubeconfig"] == "/etc/steersman/kubeconfigs/bootstrap.kubeconfig"
    assert flags["--kubeconfig"] == planmod.AGENT_KUBECONFIG
    assert "--tls-cert-file" not in agent      # the serving certificate comes by CSR too
    by_path = {f.path: f for f in plan.files}
    boot = by_path["/etc/steersman/kubeconfigs/bootstrap.kubeconfig"]
    assert boot.mode == 0o600 and boot.services == ("steersman-agent",)
    document = json.loads(boot.content)
    assert document["users"][0]["user"] == {"tokenFile": "/etc/steersman/pki/bootstrap-token"}
    assert b"0123456789abcdef" not in boot.content     # the token stays in pki/ only
    assert by_path["/etc/steersman/pki/bootstrap-token"].mode == 0o600
    # Re-planned later (a second create, an upgrade): the same bytes.
    assert planmod.plan_host(spec, joiner, creds.host_files(spec, joiner)).files == plan.files


def test_the_controller_manager_signs_node_requests_with_the_cluster_ca(tmp_path):
    spec = topo.to_spec(joined_topology())
    control = spec.host("192.0.2.1")
    creds = ClusterCredentials(tmp_path / "pki")
    files = creds.host_files(spec, control)
    with open(tmp_path / "pki" / "ca.key", "rb") as handle:
        assert files["ca.key"] == handle.read()
    plan = planmod.plan_host(spec, control, files)
    argv = plan.service("steersman-controller-manager").argv
    flags = dict(zip(argv[1::2], argv[2::2]))
    assert flags["--cluster-signing-cert-file"] == "/etc/steersman/pki/ca.crt"
    assert flags["--cluster-signing-key-file"] == "/etc/steersman/pki/ca.key"
    key = next(f for f in plan.files if f.path == "/etc/steersman/pki/ca.key")
    assert key.mode == 0o600 and key.services == ("steersman-controller-manager",)
    # A worker gets no CA key.
    worker = creds.host_files(spec, spec.host("192.0.2.4"))
    assert "ca.key" not in worker and not any(re.search(r"\bca\.key\b", f) for f in worker)


def test_the_topology_keeps_how_a_host_joined():
    t = joined_topology()
    again = topo.Topology.from_json(t.to_json())
    assert [h.bootstrap for h in again.hosts] == [False, False, True]
