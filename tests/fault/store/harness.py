"""Helpers for the store's fault-injection tests (fixtures live in conftest.py).

Every test runs real `steer-store` processes (``cli.local_store.LocalStoreCluster``) on
free loopback ports, kills them with SIGKILL by pid, and always stops them at the
end. Nothing here sleeps for a fixed time to wait for something: ``wait_for`` polls
a condition until a deadline. The suite shares 2 cores with other tests in CI, so
Raft gets generous election and request timeouts and no test asserts a duration.

Clients record what they asked and what they got into a ``lincheck.History``; a
``Workload`` does that for a few threads of random puts, deletes and linearizable
reads, and a ``WatchRecorder`` follows the whole keyspace so a test can check that
it saw every committed revision once, in order, across failovers.
"""

import os
import random
import struct
import threading
import time
import zlib

from store.client import Compacted, StoreClient, StoreError
from tests.support.lincheck import check

#: Raft settings with headroom for a loaded 2-core CI machine.
FAULT_ARGS = ["--election-min", "1.0", "--election-max", "2.0", "--request-timeout", "5"]
KEYS = [f"k{i}".encode() for i in range(5)]
ALL = {"key": b"\0", "range_end": b"\0"}     # every key
CLIENT_TIMEOUT = 8.0


# -- waiting -----------------------------------------------------------------------
def wait_for(predicate, timeout, what, interval=0.05):
    """Poll ``predicate`` until it returns something truthy; return that value.

    Exceptions from the predicate count as "not yet" (a node may be down); the
    last one is reported if the deadline passes.
    """
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except AssertionError:
            raise
        except Exception as exc:  # noqa: BLE001 - "not yet", reported on timeout
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{detail}")
        time.sleep(interval)


def call_with_deadline(fn, timeout, what):
    """Run ``fn()`` in a thread; return ``(result, exception)``, failing if it hangs."""
    box = {}

    def run():
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True, name=f"deadline-{what}")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise AssertionError(f"{what} hung for more than {timeout:g}s")
    return box.get("result"), box.get("error")


def running(cluster):
    return [i for i in range(len(cluster.nodes)) if cluster.is_running(i)]


def node_client(cluster, i, timeout=CLIENT_TIMEOUT):
    return cluster.node_client(i, timeout=timeout)


def current_revision(cluster, timeout=30.0):
    """The store revision seen by a linearizable read, retried until the deadline."""
    with cluster.client(timeout=5.0) as client:
        return wait_for(lambda: client.get(b"\0")["header"]["revision"], timeout,
                        "a linearizable read to succeed")


def wait_leader(cluster, among=None, timeout=30.0):
    """Wait until the running nodes (or ``among``) agree on a leader; return its index."""
    return cluster.leader_index(timeout=timeout, among=among if among is not None
                                else running(cluster))


def status_of(cluster, i, timeout=30.0):
    """Status of node ``i`` alone, retried until it answers."""
    return wait_for(lambda: cluster.node_status(i, timeout=2.0), timeout,
                    f"{cluster.nodes[i].name} to answer a status request")


def wait_caught_up(cluster, i, revision, timeout=30.0):
    """Wait until node ``i`` alone reports a revision >= ``revision``."""
    def caught_up():
        status = cluster.node_status(i, timeout=1.0)
        return status is not None and status["revision"] >= revision
    wait_for(caught_up, timeout, f"{cluster.nodes[i].name} to reach revision {revision}")


def journal_first_index(data_dir):
    """Index of the first entry in a node's Raft journal file, or None if it has none.

    Reads the file (never the live object): header after the 8-byte magic is
    ``length:u32 crc:u32 index:u64 term:u64``, as store/journal.py writes it.
    """
    path = os.path.join(data_dir, "raft.journal")
    with open(path, "rb") as f:
        head = f.read(8 + 24)
    if len(head) < 32:
        return None
    return struct.unpack(">IIQQ", head[8:])[2]


def journal_last_index(data_dir):
    """Index of the last whole entry in a stopped node's journal file, or None."""
    with open(os.path.join(data_dir, "raft.journal"), "rb") as f:
        data = f.read()
    offset, last = 8, None
    while offset + 24 <= len(data):
        length, crc, index, _term = struct.unpack_from(">IIQQ", data, offset)
        command = data[offset + 24:offset + 24 + length]
        if len(command) < length or zlib.crc32(command) != crc:
            break
        offset += 24 + length
        last = index
    return last


