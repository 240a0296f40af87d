"""The nftables proxy's NetworkPolicy part: wiring with in-memory informers, RBAC."""

import falcon.testing
import pytest

from agent.network import netpol_enforcer
from agent.network.netpol_enforcer import NetpolEnforcer, bridge_filtering, delete_script
from agent.network.nft_apply import NftError, Syncer
from agent.network.nftproxy import NftProxy
from agent.proxy import parse_args
from control.api.app import create_app
from control.api.auth import authn, bootstrap
from control.api.auth.setup import AuthOptions
from control.client.cache import Store
from control.client.rest import object_key
from tests.support.fake_store import FakeStore


class FakeInformer:
    """A store and handler list; ``fire`` plays an event, start/stop record calls."""

    def __init__(self, *objs):
        self.store, self.handlers, self.calls = Store(), [], []
        for obj in objs:
            self.store._put(object_key(obj), obj)

    def add_handler(self, on_add, on_update, on_delete):
        self.handlers.append((on_add, on_update, on_delete))

    def start(self):
        self.calls.append("start")

    def stop(self, timeout=None):
        self.calls.append("stop")

    def wait_for_sync(self, timeout):
        return True

    def put(self, obj):
        self.store._put(object_key(obj), obj)
        for on_add, _, _ in self.handlers:
            on_add(obj)


def pod(name, node, ip, labels):
    return {"metadata": {"namespace": "default", "name": name, "labels": labels},
            "spec": {"nodeName": node}, "status": {"phase": "Running", "podIP": ip}}


NAMESPACE = {"metadata": {"name": "default",
                          "labels": {"kubernetes.io/metadata.name": "default"}}}
HELLO = pod("hello-1", "n1", "10.244.1.5", {"app": "hello"})
FAR = pod("hello-2", "n2", "10.244.2.5", {"app": "hello"})
CLIENT = pod("client", "n2", "10.244.2.9", {"access": "true"})
POLICY = {"metadata": {"namespace": "default", "name": "only-access"},
          "spec": {"podSelector": {"matchLabels": {"app": "hello"}},
                   "ingress": [{"from": [{"podSelector": {"matchLabels": {"access": "true"}}}]}]}}


def enforcer_with(scripts, policies=(), pods=(HELLO, FAR, CLIENT)):
    syncer = Syncer(run=lambda script, netns_path: scripts.append(script))
    informers = (FakeInformer(*policies), FakeInformer(*pods), FakeInformer(NAMESPACE))
    return NetpolEnforcer(None, "n1", None, syncer=syncer, informers=informers)


def test_no_policy_gives_an_empty_table():
    scripts = []
    enforcer = enforcer_with(scripts)
    enforcer.runner.step()
    assert len(scripts) == 1 and "table inet steer-netpol" in scripts[0]
    assert "in/default/hello-1" not in scripts[0]
    assert enforcer.isolated == 0 and enforcer.healthy() == (True, "ok")


def test_a_policy_isolates_only_this_nodes_pods_and_allows_the_labelled_peer():
    scripts = []
    enforcer = enforcer_with(scripts, policies=(POLICY,))
    enforcer.sync(full=True)
    (script,) = scripts
    assert "in/default/hello-1" in script
    assert "in/default/hello-2" not in script       # on n2: that node's proxy's job
    assert "10.244.2.9" in script and "10.244.1.5" in script
    assert enforcer.isolated == 1
    assert "steer_proxy_netpol_isolated_pods 1" in enforcer.metrics_lines()


def test_informer_events_request_a_sync_that_applies_the_change(monkeypatch):
    scripts = []
    enforcer = enforcer_with(scripts)
    monkeypatch.setattr(netpol_enforcer, "bridge_filtering", lambda path: (True, "ok"))
    enforcer.start()
    try:
        policies = enforcer.policies
        assert policies.calls == ["start"] and enforcer.pods.calls == ["start"]
        enforcer.runner.step()      # may race the thread's first sync: both are fine
        policies.put(POLICY)
        enforcer.runner.step(enforcer.runner.clock() + 1)
        assert any("in/default/hello-1" in s for s in scripts)
    finally:
        monkeypatch.setattr(netpol_enforcer, "run_script", lambda script, path: None)
        enforcer.stop()
    assert enforcer.namespaces.calls == ["start", "stop"]


