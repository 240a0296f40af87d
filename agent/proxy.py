"""``steer-proxy``: the service proxy of one machine (kube-proxy in userspace mode).

    steer-proxy --api-server http://127.0.0.1:6443 --node-ips 127.0.1.1,127.0.1.2

Watches Services and Endpoints and, for every TCP port of every Service with a
clusterIP, listens on clusterIP:port (when that address can be bound here: all
of 127/8 can, on Linux) and, for NodePort and LoadBalancer Services, on every
node IP at the nodePort. A connection it accepts goes to a ready endpoint of the
Service port, chosen round-robin (or, with sessionAffinity ClientIP, the one
the client used last), and bytes are copied both ways until each side has
closed its half.

Endpoints changes only steer *new* connections: an established connection is
never cut because its endpoint left the Endpoints object, and a deleted Service
stops accepting while the connections it already has run to their end.

The pure parts (which listeners a set of Services asks for, which backends a
Service port has, the round-robin order) are plain functions and classes at the
top; the asyncio machinery that moves bytes is below them.
"""

import argparse
import asyncio
import errno
import logging
import signal
import socket
import struct
import threading
import time
from dataclasses import dataclass

from agent.network import nftproxy
from control.client import Informer
from control.client.component import add_connection_flags, configure_logging, connect
from control.objects import kinds

log = logging.getLogger("steer.proxy")

#: Seconds to wait for one endpoint to accept before trying the next.
CONNECT_TIMEOUT = 3.0
CHUNK = 64 * 1024
#: Seconds between syncs when nothing changes (to retry addresses that would not bind).
RESYNC_SECONDS = 30.0


# -- what to serve (pure) -------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    """Where connections to one listener go: a port of a Service."""

    service: str            # "namespace/name": the key of the Service and its Endpoints
    port_name: str          # the Service port's name ("" when unnamed)
    affinity_seconds: int   # >0: sessionAffinity ClientIP with this timeout