# -- the client workload ----------------------------------------------------------
class Workload:
    """Threads of random puts, deletes and linearizable reads on a few keys.

    Each thread has its own client and records into one shared History: a write
    that raised is ambiguous (``info``), a read that raised did nothing (``fail``).
    Acknowledged writes are also kept with their revision, to check watchers and
    durability against them.
    """

    def __init__(self, cluster, history, threads=4, max_ops=5000, keys=KEYS,
                 timeout=CLIENT_TIMEOUT, seed=None):
        self.endpoints = cluster.endpoints
        self.tls = cluster.client_tls["admin"]
        self.history = history
        self.keys = keys
        self.max_ops = max_ops
        self.timeout = timeout
        self.seed = random.randrange(1 << 30) if seed is None else seed
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.acked = {}           # revision -> ("put", key, value) | ("delete", key, None)
        self.errors = {}          # exception class name -> count
        self.crashes = []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True,
                                         name=f"workload-{i}") for i in range(threads)]

    def start(self):
        for thread in self.threads:
            thread.start()
        return self

    def stop(self, timeout=None):
        self.stop_event.set()
        deadline = time.monotonic() + (timeout or self.timeout + 20)
        for thread in self.threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        alive = [t.name for t in self.threads if t.is_alive()]
        assert not alive, f"workload threads did not stop: {alive}"
        assert not self.crashes, f"workload threads crashed: {self.crashes}"

    def _count(self, exc):
        with self.lock:
            name = type(exc).__name__
            self.errors[name] = self.errors.get(name, 0) + 1

    def _run(self, t):
        rng = random.Random(self.seed * 100 + t)
        client = StoreClient(self.endpoints, timeout=self.timeout, **self.tls)
        h = self.history
        try:
            for n in range(self.max_ops):
                if self.stop_event.is_set():
                    break
                key = rng.choice(self.keys)
                roll = rng.random()
                if roll < 0.45:
                    value = f"{t}-{n}".encode()
                    op = h.invoke(t, "write", key, value)
                    try:
                        result = client.put(key, value)
                    except Exception as exc:  # noqa: BLE001 - ambiguous
                        h.info(op)
                        self._count(exc)
                    else:
                        h.ok(op)
                        with self.lock:
                            self.acked[result["revision"]] = ("put", key, value)
                elif roll < 0.55:
                    op = h.invoke(t, "delete", key)
                    try:
                        result = client.delete(key)
                    except Exception as exc:  # noqa: BLE001 - ambiguous
                        h.info(op)
                        self._count(exc)
                    else:
                        h.ok(op)
                        if result["deleted"]:
                            with self.lock:
                                self.acked[result["revision"]] = ("delete", key, None)
                else:
                    op = h.invoke(t, "read", key)
                    try:
                        result = client.get(key)
                    except Exception as exc:  # noqa: BLE001 - a failed read did nothing
                        h.fail(op)
                        self._count(exc)
                    else:
                        h.ok(op, result["kvs"][0]["value"] if result["kvs"] else None)
                # Leave the CPU to the store now and then (pacing, not waiting).
                self.stop_event.wait(rng.uniform(0, 0.01))
        except Exception as exc:  # noqa: BLE001 - reported by stop()
            self.crashes.append(repr(exc))
        finally:
            client.close()

    def ok_writes_after(self, mark_ns):
        """How many writes invoked after ``mark_ns`` (monotonic_ns) were acknowledged."""
        assert any(t.is_alive() for t in self.threads), (
            f"the workload ended (max_ops={self.max_ops} per thread, crashes: {self.crashes})")
        return sum(1 for op in self.history.ops
                   if op.kind in ("write", "delete") and op.status == "ok" and op.call >= mark_ns)


def summary(history, workload=None, recorders=()):
    """One line about what a test did, printed for the report (-rA or a failure)."""
    statuses = {}
    for op in history.ops:
        statuses[(op.kind, op.status)] = statuses.get((op.kind, op.status), 0) + 1
    parts = [f"ops={len(history.ops)}",
             " ".join(f"{k}/{s}={n}" for (k, s), n in sorted(statuses.items()))]
    if workload is not None:
        parts.append(f"acked_writes={len(workload.acked)} errors={workload.errors}")
    for recorder in recorders:
        parts.append(f"watch via {recorder.endpoints[0]}: "
                     f"events={sum(len(s['events']) for s in recorder.segments)} "
                     f"relists={recorder.relists} resumes={recorder.resumes} "
                     f"failovers={recorder.failovers}")
    return "; ".join(parts)


