"""The service proxy: routes, backends, round-robin, plans, and bytes on loopback."""

import asyncio
import socket

import pytest

from agent.proxy import Balancer, Proxy, Route, desired_routes, plan, ready_backends, routes_for
from tests.unit.control.controllers.fakes import FakeInformer


def service(name, ports, kind="ClusterIP", cluster_ip="10.96.0.10", created="2026-01-01T00:00:00Z",
            affinity=None):
    spec = {"type": kind, "ports": ports}
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
    if affinity:
        spec["sessionAffinity"] = "ClientIP"
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": affinity}}
    return {"metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
            "spec": spec}


def endpoints(name, subsets):
    return {"metadata": {"name": name, "namespace": "default"}, "subsets": subsets}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- routes ------------------------------------------------------------------------------
def test_routes_of_a_cluster_ip_service_skip_udp():
    svc = service("web", [{"name": "http", "port": 80, "protocol": "TCP"},
                          {"name": "dns", "port": 53, "protocol": "UDP"}])
    assert routes_for(svc, ["127.0.1.1"]) == {("10.96.0.10", 80): Route("default/web", "http", 0)}


def test_routes_of_a_node_port_service_cover_every_node_ip():
    svc = service("web", [{"port": 80, "nodePort": 30080}], kind="NodePort", affinity=60)
    route = Route("default/web", "", 60)
    assert routes_for(svc, ["127.0.1.1", "127.0.1.2"]) == {
        ("10.96.0.10", 80): route, ("127.0.1.1", 30080): route, ("127.0.1.2", 30080): route}


@pytest.mark.parametrize("svc", [
    service("h", [{"port": 80}], cluster_ip="None"),
    service("x", [{"port": 80}], kind="ExternalName", cluster_ip=None),
    service("pending", [{"port": 80}], cluster_ip=None),
])
def test_services_without_a_virtual_ip_get_no_listener(svc):
    assert routes_for(svc, ["127.0.1.1"]) == {}


def test_the_older_service_keeps_a_clashing_address():
    old = service("old", [{"port": 80}], created="2026-01-01T00:00:00Z")
    new = service("new", [{"port": 80}], created="2026-01-02T00:00:00Z")
    assert desired_routes([new, old], [])[("10.96.0.10", 80)].service == "default/old"


# -- backends ---------------------------------------------------------------------------
def test_ready_backends_match_ports_by_name_and_skip_not_ready():
    eps = endpoints("web", [
        {"addresses": [{"ip": "10.0.0.2"}, {"ip": "10.0.0.1"}],
         "notReadyAddresses": [{"ip": "10.0.0.9"}],
         "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090}]},
        {"addresses": [{"ip": "10.0.0.3"}], "ports": [{"name": "http", "port": 8081}]},
    ])
    assert ready_backends(eps, "http") == [("10.0.0.1", 8080), ("10.0.0.2", 8080),
                                           ("10.0.0.3", 8081)]
    assert ready_backends(eps, "metrics") == [("10.0.0.1", 9090), ("10.0.0.2", 9090)]
    assert ready_backends(eps, "") == []
    unnamed = endpoints("one", [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}])
    assert ready_backends(unnamed, "") == [("10.0.0.1", 80)]
    assert ready_backends(None, "") == [] and ready_backends(endpoints("e", None), "") == []


# -- balancing -----------------------------------------------------------------------------
def test_round_robin_rotates_and_the_rest_follow_as_fallbacks():
    balancer, route = Balancer(), Route("default/web", "", 0)
    backends = [("a", 1), ("b", 1), ("c", 1)]
    orders = [balancer.order(route, backends) for _ in range(4)]
    assert [o[0] for o in orders] == [("a", 1), ("b", 1), ("c", 1), ("a", 1)]
    assert orders[1] == [("b", 1), ("c", 1), ("a", 1)]
    assert balancer.order(route, []) == []


