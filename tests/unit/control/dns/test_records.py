"""The cluster domain's answers, name by name, from caches filled as informers would."""

import dns.name
import dns.rcode
import dns.rdatatype as rdt
import pytest

from control.dns.records import Resolver
from control.dns.view import ClusterView
from tests.support.dns import cluster_view, rows, service, store_of

NOERROR, NXDOMAIN = dns.rcode.NOERROR, dns.rcode.NXDOMAIN
Z = "svc.cluster.local"

CASES = [
    # ClusterIP Services
    ("web.default.svc.cluster.local", rdt.A, NOERROR, ["A 10.96.0.10"]),
    ("web.other.svc.cluster.local", rdt.A, NOERROR, ["A 10.96.1.1"]),
    ("dual.default.svc.cluster.local", rdt.A, NOERROR, ["A 10.96.0.11"]),
    ("dual.default.svc.cluster.local", rdt.AAAA, NOERROR, ["AAAA fd00::11"]),
    ("v6only.default.svc.cluster.local", rdt.AAAA, NOERROR, ["AAAA fd00::12"]),
    ("v6only.default.svc.cluster.local", rdt.A, NOERROR, []),             # NODATA
    ("web.default.svc.cluster.local", rdt.AAAA, NOERROR, []),             # NODATA
    ("web.default.svc.cluster.local", rdt.MX, NOERROR, []),               # NODATA
    ("web.default.svc.cluster.local", rdt.ANY, NOERROR, ["A 10.96.0.10"]),
    ("nope.default.svc.cluster.local", rdt.A, NXDOMAIN, []),
    ("web.nons.svc.cluster.local", rdt.A, NXDOMAIN, []),
    # case-insensitive, with or without the trailing dot
    ("WEB.Default.SVC.cluster.LOCAL.", rdt.A, NOERROR, ["A 10.96.0.10"]),
    ("web.default.svc.cluster.local.", rdt.A, NOERROR, ["A 10.96.0.10"]),
    # SRV for named ports of a ClusterIP Service: the Service's name
    ("_http._tcp.web.default.svc.cluster.local", rdt.SRV, NOERROR,
     ["SRV 0 100 80 web.default.svc.cluster.local."]),
    ("_dns._udp.web.default.svc.cluster.local", rdt.SRV, NOERROR,
     ["SRV 0 100 53 web.default.svc.cluster.local."]),
    ("_HTTP._TCP.web.default.svc.cluster.local", rdt.SRV, NOERROR,
     ["SRV 0 100 80 web.default.svc.cluster.local."]),
    ("_http._udp.web.default.svc.cluster.local", rdt.SRV, NXDOMAIN, []),
    ("_nope._tcp.web.default.svc.cluster.local", rdt.SRV, NXDOMAIN, []),
    ("_http._tcp.web.default.svc.cluster.local", rdt.A, NOERROR, []),     # NODATA
    ("_tcp.web.default.svc.cluster.local", rdt.SRV, NOERROR, []),         # empty non-terminal
    ("_sctp.web.default.svc.cluster.local", rdt.SRV, NXDOMAIN, []),
    ("_tcp.db.default.svc.cluster.local", rdt.SRV, NOERROR, []),          # headless, too
    # headless with EndpointSlices: ready IPs, repeated endpoint once, FQDN slice ignored
    ("db.default.svc.cluster.local", rdt.A, NOERROR,
     ["A 10.244.1.5", "A 10.244.2.6", "A 10.244.3.7"]),
    ("db-0.db.default.svc.cluster.local", rdt.A, NOERROR, ["A 10.244.1.5"]),
    ("DB-1.db.default.svc.cluster.local.", rdt.A, NOERROR, ["A 10.244.2.6"]),
    ("10-244-3-7.db.default.svc.cluster.local", rdt.A, NOERROR, ["A 10.244.3.7"]),
    ("db-3.db.default.svc.cluster.local", rdt.A, NXDOMAIN, []),           # not ready
    ("db-0.db.default.svc.cluster.local", rdt.AAAA, NOERROR, []),
    ("db-0.web.default.svc.cluster.local", rdt.A, NXDOMAIN, []),          # not headless
    ("_pg._tcp.db.default.svc.cluster.local", rdt.SRV, NOERROR,
     ["SRV 0 33 5432 10-244-3-7.db.default.svc.cluster.local.",
      "SRV 0 33 5432 db-0.db.default.svc.cluster.local.",
      "SRV 0 33 5432 db-1.db.default.svc.cluster.local."]),
    # headless with Endpoints only (no slices), and publishNotReadyAddresses
    ("legacy.default.svc.cluster.local", rdt.A, NOERROR, ["A 10.244.5.9"]),
    ("old-0.legacy.default.svc.cluster.local", rdt.A, NOERROR, ["A 10.244.5.9"]),
    ("_http._tcp.legacy.default.svc.cluster.local", rdt.SRV, NOERROR,
     ["SRV 0 100 8080 old-0.legacy.default.svc.cluster.local."]),
    ("pub.default.svc.cluster.local", rdt.A, NOERROR, ["A 10.244.6.1"]),
    ("p-0.pub.default.svc.cluster.local", rdt.A, NOERROR, ["A 10.244.6.1"]),
    ("empty.default.svc.cluster.local", rdt.A, NOERROR, []),              # exists, no IPs
    ("_http._tcp.empty.default.svc.cluster.local", rdt.SRV, NXDOMAIN, []),
    # ExternalName: a CNAME for every type
    ("ext.default.svc.cluster.local", rdt.A, NOERROR, ["CNAME example.com."]),
    ("ext.default.svc.cluster.local", rdt.CNAME, NOERROR, ["CNAME example.com."]),
    ("ext.default.svc.cluster.local", rdt.AAAA, NOERROR, ["CNAME example.com."]),
    # pods (insecure mode: any well-formed address)
    ("10-244-1-5.default.pod.cluster.local", rdt.A, NOERROR, ["A 10.244.1.5"]),
    ("1-2-3-4.anyns.pod.cluster.local", rdt.A, NOERROR, ["A 1.2.3.4"]),
    ("1-2-3-4.anyns.pod.cluster.local", rdt.AAAA, NOERROR, []),
    ("fd00--5.default.pod.cluster.local", rdt.AAAA, NOERROR, ["AAAA fd00::5"]),
    ("1-2-3-256.default.pod.cluster.local", rdt.A, NXDOMAIN, []),
    ("1-2-3.default.pod.cluster.local", rdt.A, NXDOMAIN, []),
    ("web.default.pod.cluster.local", rdt.A, NXDOMAIN, []),
    ("x.1-2-3-4.default.pod.cluster.local", rdt.A, NXDOMAIN, []),
    # the tree above the records
    ("cluster.local", rdt.A, NOERROR, []),
    ("svc.cluster.local", rdt.A, NOERROR, []),
    ("default.svc.cluster.local", rdt.A, NOERROR, []),
    ("other.svc.cluster.local", rdt.A, NOERROR, []),
    ("nons.svc.cluster.local", rdt.A, NXDOMAIN, []),
    ("pod.cluster.local", rdt.A, NOERROR, []),
    ("default.pod.cluster.local", rdt.A, NOERROR, []),
    ("nothing.cluster.local", rdt.A, NXDOMAIN, []),
    ("a.b.web.default.svc.cluster.local", rdt.A, NXDOMAIN, []),
    ("dns-version.cluster.local", rdt.TXT, NOERROR, ['TXT "1.1.0"']),
]


