"""Turn one query's bytes into the response's bytes: parse, answer or forward, fit the size.

Hostile or broken input never raises out of here: a packet that does not parse
gets FORMERR (when it has a header to answer), a response arriving on the
query port is ignored, and anything larger than the client can take is sent
empty with the TC bit, so it asks again over TCP.

Questions in the cluster domain are answered at once, on the caller's thread,
from the resolver; ``handle`` then returns bytes. Everything else returns an
awaitable (forwarding, or chasing an ExternalName's CNAME), bounded in number.
"""

import collections
import logging
import struct

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype as rdt

log = logging.getLogger(__name__)

HEADER_SIZE = 12
#: The largest UDP response without EDNS (RFC 1035), and the most we send with it.
CLASSIC_UDP_SIZE, MAX_UDP_SIZE = 512, 1232
TCP_SIZE = 65535
#: Questions being forwarded at once; more are answered SERVFAIL rather than queued.
MAX_FORWARDS = 512
#: CNAMEs followed for one answer (ExternalName to ExternalName ...).
MAX_CHASE = 8
_NOT_ASKABLE = {rdt.OPT, rdt.TSIG, rdt.TKEY}
_TRANSFERS = {rdt.AXFR, rdt.IXFR}


def udp_size(query):
    """What a UDP client can take: 512 bytes, or its EDNS payload (capped)."""
    if query.edns < 0:
        return CLASSIC_UDP_SIZE
    return max(CLASSIC_UDP_SIZE, min(query.payload, MAX_UDP_SIZE))


def header_only(wire, rcode):
    """A response of just a header (id, opcode, RD and ``rcode``) to a packet not parsed."""
    flags = 0x80 | (wire[2] & 0x79)     # QR, the query's opcode and RD
    return struct.pack("!2sBBHHHH", wire[:2], flags, 0x80 | rcode, 0, 0, 0, 0)


class Handler:
    """Answer queries from a Resolver, forward the rest to an Upstream."""

    def __init__(self, resolver, upstream, synced=lambda: True):
        self.resolver, self.upstream, self.synced = resolver, upstream, synced
        self.stats = collections.Counter()
        self.forwarding = 0

    def handle(self, wire, via_tcp):
        """The response to ``wire``: bytes, None (send nothing) or an awaitable of either."""
        self.stats["queries_tcp" if via_tcp else "queries_udp"] += 1
        if len(wire) < HEADER_SIZE or wire[2] & 0x80:
            self.stats["dropped"] += 1       # no header to answer, or a response: ignore
            return None
        if (wire[2] >> 3) & 0xF != dns.opcode.QUERY:
            # UPDATE, NOTIFY, ...: not parsed at all (their sections mean other things).
            self.stats["rcode_NOTIMP"] += 1
            return header_only(wire, dns.rcode.NOTIMP)
        try:
            query = dns.message.from_wire(wire)
        except Exception:                    # noqa: BLE001 - any parse failure is the client's
            self.stats["rcode_FORMERR"] += 1
            return header_only(wire, dns.rcode.FORMERR)
        limit = TCP_SIZE if via_tcp else udp_size(query)
        if len(query.question) != 1 or query.question[0].rdtype in _NOT_ASKABLE:
            return self._reply(query, limit, dns.rcode.FORMERR)
        if query.edns > 0:
            return self._reply(query, limit, dns.rcode.BADVERS)
        question = query.question[0]
        if question.rdclass != dns.rdataclass.IN or question.rdtype in _TRANSFERS:
            return self._reply(query, limit, dns.rcode.REFUSED)
        try:
            answer = self.resolver.answer(question.name, question.rdtype)
        except Exception:                    # noqa: BLE001 - a bug must not stop the server
            log.exception("qname=%s msg=answering failed", question.name)
            return self._reply(query, limit, dns.rcode.SERVFAIL)
        if answer is not None and answer.authoritative and not self.synced():
            # Until the caches hold a first full list, "no such name" could be wrong.
            return self._reply(query, limit, dns.rcode.SERVFAIL)
        if answer is None or answer.cname is not None:
            if (answer is None and not self.upstream) or self.forwarding >= MAX_FORWARDS:
                return self._reply(query, limit, dns.rcode.SERVFAIL)
            self.forwarding += 1
            return self._forward(query, limit) if answer is None else \
                self._chase(query, answer, limit)
        return self._reply(query, limit, answer.rcode, answer.answer, answer.authority,
                           answer.additional, answer.authoritative)

    # -- responses -----------------------------------------------------------------------
    def _reply(self, query, limit, rcode, answer=(), authority=(), additional=(),
               authoritative=False):
        response = dns.message.make_response(query, recursion_available=True,
                                              our_payload=MAX_UDP_SIZE)
        response.set_rcode(rcode)
        if authoritative:
            response.flags |= dns.flags.AA
        response.answer, response.authority = list(answer), list(authority)
        response.additional = list(additional)
        self.stats[f"rcode_{dns.rcode.to_text(rcode)}"] += 1
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            # Whole RRsets or nothing: the client asks again over TCP.
            self.stats["truncated"] += 1
            response.answer, response.authority, response.additional = [], [], []
            response.flags |= dns.flags.TC
            return response.to_wire(max_size=limit)

    # -- forwarding ----------------------------------------------------------------------
    async def _forward(self, query, limit):
        """Ask upstream; answer with its rcode and sections (the caller counted us in)."""
        try:
            question = query.question[0]
            upstream = await self._ask(question.name, question.rdtype, query.flags)
            if upstream is None:
                return self._reply(query, limit, dns.rcode.SERVFAIL)
            return self._reply(query, limit, upstream.rcode(), upstream.answer,
                               upstream.authority, upstream.additional,
                               bool(upstream.flags & dns.flags.AA))
        finally:
            self.forwarding -= 1

    async def _chase(self, query, answer, limit):
        """Follow an ExternalName's CNAME: in the zone, else upstream; answer with all of it."""
        try:
            return await self._follow(query, answer, limit)
        finally:
            self.forwarding -= 1

    async def _follow(self, query, answer, limit):
        question = query.question[0]
        sections, rcode, authority = list(answer.answer), dns.rcode.NOERROR, []
        seen, target = {question.name}, answer.cname
        for _ in range(MAX_CHASE):
            if target in seen:
                rcode = dns.rcode.SERVFAIL      # a CNAME loop
                break
            seen.add(target)
            found = self.resolver.answer(target, question.rdtype)
            if found is None:
                upstream = await self._ask(target, question.rdtype, query.flags) \
                    if self.upstream else None
                if upstream is None:
                    rcode = dns.rcode.SERVFAIL
                else:
                    sections.extend(upstream.answer)
                    rcode, authority = upstream.rcode(), list(upstream.authority)
                break
            sections.extend(found.answer)
            rcode, authority = found.rcode, found.authority
            if found.cname is None:
                break
            target = found.cname
        return self._reply(query, limit, rcode, sections, authority,
                           authoritative=answer.authoritative)

    async def _ask(self, qname, rdtype, flags):
        self.stats["forwarded"] += 1
        answer = await self.upstream.ask(qname, rdtype, dns.rdataclass.IN, flags)
        if answer is None:
            self.stats["forward_failures"] += 1
        return answer

