"""Serve cluster DNS over UDP and TCP (asyncio), from informer caches of the API.

    python -m control.dns.server --kubeconfig F --listen 0.0.0.0:53 \\
        --cluster-domain cluster.local --upstream-resolv-conf /etc/resolv.conf

In a pod (the addon, cli/local_addons.py) no connection flag is needed: the
pod's ServiceAccount token and KUBERNETES_SERVICE_HOST are used.

Names in the cluster domain are answered from Services, EndpointSlices (when
the API serves them; else Endpoints) and, in ``--pods verified`` mode, Pods;
every other name is forwarded to the resolv.conf's nameservers (an empty path:
none, so SERVFAIL at once). /healthz, /readyz and /metrics are served on
``--metrics-addr`` for a Deployment's probes.
"""

import argparse
import asyncio
import logging
import signal
import struct
import threading

from control.client import Informer, RestClient, errors, incluster
from control.client.component import add_connection_flags, configure_logging, connect
from control.dns.handler import Handler
from control.dns.health import serve_health
from control.dns.records import DEFAULT_TTL, POD_MODES, Resolver
from control.dns.upstream import Upstream, parse_address, read_nameservers, without_self
from control.dns.view import ClusterView
from control.objects import kinds

log = logging.getLogger("steer.dns")

#: Seconds a TCP client may stay silent (between or inside queries) before we close.
TCP_IDLE_TIMEOUT = 10.0
MAX_TCP_CLIENTS = 256
ENDPOINTSLICES = getattr(kinds, "ENDPOINTSLICES", None) or kinds.Resource(
    "discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, handler):
        self.handler, self.transport, self.pending = handler, None, set()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        try:
            reply = self.handler.handle(data, via_tcp=False)
        except Exception:       # noqa: BLE001 - a bug answering one packet must not stop us
            log.exception("client=%s:%d msg=handling a UDP query failed", *addr[:2])
            return
        if reply is None or isinstance(reply, bytes):
            if reply is not None:
                self.transport.sendto(reply, addr)
            return
        task = asyncio.ensure_future(reply)
        self.pending.add(task)
        task.add_done_callback(lambda t: self._send_later(t, addr))

    def _send_later(self, task, addr):
        self.pending.discard(task)
        if task.cancelled():
            return
        if task.exception() is not None:
            log.error("client=%s:%d msg=forwarding failed: %r", *addr[:2], task.exception())
        elif task.result() is not None and not self.transport.is_closing():
            self.transport.sendto(task.result(), addr)

    def error_received(self, exc):
        log.debug("msg=udp error: %s", exc)    # an ICMP unreachable from a gone client


class DnsServer:
    """One handler served on host:port over both UDP and TCP."""

    def __init__(self, handler, host="127.0.0.1", port=53, tcp_idle=TCP_IDLE_TIMEOUT,
                 max_tcp_clients=MAX_TCP_CLIENTS):
        self.handler, self.host, self.port = handler, host, port
        self.tcp_idle, self.max_tcp_clients = tcp_idle, max_tcp_clients
        self.tcp_clients = 0
        self._udp = self._tcp = None
        self._protocol = None
        self._tcp_tasks = set()

    async def start(self):
        """Bind both sockets; with port 0, one free port for both. Return (host, port)."""
        loop = asyncio.get_running_loop()
        for _ in range(20):
            self._tcp = await asyncio.start_server(self._serve_tcp, self.host, self.port,
                                                   reuse_address=True)
            port = self._tcp.sockets[0].getsockname()[1]
            try:
                self._udp, self._protocol = await loop.create_datagram_endpoint(
                    lambda: _UdpProtocol(self.handler), local_addr=(self.host, port))
            except OSError:
                self._tcp.close()
                if self.port:
                    raise
                continue        # that port was free for TCP only: pick another
            self.port = port
            return self.host, port
        raise OSError(f"no port free for both UDP and TCP on {self.host}")

    async def aclose(self, timeout=5.0):
        """Stop listening, hang up on TCP clients, drop forwards in flight; wait for them."""
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        tasks = list(self._protocol.pending if self._protocol else ()) + list(self._tcp_tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def _serve_tcp(self, reader, writer):
        if self.tcp_clients >= self.max_tcp_clients:
            writer.close()
            return
        self.tcp_clients += 1
        task = asyncio.current_task()
        self._tcp_tasks.add(task)
        try:
            while True:
                try:
                    prefix = await asyncio.wait_for(reader.readexactly(2), self.tcp_idle)
                    wire = await asyncio.wait_for(
                        reader.readexactly(struct.unpack("!H", prefix)[0]), self.tcp_idle)
                except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
                    return
                reply = self.handler.handle(wire, via_tcp=True)
                if reply is not None and not isinstance(reply, bytes):
                    reply = await reply
                if reply is None:
                    continue
                writer.write(struct.pack("!H", len(reply)) + reply)
                await asyncio.wait_for(writer.drain(), self.tcp_idle)
        except (asyncio.TimeoutError, ConnectionError, OSError):
            pass
        except Exception:       # noqa: BLE001 - a bug answering one client must not stop us
            log.exception("msg=handling a TCP query failed; closing that connection")
        finally:
            self._tcp_tasks.discard(task)
            self.tcp_clients -= 1
            writer.close()


# -- the process: informers, handler, servers ------------------------------------------
def slices_served(rest):
    """Whether the API serves discovery.k8s.io/v1 EndpointSlices."""
    try:
        found = rest.request("GET", "/apis/discovery.k8s.io/v1")
    except errors.NotFound:
        return False
    return any(r.get("name") == "endpointslices" for r in (found or {}).get("resources") or ())


class Caches:
    """The informers DNS reads: Services, Endpoints, EndpointSlices if served, Pods if asked."""

    def __init__(self, rest, pods_mode, use_slices):
        self.services = Informer(rest, kinds.SERVICES)
        self.endpoints = Informer(rest, kinds.ENDPOINTS)
        self.slices = Informer(rest, ENDPOINTSLICES) if use_slices else None
        self.pods = Informer(rest, kinds.PODS) if pods_mode == "verified" else None
        self.all = [i for i in (self.services, self.endpoints, self.slices, self.pods) if i]
        self.changes = 0
        for informer in self.all:
            informer.add_handler(self._changed, self._changed, self._changed)

    def _changed(self, *objects):
        self.changes += 1       # the SOA serial: it moves when the zone does

    def view(self):
        return ClusterView(self.services.store, self.slices and self.slices.store,
                           self.endpoints.store, self.pods and self.pods.store)

    def start(self):
        for informer in self.all:
            informer.start()

    def synced(self):
        return all(informer.has_synced() for informer in self.all)

    def stop(self):
        for informer in self.all:
            informer.stop(timeout=2)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="steer-dns", description=__doc__.split("\n")[0])
    add_connection_flags(p)
    p.add_argument("--listen", default="0.0.0.0:53", help="address:port for UDP and TCP")
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument("--upstream-resolv-conf", default="/etc/resolv.conf", metavar="PATH",
                   help='forward other names to its nameservers ("" for none: SERVFAIL)')
    p.add_argument("--upstream", action="append", default=[], metavar="HOST[:PORT]",
                   help="forward to this server instead of the resolv.conf's (repeatable)")
    p.add_argument("--ttl", type=int, default=DEFAULT_TTL, help="seconds, for every record")
    p.add_argument("--pods", choices=POD_MODES, default="insecure",
                   help="<a-b-c-d>.<ns>.pod names: for any address (insecure, as kube-dns), "
                        "only for a pod's (verified: watches Pods), or none")
    p.add_argument("--endpoint-slices", choices=("auto", "off"), default="auto",
                   help="read EndpointSlices when served (auto), or Endpoints only")
    p.add_argument("--metrics-addr", default="", metavar="HOST:PORT",
                   help="serve /healthz, /readyz and /metrics here (default: not served)")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def _connect(args):
    """The flags' client; with none of them, the pod's own access (control/client/incluster)."""
    if args.kubeconfig or args.api_server or not incluster.available():
        return connect(args)
    try:
        return RestClient.from_config(incluster.load())
    except incluster.InClusterError as exc:
        raise SystemExit(f"error: {exc}") from None


async def _run(args, stop):
    rest = _connect(args)
    host, port = parse_address(args.listen)
    servers = ([parse_address(u) for u in args.upstream] if args.upstream
               else read_nameservers(args.upstream_resolv_conf))
    upstream = Upstream(without_self(servers, host, port))
    loop = asyncio.get_running_loop()
    use_slices = args.endpoint_slices == "auto" and await _retrying(loop, stop, rest)
    if use_slices is None:
        return
    caches = Caches(rest, args.pods, use_slices)
    resolver = Resolver(caches.view(), args.cluster_domain, args.ttl, args.pods,
                        serial=lambda: caches.changes)
    handler = Handler(resolver, upstream, synced=caches.synced)
    server = DnsServer(handler, host, port)
    await server.start()
    health, health_text = None, "-"
    if args.metrics_addr:
        health_host, health_port = parse_address(args.metrics_addr, 8080)
        health = await serve_health(health_host, health_port, caches.synced, handler.stats)
        health_text = f"{health_host}:{health.sockets[0].getsockname()[1]}"
    caches.start()
    # Tests read the ports from this line when they ask for port 0.
    log.info("listen=%s:%d metrics=%s zone=%s upstream=%s endpoint_slices=%s pods=%s "
             "msg=serving", host, server.port, health_text, args.cluster_domain,
             ",".join(f"{h}:{p}" for h, p in upstream.servers) or "-", use_slices, args.pods)
    try:
        await stop.wait()
    finally:
        await server.aclose()
        if health is not None:
            health.close()
        caches.stop()
        log.info("msg=stopped")


async def _retrying(loop, stop, rest):
    """Ask discovery whether slices are served, until the API answers (None if stopped)."""
    delay = 0.5
    while not stop.is_set():
        try:
            return await loop.run_in_executor(None, slices_served, rest)
        except errors.ApiException as exc:
            log.warning("msg=cannot reach the API server for discovery (%s); retrying", exc)
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except asyncio.TimeoutError:
            delay = min(delay * 2, 10.0)
    return None


def main(argv=None):
    args = parse_args(argv)
    configure_logging(args.log_level)
    threading.current_thread().name = "steer-dns"

    async def run():
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await _run(args, stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
