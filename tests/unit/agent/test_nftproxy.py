"""The nftables proxy's pure parts and one sync against in-memory informers."""

import pytest

from agent.network.nft_apply import NftError, Syncer
from agent.network.nftproxy import Histogram, NftProxy, node_ips_of, parse_time, slice_trigger
from agent.network.routes import NODE_IP_ANNOTATION
from agent.network.service_routes import route_argv, stale_route_argv
from agent.proxy import parse_args
from control.client.cache import Store
from control.client.rest import object_key


def node(annotation=None, addresses=()):
    meta = {"name": "n1"}
    if annotation:
        meta["annotations"] = {NODE_IP_ANNOTATION: annotation}
    return {"metadata": meta,
            "status": {"addresses": [{"type": t, "address": a} for t, a in addresses]}}


def test_node_ips_prefer_the_annotation():
    n = node("10.250.0.1", [("InternalIP", "127.0.1.1"), ("Hostname", "n1")])
    assert node_ips_of(n) == ("10.250.0.1",)


def test_node_ips_fall_back_to_ipv4_internal_ips():
    n = node(None, [("InternalIP", "192.0.2.7"), ("InternalIP", "fd00::7"),
                    ("ExternalIP", "198.51.100.1"), ("Hostname", "n1")])
    assert node_ips_of(n) == ("192.0.2.7",)
    assert node_ips_of(None) == ()
    assert node_ips_of({"metadata": {"name": "n1"}}) == ()


def test_parse_time():
    assert parse_time("1970-01-01T00:01:00Z") == 60
    assert parse_time("1970-01-01T00:01:00.5+00:00") == 60.5
    assert parse_time("") is None and parse_time("yesterday") is None


def annotated(text):
    return {"metadata": {"annotations": {"endpoints.kubernetes.io/last-change-trigger-time":
                                         text}}}


def test_slice_trigger_uses_a_new_annotation_else_the_event_time():
    assert slice_trigger(None, annotated("1970-01-01T00:01:00Z"), 99.0) == 60
    # An unchanged annotation is old news: the event itself is the change.
    assert slice_trigger(annotated("1970-01-01T00:01:00Z"),
                         annotated("1970-01-01T00:01:00Z"), 99.0) == 99.0
    assert slice_trigger(annotated("1970-01-01T00:01:00Z"), None, 99.0) == 99.0
    assert slice_trigger(None, {"metadata": {}}, 99.0) == 99.0


def test_histogram_lines():
    h = Histogram(buckets=(0.1, 1))
    for v in (0.05, 0.5, 2):
        h.observe(v)
    assert h.lines("x") == ["# TYPE x histogram", 'x_bucket{le="0.1"} 1', 'x_bucket{le="1"} 2',
                            'x_bucket{le="+Inf"} 3', "x_sum 2.550000", "x_count 3"]


class FakeInformer:
    def __init__(self, *objs):
        self.store = Store()
        for obj in objs:
            self.store._put(object_key(obj), obj)


