"""``steer-proxy --mode nftables``: the Service rules of one node (kube-proxy's nftables mode).

    steer-proxy --mode nftables --node-name n1 --netns /run/netns/n1 \\
        --cluster-cidr 10.244.0.0/16 --service-cluster-ip-range 10.96.0.0/12 --kubeconfig F

Informers keep Services, EndpointSlices and this Node; every change asks for a sync,
debounced and serialized by agent/network/sync_runner.py; a sync builds the whole
table (agent/network/nft_rules.py) and the Syncer (nft_apply.py) sends the kernel
only what changed, inside the node's network namespace. The node's addresses (for
NodePorts) are its ``network.steersman.io/node-ip`` annotation, else its
InternalIPs. On SIGTERM the tables stay, as kube-proxy's do: Services keep working
and policies keep being enforced while the proxy restarts or is upgraded, and the
next proxy replaces them whole in its first sync. ``--cleanup`` removes them and
exits (for a host being reset).
With ``--network-policy`` (the default) it also enforces NetworkPolicy for this
node's pods (agent/network/netpol_enforcer.py), with informers, runner and table
of its own.

The latency metric follows kube-proxy's network-programming latency: from the
EndpointSlice's ``endpoints.kubernetes.io/last-change-trigger-time`` (when the
controller saw the pod or Service change), or from the informer event when the
slice carries none, to the moment the rules are applied.
"""

import argparse
import http.server
import logging
import signal
import threading
import time

from agent.network import conntrack, netpol_enforcer, service_routes
from agent.network.netpol_enforcer import NetpolEnforcer
from agent.network.nft_apply import NftError, Syncer, run_script
from agent.network.nft_rules import NodeView, delete_script, render
from agent.network.nft_services import service_ports
from agent.network.routes import NODE_IP_ANNOTATION
from agent.network.sync_runner import DEBOUNCE, RESYNC, SyncRunner, run_when_synced
from control.client import Informer
from control.objects import kinds, meta

log = logging.getLogger("steer.nftproxy")

TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
#: Seconds between whole-table replacements by the periodic resync (kube-proxy: 1 h).
FULL_REPLACE_PERIOD = 3600.0


# -- pure helpers ----------------------------------------------------------------------
def node_ips_of(node):
    """The node's addresses for NodePorts: its node-ip annotation, else its InternalIPs."""
    if not node:
        return ()
    annotation = ((node.get("metadata") or {}).get("annotations") or {}).get(
        NODE_IP_ANNOTATION)
    if annotation:
        return (annotation,)
    return tuple(a["address"] for a in (node.get("status") or {}).get("addresses") or ()
                 if a.get("type") == "InternalIP" and a.get("address")
                 and ":" not in a["address"])


def parse_time(text):
    """Epoch seconds of an RFC 3339 timestamp, or None when absent or unreadable."""
    parsed = meta.parse_time(text)
    return parsed.timestamp() if parsed else None


def _trigger_annotation(obj):
    meta = (obj or {}).get("metadata") or {}
    return (meta.get("annotations") or {}).get(TRIGGER_TIME_ANNOTATION)


def slice_trigger(old, new, event_time):
    """When the change behind a slice event happened: its new trigger annotation, else now."""
    text = _trigger_annotation(new)
    if text and text != _trigger_annotation(old):
        return parse_time(text) or event_time
    return event_time


class Histogram:
    """A Prometheus histogram of seconds (cumulative buckets, sum and count)."""

    def __init__(self, buckets=LATENCY_BUCKETS):
        self.buckets, self.counts = tuple(buckets), [0] * len(buckets)
        self.sum, self.count = 0.0, 0

    def observe(self, value):
        self.sum += value
        self.count += 1
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1

    def lines(self, name):
        out = [f"# TYPE {name} histogram"]
        out += [f'{name}_bucket{{le="{b}"}} {c}' for b, c in zip(self.buckets, self.counts)]
        return out + [f'{name}_bucket{{le="+Inf"}} {self.count}', f"{name}_sum {self.sum:.6f}",
                      f"{name}_count {self.count}"]


