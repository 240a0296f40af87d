"""Answer a DNS question about the cluster domain from a ClusterView (pure: no I/O).

The names follow Kubernetes' DNS specification (schema 1.1.0), with the pod
records of kube-dns:

    <svc>.<ns>.svc.<zone>                 A/AAAA ClusterIP; headless: ready endpoint IPs;
                                          ExternalName: CNAME to its externalName
    <host>.<svc>.<ns>.svc.<zone>          A/AAAA of a headless Service's endpoint whose
                                          hostname (else its IP with dashes) is <host>
    _<port>._<proto>.<svc>.<ns>.svc.<zone> SRV per named port: the Service name, or each
                                          ready endpoint of a headless Service
    <a-b-c-d>.<ns>.pod.<zone>             A (AAAA for an IPv6 address with dashes)
    dns-version.<zone>                    TXT "1.1.0"
    reverse names of ClusterIPs and headless endpoints  PTR

A name in the zone that has no records and nothing below it is NXDOMAIN; a name
that exists without records of the asked type is NODATA (NOERROR, empty). Both
carry the zone's SOA in the authority section, whose minimum is the TTL, so
resolvers cache the negative answer no longer than a positive one.
Names compare case-insensitively; the answer's owner is the name as asked.
"""

import functools
import ipaddress
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype as rdt
import dns.reversename
import dns.rrset
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.PTR import PTR
from dns.rdtypes.ANY.SOA import SOA
from dns.rdtypes.ANY.TXT import TXT
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA
from dns.rdtypes.IN.SRV import SRV

from control.dns.view import is_headless, normalize_ip, service_ips

IN = dns.rdataclass.IN
SCHEMA_VERSION = "1.1.0"
DEFAULT_TTL = 30
POD_MODES = ("insecure", "verified", "disabled")
#: SRV targets whose addresses go in the additional section, at most.
MAX_ADDITIONAL_TARGETS = 32
REVERSE_ZONES = (dns.name.from_text("in-addr.arpa."), dns.name.from_text("ip6.arpa."))
# SOA timers (seconds): secondaries do not exist, so only the minimum matters.
SOA_REFRESH, SOA_RETRY, SOA_EXPIRE = 7200, 1800, 86400


@dataclass
class Answer:
    """What to put in a response: rcode and sections (lists of RRsets).

    ``cname`` is the target of a CNAME answered for another type: the server
    chases it (in the zone, or upstream) and appends what it finds.
    """

    rcode: int = dns.rcode.NOERROR
    answer: list = field(default_factory=list)
    authority: list = field(default_factory=list)
    additional: list = field(default_factory=list)
    cname: dns.name.Name | None = None
    authoritative: bool = True


def to_name(qname):
    """A dnspython Name from a Name or text (absolute, with or without a trailing dot)."""
    return qname if isinstance(qname, dns.name.Name) else dns.name.from_text(qname)


@functools.lru_cache(maxsize=65536)
def _address(ip):
    """The A or AAAA rdata of ``ip`` (immutable, so one object serves every answer)."""
    return A(IN, rdt.A, ip) if ipaddress.ip_address(ip).version == 4 else AAAA(IN, rdt.AAAA, ip)


def host_label(endpoint):
    """An endpoint's name under its Service: its hostname, else its IP with dashes."""
    return endpoint.hostname or endpoint.ip.replace(".", "-").replace(":", "-")


def _ip_from_dashes(label):
    """The IP a pod label such as 10-1-2-3 (or fd00--5 for IPv6) stands for, or None."""
    parts = label.split("-")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        candidate = ".".join(parts)
    else:
        candidate = label.replace("-", ":")
    ip = normalize_ip(candidate)
    if ip is None or (ipaddress.ip_address(ip).version == 6) == (len(parts) == 4):
        return None
    return ip


