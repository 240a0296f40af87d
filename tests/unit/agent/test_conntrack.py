"""Which UDP conntrack entries a Service change makes stale, and the proxy deleting them."""

import subprocess

from agent.network import conntrack
from agent.network.conntrack import Deletion, stale_entries, udp_view
from agent.network.nft_apply import Syncer
from agent.network.nft_services import Endpoint, ServicePort
from agent.network.nftproxy import NftProxy
from control.client.cache import Store
from control.client.rest import object_key


def port(protocol="UDP", endpoints=("10.244.1.5",), node_port=0):
    eps = tuple(Endpoint(ip, 53) for ip in endpoints)
    return ServicePort("kube-system", "dns", protocol, 53, "10.96.0.10", node_port, eps, (),
                       0, False, False)


def test_udp_view_has_cluster_ips_and_node_ports_of_udp_only():
    view = udp_view([port(node_port=30053), port(protocol="TCP")], node_ips=("172.31.250.1",))
    assert view == {("10.96.0.10", 53): frozenset({"10.244.1.5"}),
                    ("172.31.250.1", 30053): frozenset({"10.244.1.5"})}


def test_a_removed_endpoint_has_its_entries_deleted():
    before = udp_view([port(endpoints=("10.244.1.5", "10.244.2.7"))])
    after = udp_view([port(endpoints=("10.244.2.7",))])
    assert stale_entries(before, after) == [Deletion("10.96.0.10", 53, "10.244.1.5")]


def test_a_deleted_service_has_the_entries_of_every_endpoint_deleted():
    before = udp_view([port(endpoints=("10.244.1.5", "10.244.2.7"))])
    assert stale_entries(before, {}) == [Deletion("10.96.0.10", 53, "10.244.1.5"),
                                         Deletion("10.96.0.10", 53, "10.244.2.7")]


def test_a_service_that_gets_its_first_endpoint_loses_its_undnatted_entries():
    before = udp_view([port(endpoints=())])
    after = udp_view([port(endpoints=("10.244.1.5",))])
    assert stale_entries(before, after) == [Deletion("10.96.0.10", 53)]


def test_nothing_changes_nothing_is_deleted():
    view = udp_view([port()])
    assert stale_entries(view, dict(view)) == []


def test_deletion_argv_filters_on_the_dnat_target_only_when_one_is_named():
    assert Deletion("10.96.0.10", 53, "10.244.1.5").argv() == [
        "-D", "-p", "udp", "--orig-dst", "10.96.0.10", "--orig-port-dst", "53",
        "--dst-nat", "10.244.1.5"]
    assert Deletion("10.96.0.10", 53).argv()[-1] == "53"


def test_flush_runs_conntrack_in_the_namespace_and_treats_exit_1_as_a_miss(monkeypatch):
    calls = []
    monkeypatch.setattr(conntrack.shutil, "which", lambda name: f"/usr/sbin/{name}")

    def run(argv, **kw):
        calls.append(argv)
        code = 1 if len(calls) == 1 else 2
        return subprocess.CompletedProcess(argv, code, b"", b"bad")

    failures = conntrack.flush([Deletion("10.96.0.10", 53), Deletion("10.96.0.11", 53)],
                               "/run/netns/n1", run=run)
    assert failures == 1
    assert calls[0][:3] == ["/usr/sbin/nsenter", "--net=/run/netns/n1", "/usr/sbin/conntrack"]


def test_flush_without_the_tool_says_what_to_install(monkeypatch, caplog):
    monkeypatch.setattr(conntrack.shutil, "which", lambda name: None)
    assert conntrack.flush([Deletion("10.96.0.10", 53)], None) == 1
    assert "apt-get install conntrack" in caplog.text


class FakeInformer:
    def __init__(self, *objs):
        self.store = Store()
        for obj in objs:
            self.store._put(object_key(obj), obj)


def dns_slice(*addresses):
    return {"metadata": {"namespace": "kube-system", "name": "dns-1",
                         "labels": {"kubernetes.io/service-name": "dns"}},
            "addressType": "IPv4", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}],
            "endpoints": [{"addresses": [a], "nodeName": "n1"} for a in addresses]}


def test_the_proxy_deletes_entries_of_a_gone_endpoint_after_applying_the_rules():
    service = {"metadata": {"namespace": "kube-system", "name": "dns"},
               "spec": {"clusterIP": "10.96.0.10",
                        "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}}
    slices, flushed, applied = FakeInformer(dns_slice("10.244.1.5", "10.244.2.7")), [], []
    syncer = Syncer(run=lambda script, netns_path: applied.append(script))
    proxy = NftProxy(None, "n1", "/run/netns/n1", "10.244.0.0/16", "10.96.0.0/12",
                     node_ips=("172.31.250.1",), service_route=False, syncer=syncer,
                     informers=(FakeInformer(service), slices, FakeInformer()),
                     conntrack_flush=lambda d, ns: flushed.append((list(d), ns, len(applied))))
    proxy.sync(full=False)
    assert flushed == [([Deletion("10.96.0.10", 53)], "/run/netns/n1", 1)]
    slices.store._put(object_key(dns_slice()), dns_slice("10.244.2.7"))
    proxy.sync(full=False)
    # The new rules were applied first (2 scripts), then the old endpoint's entries went.
    assert flushed[1] == ([Deletion("10.96.0.10", 53, "10.244.1.5")], "/run/netns/n1", 2)
    proxy.sync(full=False)
    assert len(flushed) == 2
