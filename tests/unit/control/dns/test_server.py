"""The DNS server on a free loopback port, with caches filled by hand and a fake upstream."""

import os
import random
import re
import shutil
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype as rdt
import dns.rdtypes.IN.A
import dns.rrset
import pytest

from control.dns.handler import Handler
from control.dns.health import serve_health
from control.dns.records import Answer, Resolver
from control.dns.upstream import Upstream
from tests.support.dns import (
    ENDPOINTS,
    PODS,
    SERVICES,
    SLICES,
    ServerThread,
    cluster_view,
    endpoint_slice,
    port,
    rows,
    service,
    slice_endpoint,
)

TIMEOUT = 5
BIG = [service("default", "big", "None", [port("http", 80)])]
BIG_SLICES = [endpoint_slice("default", "big", "a",
                             [slice_endpoint(f"10.245.0.{i}") for i in range(1, 51)],
                             [port("http", 80)])]


class FakeUpstream:
    """Answers like a resolver on the Internet would, and notes what it was asked."""

    def __init__(self):
        self.asked = []

    def answer(self, qname, qtype):
        self.asked.append(qname.to_text())
        name = qname.to_text().lower()
        if name == "example.com." and qtype == rdt.A:
            rrset = dns.rrset.RRset(qname, dns.rdataclass.IN, rdt.A)
            rrset.update_ttl(300)
            rrset.add(dns.rdtypes.IN.A.A(dns.rdataclass.IN, rdt.A, "192.0.2.1"))
            return Answer(answer=[rrset], authoritative=False)
        if name.endswith("example.com."):
            return Answer(dns.rcode.NXDOMAIN, authoritative=False)
        return Answer(dns.rcode.REFUSED, authoritative=False)


def make_handler(upstream_servers=(), synced=lambda: True, timeout=1.0):
    view = cluster_view(services=SERVICES + BIG, slices=SLICES + BIG_SLICES,
                        endpoint_objects=ENDPOINTS, pods=PODS)
    return Handler(Resolver(view, "cluster.local"), Upstream(upstream_servers, timeout),
                   synced=synced)


@pytest.fixture(scope="module")
def fake_upstream():
    upstream = FakeUpstream()
    with ServerThread(Handler(upstream, Upstream([])), host="127.0.0.3") as server:
        server.fake = upstream
        yield server


