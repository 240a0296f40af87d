"""Benchmark the cluster network: Service sync latency, cluster DNS, DNAT connect cost.

Run (root: namespaces and nftables): ``.venv/bin/python -m bench.network``
(``--services 1000 --endpoints 10 --changes 100`` by default; ``--help``). It starts a
real 3-node store and `steer-apiserver`, then in network namespaces of its own:

    node ns: lo 127.0.0.1 + 10.250.0.1 (node IP); veth 10.244.9.1/24
             `steer-proxy --mode nftables --netns <node>` (the process in the root ns)
             `control.dns.server` on 10.244.9.1:53 (reaches the API through a port
             forward: node 127.0.0.1:<api port> -> root 127.0.0.1:<api port>)
       └─ pod ns: eth0 10.244.9.2-11 (+ one address per change), two servers:
             :8080 answers "at <the address it was reached on>"; :9090 accepts, closes

1. Service sync: N selectorless Services, each with one EndpointSlice of M endpoints
   (written through the API, as a controller would). Then K changes, one per Service
   spread over the N, each replacing one endpoint by a fresh pod address. Measured
   from the API write returning to the first connection through the ClusterIP
   (from the node ns) that the fresh address answers; also the proxy's own figure
   (its last-endpoint-change gauge: the slice's trigger-time annotation to the rules
   applied) read after each change.
2. DNS: a UDP client in the pod ns asks the server for a ClusterIP name (random
   over the N Services) and a headless name (M pod IPs), at concurrency 1 and 16.
3. TCP connect rate from the node ns to the :9090 server: straight to the pod IP and
   through a ClusterIP (one endpoint), from a source the kernel picks (outside the
   cluster CIDR: masqueraded, as kube-proxy does) and from an address inside
   the cluster CIDR (DNAT only), in alternating rounds, same client process.

4. With ``--dns-in-pod`` (or ``--only-dns-in-pod``): DNS from inside a pod of a real
   2-node containers cluster, through kube-dns and straight at a DNS pod
   (bench/network_pod_dns.py; `steer up`, about 2 minutes more).

Figures are printed beside the issue's goals; nothing is asserted. Every process is
stopped by pid and every namespace deleted in ``finally``.
"""

import argparse
import concurrent.futures
import datetime
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agent import netns  # noqa: E402
from bench import network_pod_dns  # noqa: E402
from cli.local_store import free_ports  # noqa: E402
from control.objects import kinds  # noqa: E402
from tests.support import children  # noqa: E402
from tests.support.apiproc import ROOT, LocalApiServer  # noqa: E402

SERVICE_CIDR = "10.96.0.0/16"
NODE_IP, NODE_VETH = "10.250.0.1", "10.244.9.1"
POD_BASE = "10.244.9."
FIRST_POD = 2                   # 10.244.9.2 .. : the pods' addresses
ECHO_PORT, SINK_PORT = 8080, 9090
TRIGGER = "endpoints.kubernetes.io/last-change-trigger-time"
SYNC_GOAL_S, CONNECT_GOAL_RATIO = 1.0, 1.1

ECHO_SERVER = r"""
import socket, threading
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", PORT)); tcp.listen(4096)
print("ready", flush=True)
def serve(conn):
    with conn:
        conn.sendall(("at %s\n" % conn.getsockname()[0]).encode())
while True:
    conn, _ = tcp.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
""".replace("PORT", str(ECHO_PORT))

SINK_SERVER = r"""
import socket
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", PORT)); tcp.listen(4096)
print("ready", flush=True)
while True:
    conn, _ = tcp.accept()
    conn.close()
""".replace("PORT", str(SINK_PORT))

# Connect and close with RST (linger 0): no TIME_WAIT, so ports never run out.
CONNECT_CLIENT = r"""
import json, socket, struct, sys, time
targets = json.loads(sys.argv[1]); seconds, rounds = float(sys.argv[2]), int(sys.argv[3])
linger = struct.pack("ii", 1, 0)
totals = {name: [] for name in targets}
for _ in range(rounds):
    for name, (host, port, source) in targets.items():
        count, started = 0, time.perf_counter()
        end = started + seconds
        while time.perf_counter() < end:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            if source:
                s.bind((source, 0))
            s.connect((host, port))
            s.close()
            count += 1
        totals[name].append([count, time.perf_counter() - started])
print(json.dumps(totals))
"""