SERVICE = {"metadata": {"namespace": "default", "name": "web"},
           "spec": {"clusterIP": "10.96.0.10", "type": "NodePort",
                    "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}}
SLICE = {"metadata": {"namespace": "default", "name": "web-1",
                      "labels": {"kubernetes.io/service-name": "web"}},
         "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
         "endpoints": [{"addresses": ["10.244.1.5"], "nodeName": "n1"}]}


def proxy_with(scripts, node_obj, **kw):
    syncer = Syncer(run=lambda script, netns_path: scripts.append(script))
    informers = (FakeInformer(SERVICE), FakeInformer(SLICE), FakeInformer(node_obj))
    return NftProxy(None, "n1", None, "10.244.0.0/16", "10.96.0.0/12", syncer=syncer,
                    informers=informers, **kw)


def test_a_sync_programs_the_services_with_the_nodes_address():
    scripts = []
    proxy = proxy_with(scripts, node("10.250.0.1"))
    assert proxy.service_route is False         # no namespace of our own: no route
    assert proxy.healthy()[0] is False
    proxy.runner.step()
    assert len(scripts) == 1
    assert "10.96.0.10 . tcp . 80" in scripts[0]
    assert "dnat to 10.244.1.5:8080" in scripts[0]
    assert "elements = { 10.250.0.1 }" in scripts[0]
    assert proxy.healthy() == (True, "ok")
    proxy.runner.request()
    proxy.runner.step(proxy.runner.clock() + 1)
    assert len(scripts) == 1                    # nothing changed: nft not run again


def test_a_full_resync_reapplies_the_same_table():
    scripts = []
    proxy = proxy_with(scripts, node("10.250.0.1"))
    proxy.sync(full=True)
    proxy.sync(full=False)
    proxy.sync(full=True)
    assert len(scripts) == 2 and scripts[0] == scripts[1]


def test_fixed_node_ips_win_over_the_node_object():
    scripts = []
    proxy = proxy_with(scripts, node("10.250.0.1"), node_ips=("10.250.0.9",))
    proxy.sync(full=True)
    assert "elements = { 10.250.0.9 }" in scripts[0]


def test_a_failing_sync_makes_healthz_fail_and_counts_errors():
    def refuse(script, netns_path):
        raise NftError("nft -f failed: no such table")
    proxy = proxy_with([], node("10.250.0.1"))
    proxy.syncer._run = refuse
    proxy.runner.step()
    ok, why = proxy.healthy()
    assert not ok and "no such table" in why
    assert "steer_proxy_sync_errors_total 1" in proxy.metrics_text()


def test_latency_metrics_cover_every_trigger():
    proxy = proxy_with([], node("10.250.0.1"))
    proxy._applied([100.0, 100.5], 101.0)
    text = proxy.metrics_text()
    assert "steer_proxy_last_endpoint_change_latency_seconds 1.000000" in text
    assert "steer_proxy_endpoint_change_latency_seconds_count 2" in text


def test_slice_events_before_the_first_sync_carry_no_trigger():
    proxy = proxy_with([], node("10.250.0.1"), wall=lambda: 500.0)
    proxy._slice_event(None, SLICE)
    assert proxy.runner._triggers == []
    proxy.runner.step()
    proxy._slice_event(SLICE, SLICE)
    assert proxy.runner._triggers == [500.0]


def test_proxy_flags_dispatch_on_mode():
    args = parse_args(["--api-server", "http://127.0.0.1:1"])
    assert args.mode == "userspace"
    args = parse_args(["--mode", "nftables", "--node-name", "n1", "--netns", "/run/netns/x",
                       "--cluster-cidr", "10.244.0.0/16",
                       "--service-cluster-ip-range", "10.96.0.0/12",
                       "--api-server", "http://127.0.0.1:1"])
    assert (args.mode, args.node_name, args.netns, args.service_route) == \
        ("nftables", "n1", "/run/netns/x", None)
    with pytest.raises(SystemExit):
        parse_args(["--mode", "iptables"])


def test_the_service_route_is_unicast_on_lo_from_the_node_ip():
    # Not `local`: a local ClusterIP is captured by hostPorts (portmap's addrtype LOCAL).
    assert route_argv("10.96.0.0/12", "10.250.0.1") == \
        ["route", "replace", "unicast", "10.96.0.0/12", "dev", "lo", "src", "10.250.0.1"]
    assert route_argv("10.96.0.0/12") == ["route", "replace", "unicast", "10.96.0.0/12",
                                          "dev", "lo"]
    assert stale_route_argv("10.96.0.0/12") == \
        ["route", "del", "local", "10.96.0.0/12", "dev", "lo", "table", "local"]
    with pytest.raises(ValueError):
        route_argv("10.96.0.1/12")          # not a network address
    with pytest.raises(ValueError):
        route_argv("fd00::/108")