@pytest.fixture(scope="module")
def silent_upstream():
    """A UDP socket that never answers: an upstream that is down."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.4", 0))
    yield sock.getsockname()
    sock.close()


@pytest.fixture(scope="module")
def server(fake_upstream):
    with ServerThread(make_handler([("127.0.0.3", fake_upstream.port)])) as running:
        yield running


def udp(server, name, qtype=rdt.A, **kwargs):
    query = dns.message.make_query(name, qtype, **kwargs)
    return dns.query.udp(query, server.host, timeout=TIMEOUT, port=server.port)


def tcp(server, name, qtype=rdt.A, **kwargs):
    query = dns.message.make_query(name, qtype, **kwargs)
    return dns.query.tcp(query, server.host, timeout=TIMEOUT, port=server.port)


def raw_udp(server, payload, expect_reply=True):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT if expect_reply else 0.3)
        sock.sendto(payload, (server.host, server.port))
        try:
            return sock.recv(65535)
        except socket.timeout:
            return None


def still_answers(server, deadline=15.0):
    """Ask as a stub resolver does, again after a lost datagram, until an answer comes.

    After a flood the socket's receive buffer may still be full, and UDP drops
    what does not fit: one lost question is not a dead server, a deadline is.
    """
    query = dns.message.make_query("web.default.svc.cluster.local", rdt.A)
    end = time.monotonic() + deadline
    while True:
        try:
            response = dns.query.udp(query, server.host, timeout=1, port=server.port)
            break
        except dns.exception.Timeout:
            if time.monotonic() > end:
                raise
    assert rows(response.answer) == ["A 10.96.0.10"]


# -- answers over both transports ---------------------------------------------------------
@pytest.mark.parametrize("ask", [udp, tcp])
def test_cluster_names_over_udp_and_tcp(server, ask):
    response = ask(server, "web.default.svc.cluster.local")
    assert response.rcode() == dns.rcode.NOERROR
    assert rows(response.answer) == ["A 10.96.0.10"]
    assert response.flags & dns.flags.AA and response.flags & dns.flags.RA
    missing = ask(server, "missing.default.svc.cluster.local")
    assert missing.rcode() == dns.rcode.NXDOMAIN
    assert [r.rdtype for r in missing.authority] == [rdt.SOA]
    nodata = ask(server, "web.default.svc.cluster.local", rdt.AAAA)
    assert nodata.rcode() == dns.rcode.NOERROR and nodata.answer == []


def test_srv_with_addresses_in_the_additional_section(server):
    response = udp(server, "_http._tcp.web.default.svc.cluster.local", rdt.SRV)
    assert rows(response.answer) == ["SRV 0 100 80 web.default.svc.cluster.local."]
    assert rows(response.additional) == ["A 10.96.0.10"]


def test_pipelined_queries_on_one_tcp_connection(server):
    names = ["web.default.svc.cluster.local", "web.other.svc.cluster.local"]
    queries = [dns.message.make_query(n, rdt.A) for n in names]
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"".join(struct.pack("!H", len(w)) + w
                              for w in (q.to_wire() for q in queries)))
        answers = [dns.query.receive_tcp(sock, expiration=None)[0] for _ in queries]
    assert [q.id for q in queries] == [a.id for a in answers]
    assert [rows(a.answer) for a in answers] == [["A 10.96.0.10"], ["A 10.96.1.1"]]


# -- truncation -------------------------------------------------------------------------
def test_udp_without_edns_is_truncated_over_512_bytes_and_tcp_carries_it_all(server):
    name = "big.default.svc.cluster.local"
    truncated = dns.query.udp(dns.message.make_query(name, rdt.A), server.host,
                              timeout=TIMEOUT, port=server.port, raise_on_truncation=False)
    assert truncated.flags & dns.flags.TC and truncated.answer == []
    assert len(rows(tcp(server, name).answer)) == 50


def test_udp_with_edns_takes_what_the_client_can(server):
    name = "big.default.svc.cluster.local"
    response = udp(server, name, use_edns=0, payload=4096)
    assert not response.flags & dns.flags.TC and len(rows(response.answer)) == 50
    assert response.edns == 0


# -- broken and hostile input -----------------------------------------------------------
def test_garbage_gets_formerr_with_its_id_and_the_server_goes_on(server):
    garbage = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\xff" * 30
    response = raw_udp(server, garbage)
    assert response[:2] == b"\x12\x34"
    assert dns.message.from_wire(response).rcode() == dns.rcode.FORMERR
    still_answers(server)


def test_packets_without_a_header_and_responses_are_ignored(server):
    assert raw_udp(server, b"\x00\x01\x02", expect_reply=False) is None
    reply_to_nobody = dns.message.make_response(
        dns.message.make_query("web.default.svc.cluster.local", rdt.A)).to_wire()
    assert raw_udp(server, reply_to_nobody, expect_reply=False) is None
    still_answers(server)


def test_a_compression_pointer_loop_is_formerr(server):
    # The question's name is a pointer to itself (offset 12).
    looped = struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c" + b"\x00\x01\x00\x01"
    assert dns.message.from_wire(raw_udp(server, looped)).rcode() == dns.rcode.FORMERR
    # Two labels pointing at each other.
    mutual = (struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0)
              + b"\x01a\xc0\x10" + b"\x01b\xc0\x0c" + b"\x00\x01\x00\x01")
    assert dns.message.from_wire(raw_udp(server, mutual)).rcode() == dns.rcode.FORMERR
    still_answers(server)


def test_a_64k_tcp_length_prefix_with_garbage(server):
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"\xff\xff" + b"\x55\x66\x01\x00" + os.urandom(65535 - 4))
        (length,) = struct.unpack("!H", _recv_exactly(sock, 2))
        response = dns.message.from_wire(_recv_exactly(sock, length))
        assert response.id == 0x5566 and response.rcode() == dns.rcode.FORMERR
        # The same connection still serves a real question.
        query = dns.message.make_query("web.other.svc.cluster.local", rdt.A)
        dns.query.send_tcp(sock, query)
        assert rows(dns.query.receive_tcp(sock)[0].answer) == ["A 10.96.1.1"]
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"\xff\xff" + b"short")     # then hangs up half way
    still_answers(server)


def test_a_thousand_garbage_packets(server):
    rng = random.Random(11)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(1000):
            size = rng.choice([0, 1, 11, 12, 13, 40, 512, 1500, 4000])
            sock.sendto(bytes(rng.getrandbits(8) for _ in range(size)),
                        (server.host, server.port))
    still_answers(server)
    assert server.handler.stats["rcode_FORMERR"] > 0


@pytest.mark.parametrize("change,rcode", [
    (lambda q: setattr(q, "question", q.question * 2), dns.rcode.FORMERR),
    (lambda q: q.set_opcode(dns.opcode.UPDATE), dns.rcode.NOTIMP),
    (lambda q: q.use_edns(1), dns.rcode.BADVERS),
])
def test_questions_the_server_does_not_take(server, change, rcode):
    query = dns.message.make_query("web.default.svc.cluster.local", rdt.A)
    change(query)
    response = dns.message.from_wire(raw_udp(server, query.to_wire()), ignore_trailing=True)
    assert response.rcode() == rcode


@pytest.mark.parametrize("qtype,rdclass", [(rdt.A, dns.rdataclass.CH), (rdt.AXFR,
                                                                       dns.rdataclass.IN)])
def test_other_classes_and_zone_transfers_are_refused(server, qtype, rdclass):
    query = dns.message.make_query("cluster.local", qtype, rdclass)
    response = dns.message.from_wire(raw_udp(server, query.to_wire()))
    assert response.rcode() == dns.rcode.REFUSED


# -- forwarding -------------------------------------------------------------------------
@pytest.mark.parametrize("ask", [udp, tcp])
def test_other_names_are_forwarded(server, fake_upstream, ask):
    response = ask(server, "example.com")
    assert response.rcode() == dns.rcode.NOERROR and rows(response.answer) == ["A 192.0.2.1"]
    assert not response.flags & dns.flags.AA
    assert ask(server, "nothing.example.com").rcode() == dns.rcode.NXDOMAIN
    assert "nothing.example.com." in fake_upstream.fake.asked


def test_an_external_name_is_chased_upstream(server):
    response = udp(server, "ext.default.svc.cluster.local")
    assert rows(response.answer) == ["A 192.0.2.1", "CNAME example.com."]


def test_an_external_name_inside_the_zone_is_chased_here(server):
    response = udp(server, "alias.default.svc.cluster.local")
    assert rows(response.answer) == ["A 10.96.0.10", "CNAME web.default.svc.cluster.local."]


def test_without_upstream_other_names_fail_at_once():
    with ServerThread(make_handler([])) as server:
        assert udp(server, "example.com").rcode() == dns.rcode.SERVFAIL
        assert tcp(server, "example.com").rcode() == dns.rcode.SERVFAIL
        assert udp(server, "ext.default.svc.cluster.local").rcode() == dns.rcode.SERVFAIL
        still_answers(server)
        assert server.handler.stats["forwarded"] == 0


def test_a_silent_upstream_is_skipped_for_the_next(fake_upstream, silent_upstream):
    servers = [silent_upstream, ("127.0.0.3", fake_upstream.port)]
    with ServerThread(make_handler(servers, timeout=0.3)) as server:
        assert rows(udp(server, "example.com").answer) == ["A 192.0.2.1"]
        assert server.handler.stats["forwarded"] == 1


def test_only_a_silent_upstream_is_servfail(silent_upstream):
    with ServerThread(make_handler([silent_upstream], timeout=0.3)) as server:
        assert udp(server, "example.com").rcode() == dns.rcode.SERVFAIL
        assert server.handler.stats["forward_failures"] == 1
        still_answers(server)


# -- readiness --------------------------------------------------------------------------
def test_cluster_names_fail_until_the_caches_have_synced(fake_upstream):
    synced = {"now": False}
    handler = make_handler([("127.0.0.3", fake_upstream.port)], synced=lambda: synced["now"])
    with ServerThread(handler) as server:
        assert udp(server, "web.default.svc.cluster.local").rcode() == dns.rcode.SERVFAIL
        assert udp(server, "example.com").rcode() == dns.rcode.NOERROR
        synced["now"] = True
        still_answers(server)


def test_health_readiness_and_metrics():
    synced = {"now": False}
    handler = make_handler([])
    with ServerThread(handler) as server:
        health = server.call(serve_health("127.0.0.1", 0, lambda: synced["now"], handler.stats))
        url = f"http://127.0.0.1:{health.sockets[0].getsockname()[1]}"
        try:
            assert urllib.request.urlopen(url + "/healthz", timeout=TIMEOUT).status == 200
            with pytest.raises(urllib.error.HTTPError) as not_ready:
                urllib.request.urlopen(url + "/readyz", timeout=TIMEOUT)
            assert not_ready.value.code == 503
            synced["now"] = True
            assert urllib.request.urlopen(url + "/readyz", timeout=TIMEOUT).status == 200
            still_answers(server)
            metrics = urllib.request.urlopen(url + "/metrics", timeout=TIMEOUT).read().decode()
            assert 'steer_dns_queries_total{transport="udp"} 1' in metrics
            assert 'steer_dns_responses_total{rcode="NOERROR"} 1' in metrics
            assert "steer_dns_ready 1" in metrics
        finally:
            server.loop.call_soon_threadsafe(health.close)


def _recv_exactly(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        assert chunk, "the server closed the connection"
        data += chunk
    return data


@pytest.mark.skipif(shutil.which("busybox") is None,
                    reason="busybox is not installed (Debian: busybox-static)")
def test_busybox_nslookup_reads_the_answers(server):
    """The client the cluster tests run inside pods understands what we send."""
    def nslookup(*args):
        return subprocess.run(["busybox", "nslookup", f"-port={server.port}", *args,
                               server.host], capture_output=True, text=True, timeout=30)
    found = nslookup("db.default.svc.cluster.local")
    assert found.returncode == 0
    assert sorted(re.findall(r"Address: (10\.244\.\S+)", found.stdout)) == [
        "10.244.1.5", "10.244.2.6", "10.244.3.7"]
    srv = nslookup("-type=srv", "_http._tcp.web.default.svc.cluster.local")
    assert "0 100 80 web.default.svc.cluster.local" in srv.stdout
    missing = nslookup("nope.default.svc.cluster.local")
    assert missing.returncode != 0 and "NXDOMAIN" in missing.stdout


def test_a_failing_resolver_is_servfail_and_the_server_goes_on():
    class Broken:
        def answer(self, qname, qtype):
            if qname.labels[0] == b"boom":
                raise KeyError("a bug")
            return Resolver(cluster_view()).answer(qname, qtype)

    with ServerThread(Handler(Broken(), Upstream([]))) as server:
        assert udp(server, "boom.default.svc.cluster.local").rcode() == dns.rcode.SERVFAIL
        assert tcp(server, "boom.default.svc.cluster.local").rcode() == dns.rcode.SERVFAIL
        still_answers(server)