@pytest.fixture(scope="module")
def resolver():
    return Resolver(cluster_view(), "cluster.local", ttl=30)


@pytest.mark.parametrize("name,qtype,rcode,expected", CASES,
                         ids=[f"{c[0]}/{rdt.to_text(c[1])}" for c in CASES])
def test_answers(resolver, name, qtype, rcode, expected):
    answer = resolver.answer(name, qtype)
    assert answer.rcode == rcode
    assert rows(answer.answer) == expected
    assert answer.authoritative


@pytest.mark.parametrize("name,qtype", [(c[0], c[1]) for c in CASES if not c[3]])
def test_negative_answers_carry_the_soa_with_the_ttl_as_minimum(resolver, name, qtype):
    answer = resolver.answer(name, qtype)
    assert [r.rdtype for r in answer.authority] == [rdt.SOA]
    soa = answer.authority[0]
    assert soa.name == dns.name.from_text("cluster.local")
    assert soa.ttl == 30 and soa[0].minimum == 30


def test_positive_answers_have_no_authority_and_the_configured_ttl():
    answer = Resolver(cluster_view(), ttl=5).answer(f"web.default.{Z}", rdt.A)
    assert answer.authority == [] and answer.answer[0].ttl == 5


def test_the_owner_is_the_name_as_asked():
    answer = Resolver(cluster_view()).answer("WEB.default.svc.Cluster.Local", rdt.A)
    assert answer.answer[0].name.to_text() == "WEB.default.svc.Cluster.Local."