def assert_linearizable(history, timeout=90.0):
    started = time.monotonic()
    result = check(history, timeout=timeout)
    print(f"lincheck: {len(history.ops)} ops, verdict {result.ok} "
          f"in {time.monotonic() - started:.1f}s")
    assert result.ok is True, (
        f"history of {len(history.ops)} ops is not linearizable"
        f" (verdict {result.ok}):\n{result.explanation}")


# -- watches -------------------------------------------------------------------------
class WatchRecorder:
    """Follow the whole keyspace from ``start`` and record every event.

    Events go into segments: a new segment starts after a ``Compacted`` error and
    the relist it requires (its ``low`` is the relist revision; events follow it).
    Within a segment the watch must be gap-free; an ``Unavailable`` from the watch
    is resumed from the last revision seen, in the same segment.
    """

    def __init__(self, endpoints, start, timeout=CLIENT_TIMEOUT, first=None, tls=None):
        # ``first``: the endpoint to watch through first (the client then fails over
        # to the others in order), to put the watch on a node a test will kill.
        # ``tls``: the StoreClient keywords of a store certificate (cluster.client_tls).
        self.endpoints = list(endpoints)
        self.tls = tls or {}
        if first is not None:
            self.endpoints.remove(first)
            self.endpoints.insert(0, first)
        self.first = first
        self.start_revision = start
        self.timeout = timeout
        self.segments = [{"low": start - 1, "events": []}]
        self.last_revision = start - 1
        self.relists = 0
        self.resumes = 0
        self.failovers = 0        # the watch moved to another node (diagnostics)
        self.endpoint = None
        self.crash = None
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="watch-recorder")

    def start(self):
        self.thread.start()
        return self

    def _open(self, client):
        """Watch from the revision after the last one seen; relist if it is compacted."""
        deadline = time.monotonic() + 60.0
        while True:
            try:
                return client.watch(b"\0", range_end=b"\0",
                                    start_revision=self.last_revision + 1)
            except Compacted:
                self._relist(client)
            except StoreError:
                if time.monotonic() > deadline:
                    raise
                self.stop_event.wait(0.1)

    def _relist(self, client):
        """List everything again after a ``Compacted``; a new segment starts there."""
        relist = wait_for(lambda: client.get(**ALL), 60.0, "a relist")
        revision = relist["revision"]
        assert revision >= self.last_revision, (
            f"relist at {revision} went back before {self.last_revision}")
        self.relists += 1
        self.segments.append({"low": revision, "events": []})
        self.last_revision = revision

    def _run(self):
        client = StoreClient(self.endpoints, timeout=self.timeout, **self.tls)
        if self.first is not None:
            client._next_endpoint = 0     # no public knob for the first endpoint
        try:
            watch = self._open(client)
            while not self.stop_event.is_set():
                try:
                    event = watch.next_event(timeout=0.2)
                except Compacted:
                    self._relist(client)
                    watch = self._open(client)
                    continue
                except StoreError:      # Unavailable: resume where we were
                    self.resumes += 1
                    watch = self._open(client)
                    continue
                endpoint = getattr(watch._conn, "endpoint", None)
                if endpoint != self.endpoint:
                    self.failovers += self.endpoint is not None
                    self.endpoint = endpoint
                if event is None:
                    continue
                kv = event["kv"]
                self.segments[-1]["events"].append(
                    (kv["mod_revision"], event["type"], kv["key"],
                     kv["value"] if event["type"] == "put" else None))
                self.last_revision = max(self.last_revision, kv["mod_revision"])
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            self.crash = exc
        finally:
            client.close()

    def finish(self, end_revision, timeout=60.0):
        """Wait until every revision up to ``end_revision`` arrived, then stop."""
        try:
            wait_for(lambda: self.crash is not None or self.last_revision >= end_revision,
                     timeout, f"the watcher to reach revision {end_revision} "
                     f"(it is at {self.last_revision})")
        finally:
            self.stop_event.set()
            self.thread.join(self.timeout + 30)
        assert self.crash is None, f"watcher crashed: {self.crash!r}"
        assert not self.thread.is_alive(), "watcher thread did not stop"