def service_key(obj):
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def routes_for(service, node_ips):
    """Return {(ip, port): Route} of the listeners one Service asks for (TCP only)."""
    spec = service.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    cluster_ip = spec.get("clusterIP")
    if kind == "ExternalName" or not cluster_ip or cluster_ip == "None":
        return {}
    affinity = 0
    if spec.get("sessionAffinity") == "ClientIP":
        affinity = int(((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
                       .get("timeoutSeconds") or 10800)
    key, routes = service_key(service), {}
    for port in spec.get("ports") or ():
        if (port.get("protocol") or "TCP") != "TCP" or not port.get("port"):
            continue
        route = Route(key, port.get("name") or "", affinity)
        routes[(cluster_ip, int(port["port"]))] = route
        if kind in ("NodePort", "LoadBalancer") and port.get("nodePort"):
            for node_ip in node_ips:
                routes[(node_ip, int(port["nodePort"]))] = route
    return routes


def desired_routes(services, node_ips):
    """The listeners every Service together asks for; on a clash the older one wins."""
    routes = {}
    ordered = sorted(services, key=lambda s: ((s.get("metadata") or {})
                                              .get("creationTimestamp") or "", service_key(s)))
    for service in ordered:
        for address, route in routes_for(service, node_ips).items():
            routes.setdefault(address, route)
    return routes


def ready_backends(endpoints, port_name):
    """Return the (ip, port) pairs ready to serve the Service port named ``port_name``.

    An Endpoints subset is a set of addresses × a set of ports; a Service port
    matches the subset's port of the same name (both unnamed for a one-port
    Service). notReadyAddresses are left out, as kube-proxy does.
    """
    backends = []
    for subset in (endpoints or {}).get("subsets") or ():
        ports = [p for p in subset.get("ports") or ()
                 if (p.get("name") or "") == port_name and (p.get("protocol") or "TCP") == "TCP"
                 and p.get("port")]
        for address in subset.get("addresses") or ():
            if not address.get("ip"):
                continue
            backends.extend((address["ip"], int(p["port"])) for p in ports)
    return sorted(set(backends))


class Balancer:
    """Round-robin over each Service port's backends, with optional ClientIP affinity."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._next = {}         # (service, port name) -> counter
        self._affinity = {}     # (service, port name, client ip) -> (backend, last used)

    def order(self, route, backends, client_ip=None):
        """Return ``backends`` in the order to try them for one new connection."""
        if not backends:
            return []
        key = (route.service, route.port_name)
        start = self._next.get(key, 0) % len(backends)
        self._next[key] = start + 1
        ordered = backends[start:] + backends[:start]
        if route.affinity_seconds and client_ip is not None:
            remembered = self._affinity.get(key + (client_ip,))
            if remembered and remembered[0] in backends and \
                    self.clock() - remembered[1] < route.affinity_seconds:
                ordered.remove(remembered[0])
                ordered.insert(0, remembered[0])
        return ordered

    def used(self, route, backend, client_ip):
        """Remember which backend served ``client_ip`` (for sessionAffinity ClientIP)."""
        if route.affinity_seconds and client_ip is not None:
            self._affinity[(route.service, route.port_name, client_ip)] = (backend, self.clock())

    def forget(self, services):
        """Drop state of Services that are gone."""
        for table in (self._next, self._affinity):
            for key in [k for k in table if k[0] not in services]:
                del table[key]


def plan(current, desired):
    """Return (addresses to close, addresses to open, addresses whose route changed)."""
    close = sorted(set(current) - set(desired))
    open_ = sorted(set(desired) - set(current))
    changed = sorted(a for a in set(current) & set(desired) if current[a] != desired[a])
    return close, open_, changed


# -- moving bytes (asyncio) -----------------------------------------------------------
class Stats:
    def __init__(self):
        self.accepted = self.active = self.refused = self.upstream_failures = 0
        self.bytes = 0


class Proxy:
    """Listeners and connections on one asyncio loop, fed by two informers."""

    def __init__(self, rest, node_ips, connect_timeout=CONNECT_TIMEOUT, informers=None):
        self.rest, self.node_ips = rest, list(node_ips)
        self.connect_timeout = connect_timeout
        if informers is None:
            informers = (Informer(rest, kinds.SERVICES), Informer(rest, kinds.ENDPOINTS))
        self.services, self.endpoints = informers
        self.balancer = Balancer()
        self.stats = Stats()
        self.routes = {}        # (ip, port) -> Route, for listeners that are open
        self.servers = {}       # (ip, port) -> asyncio.Server
        self.backends = {}      # (service, port name) -> [(ip, port)]
        self._skipped = {}      # address -> errno of the failed bind (logged once)
        self._loop = None
        self._sync_pending = False
        self._sync_lock = asyncio.Lock()
        self.synced = asyncio.Event()

    # -- the informers' side ---------------------------------------------------------
    def _changed(self, *_):
        """Informer handler (informer thread): ask the loop for one resync."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._schedule_sync)

    def _schedule_sync(self):
        if not self._sync_pending:
            self._sync_pending = True
            asyncio.get_running_loop().create_task(self._sync())

    async def _sync(self):
        """Bring listeners and backends in line with the informers' caches.

        One sync at a time (opening a listener awaits): a change that arrives
        meanwhile schedules another, which starts when this one is done.
        """
        self._sync_pending = False
        async with self._sync_lock:
            await self._sync_locked()

    async def _sync_locked(self):
        services = self.services.store.list()
        desired = desired_routes(services, self.node_ips)
        backends = {}
        for route in set(desired.values()):
            endpoints = self.endpoints.store.get(route.service)
            backends[(route.service, route.port_name)] = ready_backends(endpoints,
                                                                        route.port_name)
        self.backends = backends
        self.balancer.forget({service_key(s) for s in services})
        # Addresses we failed to bind are tried again on every sync (a port in use
        # may free up), but logged only when the reason changes.
        self._skipped = {a: e for a, e in self._skipped.items() if a in desired}
        close, open_, changed = plan(self.routes, desired)
        for address in close:
            self.servers.pop(address).close()
            del self.routes[address]
            log.info("listener=%s:%d msg=closed: its Service port is gone", *address)
        for address in changed:
            self.routes[address] = desired[address]
        for address in open_:
            await self._listen(address, desired[address])
        if self.services.has_synced() and self.endpoints.has_synced():
            self.synced.set()

    async def _listen(self, address, route):
        ip, port = address
        try:
            server = await asyncio.start_server(
                lambda r, w, a=address: self._accept(a, r, w), ip, port,
                reuse_address=True, backlog=512)
        except OSError as exc:
            if self._skipped.get(address) == exc.errno:
                return
            self._skipped[address] = exc.errno
            why = {errno.EADDRNOTAVAIL: "the address is not local to this machine",
                   errno.EACCES: "ports below 1024 need root (or sysctl "
                                 "net.ipv4.ip_unprivileged_port_start=0)",
                   errno.EADDRINUSE: "the port is in use (retried on the next sync)",
                   }.get(exc.errno, exc.strerror or str(exc))
            log.warning("listener=%s:%d service=%s msg=not served here: %s", ip, port,
                        route.service, why)
            return
        self.servers[address] = server
        self.routes[address] = route
        self._skipped.pop(address, None)
        log.info("listener=%s:%d service=%s port=%s msg=listening", ip, port, route.service,
                 route.port_name or "-")

    # -- connections -----------------------------------------------------------------
    async def _accept(self, address, reader, writer):
        self.stats.accepted += 1
        route = self.routes.get(address)
        peer = writer.get_extra_info("peername") or (None,)
        client_ip = peer[0]
        backends = self.backends.get((route.service, route.port_name), []) if route else []
        upstream = None
        for backend in self.balancer.order(route, backends, client_ip) if route else []:
            try:
                upstream = await asyncio.wait_for(asyncio.open_connection(*backend),
                                                  self.connect_timeout)
            except (OSError, asyncio.TimeoutError) as exc:
                self.stats.upstream_failures += 1
                log.info("service=%s endpoint=%s:%d msg=connect failed, trying the next: %s",
                         route.service, *backend, exc)
                continue
            self.balancer.used(route, backend, client_ip)
            break
        if upstream is None:
            self.stats.refused += 1
            if route is not None:
                log.info("service=%s msg=no endpoint accepted the connection; resetting it",
                         route.service)
            _reset(writer)
            return
        self.stats.active += 1
        try:
            await asyncio.gather(self._pipe(reader, upstream[1]), self._pipe(upstream[0], writer))
        except asyncio.CancelledError:
            pass    # the proxy is stopping; Python 3.11's stream callback chokes on a re-raise
        finally:
            self.stats.active -= 1
            for w in (writer, upstream[1]):
                w.close()

    async def _pipe(self, reader, writer):
        """Copy one direction; pass its end on as a half-close (FIN)."""
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                self.stats.bytes += len(data)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            # One side reset: reset the other too, as a TCP path would.
            writer.transport.abort()

    # -- lifecycle -------------------------------------------------------------------
    async def run(self, stop):
        """Serve until ``stop`` (an asyncio.Event) is set."""
        self._loop = asyncio.get_running_loop()
        for informer in (self.services, self.endpoints):
            informer.add_handler(self._changed, self._changed, self._changed)
            informer.start()
        # A first sync, and one more once both caches hold their first full list.
        self._schedule_sync()
        while not stop.is_set() and not (self.services.has_synced()
                                         and self.endpoints.has_synced()):
            await asyncio.sleep(0.1)
        self._schedule_sync()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), RESYNC_SECONDS)
            except asyncio.TimeoutError:
                self._schedule_sync()   # retries the addresses that would not bind
        for server in self.servers.values():
            server.close()
        for informer in (self.services, self.endpoints):
            informer.stop(timeout=2)

    def metrics_text(self):
        s = self.stats
        lines = [
            "# TYPE steer_proxy_connections_accepted_total counter",
            f"steer_proxy_connections_accepted_total {s.accepted}",
            "# TYPE steer_proxy_connections_active gauge",
            f"steer_proxy_connections_active {s.active}",
            "# TYPE steer_proxy_connections_refused_total counter",
            f"steer_proxy_connections_refused_total {s.refused}",
            "# TYPE steer_proxy_upstream_connect_failures_total counter",
            f"steer_proxy_upstream_connect_failures_total {s.upstream_failures}",
            "# TYPE steer_proxy_bytes_total counter",
            f"steer_proxy_bytes_total {s.bytes}",
            "# TYPE steer_proxy_listeners gauge",
            f"steer_proxy_listeners {len(self.servers)}",
        ]
        return "\n".join(lines) + "\n"