DNS_CLIENT = r"""
import json, random, socket, sys, threading, time
import dns.message, dns.rcode, dns.rdatatype
server, port = sys.argv[1], int(sys.argv[2])
names, concurrency, seconds = json.loads(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
expect = sys.argv[6]

def ask(sock, name):
    query = dns.message.make_query(name, dns.rdatatype.A)
    sock.send(query.to_wire())
    while True:
        reply = dns.message.from_wire(sock.recv(65535))
        if reply.id == query.id:
            return reply

def warm():
    deadline = time.monotonic() + 60
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sock.settimeout(1)
    sock.connect((server, port))
    while time.monotonic() < deadline:
        try:
            reply = ask(sock, expect)
            if reply.rcode() == dns.rcode.NOERROR and reply.answer:
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False

if not warm():
    print(json.dumps({"error": "no answer for %s within 60 s" % expect})); sys.exit(0)
latencies, errors, lock = [], [0], threading.Lock()
start = threading.Barrier(concurrency + 1)

def worker():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sock.settimeout(2)
    sock.connect((server, port))
    mine, bad = [], 0
    rng = random.Random()
    start.wait()
    end = time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        if t0 >= end:
            break
        try:
            reply = ask(sock, rng.choice(names))
            if reply.rcode() != dns.rcode.NOERROR or not reply.answer:
                bad += 1
            mine.append(time.perf_counter() - t0)
        except OSError:
            bad += 1
    with lock:
        latencies.extend(mine); errors[0] += bad

threads = [threading.Thread(target=worker) for _ in range(concurrency)]
for t in threads: t.start()
start.wait(); t0 = time.perf_counter()
for t in threads: t.join()
elapsed = time.perf_counter() - t0
print(json.dumps({"count": len(latencies), "errors": errors[0], "elapsed": elapsed,
                  "latencies": latencies}))
"""


# -- small helpers ------------------------------------------------------------------------
def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else float("nan")


def now_text():
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True)


def pod_address(index):
    return f"{POD_BASE}{FIRST_POD + index}"


