"""Store benchmark: Steersman's Raft store against a 3-member etcd 3.4 cluster.

The same workload runs against both systems, each as three durable (fsync per
commit) members on loopback with the same Raft timing (0.1 s heartbeat, 0.8-1.6 s
election timeout) and mutual TLS, through each one's native client
(``store.client.StoreClient`` for Steersman, etcd's gRPC API through the stubs
in bench/etcdpb/ for etcd; see ``bench/etcd_cluster.py``):

1. puts/s and put latency p50/p99 (100-byte values) at 1, 16 and 64
   concurrent clients, for a fixed duration (and optionally a fixed count)
   per level;
2. linearizable get latency p50/p99 with one client, through a follower
   endpoint and through the leader endpoint;
3. time from SIGKILL of the leader to the first successful write, repeated,
   restarting the killed member and waiting for a healthy cluster in between.

Both clusters run at once and each step (a put level, the gets, one leader
kill) is taken for both systems back to back, the first to go alternating, so
noise from elsewhere on the shared machine falls on both alike.

Every concurrent client is one client object (one connection) in one thread;
the clients are spread over up to ``--procs`` worker processes so the load
generator is not one GIL, and client ``c`` is given the endpoint list rotated
by ``c``, so clients start on every member.  The arrangement is identical for
both systems.  The load generator runs on the same cores as the servers.
Both client ports speak mutual TLS: Steersman's with the store CA's admin
certificate, etcd's with a client certificate from a CA the bench makes; the
spawned workers find them through ``STEER_BENCH_STORE_TLS`` / ``STEER_BENCH_ETCD_TLS``.

Run:  .venv/bin/python -m bench.store   (or: python bench/store.py --help)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/store.py`: import from the repo root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.etcd_cluster import ELECTION_MS, HEARTBEAT_MS, EtcdClient, EtcdCluster  # noqa: E402

SYSTEMS = ("steersman", "etcd")

# etcd 3.4 on a 2-core machine, from the issue.  Keys are figure names below.
REFERENCE = {
    "puts/s @1": 1138.0,
    "put p50 @1 (ms)": 0.8,
    "puts/s @16": 3230.0,
    "puts/s @64": 4429.0,
    "put p99 @64 (ms)": 32.0,
    "leader kill -> first write p50 (s)": 1.16,
}


# ----------------------------------------------------------------------------
# Systems
# ----------------------------------------------------------------------------
TLS_ENV = "STEER_BENCH_STORE_TLS"
ETCD_TLS_ENV = "STEER_BENCH_ETCD_TLS"


def make_client(system: str, endpoints: list[str], timeout: float):
    """A network client of ``system`` talking to ``endpoints``."""
    if system == "etcd":
        return EtcdClient(endpoints, timeout=timeout, tls=json.loads(os.environ[ETCD_TLS_ENV]))
    from store.client import StoreClient

    tls = json.loads(os.environ.get(TLS_ENV) or "{}")
    return StoreClient(endpoints, timeout=timeout, **tls)


def make_cluster(system: str, base_dir: str):
    """A 3-member local cluster of ``system`` (not started)."""
    if system == "etcd":
        cluster = EtcdCluster(size=3, base_dir=base_dir)
        os.environ[ETCD_TLS_ENV] = json.dumps(cluster.client_tls)
        return cluster
    from cli.local_store import LocalStoreCluster

    cluster = LocalStoreCluster(size=3, base_dir=base_dir)
    # Spawned workers inherit the environment, not this process's objects.
    os.environ[TLS_ENV] = json.dumps(cluster.client_tls["admin"])
    return cluster


def steersman_available() -> str | None:
    """None if Steersman's client and launcher import, else why not."""
    try:
        import cli.local_store  # noqa: F401
        import store.client  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot run"
        return f"{type(exc).__name__}: {exc}"
    return None


def close_quietly(client) -> None:
    try:
        client.close()
    except Exception:  # noqa: BLE001 - closing is best effort
        pass


def rotated(endpoints: list[str], by: int) -> list[str]:
    by %= len(endpoints)
    return endpoints[by:] + endpoints[:by]


# ----------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------
def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (NaN if empty)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * pct // 100))  # ceil(n * pct / 100)
    return sorted_values[int(rank) - 1]


