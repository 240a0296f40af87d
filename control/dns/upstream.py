"""Forward questions outside the cluster domain to the resolvers of a resolv.conf.

The servers are asked in the order given, each with its own timeout, over UDP
first and over TCP when the UDP answer comes back truncated. With no server at
all a question fails at once (the caller answers SERVFAIL), which is what a
test cluster without a way out wants: no packet sent, no client left waiting.
"""

import ipaddress
import logging

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message

log = logging.getLogger(__name__)

#: Seconds to wait for one upstream server before asking the next.
UPSTREAM_TIMEOUT = 2.0
#: The EDNS payload asked of upstream servers (the 2020 DNS flag day's safe size).
UPSTREAM_PAYLOAD = 1232


def parse_address(text, default_port=53):
    """("host", port) from "host", "host:port", "[v6]:port" or a bare IPv6 address."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, default_port


def read_nameservers(path):
    """The ``nameserver`` addresses of a resolv.conf ([] for no path or no file)."""
    if not path:
        return []
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        log.warning("resolv_conf=%s msg=no such file; names outside the cluster get SERVFAIL",
                    path)
        return []
    servers = []
    for line in lines:
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            address = words[1].split("%", 1)[0]     # drop an IPv6 zone index
            try:
                ipaddress.ip_address(address)
            except ValueError:
                log.warning("resolv_conf=%s nameserver=%s msg=not an IP address; skipped",
                            path, words[1])
                continue
            servers.append((address, 53))
    return servers


def without_self(servers, listen_host, listen_port):
    """Drop the servers that are this server itself, so a question never loops back.

    A resolv.conf naming 127.0.0.1 while we listen on 0.0.0.0:53 names us: the
    port could not have been bound if another server held it on loopback.
    """
    wildcard = listen_host in ("0.0.0.0", "::", "")
    kept = []
    for host, port in servers:
        is_self = port == listen_port and (
            host == listen_host or (wildcard and ipaddress.ip_address(host).is_loopback))
        if is_self:
            log.warning("nameserver=%s:%d msg=that is this server; not forwarding to it",
                        host, port)
        else:
            kept.append((host, port))
    return kept


class Upstream:
    """The resolvers to forward to, asked one after another."""

    def __init__(self, servers, timeout=UPSTREAM_TIMEOUT):
        self.servers = list(servers)
        self.timeout = timeout

    def __bool__(self):
        return bool(self.servers)

    async def ask(self, qname, rdtype, rdclass, flags=dns.flags.RD):
        """The first answer an upstream server gives to one question, or None.

        ``flags`` are the client's RD/CD bits. The answer's rcode (NXDOMAIN,
        SERVFAIL, ...) is the upstream's own; None means nobody answered.
        """
        query = dns.message.make_query(qname, rdtype, rdclass, use_edns=0,
                                       payload=UPSTREAM_PAYLOAD,
                                       flags=flags & (dns.flags.RD | dns.flags.CD))
        for host, port in self.servers:
            try:
                answer = await dns.asyncquery.udp(query, host, timeout=self.timeout, port=port)
                if answer.flags & dns.flags.TC:
                    answer = await dns.asyncquery.tcp(query, host, timeout=self.timeout,
                                                      port=port)
                return answer
            except (dns.exception.DNSException, OSError, EOFError) as exc:
                log.info("nameserver=%s:%d qname=%s msg=no answer: %s", host, port, qname,
                         exc.__class__.__name__)
        return None