def test_stop_removes_the_table_and_survives_nft_refusing(monkeypatch, caplog):
    ran = []
    monkeypatch.setattr(netpol_enforcer, "run_script",
                        lambda script, path: ran.append((script, path)))
    enforcer = enforcer_with([])
    enforcer.netns_path = "/run/netns/x"
    enforcer.stop()
    assert ran == [(delete_script(), "/run/netns/x")]
    assert delete_script() == "add table inet steer-netpol\ndelete table inet steer-netpol\n"

    def refuse(script, path):
        raise NftError("nft -f failed")
    monkeypatch.setattr(netpol_enforcer, "run_script", refuse)
    enforcer_with([]).stop()
    assert "could not remove the network policy table" in caplog.text


def test_a_failing_policy_sync_makes_the_proxy_unhealthy():
    def refuse(script, netns_path):
        raise NftError("nft -f failed: no such family")
    enforcer = enforcer_with([])
    enforcer.syncer._run = refuse
    proxy = NftProxy(None, "n1", None, syncer=Syncer(run=lambda s, p: None),
                     informers=(FakeInformer(), FakeInformer(), FakeInformer()), netpol=enforcer)
    proxy.runner.step()
    enforcer.runner.step()
    ok, why = proxy.healthy()
    assert not ok and "network policy" in why and "no such family" in why
    assert "steer_proxy_netpol_sync_errors_total 1" in proxy.metrics_text()


def test_the_proxy_starts_and_stops_its_enforcer(monkeypatch):
    events = []

    class Recorder:
        def start(self):
            events.append("start")

        def stop(self, remove_table=True):
            events.append(("stop", remove_table))

    monkeypatch.setattr("agent.network.nftproxy.run_script", lambda script, path: None)
    proxy = NftProxy(None, "n1", None, syncer=Syncer(run=lambda s, p: None),
                     informers=(FakeInformer(), FakeInformer(), FakeInformer()),
                     netpol=Recorder())
    proxy.start()
    proxy.stop()                    # the tables stay (as kube-proxy's)
    proxy.stop(remove_table=True)
    assert events == ["start", ("stop", False), ("stop", True)]


def test_the_flag_is_on_by_default():
    base = ["--mode", "nftables", "--node-name", "n1", "--api-server", "http://127.0.0.1:1"]
    assert parse_args(base).network_policy is True
    assert parse_args([*base, "--no-network-policy"]).network_policy is False


@pytest.mark.parametrize("value, ok, hint", [
    ("1", True, "ok"), ("0", False, "sysctl -w net.bridge.bridge-nf-call-iptables=1"),
    (None, False, "modprobe br_netfilter")])
def test_bridge_filtering_says_what_to_do(value, ok, hint):
    result = bridge_filtering(None, read=lambda path: value)
    assert result[0] is ok and hint in result[1]


def test_bridge_filtering_reports_a_missing_namespace():
    ok, why = bridge_filtering("/run/netns/does-not-exist-steer-test")
    assert not ok and "does not exist" in why


# -- RBAC: the proxy's identity may read what policy needs, and no more -----------------
def test_the_bootstrap_binds_the_enforcer_role_to_the_proxy_user():
    name = "system:steersman:network-policy-enforcer"
    rules = bootstrap.CLUSTER_ROLES[name][0]["rules"]
    assert {(g, r) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]} \
        == {("", "pods"), ("", "namespaces"), ("networking.k8s.io", "networkpolicies")}
    assert all(set(rule["verbs"]) == {"list", "watch"} for rule in rules)
    role, subjects = bootstrap.CLUSTER_ROLE_BINDINGS[name]
    assert role == name and [s["name"] for s in subjects] == ["system:kube-proxy"]


PROXY = {"extras": {authn.PEER_CERT_KEY: {"subject": ((("commonName", "system:kube-proxy"),),)}}}


@pytest.mark.parametrize("method, path, code", [
    ("GET", "/api/v1/pods", 200),
    ("GET", "/api/v1/namespaces", 200),
    ("GET", "/apis/networking.k8s.io/v1/networkpolicies", 200),
    ("GET", "/api/v1/namespaces/default/secrets", 403),
    ("DELETE", "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies/x", 403),
])
def test_the_proxy_identity_reads_pods_namespaces_and_policies_only(tmp_path, method, path,
                                                                   code):
    options = AuthOptions(authorization_mode="Node,RBAC", policy_ttl=0)
    client = falcon.testing.TestClient(create_app(FakeStore(), auth_options=options))
    response = client.simulate_request(method, path, **PROXY)
    assert response.status_code == code, response.text