def replay(endpoints, start, end, timeout=60.0, tls=None):
    """Every event of revisions [start, end], by revision, from a fresh watch."""
    events = {}
    with StoreClient(endpoints, timeout=CLIENT_TIMEOUT, **(tls or {})) as client:
        watch = wait_for(lambda: client.watch(b"\0", range_end=b"\0", start_revision=start),
                         timeout, f"a replay watch from {start}")
        deadline = time.monotonic() + timeout
        last = start - 1
        try:
            while last < end:
                assert time.monotonic() < deadline, (
                    f"replay from {start} stalled at {last}, wanted {end}")
                event = watch.next_event(timeout=1.0)
                if event is None:
                    continue
                kv = event["kv"]
                revision = kv["mod_revision"]
                assert revision not in events, f"replay delivered revision {revision} twice"
                events[revision] = (event["type"], kv["key"],
                                    kv["value"] if event["type"] == "put" else None)
                last = revision
        finally:
            watch.cancel()
    return {r: e for r, e in events.items() if r <= end}


def check_watch(cluster, recorders, workload, end_revision=None):
    """Check what each recorder saw against the store's own history and the acks.

    - revisions strictly increase across all segments (no duplicate, no reordering);
    - inside each segment no revision is missing: the events seen are exactly the
      store's events between the segment's start and its last event (the final
      segment: up to the end revision), with the same key, type and value;
    - every acknowledged write is in the store's history at its revision.

    The store's history is a fresh replay from the oldest start revision not
    compacted away; older revisions seen are checked against the acknowledgements.
    """
    end = end_revision or current_revision(cluster)
    for recorder in recorders:
        recorder.finish(end)
    with cluster.client(timeout=5.0) as client:
        compacted = wait_for(lambda: client.status(), 30, "a status")["compact_revision"]
    truth_start = max(min(r.start_revision for r in recorders), compacted + 1)
    truth = replay(cluster.endpoints, truth_start, end, tls=cluster.client_tls["admin"])
    # Only put/delete of the workload create revisions here: one event each, no holes.
    assert sorted(truth) == list(range(truth_start, end + 1)), (
        "the store's history has holes: "
        f"{sorted(set(range(truth_start, end + 1)) - set(truth))[:20]}")

    for recorder in recorders:
        _check_segments(recorder, truth, truth_start, end, workload.acked)

    for revision, write in workload.acked.items():
        if revision >= truth_start:
            assert truth.get(revision) == write, (
                f"acknowledged {write} at revision {revision} is not in the store's "
                f"history (found {truth.get(revision)})")
    return truth


def _check_segments(recorder, truth, truth_start, end, acked):
    name = f"watch from {recorder.start_revision} via {recorder.endpoints[0]}"
    previous = recorder.start_revision - 1
    for number, segment in enumerate(recorder.segments):
        assert segment["low"] >= previous, f"{name}: segment {number} starts before the last"
        previous = segment["low"]
        revisions = [e[0] for e in segment["events"]]
        for revision in revisions:
            assert revision > previous, (
                f"{name}: went from {previous} to {revision}: duplicate or out of order "
                f"(segment {number})")
            previous = revision
        last = end if number == len(recorder.segments) - 1 else previous
        low = max(segment["low"], truth_start - 1)
        expected = list(range(low + 1, last + 1))
        seen = [r for r in revisions if r > low]
        missing = sorted(set(expected) - set(seen))
        assert not missing, f"{name}: missed revisions in segment {number}: {missing[:20]}"
        assert seen == expected, (f"{name}: saw revisions the store does not have: "
                                  f"{sorted(set(seen) - set(expected))[:20]}")
        for revision, kind, key, value in segment["events"]:
            if revision in truth:
                assert truth[revision] == (kind, key, value), (
                    f"{name}: event at {revision} was {(kind, key, value)}, "
                    f"the store has {truth[revision]}")
            elif revision in acked:
                assert acked[revision] == (kind, key, value), (
                    f"{name}: event at {revision} was {(kind, key, value)}, "
                    f"the acknowledged write was {acked[revision]}")