def wait_for(predicate, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def in_netns(name, argv, **kwargs):
    """Popen ``argv`` inside namespace ``name`` (``ip netns exec`` execs: the pid is argv's)."""
    return subprocess.Popen(["ip", "netns", "exec", name, *argv], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": ROOT}, stdin=subprocess.DEVNULL,
                            **kwargs)


def run_in_netns(name, argv, timeout):
    result = subprocess.run(["ip", "netns", "exec", name, *argv], cwd=ROOT, capture_output=True,
                            text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": ROOT})
    if result.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed in {name}:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout)


class PortForward:
    """Forward ``port`` on 127.0.0.1 inside a namespace to 127.0.0.1:``port`` of the root ns.

    The DNS server runs in the node namespace but must reach the API server, which
    listens on the root namespace's loopback: this is the one door between them.
    """

    def __init__(self, netns_path, port):
        self.port = port
        self.sock = netns.listen(netns_path, ("127.0.0.1", port), backlog=64)
        self.conns = []
        threading.Thread(target=self._accept, daemon=True, name="port-forward").start()

    def _accept(self):
        while True:
            try:
                inner, _ = self.sock.accept()
            except OSError:
                return
            try:
                outer = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            except OSError:
                inner.close()
                continue
            outer.settimeout(None)
            self.conns += [inner, outer]
            for a, b in ((inner, outer), (outer, inner)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.sock.close()
        for s in self.conns:
            s.close()


# -- the test bed -------------------------------------------------------------------------
class Bed:
    """The namespaces, servers, proxy and DNS server; ``close()`` removes all of it."""

    def __init__(self, base_dir, endpoints, changes):
        suffix = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.node, self.pod = f"steer-bn-node-{suffix}", f"steer-bn-pod-{suffix}"
        self.base_dir = base_dir
        self.endpoints, self.changes = endpoints, changes
        self.procs, self.forward = [], None
        self.api = self.proxy = self.dns = None
        self.node_path = None
        self.metrics_port = None

    def start_network(self):
        self.node_path = netns.add(self.node)
        netns.add(self.pod)
        veth = f"vb{uuid.uuid4().hex[:8]}"
        ip("-n", self.node, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
           "netns", self.pod)
        ip("-n", self.node, "addr", "add", f"{NODE_VETH}/24", "dev", veth)
        ip("-n", self.node, "link", "set", veth, "up")
        ip("-n", self.node, "addr", "add", f"{NODE_IP}/32", "dev", "lo")
        for i in range(self.endpoints + self.changes):
            ip("-n", self.pod, "addr", "add", f"{pod_address(i)}/24", "dev", "eth0")
        ip("-n", self.pod, "link", "set", "eth0", "up")
        ip("-n", self.pod, "route", "add", "default", "via", NODE_VETH)
        for script in (ECHO_SERVER, SINK_SERVER):
            proc = in_netns(self.pod, [sys.executable, "-c", script], stdout=subprocess.PIPE)
            self.procs.append(proc)
            if proc.stdout.readline().strip() != b"ready":
                raise RuntimeError("a pod server did not start")

    def start_api(self):
        self.api = LocalApiServer(os.path.join(self.base_dir, "api"),
                                  extra_args=["--service-cluster-ip-range", SERVICE_CIDR])
        self.api.start()

    def start_proxy(self):
        rest = self.api.rest_client(timeout=30)
        rest.create(kinds.NODES, None, {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": self.node,
                         "annotations": {"network.steersman.io/node-ip": NODE_IP}}})
        rest.close()
        self.metrics_port = free_ports(1)[0]
        log = open(os.path.join(self.base_dir, "proxy.log"), "ab")
        self.proxy = subprocess.Popen(
            [sys.executable, "-m", "agent.proxy", "--mode", "nftables",
             "--kubeconfig", self.api.kubeconfig_for("proxy", "system:kube-proxy"),
             "--node-name", self.node, "--netns", self.node_path,
             "--cluster-cidr", "10.244.0.0/16", "--service-cluster-ip-range", SERVICE_CIDR,
             "--metrics-addr", f"127.0.0.1:{self.metrics_port}", "--log-level", "INFO"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": ROOT})
        log.close()
        wait_for(lambda: self.proxy_get("/healthz")[0] == 200 or self._died(self.proxy),
                 120, "the proxy's first sync")

    def start_dns(self):
        self.forward = PortForward(self.node_path, self.api.port)
        log = open(os.path.join(self.base_dir, "dns.log"), "ab")
        self.dns = in_netns(self.node, [
            sys.executable, "-m", "control.dns.server", "--kubeconfig", self.api.kubeconfig,
            "--listen", f"{NODE_VETH}:53", "--cluster-domain", "cluster.local",
            "--upstream-resolv-conf", "", "--ttl", "30", "--log-level", "INFO"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def _died(self, proc):
        if proc.poll() is not None:
            raise RuntimeError(f"pid {proc.pid} exited ({proc.returncode}); see {self.base_dir}")
        return False

    def proxy_get(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}",
                                        timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""
        except OSError:
            return None, ""

    def proxy_metric(self, name):
        for line in self.proxy_get("/metrics")[1].splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def close(self):
        for proc in (self.dns, self.proxy, *self.procs):
            try:
                children.stop(proc)
            except OSError:
                pass
        if self.forward is not None:
            self.forward.close()
        if self.api is not None:
            self.api.stop()
        netns.delete(self.pod)
        netns.delete(self.node)


# -- 1. Service sync ----------------------------------------------------------------------
def service_body(name, headless=False, target=ECHO_PORT):
    spec = {"ports": [{"name": "http", "port": 80, "targetPort": target}]}
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def slice_body(service, addresses, port=ECHO_PORT):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-1", "labels": {"kubernetes.io/service-name": service},
                         "annotations": {TRIGGER: now_text()}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}, "nodeName": "elsewhere"}
                          for a in addresses],
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}


def create_objects(api, services, endpoints):
    """Create the Services and slices, 16 writers at once; return {name: clusterIP}."""
    addresses = [pod_address(i) for i in range(endpoints)]
    local = threading.local()

    def create(i):
        if not hasattr(local, "rest"):
            local.rest = api.rest_client(timeout=60)
        name = f"s{i}"
        created = local.rest.create(kinds.SERVICES, "default", service_body(name))
        local.rest.create(kinds.ENDPOINTSLICES, "default", slice_body(name, addresses))
        return name, created["spec"]["clusterIP"]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        return dict(pool.map(create, range(services)))


def answer(netns_path, address):
    try:
        sock = netns.connect(netns_path, address, timeout=2)
    except OSError:
        return ""
    with sock:
        sock.settimeout(2)
        try:
            return sock.makefile("rb").readline().decode().strip()
        except OSError:
            return ""


def reachable(netns_path, address):
    try:
        netns.connect(netns_path, address, timeout=2).close()
        return True
    except OSError:
        return False


def measure_changes(bed, cluster_ips, endpoints, changes):
    """Replace one endpoint of K Services in turn; return seconds: (observed, reported, sync).

    ``reported`` is the proxy's trigger-time gauge, ``sync`` its last sync's duration
    (build the rules, diff, apply with nft) read after each change.
    """
    rest = bed.api.rest_client(timeout=30)
    names = sorted(cluster_ips, key=lambda n: int(n[1:]))
    observed, reported, durations = [], [], []
    full_before = full_applies(bed)
    try:
        for k in range(changes):
            name = names[k * len(names) // changes]
            fresh = pod_address(endpoints + k)
            slice_ = rest.get(kinds.ENDPOINTSLICES, "default", f"{name}-1")
            slice_["endpoints"][k % endpoints]["addresses"] = [fresh]
            slice_["metadata"].setdefault("annotations", {})[TRIGGER] = now_text()
            syncs = bed.proxy_metric("steer_proxy_syncs_total")
            rest.update(kinds.ENDPOINTSLICES, "default", slice_)
            written = time.monotonic()
            # The fresh address answers only once the rules send traffic to it; random
            # balancing over M endpoints means ~M probes once it is in place.
            address, expected = (cluster_ips[name], 80), f"at {fresh}"
            wait_for(lambda a=address, e=expected: answer(bed.node_path, a) == e,
                     30, f"change {k} ({name} -> {fresh}) in place", interval=0.001)
            observed.append(time.monotonic() - written)
            wait_for(lambda n=syncs: (bed.proxy_metric("steer_proxy_syncs_total") or 0) > n, 30,
                     "the proxy to count the sync")
            reported.append(bed.proxy_metric("steer_proxy_last_endpoint_change_latency_seconds"))
            durations.append(bed.proxy_metric("steer_proxy_last_sync_duration_seconds"))
    finally:
        rest.close()
    full = full_applies(bed) - full_before
    return (observed, *([v for v in values if v is not None] for values in (reported, durations)),
            full)


def full_applies(bed):
    """Whole-table applies so far (the first sync and the periodic resyncs)."""
    return ((bed.proxy_metric("steer_proxy_nft_applies_total") or 0)
            - (bed.proxy_metric("steer_proxy_nft_incremental_applies_total") or 0))


# -- 2. DNS -------------------------------------------------------------------------------
def measure_dns(bed, services, seconds):
    """Queries/s and latencies at concurrency 1 and 16 for ClusterIP and headless names."""
    cluster_names = [f"s{i}.default.svc.cluster.local" for i in range(services)]
    headless = ["hl.default.svc.cluster.local"]
    results = {}
    for label, names in (("ClusterIP name", cluster_names), ("headless name", headless)):
        for concurrency in (1, 16):
            out = run_in_netns(bed.pod, [sys.executable, "-c", DNS_CLIENT, NODE_VETH, "53",
                                         json.dumps(names), str(concurrency), str(seconds),
                                         names[-1]], timeout=seconds + 120)
            if "error" in out:
                raise RuntimeError(f"DNS client: {out['error']}; see {bed.base_dir}/dns.log")
            results[(label, concurrency)] = out
    return results


# -- 3. TCP connect rate ------------------------------------------------------------------
def measure_connects(bed, cluster_ip, seconds, rounds):
    # A source the kernel picks is outside the cluster CIDR, so those ClusterIP connections
    # are masqueraded (as kube-proxy does); from the veth's address (inside it) they are not.
    targets = {"direct": [pod_address(0), SINK_PORT, ""], "clusterip": [cluster_ip, 80, ""],
               "clusterip_no_masq": [cluster_ip, 80, NODE_VETH]}
    return run_in_netns(bed.node, [sys.executable, "-c", CONNECT_CLIENT, json.dumps(targets),
                                   str(seconds), str(rounds)],
                        timeout=seconds * rounds * 2 + 60)


# -- the run ------------------------------------------------------------------------------
def ms(seconds):
    return f"{seconds * 1000:.0f} ms"


def report(args, setup_s, sync, dns, connects):
    observed, reported, durations, full = sync
    print(f"\n== bench.network: {args.services} Services x {args.endpoints} endpoints, "
          f"{args.changes} endpoint changes ==")
    print(f"setup: {args.services} Services + {args.services} EndpointSlices created "
          f"through the API in {setup_s:.1f} s\n")
    rows = [("what", "p50", "p99", "max", "goal")]
    rows.append(("sync: API write -> ClusterIP reaches new endpoint (client probe)",
                 ms(percentile(observed, 0.5)), ms(percentile(observed, 0.99)),
                 ms(max(observed)), f"<= {SYNC_GOAL_S:.0f} s"))
    if reported:
        rows.append(("sync: trigger-time -> rules applied (proxy's own gauge)",
                     ms(percentile(reported, 0.5)), ms(percentile(reported, 0.99)),
                     ms(max(reported)), f"<= {SYNC_GOAL_S:.0f} s"))
    if durations:
        rows.append(("sync: the proxy's sync itself (build, diff, nft apply)",
                     ms(percentile(durations, 0.5)), ms(percentile(durations, 0.99)),
                     ms(max(durations)), "-"))
    slow = sum(1 for t in observed if t > SYNC_GOAL_S)
    for (label, concurrency), out in dns.items():
        lat = out["latencies"]
        qps = out["count"] / out["elapsed"] if out["elapsed"] else float("nan")
        rows.append((f"dns {label}, concurrency {concurrency}: {qps:,.0f} q/s, "
                     f"{out['errors']} errors", f"{percentile(lat, 0.5) * 1e3:.2f} ms",
                     f"{percentile(lat, 0.99) * 1e3:.2f} ms", f"{max(lat) * 1e3:.1f} ms", "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    print(f"\ntcp connect+close (RST), node ns -> pod ns, {args.rounds} alternating rounds "
          f"of {args.connect_seconds:g} s each:")
    direct_n, direct_s = (sum(col) for col in zip(*connects["direct"]))
    direct_us = direct_s / direct_n * 1e6
    print(f"  straight to the pod IP: {direct_n / direct_s:,.0f} connects/s "
          f"({direct_us:.1f} us each)")
    for name, label in (("clusterip", "through the ClusterIP (source left to the kernel, outside the pod "
                                      "CIDR: masqueraded)"),
                        ("clusterip_no_masq", "through the ClusterIP (from inside the pod "
                                              "CIDR: DNAT only)")):
        cluster_n, cluster_s = (sum(col) for col in zip(*connects[name]))
        cluster_us = cluster_s / cluster_n * 1e6
        # Per round too: the targets of one round ran back to back, under the same load.
        ratios = sorted((cs / cn) / (ds / dn) for (dn, ds), (cn, cs)
                        in zip(connects["direct"], connects[name]))
        print(f"  {label}: {cluster_n / cluster_s:,.0f} connects/s ({cluster_us:.1f} us each)"
              f"; cost ratio to direct {cluster_us / direct_us:.2f}x (goal <= "
              f"{CONNECT_GOAL_RATIO}x); per round: median {statistics.median(ratios):.2f}x, "
              + ", ".join(f"{r:.2f}" for r in ratios))
    print(f"\nsync: {slow} of {len(observed)} changes took over {SYNC_GOAL_S:g} s; the proxy "
          f"applied the whole table {full:.0f} time(s) while they ran (its periodic resync: "
          "a change arriving then waits for it). p99 of 100 samples or fewer is the max.")
    print("sync probe: each probe is one connection through the ClusterIP from the node ns "
          f"(random balancing over {args.endpoints} endpoints: ~{args.endpoints} probes "
          "after the rules change before one lands on the new address).")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--changes", type=int, default=100, help="endpoint changes to time")
    parser.add_argument("--dns-seconds", type=float, default=3.0, help="per DNS run")
    parser.add_argument("--connect-seconds", type=float, default=1.0, help="per round")
    parser.add_argument("--rounds", type=int, default=4, help="alternating connect rounds")
    parser.add_argument("--dns-in-pod", action="store_true",
                        help="then DNS from inside a pod of a 2-node containers cluster "
                             "(`steer up`; about 2 minutes more)")
    parser.add_argument("--only-dns-in-pod", action="store_true",
                        help="only the DNS-from-a-pod figures (no namespaces bench)")
    parser.add_argument("--pod-dns-seconds", type=float, default=5.0, help="per pod DNS run")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench.network needs root (network namespaces and nftables): run it with sudo")
    print(f"load average at the start: {os.getloadavg()[0]:.1f}", flush=True)
    if not args.only_dns_in_pod:
        run_bed(args)
    if args.dns_in_pod or args.only_dns_in_pod:
        results = network_pod_dns.measure(DNS_CLIENT, seconds=args.pod_dns_seconds)
        network_pod_dns.report(results, args.pod_dns_seconds)


def run_bed(args):
    """The namespaces bench: Service sync, DNS against the server, TCP connects."""
    if not 1 <= args.endpoints + args.changes <= 250:
        sys.exit("--endpoints + --changes must stay within 250 (one /24 of pod addresses)")
    base_dir = tempfile.mkdtemp(prefix="steer-bench-network-")
    bed = Bed(base_dir, args.endpoints, args.changes)
    try:
        print(f"logs in {base_dir}", flush=True)
        bed.start_network()
        bed.start_api()
        bed.start_proxy()
        started = time.monotonic()
        cluster_ips = create_objects(bed.api, args.services, args.endpoints)
        setup_s = time.monotonic() - started
        rest = bed.api.rest_client(timeout=30)
        rest.create(kinds.SERVICES, "default", service_body("hl", headless=True))
        rest.create(kinds.ENDPOINTSLICES, "default",
                    slice_body("hl", [pod_address(i) for i in range(args.endpoints)]))
        rate_ip = rest.create(kinds.SERVICES, "default",
                              service_body("rate", target=SINK_PORT))["spec"]["clusterIP"]
        rest.create(kinds.ENDPOINTSLICES, "default",
                    slice_body("rate", [pod_address(0)], port=SINK_PORT))
        rest.close()
        last = f"s{args.services - 1}"
        print(f"created in {setup_s:.1f} s; waiting for the rules of {last} and rate",
              flush=True)
        wait_for(lambda: answer(bed.node_path, (cluster_ips[last], 80)).startswith("at "), 300,
                 "the last Service's rules")
        wait_for(lambda: reachable(bed.node_path, (rate_ip, 80)), 60, "the rate Service's rules")
        print("timing endpoint changes", flush=True)
        sync = measure_changes(bed, cluster_ips, args.endpoints, args.changes)
        print("timing DNS", flush=True)
        bed.start_dns()
        dns = measure_dns(bed, args.services, args.dns_seconds)
        print("timing TCP connects", flush=True)
        connects = measure_connects(bed, rate_ip, args.connect_seconds, args.rounds)
        report(args, setup_s, sync, dns, connects)
    finally:
        bed.close()


if __name__ == "__main__":
    random.seed()
    main()