def _reset(writer):
    """Close a client connection with a RST (SO_LINGER 0), as a refused service does."""
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


async def serve_metrics(proxy, host, port):
    """A tiny HTTP endpoint: /healthz (ok once the caches are synced) and /metrics."""

    async def handle(reader, writer):
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            path = request.split(b" ", 2)[1].decode() if b" " in request else "/"
            if path.startswith("/healthz"):
                ok = proxy.synced.is_set()
                status, body = ("200 OK", "ok\n") if ok else ("503 Service Unavailable",
                                                              "informers not synced\n")
            elif path.startswith("/metrics"):
                status, body = "200 OK", proxy.metrics_text()
            else:
                status, body = "404 Not Found", "not found\n"
            data = body.encode()
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n"
                         f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                         + data)
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port, reuse_address=True)


# -- the command -------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="steer-proxy", description=__doc__.split("\n")[0])
    add_connection_flags(p)     # --kubeconfig, or --api-server and --token-file
    p.add_argument("--node-ips", default="",
                   help="comma-separated node IPs of this machine; NodePorts are served on each")
    p.add_argument("--metrics-addr", default="",
                   help="host:port serving /healthz and /metrics (default: none)")
    p.add_argument("--connect-timeout", type=float, default=CONNECT_TIMEOUT,
                   help="seconds to wait for an endpoint before trying the next")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--mode", choices=("userspace", "nftables"), default="userspace",
                   help="userspace: this process forwards connections (the default); "
                        "nftables: program one node's kernel (agent/network/nftproxy.py)")
    nftproxy.add_flags(p)
    return p.parse_args(argv)


async def _main(args):
    rest = connect(args)
    node_ips = [ip.strip() for ip in args.node_ips.split(",") if ip.strip()]
    proxy = Proxy(rest, node_ips, connect_timeout=args.connect_timeout)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    metrics = None
    if args.metrics_addr:
        host, _, port = args.metrics_addr.rpartition(":")
        metrics = await serve_metrics(proxy, host or "127.0.0.1", int(port))
        log.info("metrics=%s msg=serving /healthz and /metrics", args.metrics_addr)
    log.info("api_server=%s://%s:%d node_ips=%s msg=steer-proxy starting", rest.scheme,
             rest.host, rest.port, ",".join(node_ips) or "-")
    await proxy.run(stop)
    if metrics is not None:
        metrics.close()
    log.info("msg=steer-proxy stopped")


def main(argv=None):
    args = parse_args(argv)
    configure_logging(args.log_level)
    threading.current_thread().name = "steer-proxy"
    if args.mode == "nftables" and args.cleanup:
        raise SystemExit(1 if nftproxy.cleanup(args.netns) else 0)
    if args.mode == "nftables":
        nftproxy.run(args, connect(args))
        return
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