def summarize(latencies: list[float]) -> dict:
    values = sorted(latencies)
    return {
        "n": len(values),
        "p50_ms": percentile(values, 50) * 1000,
        "p99_ms": percentile(values, 99) * 1000,
    }


# ----------------------------------------------------------------------------
# CPU accounting (Linux /proc): who burns the two cores during a put level
# ----------------------------------------------------------------------------
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def server_pids(cluster) -> list[int]:
    """Pids of the running members of either kind of cluster."""
    if hasattr(cluster, "nodes"):  # cli.local_store.LocalStoreCluster
        return [node.pid for node in cluster.nodes if node.pid]
    return [pid for pid in cluster.pids if pid]


def process_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by ``pids`` (gone pids count 0)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle, summed over cores."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


# ----------------------------------------------------------------------------
# 1. Concurrent puts
# ----------------------------------------------------------------------------
WARMUP_PUTS = 10
MAX_CONSECUTIVE_ERRORS = 100


def _put_client(
    system, client_no, endpoints, value, timeout, ops_limit, start_at, thread_ready, go, out
) -> None:
    """One benchmark client: warm up, wait for the start, put until the end."""
    latencies: list[float] = []
    errors = 0
    failure = None
    last_end = 0.0
    client = None
    try:
        client = make_client(system, endpoints, timeout)
        for n in range(WARMUP_PUTS):
            client.put(b"bench/warm/%03d/%d" % (client_no, n), value)
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        failure = f"client {client_no} setup: {exc!r}"
    thread_ready.wait()
    if failure is None and go.wait(timeout=120):
        deadline = start_at["t"] + start_at["duration"]
        consecutive = 0
        n = 0
        while n < ops_limit and time.monotonic() < deadline:
            key = b"bench/put/%03d/%04d" % (client_no, n % 1000)
            begin = time.perf_counter()
            try:
                client.put(key, value)
            except Exception as exc:  # noqa: BLE001 - counted, bounded
                errors += 1
                consecutive += 1
                if consecutive >= MAX_CONSECUTIVE_ERRORS:
                    failure = f"client {client_no}: {consecutive} errors in a row, last {exc!r}"
                    break
                time.sleep(0.01)
                continue
            latencies.append(time.perf_counter() - begin)
            consecutive = 0
            n += 1
        last_end = time.monotonic()
    if client is not None:
        close_quietly(client)
    out.append((latencies, errors, failure, last_end))