def test_client_ip_affinity_sticks_until_it_times_out():
    now = [0.0]
    balancer, route = Balancer(clock=lambda: now[0]), Route("default/web", "", 10)
    backends = [("a", 1), ("b", 1)]
    first = balancer.order(route, backends, "1.2.3.4")[0]
    balancer.used(route, first, "1.2.3.4")
    assert all(balancer.order(route, backends, "1.2.3.4")[0] == first for _ in range(3))
    now[0] = 11.0
    assert {balancer.order(route, backends, "1.2.3.4")[0] for _ in range(2)} == set(backends)
    balancer.forget(set())
    assert balancer.order(route, backends, "1.2.3.4")[0] == backends[0]


def test_plan():
    r1, r2 = Route("default/a", "", 0), Route("default/b", "", 0)
    current = {("ip", 1): r1, ("ip", 2): r1}
    desired = {("ip", 2): r2, ("ip", 3): r2}
    assert plan(current, desired) == ([("ip", 1)], [("ip", 3)], [("ip", 2)])


# -- on loopback ----------------------------------------------------------------------------
class Informer(FakeInformer):
    def start(self):
        return self

    def stop(self, timeout=None):
        pass


async def _backend(name, received=None):
    """An upstream that answers its name to a line, or echoes until EOF then says bye."""

    async def handle(reader, writer):
        data = await reader.read()
        if received is not None:
            received.append(data)
        writer.write(name.encode() + b":" + data)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _ask(port, payload=b"hi"):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    writer.write_eof()          # half-close: the answer must still come back
    try:
        return await reader.read()
    finally:
        writer.close()


async def until(condition, timeout=5):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.01)


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_proxy_round_robin_half_close_failover_and_reset():
    async def scenario():
        one, one_port = await _backend("one")
        two, two_port = await _backend("two")
        dead_port = free_port()
        port = free_port()
        services = Informer([service("web", [{"port": port}], cluster_ip="127.0.0.1")])
        eps = Informer([endpoints("web", [{"addresses": [{"ip": "127.0.0.1"}],
                                           "ports": [{"port": one_port}, {"port": two_port},
                                                     {"port": dead_port}]}])])
        proxy = Proxy(None, [], connect_timeout=2, informers=(services, eps))
        stop = asyncio.Event()
        runner = asyncio.ensure_future(proxy.run(stop))
        await asyncio.wait_for(proxy.synced.wait(), 5)
        answers = [await _ask(port) for _ in range(6)]
        # Every connection got an answer (the dead endpoint was skipped over) from both.
        assert sorted(set(answers)) == [b"one:hi", b"two:hi"]
        assert proxy.stats.upstream_failures >= 1
        # No endpoints: the client is reset (or sees EOF), never left hanging.
        eps.put(endpoints("web", []))
        await until(lambda: proxy.backends[("default/web", "")] == [])
        with pytest.raises(ConnectionError):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            if await reader.read() == b"":
                raise ConnectionResetError("closed")
        assert proxy.stats.refused >= 1
        # Deleting the Service closes its listener.
        services.remove(services.store.get("default/web"))
        await until(lambda: not proxy.servers)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        assert "steer_proxy_listeners 0" in proxy.metrics_text()
        stop.set()
        await runner
        for server in (one, two):
            server.close()

    _run(scenario())


def test_addresses_not_on_this_machine_are_skipped_with_one_log_line(caplog):
    async def scenario():
        node_port = free_port()
        services = Informer([service("web", [{"port": 80, "nodePort": node_port}],
                                     kind="NodePort", cluster_ip="192.0.2.10")])
        proxy = Proxy(None, ["127.0.0.1"], informers=(services, Informer()))
        stop = asyncio.Event()
        runner = asyncio.ensure_future(proxy.run(stop))
        await asyncio.wait_for(proxy.synced.wait(), 5)
        await until(lambda: ("127.0.0.1", node_port) in proxy.servers)
        for _ in range(3):      # later syncs retry quietly
            await proxy._sync()
        assert list(proxy.servers) == [("127.0.0.1", node_port)]
        stop.set()
        await runner

    with caplog.at_level("WARNING", logger="steer.proxy"):
        _run(scenario())
    skipped = [r.getMessage() for r in caplog.records if "192.0.2.10" in r.getMessage()]
    assert len(skipped) == 1 and "not local to this machine" in skipped[0]