# -- the proxy ---------------------------------------------------------------------------
class NftProxy:
    """Keep this node's nftables Service table in line with the API."""

    def __init__(self, rest, node_name, netns_path=None, cluster_cidr="", service_cidr="",
                 node_ips=(), service_route=None, syncer=None, informers=None,
                 debounce=DEBOUNCE, resync=RESYNC, clock=time.monotonic, wall=time.time,
                 netpol=None, conntrack_flush=conntrack.flush):
        self.node_name, self.netns_path = node_name, netns_path
        self.conntrack_flush = conntrack_flush
        self._udp = {}          # the UDP Service ports in place: (address, port) -> endpoint IPs
        self.netpol = netpol        # a NetpolEnforcer (agent/network/netpol_enforcer.py)
        self.cluster_cidr, self.service_cidr = cluster_cidr, service_cidr
        self.fixed_node_ips = tuple(node_ips)
        # On a shared machine only a namespace of our own may get the route.
        self.service_route = bool(netns_path) if service_route is None else service_route
        self.syncer = syncer or Syncer(netns_path, log=log)
        if informers is None:
            informers = (Informer(rest, kinds.SERVICES), Informer(rest, kinds.ENDPOINTSLICES),
                         Informer(rest, kinds.NODES, field_selector=f"metadata.name={node_name}"))
        self.services, self.slices, self.nodes = informers
        self.wall, self.clock = wall, clock
        self._replace_at = 0.0
        self.runner = SyncRunner(self.sync, clock=clock, wall=wall, debounce=debounce,
                                 resync=resync, on_done=self._applied)
        self.latency = Histogram()
        self.last_latency = None
        self._node_ips = ()
        self._prepared = None
        self._stop = threading.Event()
        self._thread = None

    # -- informer handlers (the informers' threads) ----------------------------------
    def _on_service(self, *_):
        self.runner.request()

    def _slice_event(self, old, new):
        # Triggers before the first sync are the initial list, not changes to time.
        trigger = slice_trigger(old, new, self.wall()) if self.runner.syncs else None
        self.runner.request(trigger)

    def _on_node(self, *_):
        if self.node_ips() != self._node_ips:
            self.runner.request()

    def node_ips(self):
        if self.fixed_node_ips:
            return self.fixed_node_ips
        return node_ips_of(self.nodes.store.get(self.node_name))

    # -- one sync (the runner's thread) -----------------------------------------------
    def sync(self, full):
        """Build the table from the caches and put it in place.

        ``full`` (the periodic resync) replaces the whole table only when it is gone
        from the kernel or once every FULL_REPLACE_PERIOD (as kube-proxy's nftables
        mode): otherwise it is an incremental change like any other.
        """
        if full and (not self.syncer.in_place() or self.clock() >= self._replace_at):
            self.syncer.forget()
            self._replace_at = self.clock() + FULL_REPLACE_PERIOD
        node_ips = self.node_ips()
        if self.service_route and self.service_cidr:
            wanted = (self.service_cidr, node_ips[:1])
            if full or wanted != self._prepared:
                service_routes.prepare(self.netns_path, self.service_cidr,
                                       node_ips[0] if node_ips else None)
                self._prepared = wanted
        view = NodeView(self.node_name, node_ips, self.cluster_cidr, self.service_cidr)
        ports = service_ports(self.services.store.list(), self.slices.store.list(),
                              self.node_name)
        ruleset = render(ports, view)
        if self.syncer.sync(ruleset):
            log.info("node=%s node_ips=%s chains=%d full=%s msg=service rules applied",
                     self.node_name, ",".join(node_ips) or "-", len(ruleset.chains), full)
        self._node_ips = node_ips
        self._forget_stale_udp(conntrack.udp_view(ports, node_ips))

    def _forget_stale_udp(self, udp):
        """Delete conntrack entries the new rules would never have made (after they apply)."""
        stale = conntrack.stale_entries(self._udp, udp)
        self._udp = udp
        if stale:
            self.conntrack_flush(stale, self.netns_path)
            log.info("node=%s deletions=%d msg=stale UDP conntrack entries deleted",
                     self.node_name, len(stale))

    def _applied(self, triggers, now):
        for trigger in triggers:
            self.latency.observe(max(0.0, now - trigger))
        if triggers:
            self.last_latency = max(0.0, now - min(triggers))

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, sync_timeout=None):
        """Start the informers; once they hold a full list, the sync thread."""
        handlers = {self.services: self._on_service, self.nodes: self._on_node}
        for informer, handler in handlers.items():
            informer.add_handler(handler, handler, handler)
        self.slices.add_handler(lambda new: self._slice_event(None, new),
                                self._slice_event, lambda old: self._slice_event(old, None))
        for informer in (self.services, self.slices, self.nodes):
            informer.start()
        self._thread = threading.Thread(target=self._run, name="nft-sync", daemon=True)
        self._thread.start()
        if self.netpol is not None:
            self.netpol.start()
        return self

    def _run(self):
        run_when_synced((self.services, self.slices, self.nodes), self.runner, self._stop)

    def stop(self, remove_table=False):
        """Stop syncing; the table stays unless ``remove_table`` (see the module docstring)."""
        self._stop.set()
        self.runner.wake()
        if self.netpol is not None:
            self.netpol.stop(remove_table)
        if self._thread is not None:
            self._thread.join(30)
        for informer in (self.services, self.slices, self.nodes):
            informer.stop(timeout=2)
        if remove_table:
            try:
                run_script(delete_script(), self.netns_path)
                log.info("node=%s msg=service table removed", self.node_name)
            except NftError as exc:
                log.warning("node=%s msg=could not remove the service table error=%s",
                            self.node_name, exc)

    def healthy(self):
        """(ok, why): ok once a sync succeeded and the last one did not fail."""
        if self.runner.last_error:
            return False, f"the last sync failed: {self.runner.last_error}"
        if not self.runner.syncs:
            return False, "no sync yet (waiting for the informers)"
        if self.netpol is not None:
            return self.netpol.healthy()
        return True, "ok"

    def metrics_text(self):
        r, s = self.runner, self.syncer
        lines = ["# TYPE steer_proxy_syncs_total counter", f"steer_proxy_syncs_total {r.syncs}",
                 "# TYPE steer_proxy_sync_errors_total counter",
                 f"steer_proxy_sync_errors_total {r.errors}",
                 "# TYPE steer_proxy_nft_applies_total counter",
                 f"steer_proxy_nft_applies_total {s.applied_count}",
                 "# TYPE steer_proxy_nft_incremental_applies_total counter",
                 f"steer_proxy_nft_incremental_applies_total {s.incremental_count}"]
        if r.last_duration is not None:
            lines += ["# TYPE steer_proxy_last_sync_duration_seconds gauge",
                      f"steer_proxy_last_sync_duration_seconds {r.last_duration:.6f}"]
        if self.last_latency is not None:
            lines += ["# TYPE steer_proxy_last_endpoint_change_latency_seconds gauge",
                      "steer_proxy_last_endpoint_change_latency_seconds "
                      f"{self.last_latency:.6f}"]
        lines += self.latency.lines("steer_proxy_endpoint_change_latency_seconds")
        if self.netpol is not None:
            lines += self.netpol.metrics_lines()
        return "\n".join(lines) + "\n"