def test_a_cname_answer_names_the_target_to_chase():
    resolver = Resolver(cluster_view())
    assert resolver.answer(f"ext.default.{Z}", rdt.A).cname == dns.name.from_text("example.com")
    assert resolver.answer(f"ext.default.{Z}", rdt.CNAME).cname is None
    assert resolver.answer(f"alias.default.{Z}", rdt.A).cname == \
        dns.name.from_text(f"web.default.{Z}")


def test_srv_answers_carry_the_targets_addresses():
    resolver = Resolver(cluster_view())
    assert rows(resolver.answer(f"_http._tcp.web.default.{Z}", rdt.SRV).additional) == \
        ["A 10.96.0.10"]
    assert rows(resolver.answer(f"_pg._tcp.db.default.{Z}", rdt.SRV).additional) == \
        ["A 10.244.1.5", "A 10.244.2.6", "A 10.244.3.7"]


def test_the_zone_apex_answers_its_soa():
    answer = Resolver(cluster_view()).answer("cluster.local.", rdt.SOA)
    assert rows(answer.answer) == ["SOA ns.dns.cluster.local. hostmaster.cluster.local. "
                                   "1 7200 1800 86400 30"]


def test_names_outside_the_zone_are_not_answered():
    resolver = Resolver(cluster_view())
    assert resolver.answer("example.com", rdt.A) is None
    assert resolver.answer("cluster.local.example.com", rdt.A) is None
    assert resolver.answer("local", rdt.A) is None
    assert not resolver.is_cluster_name("example.com") and resolver.is_cluster_name(
        "a.cluster.local")


def test_another_cluster_domain():
    resolver = Resolver(cluster_view(), "k8s.example.")
    assert rows(resolver.answer("web.default.svc.k8s.example", rdt.A).answer) == ["A 10.96.0.10"]
    assert resolver.answer("web.default.svc.cluster.local", rdt.A) is None


@pytest.mark.parametrize("name,expected", [
    ("10.0.96.10.in-addr.arpa", ["PTR web.default.svc.cluster.local."]),
    ("5.1.244.10.in-addr.arpa", ["PTR db-0.db.default.svc.cluster.local."]),
    ("7.3.244.10.in-addr.arpa", ["PTR 10-244-3-7.db.default.svc.cluster.local."]),
    ("1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa",
     ["PTR dual.default.svc.cluster.local."]),
])
def test_reverse_names_of_cluster_ips_and_headless_endpoints(name, expected):
    answer = Resolver(cluster_view()).answer(name, rdt.PTR)
    assert rows(answer.answer) == expected and not answer.authoritative


def test_reverse_names_the_cluster_does_not_know_go_upstream():
    resolver = Resolver(cluster_view())
    assert resolver.answer("8.4.244.10.in-addr.arpa", rdt.PTR) is None     # not ready
    assert resolver.answer("1.1.1.1.in-addr.arpa", rdt.PTR) is None
    assert resolver.answer("10.in-addr.arpa", rdt.PTR) is None


def test_verified_pods_must_exist_in_that_namespace():
    resolver = Resolver(cluster_view(), pods="verified")
    assert rows(resolver.answer("10-244-1-5.default.pod.cluster.local", rdt.A).answer) == \
        ["A 10.244.1.5"]
    assert resolver.answer("10-244-1-5.other.pod.cluster.local", rdt.A).rcode == NXDOMAIN
    assert resolver.answer("1-2-3-4.default.pod.cluster.local", rdt.A).rcode == NXDOMAIN


def test_disabled_pods_have_no_names():
    resolver = Resolver(cluster_view(), pods="disabled")
    assert resolver.answer("10-244-1-5.default.pod.cluster.local", rdt.A).rcode == NXDOMAIN
    assert resolver.answer("pod.cluster.local", rdt.A).rcode == NXDOMAIN


def test_an_unknown_pods_mode_is_refused():
    with pytest.raises(ValueError, match="insecure, verified, disabled"):
        Resolver(cluster_view(), pods="maybe")


def test_without_slices_or_endpoints_caches_headless_services_have_no_addresses():
    view = ClusterView(store_of([service("default", "db", "None", [])]))
    answer = Resolver(view).answer(f"db.default.{Z}", rdt.A)
    assert answer.rcode == NOERROR and answer.answer == []


def test_answers_follow_the_caches():
    services = store_of([])
    resolver = Resolver(ClusterView(services))
    assert resolver.answer(f"late.default.{Z}", rdt.A).rcode == NXDOMAIN
    services._put("default/late", service("default", "late", "10.96.0.99", []))
    assert rows(resolver.answer(f"late.default.{Z}", rdt.A).answer) == ["A 10.96.0.99"]
    services._delete("default/late")
    assert resolver.answer(f"late.default.{Z}", rdt.A).rcode == NXDOMAIN