class Resolver:
    """The authority for one cluster domain, reading a ClusterView at every question."""

    def __init__(self, view, zone="cluster.local", ttl=DEFAULT_TTL, pods="insecure",
                 serial=lambda: 1):
        if pods not in POD_MODES:
            raise ValueError(f"pods mode must be one of {', '.join(POD_MODES)}, not {pods!r}")
        self.view, self.ttl, self.pods, self.serial = view, int(ttl), pods, serial
        self.zone = to_name(zone.rstrip(".") + ".")
        self._soa = None

    # -- the questions ----------------------------------------------------------------
    def is_cluster_name(self, qname):
        """Whether ``qname`` is in the cluster domain (this resolver is its authority)."""
        return to_name(qname).is_subdomain(self.zone)

    def answer(self, qname, qtype):
        """The Answer for ``qname``/``qtype``, or None if another server must answer."""
        qname, qtype = to_name(qname), int(qtype)
        if qname.is_subdomain(self.zone):
            return self._answer(qname, qtype, self._node(self._labels(qname)), authoritative=True)
        if any(qname.is_subdomain(z) for z in REVERSE_ZONES):
            records = self._reverse(qname)
            if records:
                return self._answer(qname, qtype, records, authoritative=False)
        return None

    def soa(self):
        """The zone's SOA RRset (built again only when the serial moves)."""
        serial = self.serial() & 0xFFFFFFFF
        if self._soa is None or self._soa[0] != serial:
            self._soa = (serial, self._build_soa(serial))
        return self._soa[1]

    def _build_soa(self, serial):
        rdata = SOA(IN, rdt.SOA, dns.name.from_text("ns.dns", self.zone),
                    dns.name.from_text("hostmaster", self.zone), serial,
                    SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, self.ttl)
        return self._rrset(self.zone, [rdata])

    # -- building answers --------------------------------------------------------------
    def _answer(self, qname, qtype, records, authoritative):
        if records is None:
            return Answer(dns.rcode.NXDOMAIN, authority=self._negative(authoritative))
        cnames = [r for r in records if r.rdtype == rdt.CNAME]
        if cnames and qtype not in (rdt.CNAME, rdt.ANY):
            return Answer(answer=[self._rrset(qname, cnames)], cname=cnames[0].target,
                          authoritative=authoritative)
        matching = [r for r in records if qtype == rdt.ANY or r.rdtype == qtype]
        if not matching:
            return Answer(authority=self._negative(authoritative), authoritative=authoritative)
        by_type = {}
        for rdata in matching:
            by_type.setdefault(rdata.rdtype, []).append(rdata)
        answer = [self._rrset(qname, group) for group in by_type.values()]
        return Answer(answer=answer, additional=self._srv_addresses(matching),
                      authoritative=authoritative)

    def _negative(self, authoritative):
        return [self.soa()] if authoritative else []

    def _srv_addresses(self, records):
        """The A/AAAA records of SRV targets in the zone, for the additional section."""
        additional, seen = [], set()
        for rdata in records:
            if rdata.rdtype != rdt.SRV or rdata.target in seen:
                continue
            if len(seen) >= MAX_ADDITIONAL_TARGETS:
                break       # optional data: a big headless Service would not fit anyway
            seen.add(rdata.target)
            if rdata.target.is_subdomain(self.zone):
                node = self._node(self._labels(rdata.target)) or []
                for rtype in (rdt.A, rdt.AAAA):
                    found = [r for r in node if r.rdtype == rtype]
                    if found:
                        additional.append(self._rrset(rdata.target, found))
        return additional

    def _rrset(self, owner, rdatas):
        rrset = dns.rrset.RRset(owner, IN, rdatas[0].rdtype)
        rrset.update_ttl(self.ttl)
        for rdata in rdatas:
            rrset.add(rdata)
        return rrset

    def _labels(self, qname):
        """The labels of ``qname`` below the zone, lower case, leftmost first."""
        relative = qname.relativize(self.zone)
        return [label.lower().decode("latin-1") for label in relative.labels]

    def _fqdn(self, *labels):
        return dns.name.from_text(".".join(labels), self.zone)

    # -- the tree of names (None: no such name; []: a name without records) -------------
    def _node(self, labels):
        if not labels:
            return list(self.soa())
        if labels == ["dns-version"]:
            return [TXT(IN, rdt.TXT, [SCHEMA_VERSION])]
        if labels[-1] == "svc":
            return self._service_node(labels[:-1])
        if labels[-1] == "pod" and self.pods != "disabled":
            return self._pod_node(labels[:-1])
        return None

    def _service_node(self, labels):
        if not labels:
            return []
        namespace = labels[-1]
        if len(labels) == 1:
            return [] if self.view.namespace_has_services(namespace) else None
        service = self.view.service(namespace, labels[-2])
        if service is None:
            return None
        below = labels[:-2]
        if not below:
            return self._service_records(service)
        if len(below) == 2 and below[0].startswith("_") and below[1].startswith("_"):
            return self._srv_records(service, below[0][1:], below[1][1:]) or None
        if len(below) == 1 and below[0].startswith("_"):
            # _<proto>.<svc>...: exists while some named port of that protocol does.
            protocol = below[0][1:]
            return [] if any(self._srv_records(service, p, protocol)
                             for p in self._port_names(service)) else None
        if len(below) == 1 and is_headless(service):
            records = [_address(e.ip) for e in self.view.ready_endpoints(service)
                       if host_label(e) == below[0]]
            return records or None
        return None

    def _service_records(self, service):
        spec = service.get("spec") or {}
        if spec.get("type") == "ExternalName":
            try:
                target = dns.name.from_text(spec.get("externalName") or "")
            except dns.exception.DNSException:
                return []
            return [CNAME(IN, rdt.CNAME, target)] if len(target) > 1 else []
        if is_headless(service):
            return [_address(e.ip) for e in self.view.ready_endpoints(service)]
        return [_address(ip) for ip in service_ips(service)]

    def _port_names(self, service):
        names = {(p.get("name") or "").lower() for p in (service.get("spec") or {}).get("ports")
                 or ()}
        if is_headless(service):
            names.update(p.name for e in self.view.ready_endpoints(service) for p in e.ports)
        return names - {""}

    def _srv_records(self, service, port_name, protocol):
        """SRV records for a named port: priority 0, weights sharing 100 equally."""
        meta = service.get("metadata") or {}
        name, namespace = meta.get("name", ""), meta.get("namespace", "")
        protocol = protocol.upper()
        targets = []
        if is_headless(service):
            for endpoint in self.view.ready_endpoints(service):
                for port in endpoint.ports:
                    if port.name == port_name and port.protocol == protocol and port.number:
                        targets.append((port.number,
                                        self._fqdn(host_label(endpoint), name, namespace, "svc")))
        elif (service.get("spec") or {}).get("type") != "ExternalName":
            for port in (service.get("spec") or {}).get("ports") or ():
                if ((port.get("name") or "").lower() == port_name and port.get("port")
                        and (port.get("protocol") or "TCP").upper() == protocol):
                    targets.append((int(port["port"]), self._fqdn(name, namespace, "svc")))
        targets = sorted(set(targets))
        weight = max(1, 100 // len(targets)) if targets else 0
        return [SRV(IN, rdt.SRV, 0, weight, port, target) for port, target in targets]

    def _pod_node(self, labels):
        if len(labels) < 2:
            return []       # pod.<zone> and <ns>.pod.<zone>: pod names exist below them
        if len(labels) > 2:
            return None
        ip = _ip_from_dashes(labels[0])
        if ip is None:
            return None
        if self.pods == "verified" and not self.view.pod_has_ip(labels[1], ip):
            return None
        return [_address(ip)]

    def _reverse(self, qname):
        """PTR records for a ClusterIP or a headless Service's endpoint, or []."""
        try:
            ip = normalize_ip(dns.reversename.to_address(qname))
        except (dns.exception.DNSException, ValueError):
            return []
        if ip is None:
            return []
        targets = []
        for service in self.view.services_with_ip(ip):
            meta = service.get("metadata") or {}
            if not is_headless(service):
                targets.append(self._fqdn(meta.get("name", ""), meta.get("namespace", ""), "svc"))
        for service in self.view.services_with_endpoint_ip(ip):
            if is_headless(service):
                meta = service.get("metadata") or {}
                targets.extend(self._fqdn(host_label(e), meta.get("name", ""),
                                          meta.get("namespace", ""), "svc")
                               for e in self.view.ready_endpoints(service) if e.ip == ip)
        return [PTR(IN, rdt.PTR, t) for t in dict.fromkeys(targets)]