# -- /metrics and /healthz -----------------------------------------------------------------
def serve_metrics(proxy, host, port):
    """Serve /healthz and /metrics on a daemon thread; return the server (``shutdown()``)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            if self.path.startswith("/healthz"):
                ok, why = proxy.healthy()
                status, body = (200 if ok else 503), why + "\n"
            elif self.path.startswith("/metrics"):
                status, body = 200, proxy.metrics_text()
            else:
                status, body = 404, "not found\n"
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


# -- the command (dispatched from agent/proxy.py) -------------------------------------------
def add_flags(parser):
    """The flags of the nftables mode (agent/proxy.py adds them to its parser)."""
    parser.add_argument("--node-name", help="this node's name (nftables mode; required)")
    parser.add_argument("--netns", default=None, metavar="PATH",
                        help="the node's network namespace, e.g. /run/netns/n1 "
                             "(nftables mode; default: this process's own)")
    parser.add_argument("--cluster-cidr", default="",
                        help="the pod range; ClusterIP traffic from outside it is masqueraded")
    parser.add_argument("--service-cluster-ip-range", default="",
                        help="the service range; anything in it no rule takes is refused")
    parser.add_argument("--service-route", action=argparse.BooleanOptionalAction,
                        default=None, help="route the service range on lo in the node "
                                           "namespace (default: on with --netns)")
    parser.add_argument("--network-policy", action=argparse.BooleanOptionalAction,
                        default=True, help="enforce NetworkPolicy for this node's pods "
                                           "(table inet steer-netpol; nftables mode)")
    parser.add_argument("--cleanup", action="store_true",
                        help="remove the Service and NetworkPolicy tables from the namespace "
                             "and exit (the tables outlive a stopped proxy, as kube-proxy's)")
    parser.add_argument("--sync-debounce", type=float, default=DEBOUNCE,
                        help="seconds to gather changes into one sync")
    parser.add_argument("--resync-period", type=float, default=RESYNC,
                        help="seconds between full syncs (a table changed by hand comes back)")


def cleanup(netns_path=None):
    """Remove the proxy's and the policy enforcer's tables; return how many failed."""
    failures = 0
    for script in (delete_script(), netpol_enforcer.delete_script()):
        try:
            run_script(script, netns_path)
        except NftError as exc:
            failures += 1
            log.warning("netns=%s msg=could not remove a table error=%s", netns_path or "-", exc)
    return failures


def run(args, rest):
    """Run the nftables proxy until SIGTERM or SIGINT."""
    if not args.node_name:
        raise SystemExit("error: --mode nftables needs --node-name (this node's Node name)")
    node_ips = tuple(ip.strip() for ip in (args.node_ips or "").split(",") if ip.strip())
    netpol = None
    if args.network_policy:
        netpol = NetpolEnforcer(rest, args.node_name, args.netns,
                                debounce=args.sync_debounce, resync=args.resync_period)
    proxy = NftProxy(rest, args.node_name, args.netns, args.cluster_cidr,
                     args.service_cluster_ip_range, node_ips, args.service_route,
                     debounce=args.sync_debounce, resync=args.resync_period, netpol=netpol)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    metrics = None
    if args.metrics_addr:
        host, _, port = args.metrics_addr.rpartition(":")
        metrics = serve_metrics(proxy, host or "127.0.0.1", int(port))
    log.info("node=%s netns=%s api_server=%s://%s:%d msg=steer-proxy (nftables) starting",
             args.node_name, args.netns or "-", rest.scheme, rest.host, rest.port)
    proxy.start()
    while not stop.wait(1.0):
        pass
    proxy.stop()
    if metrics is not None:
        metrics.shutdown()
    log.info("node=%s msg=steer-proxy stopped", args.node_name)
