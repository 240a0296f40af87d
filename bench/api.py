"""Benchmark the API server on a local 3-node store: request rates, latency, watch fan-out.

Run: ``.venv/bin/python -m bench.api`` (``--help`` for options). It starts a real
store cluster and a real `steer-apiserver`, drives creates, gets and lists at 1,
16 and 64 concurrent clients (in worker processes, each client with its own
keep-alive connection), then opens 1,000 watches and measures how long each write
takes to reach every watcher. It prints each figure beside Kubernetes' API call
latency SLOs (mutating and read-only single-object calls: p99 <= 1 s) and passes
or fails nothing. By default it runs two servers side by side, secured (TLS, a
client certificate, Node,RBAC, as an ordinary user bound to `edit`) and plain
(HTTP, AlwaysAllow), each on its own store and otherwise with the same flags, runs
each level on one right after the other, and prints what security costs as the
ratio of the two.

Each client connects (TCP, and over TLS the handshake with its client certificate)
before its timed requests, as Kubernetes' SLOs time API calls and not connection
set-up; the connect times are printed beside each level. The client processes run
on the same cores as the servers, so the TLS they pay is in the secured figures.
"""

import argparse
import http.client
import json
import multiprocessing
import os
import resource
import selectors
import socket
import ssl
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.support.apiproc import LocalApiServer  # noqa: E402

CMS = "/api/v1/namespaces/default/configmaps"


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else float("nan")


def _tls_context(tls):
    """A client context from (CA, certificate, key) files, or None for plain HTTP."""
    if not tls:
        return None
    context = ssl.create_default_context(cafile=tls[0])
    context.load_cert_chain(tls[1], tls[2])
    return context


def _connection(port, tls):
    if not tls:
        return http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    return http.client.HTTPSConnection("127.0.0.1", port, timeout=60, context=_tls_context(tls))


def server_cpu_seconds(pid):
    """CPU seconds (user + system) used so far by process ``pid`` and its children
    (the gunicorn master and its workers): unlike latency, not skewed by what else
    the machine runs."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{current}/task/{current}/children") as handle:
                pending += [int(child) for child in handle.read().split()]
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _client_loop(port, verb, client_id, duration, results, names, tls, connects):
    conn = _connection(port, tls)
    started = time.perf_counter()
    conn.connect()      # not an API call: set-up is timed apart (``connects``)
    connects.append(time.perf_counter() - started)
    latencies, errors, n = [], 0, 0
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        if verb == "create":
            body = json.dumps({"metadata": {"name": f"b-{client_id}-{n}-{os.getpid()}"},
                               "data": {"v": "x" * 100}})
            method, path = "POST", CMS
        elif verb == "get":
            body, method, path = None, "GET", f"{CMS}/{names[n % len(names)]}"
        else:
            body, method, path = None, "GET", f"{CMS}?limit=100"
        started = time.perf_counter()
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - started)
        errors += response.status >= 400
        n += 1
    results.extend([(lat, errors if i == 0 else 0) for i, lat in enumerate(latencies)])


def _process(port, verb, clients, first_id, duration, queue, names, tls):
    results, connects = [], []
    threads = [threading.Thread(target=_client_loop,
                                args=(port, verb, first_id + i, duration, results, names, tls,
                                      connects))
               for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.put((results, connects))


def run_level(port, verb, clients, duration, procs, names, tls=None):
    """Drive ``verb`` with ``clients`` concurrent clients; return (rate, p50, p99, errors,
    connect times)."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    per_proc = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    workers, first = [], 0
    for count in per_proc:
        if count:
            workers.append(ctx.Process(target=_process, args=(port, verb, count, first, duration,
                                                              queue, names, tls)))
            first += count
    for w in workers:
        w.start()
    results, connects = [], []
    for _ in workers:
        got, connected = queue.get()
        results += got
        connects += connected
    for w in workers:
        w.join()
    # Each client sends for ``duration`` once connected: starting the client processes
    # (seconds, on a loaded machine) is not the server's time.
    latencies = [lat for lat, _ in results]
    return (len(latencies) / duration, percentile(latencies, 0.5),
            percentile(latencies, 0.99), sum(e for _, e in results), connects)