def put_worker(
    system,
    assignments,
    value_size,
    timeout,
    ops_limit,
    duration,
    ready_q,
    go,
    start_value,
    result_q,
) -> None:
    """Worker process: one thread per assigned client ``(client_no, endpoints)``."""
    value = os.urandom(value_size // 2 + 1).hex().encode()[:value_size]
    start_at: dict = {"duration": duration}
    local_go = threading.Event()
    thread_ready = threading.Barrier(len(assignments) + 1)
    out: list = []
    threads = [
        threading.Thread(
            target=_put_client,
            args=(
                system,
                no,
                eps,
                value,
                timeout,
                ops_limit,
                start_at,
                thread_ready,
                local_go,
                out,
            ),
            daemon=True,
        )
        for no, eps in assignments
    ]
    for thread in threads:
        thread.start()
    thread_ready.wait(timeout=120)
    ready_q.put(os.getpid())
    if go.wait(timeout=120):
        start_at["t"] = start_value.value
        local_go.set()
    cpu_start = time.process_time()
    for thread in threads:
        thread.join(timeout=duration + timeout + 30)
    client_cpu = time.process_time() - cpu_start
    latencies: list[float] = []
    errors = 0
    failures = []
    last_end = 0.0
    for lats, errs, failure, end in out:
        latencies.extend(lats)
        errors += errs
        last_end = max(last_end, end)
        if failure:
            failures.append(failure)
    if len(out) < len(threads):
        failures.append(f"{len(threads) - len(out)} client thread(s) did not finish")
    result_q.put((latencies, errors, failures, last_end, client_cpu))


def run_put_level(system: str, cluster, clients: int, args) -> dict:
    """Run ``clients`` concurrent put clients; returns throughput, latency and
    the CPU seconds the servers and the whole machine used meanwhile."""
    endpoints = list(cluster.endpoints)
    pids = server_pids(cluster)
    ctx = mp.get_context("spawn")
    nprocs = max(1, min(args.procs, clients))
    assignments: list[list] = [[] for _ in range(nprocs)]
    for c in range(clients):
        assignments[c % nprocs].append((c, rotated(endpoints, c)))
    ops_limit = -(-args.ops // clients) if args.ops else 10**9
    ready_q, result_q = ctx.Queue(), ctx.Queue()
    go = ctx.Event()
    start_value = ctx.Value("d", 0.0)
    procs = [
        ctx.Process(
            target=put_worker,
            args=(system, assignments[p], args.value_size, args.timeout, ops_limit,
                  args.duration, ready_q, go, start_value, result_q),
            daemon=True,
        )
        for p in range(nprocs)
    ]  # fmt: skip
    try:
        for proc in procs:
            proc.start()
        for _ in procs:
            ready_q.get(timeout=120)
        cpu_before = process_cpu_seconds(pids), machine_busy_seconds()
        start_value.value = time.monotonic()
        go.set()
        latencies: list[float] = []
        errors = 0
        failures: list[str] = []
        last_end = start_value.value
        client_cpu = 0.0
        for _ in procs:
            lats, errs, fails, end, cpu = result_q.get(timeout=args.duration + args.timeout + 90)
            latencies.extend(lats)
            errors += errs
            failures.extend(fails)
            last_end = max(last_end, end)
            client_cpu += cpu
        server_cpu = process_cpu_seconds(pids) - cpu_before[0]
        machine_cpu = machine_busy_seconds() - cpu_before[1]
        for proc in procs:
            proc.join(timeout=10)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
    elapsed = max(last_end - start_value.value, 1e-9)
    result = summarize(latencies)
    result.update(
        clients=clients,
        procs=nprocs,
        seconds=elapsed,
        rate=len(latencies) / elapsed,
        errors=errors,
        failures=failures[:5],
        server_cpu_s=server_cpu,
        machine_cpu_s=machine_cpu,
        client_cpu_s=client_cpu,
        server_cpu_ms_per_put=server_cpu * 1000 / max(1, len(latencies)),
    )
    return result


# ----------------------------------------------------------------------------
# 2. Linearizable gets
# ----------------------------------------------------------------------------
def run_gets(system: str, endpoint: str, args) -> dict:
    """One client, linearizable gets of one key through ``endpoint``."""
    client = make_client(system, [endpoint], args.timeout)
    key = b"bench/get"
    try:
        client.put(key, b"x" * args.value_size)
        for _ in range(WARMUP_PUTS):
            client.get(key)
        latencies = []
        deadline = time.monotonic() + args.duration
        for _ in range(args.get_ops):
            if time.monotonic() >= deadline:
                break
            begin = time.perf_counter()
            answer = client.get(key)
            latencies.append(time.perf_counter() - begin)
            if not answer.get("kvs"):
                raise RuntimeError(f"{system}: get through {endpoint} found no value")
    finally:
        close_quietly(client)
    return summarize(latencies)


# ----------------------------------------------------------------------------
# 3. Leader kill -> first successful write
# ----------------------------------------------------------------------------
def _failover_writer(client, offset, killed, done, found, limit_s, key) -> None:
    """Put ``key`` repeatedly from ``offset`` s after the kill until one succeeds."""
    if not killed.wait(timeout=limit_s):
        return
    kill_time = found["kill_time"]
    time.sleep(offset)
    attempts = 0
    while not done.is_set() and time.monotonic() - kill_time < limit_s and attempts < 100_000:
        attempts += 1
        try:
            client.put(key, b"after-kill")
        except Exception:  # noqa: BLE001 - expected while there is no leader
            time.sleep(0.005)
            continue
        now = time.monotonic()
        with found["lock"]:
            if found["first"] is None or now < found["first"]:
                found["first"] = now
        done.set()
        return


def measure_failover(system: str, cluster, args) -> dict:
    """SIGKILL the leader; seconds until a write through a survivor succeeds.

    ``--failover-writers`` clients (own connection each, per-request timeout
    ``--attempt-timeout``) target the surviving members and start their
    attempts staggered over one attempt timeout, so a request that hangs on
    the dead leader costs at most that granularity.
    """
    endpoints = list(cluster.endpoints)
    leader = cluster.leader_index(timeout=10)
    survivors = [ep for i, ep in enumerate(endpoints) if i != leader]
    writers = max(1, args.failover_writers)
    clients = []
    try:
        for w in range(writers):
            client = make_client(system, rotated(survivors, w), args.attempt_timeout)
            clients.append(client)
            for _ in range(50):  # prime the connection before the kill
                try:
                    client.put(b"bench/failover/prime", b"x")
                    break
                except Exception:  # noqa: BLE001 - retried, bounded
                    time.sleep(0.05)
        killed, done = threading.Event(), threading.Event()
        found = {"first": None, "lock": threading.Lock(), "kill_time": 0.0}
        threads = [
            threading.Thread(
                target=_failover_writer,
                args=(client, w * args.attempt_timeout / writers, killed, done, found,
                      args.failover_limit, b"bench/failover/%d" % w),
                daemon=True,
            )
            for w, client in enumerate(clients)
        ]  # fmt: skip
        for thread in threads:
            thread.start()
        found["kill_time"] = time.monotonic()
        cluster.kill(leader)
        killed.set()
        for thread in threads:
            thread.join(timeout=args.failover_limit + args.attempt_timeout + 5)
        seconds = None if found["first"] is None else found["first"] - found["kill_time"]
    finally:
        for client in clients:
            close_quietly(client)
    new_leader = None
    if seconds is not None:
        try:
            new_leader = cluster.leader_index(timeout=10)
        except Exception:  # noqa: BLE001 - informational only
            pass
    cluster.start(leader)
    wait_healthy(system, cluster, args)
    return {"seconds": seconds, "killed": leader, "new_leader": new_leader}


def wait_healthy(system: str, cluster, args) -> None:
    """Cluster ready and every member serving a linearizable get."""
    deadline = time.monotonic() + args.ready_timeout
    cluster.wait_ready(timeout=args.ready_timeout)
    for endpoint in cluster.endpoints:
        while True:
            client = make_client(system, [endpoint], 2.0)
            try:
                client.get(b"bench/health")
                break
            except Exception as exc:  # noqa: BLE001 - retried until the deadline
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{system}: {endpoint} not serving: {exc!r}") from exc
                time.sleep(0.1)
            finally:
                close_quietly(client)


# ----------------------------------------------------------------------------
# Both systems, step by step
# ----------------------------------------------------------------------------
# The machine is shared (other work, the load generator): a system measured
# minutes after the other meets different noise.  So both clusters run at once
# and every step (a put level, the gets, one leader kill) is taken for both
# systems back to back, the one to go first alternating from step to step.


def start_system(system: str, args) -> dict:
    """Start a fresh 3-member cluster of ``system``; its state for the steps."""
    state = {"system": system, "cluster": None, "results": {"put": {}, "failover": []},
             "base": tempfile.mkdtemp(prefix=f"bench-{system}-", dir=args.base_dir)}
    print(f"== {system}: starting (data in {state['base']})", flush=True)
    try:
        state["cluster"] = make_cluster(system, state["base"])
        state["cluster"].start_all()
        state["cluster"].wait_ready(timeout=args.ready_timeout)
        wait_healthy(system, state["cluster"], args)
        print(f"   {system} endpoints {list(state['cluster'].endpoints)}", flush=True)
    except Exception as exc:  # noqa: BLE001 - report, keep the other system's figures
        fail(state, exc)
    return state


def fail(state: dict, exc: Exception) -> None:
    state["results"]["error"] = f"{type(exc).__name__}: {exc}"
    print(f"   ! {state['system']} failed: {state['results']['error']}", flush=True)


def stop_system(state: dict, args) -> None:
    if state["cluster"] is not None:
        state["cluster"].stop_all()
    if not args.keep:
        shutil.rmtree(state["base"], ignore_errors=True)


def put_step(state: dict, clients: int, args) -> None:
    system = state["system"]
    r = run_put_level(system, state["cluster"], clients, args)
    state["results"]["put"][clients] = r
    note = f", {r['errors']} errors" if r["errors"] else ""
    print(
        f"   {system:<9} put {clients:>3} clients/{r['procs']} procs: {r['rate']:8.0f} puts/s  "
        f"p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
        f"({r['n']} ops in {r['seconds']:.1f} s{note}); CPU: servers "
        f"{r['server_cpu_s'] / r['seconds']:.2f} cores, clients "
        f"{r['client_cpu_s'] / r['seconds']:.2f}, whole machine "
        f"{r['machine_cpu_s'] / r['seconds']:.2f} cores, "
        f"{r['server_cpu_ms_per_put']:.2f} server CPU-ms per put",
        flush=True,
    )
    other = (r["machine_cpu_s"] - r["server_cpu_s"] - r["client_cpu_s"]) / r["seconds"]
    if other > 0.25:
        print(f"        ! {other:.2f} cores went to other processes during this level: "
              "the machine was not quiet, figures are disturbed", flush=True)
    for failure in r["failures"]:
        print(f"        ! {failure}", flush=True)


def get_step(state: dict, args) -> None:
    system, cluster = state["system"], state["cluster"]
    endpoints = list(cluster.endpoints)
    leader = cluster.leader_index(timeout=10)
    follower = (leader + 1) % len(endpoints)
    for role, index in (("follower", follower), ("leader", leader)):
        r = run_gets(system, endpoints[index], args)
        state["results"][f"get_{role}"] = r
        print(f"   {system:<9} get via {role:<8} (node {index}): p50 {r['p50_ms']:6.2f} ms  "
              f"p99 {r['p99_ms']:6.2f} ms  ({r['n']} gets)", flush=True)


def failover_step(state: dict, repeat: int, args) -> None:
    r = measure_failover(state["system"], state["cluster"], args)
    state["results"]["failover"].append(r["seconds"])
    shown = "none within limit" if r["seconds"] is None else f"{r['seconds']:.3f} s"
    print(f"   {state['system']:<9} kill leader #{repeat + 1}: node {r['killed']} killed, "
          f"first write after {shown} (new leader node {r['new_leader']})", flush=True)


def bench_systems(systems: list[str], args) -> dict:
    """Run every section for ``systems`` interleaved; return results by system."""
    states = []
    try:
        for system in systems:
            states.append(start_system(system, args))
        steps = []
        if "put" in args.sections:
            steps += [(put_step, (clients,)) for clients in args.levels]
        if "get" in args.sections:
            steps.append((get_step, ()))
        if "failover" in args.sections:
            steps += [(failover_step, (repeat,)) for repeat in range(args.failover_repeats)]
        for number, (step, step_args) in enumerate(steps):
            order = states if number % 2 == 0 else states[::-1]
            for state in order:
                if "error" in state["results"]:
                    continue
                try:
                    step(state, *step_args, args)
                except Exception as exc:  # noqa: BLE001 - report, keep the others going
                    fail(state, exc)
    finally:
        for state in states:
            stop_system(state, args)
    return {state["system"]: state["results"] for state in states}


# ----------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------
def figures(result: dict | None, levels: list[int]) -> dict:
    """Flatten one system's results into ``{figure: (value, higher_is_better)}``."""
    out: dict = {}
    if not result:
        return out
    for clients in levels:
        r = result.get("put", {}).get(clients)
        if r:
            out[f"puts/s @{clients}"] = (r["rate"], True)
            out[f"put p50 @{clients} (ms)"] = (r["p50_ms"], False)
            out[f"put p99 @{clients} (ms)"] = (r["p99_ms"], False)
            out[f"server CPU per put @{clients} (ms)"] = (r["server_cpu_ms_per_put"], False)
    for role in ("follower", "leader"):
        r = result.get(f"get_{role}")
        if r:
            out[f"linearizable get p50 via {role} (ms)"] = (r["p50_ms"], False)
            out[f"linearizable get p99 via {role} (ms)"] = (r["p99_ms"], False)
    kills = [s for s in result.get("failover", []) if s is not None]
    if result.get("failover"):
        if kills:
            out["leader kill -> first write p50 (s)"] = (percentile(sorted(kills), 50), False)
            out["leader kill -> first write max (s)"] = (max(kills), False)
        out["leader kill -> first write, each (s)"] = (
            ", ".join("-" if s is None else f"{s:.2f}" for s in result["failover"]),
            False,
        )
    return out


def fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value >= 1 else f"{value:.3f}"


def table(results: dict, levels: list[int]) -> str:
    """The markdown table: figure | steersman | etcd | ratio | better | reference."""
    ours, theirs = figures(results.get("steersman"), levels), figures(results.get("etcd"), levels)
    names = list(dict.fromkeys([*theirs, *ours]))
    lines = [
        "| figure | steersman | etcd 3.4 | ratio steersman/etcd | better | reference etcd 3.4 (issue) |",
        "| --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for name in names:
        s, s_higher = ours.get(name, (None, None))
        e, e_higher = theirs.get(name, (None, None))
        higher = s_higher if s_higher is not None else e_higher
        ratio, better = "—", ("higher" if higher else "lower") + " is better"
        if isinstance(s, float) and isinstance(e, float) and e > 0:
            ratio = f"{s / e:.2f}×"
            if s != e:
                winner = "steersman" if (s > e) == bool(higher) else "etcd"
                better += f": {winner}"
        if isinstance(s, str) or isinstance(e, str):
            better = ""
        lines.append(
            f"| {name} | {fmt(s)} | {fmt(e)} | {ratio} | {better} | {fmt(REFERENCE.get(name))} |"
        )
    return "\n".join(lines)


def environment(args) -> str:
    try:
        version = subprocess.run(
            ["etcd", "--version"], capture_output=True, text=True, timeout=10
        ).stdout.splitlines()[0]
    except Exception:  # noqa: BLE001 - informational only
        version = "etcd not found"
    return (
        f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{version}; {args.duration:g} s per put level"
        + (f" (at most {args.ops} ops)" if args.ops else "")
        + f", {args.value_size}-byte values, up to {args.procs} client processes; "
        f"data under {args.base_dir or tempfile.gettempdir()}; "
        f"load average at start {os.getloadavg()[0]:.2f}"
    )


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.store",
        description="Benchmark Steersman's Raft store against a 3-member etcd 3.4 cluster.",
    )
    parser.add_argument(
        "--systems",
        default="steersman,etcd",
        help="comma-separated subset of steersman,etcd (default both)",
    )
    parser.add_argument(
        "--sections",
        default="put,get,failover",
        help="comma-separated subset of put,get,failover (default all)",
    )
    parser.add_argument(
        "--levels", default="1,16,64", help="concurrent put clients per level (default 1,16,64)"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=5.0,
        help="seconds per put level, and time bound of the get run (default 5)",
    )
    parser.add_argument(
        "--ops",
        type=int,
        default=0,
        help="also stop a put level after this many puts (default: no count limit)",
    )
    parser.add_argument(
        "--procs", type=int, default=4, help="worker processes for the put clients (default 4)"
    )
    parser.add_argument("--value-size", type=int, default=100, help="bytes per value (default 100)")
    parser.add_argument(
        "--get-ops", type=int, default=2000, help="linearizable gets per endpoint (default 2000)"
    )
    parser.add_argument("--failover-repeats", type=int, default=10, help="leader kills (default 10)")
    parser.add_argument(
        "--failover-writers", type=int, default=4, help="staggered writers after a kill (default 4)"
    )
    parser.add_argument(
        "--attempt-timeout",
        type=float,
        default=0.25,
        help="per-request timeout of a writer after a kill, s (default 0.25)",
    )
    parser.add_argument(
        "--failover-limit",
        type=float,
        default=30.0,
        help="give up on a kill after this many seconds (default 30)",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="client request timeout, s (default 10)"
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for a healthy cluster (default 60)",
    )
    parser.add_argument(
        "--base-dir",
        default=None,
        help="parent directory of the data directories (default: system temp)",
    )
    parser.add_argument("--keep", action="store_true", help="keep data directories and logs")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    args = parser.parse_args(argv)
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    args.levels = [int(n) for n in args.levels.split(",") if n.strip()]
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown system(s): {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print("Store benchmark:", environment(args), flush=True)
    systems = []
    for system in ("steersman", "etcd"):
        if system not in args.systems:
            continue
        if system == "steersman":
            missing = steersman_available()
            if missing:
                print(f"\n== steersman skipped: store.client / cli.local_store unavailable ({missing})")
                continue
        if system == "etcd" and shutil.which("etcd") is None:
            print("\n== etcd skipped: not installed (apt-get install -y etcd-server)")
            continue
        systems.append(system)
    results = bench_systems(systems, args)

    print("\n" + table(results, args.levels))
    print(
        "\nratio = steersman / etcd; for puts/s higher is better, for latencies and "
        "failover time lower is better. Reference: etcd 3.4 on a 2-core machine, from the issue."
        "\nBoth: 3 members, fsync per commit, mutual TLS, heartbeat 0.1 s, election timeout "
        f"0.8-1.6 s (etcd --heartbeat-interval {HEARTBEAT_MS} --election-timeout {ELECTION_MS}); "
        "etcd through its gRPC API."
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    failed = [s for s, r in results.items() if "error" in r]
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