def watch_fanout(server, watchers, writes, tls=None):
    """Open ``watchers`` watches, write ``writes`` times; return delivery latencies."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, watchers + 512), hard), hard))
    conn = _connection(server.port, tls)
    context = _tls_context(tls)
    conn.request("POST", CMS, body=json.dumps({"metadata": {"name": "fanout"}, "data": {"n": "0"}}),
                 headers={"Content-Type": "application/json"})
    conn.getresponse().read()
    selector = selectors.DefaultSelector()
    for _ in range(watchers):
        s = socket.create_connection(("127.0.0.1", server.port))
        if context is not None:
            s = context.wrap_socket(s, server_hostname="127.0.0.1")
        s.sendall(f"GET {CMS}?watch=true&fieldSelector=metadata.name%3Dfanout&timeoutSeconds=600 "
                  "HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        s.setblocking(False)
        selector.register(s, selectors.EVENT_READ, data={"buffer": b""})
    latencies = []
    # Round 1 is a warm-up: it proves every watch is registered before timing starts.
    for n in range(1, writes + 2):
        conn.request("GET", f"{CMS}/fanout")
        current = json.loads(conn.getresponse().read())
        current["data"] = {"n": str(n)}
        marker = f'"n":"{n}"'.encode()
        written = time.perf_counter()
        conn.request("PUT", f"{CMS}/fanout", body=json.dumps(current),
                     headers={"Content-Type": "application/json"})
        conn.getresponse().read()
        pending = watchers
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=1):
                try:
                    data = key.fileobj.recv(65536)
                    # TLS may hold decrypted bytes that select() cannot see.
                    while isinstance(key.fileobj, ssl.SSLSocket) and key.fileobj.pending():
                        data += key.fileobj.recv(65536)
                except ssl.SSLWantReadError:
                    continue
                key.data["buffer"] += data
                if marker in key.data["buffer"]:
                    if n > 1:
                        latencies.append(time.perf_counter() - written)
                    key.data["buffer"] = key.data["buffer"][key.data["buffer"].index(marker):][len(marker):]
                    pending -= 1
        time.sleep(0.2)
    for key in list(selector.get_map().values()):
        key.fileobj.close()
    return latencies, watchers * writes


BENCH_USER = ("bench-user", ("bench-users",))


def _as_bench_user(server):
    """TLS credentials of an ordinary user whom RBAC lets edit the default namespace.

    Not the admin: system:masters would be allowed by its first binding, and the
    figure would hide what evaluating RBAC costs an ordinary caller.
    """
    issued = server.issue_client("bench-user", *BENCH_USER)
    conn = _connection(server.port, (server.ca_file, server.cert_file, server.key_file))
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "bench-edit", "namespace": "default"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "edit"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                             "name": BENCH_USER[1][0]}]}
    conn.request("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
                 json.dumps(binding), {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    if response.status not in (201, 409):
        raise SystemExit(f"cannot bind the bench user: HTTP {response.status}")
    return server.ca_file, issued.cert, issued.key


def _start(args, base, secure):
    """Start one server: secured (TLS, Node,RBAC, the bench user) or plain (HTTP,
    AlwaysAllow), otherwise with the same flags. Returns (server, client TLS or None)."""
    extra = [] if secure else ["--authorization-mode", "AlwaysAllow"]
    server = LocalApiServer(os.path.join(base, "secure" if secure else "plain"),
                            workers=args.workers, tls=secure, extra_args=extra)
    server.start()
    if args.quota:
        _add_quota(server, secure)
    return server, (_as_bench_user(server) if secure else None)


def _add_quota(server, secure):
    """Give the default namespace a ResourceQuota on ConfigMaps that no level reaches.

    A server with quota admission then counts (and charges) every create against
    it; one without stores the object and ignores it, so the same run on an older
    commit gives the figure without quotas.
    """
    tls = (server.ca_file, server.cert_file, server.key_file) if secure else None
    conn = _connection(server.port, tls)
    quota = {"apiVersion": "v1", "kind": "ResourceQuota",
             "metadata": {"name": "bench", "namespace": "default"},
             "spec": {"hard": {"configmaps": "100000000"}}}
    conn.request("POST", "/api/v1/namespaces/default/resourcequotas", json.dumps(quota),
                 {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    if response.status not in (201, 409):
        raise SystemExit(f"cannot create the bench quota: HTTP {response.status}")
    # The status the quota controller would write (no controller runs here): without
    # it, admission refuses to charge an unknown usage instead of counting.
    quota["status"] = {"hard": quota["spec"]["hard"], "used": {"configmaps": "0"}}
    conn.request("PUT", "/api/v1/namespaces/default/resourcequotas/bench/status",
                 json.dumps(quota), {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    if response.status == 404:      # a server without the status subresource: no quotas
        return
    if response.status != 200:
        raise SystemExit(f"cannot write the bench quota's status: HTTP {response.status}")


def _object_names(server, tls):
    conn = _connection(server.port, tls)
    conn.request("GET", f"{CMS}?limit=500")
    return [i["metadata"]["name"] for i in json.loads(conn.getresponse().read())["items"]]


def run_suites(args, levels, modes):
    """Run every figure for each of ``modes`` ("secure", "plain"); return {mode: (rows,
    watch latencies, expected deliveries)}.

    Both servers run side by side and each level is run on one right after the
    other (which goes first alternates), so a change in the machine's load between
    two halves of a comparison weighs on both alike.
    """
    with tempfile.TemporaryDirectory(prefix="bench-api-") as base:
        targets = {}
        try:
            for mode in modes:
                targets[mode] = _start(args, base, mode == "secure")
            rows = {mode: [] for mode in modes}
            turn = 0
            for verb in ("create", "get", "list"):
                names = {mode: _object_names(*targets[mode]) if verb == "get" else []
                         for mode in modes}
                for clients in levels:
                    order = modes if turn % 2 == 0 else tuple(reversed(modes))
                    turn += 1
                    for mode in order:
                        server, tls = targets[mode]
                        cpu = server_cpu_seconds(server.proc.pid)
                        rate, p50, p99, errors, connects = run_level(
                            server.port, verb, clients, args.duration,
                            min(args.procs, clients), names[mode], tls)
                        cpu = server_cpu_seconds(server.proc.pid) - cpu
                        per_request = cpu / max(1, rate * args.duration)
                        rows[mode].append((verb, clients, rate, p50, p99, errors, per_request))
                        print(f"  {mode:6s} {verb:6s} {clients:3d} clients: {rate:8.1f} req/s  "
                              f"p50 {p50 * 1000:7.2f} ms  p99 {p99 * 1000:7.2f} ms  errors "
                              f"{errors}  server CPU {per_request * 1000:.2f} ms/req  (connect "
                              f"p50 {percentile(connects, 0.5) * 1000:.1f} ms, max "
                              f"{max(connects) * 1000:.1f} ms)", flush=True)
            results = {}
            for mode in modes:
                server, tls = targets[mode]
                results[mode] = (rows[mode], *watch_fanout(server, args.watchers, args.writes,
                                                           tls))
            return results
        finally:
            for server, _ in targets.values():
                server.stop()


def print_table(rows, latencies, expected, watchers):
    print("\n| figure | clients | req/s | p50 (ms) | p99 (ms) | Kubernetes SLO (p99) |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for verb, clients, rate, p50, p99, _errors, _cpu in rows:
        slo = "<= 1 s (mutating)" if verb == "create" else "<= 1 s" if verb == "get" else \
            "<= 30 s (list, cluster scope)"
        verdict = "met" if p99 <= (30 if verb == "list" else 1.0) else "MISSED"
        print(f"| {verb} | {clients} | {rate:,.0f} | {p50 * 1000:.2f} | {p99 * 1000:.2f} | "
              f"{slo}: {verdict} |")
    print(f"| watch delivery, {watchers} watchers | — | — | "
          f"{percentile(latencies, 0.5) * 1000:.1f} | {percentile(latencies, 0.99) * 1000:.1f} | "
          f"delivered {len(latencies)}/{expected} |")


def print_comparison(secure, plain):
    """Print what security costs: each figure secured over the same figure without."""
    print("\n| figure | clients | req/s secured / plain | p99 secured / plain (ms) | p99 ratio "
          "| server CPU ms/req secured / plain | CPU ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (verb, clients, rate_s, _, p99_s, _, cpu_s), (_, _, rate_p, _, p99_p, _, cpu_p) in \
            zip(secure, plain):
        print(f"| {verb} | {clients} | {rate_s:,.0f} / {rate_p:,.0f} | "
              f"{p99_s * 1000:.2f} / {p99_p * 1000:.2f} | {p99_s / p99_p:.2f}x | "
              f"{cpu_s * 1000:.2f} / {cpu_p * 1000:.2f} | {cpu_s / max(cpu_p, 1e-9):.2f}x |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,16,64")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per level")
    parser.add_argument("--procs", type=int, default=4, help="client worker processes")
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--writes", type=int, default=20, help="writes for the fan-out test")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers")
    parser.add_argument("--quota", action="store_true",
                        help="put a ResourceQuota on ConfigMaps in the namespace the creates "
                             "go to (what quota admission costs a create)")
    parser.add_argument("--mode", choices=("compare", "secure", "plain"), default="compare",
                        help="secure: TLS + Node,RBAC as an ordinary user bound to edit; plain: "
                             "HTTP + AlwaysAllow; compare (default): both side by side, each "
                             "level on one then the other, and the ratio")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    modes = ("secure", "plain") if args.mode == "compare" else (args.mode,)
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    results = run_suites(args, levels, modes)
    for mode in modes:
        print(f"\n== {mode}: " + ("TLS, client certificate, Node,RBAC" if mode == "secure"
                                  else "plain HTTP, AlwaysAllow"), flush=True)
        print_table(*results[mode], args.watchers)
    print(f"load average after: {os.getloadavg()[0]:.2f}", flush=True)
    if args.mode == "compare":
        print_comparison(results["secure"][0], results["plain"][0])


if __name__ == "__main__":
    main()
