"""Raft replication of the state machine: the only module that imports pysyncobj.

PySyncObj gives leader election, log replication and snapshots. This module closes
the gaps that matter for a store that replaces etcd:

- durability: the journal is ``store.journal.DurableJournal``; every Raft message
  leaves the node only after the entries it acknowledges are fdatasync'ed, and the
  end of every tick syncs too (one flush for all writes that arrived together);
- latency: Raft runs on the server's asyncio loop, one thread with the client port
  (``LoopPoller`` hands PySyncObj's sockets to the loop): no GIL hand-off between a
  tick thread and the loop on every message. A submitted command schedules a tick
  at once, and new entries or a new commit index are sent at the end of that tick
  instead of at the next heartbeat (PySyncObj's batching adds ~100 ms otherwise);
- snapshots: the full dump is the state machine's own snapshot, written and fsynced
  by us, always next to the journal;
- safety of apply: the replicated method never raises (errors are results), and it
  carries an explicit version (``ver=0``) so a later format gets its own method.
- linearizable reads without log entries: the transport carries ReadIndex's
  messages and leadership-confirmation stamps (``store.readindex``).

Everything here runs on the event loop's thread.
"""

import logging
import os
import pickle
import threading
import zlib

import msgpack
from pysyncobj import SyncObj, SyncObjConf, replicated
from pysyncobj import syncobj as _syncobj_module
from pysyncobj import tcp_connection as _tcp_connection_module
from pysyncobj.config import FAIL_REASON
from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.transport import TCPTransport

from store import readindex
from store.journal import DurableJournal, write_atomically
from store.machine import Machine

log = logging.getLogger("steer.store.raft")

JOURNAL_FILE = "raft.journal"
DUMP_FILE = "raft.dump"

#: Why a submitted command did not apply, in words a client can act on.
FAILURES = {
    FAIL_REASON.QUEUE_FULL: "the node's command queue is full; retry later",
    FAIL_REASON.MISSING_LEADER: "the cluster has no leader right now (election or lost quorum)",
    FAIL_REASON.DISCARDED: "the command was discarded by a new leader",
    FAIL_REASON.NOT_LEADER: "leadership changed before the command committed",
    FAIL_REASON.LEADER_CHANGED: "leadership changed before the command committed",
    FAIL_REASON.REQUEST_DENIED: "the request was denied (another membership change is in progress?)",
    FAIL_REASON.UNKNOWN_OUTCOME: "the outcome is unknown",
}

# PySyncObj builds its journal and poller through module-level factories; we
# hand it ours for the node being constructed.
_construction_lock = threading.Lock()
_next_journal = None
_next_poller = None
_syncobj_module.createJournal = lambda path: _next_journal
_syncobj_module.createPoller = lambda poller_type: _next_poller


class _PeerFraming:
    """Stand-in for the ``zlib`` module PySyncObj frames every peer message with.

    Deflating each small Raft message (zlib sets its state up on every call) cost
    about a tenth of a leader's time per write, for messages of a few hundred
    bytes. Messages go out uncompressed behind a 0x00 byte, which no zlib stream
    starts with, so a frame from a peer that still deflates is read as before.
    """

    RAW = b"\x00"

    @staticmethod
    def compress(data, level=-1):
        return _PeerFraming.RAW + data

    @staticmethod
    def decompress(data):
        if data[:1] == _PeerFraming.RAW:
            return data[1:]
        return zlib.decompress(data)


_tcp_connection_module.zlib = _PeerFraming


class LoopPoller:
    """PySyncObj's poller interface on top of an asyncio loop.

    PySyncObj asks to be told when its sockets are readable or writable; the
    loop watches them instead of a private poll() call, and every event asks for
    a tick, so Raft and the client port share one thread.
    """

    def __init__(self, loop, on_event):
        self._loop = loop
        self._on_event = on_event
        self._callbacks = {}

    def subscribe(self, descr, callback, event_mask):
        self.unsubscribe(descr)
        self._callbacks[descr] = callback
        # The loop reports errors and hang-ups as readable.
        if event_mask & (POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.ERROR):
            self._loop.add_reader(descr, self._fire, descr, POLL_EVENT_TYPE.READ)
        if event_mask & POLL_EVENT_TYPE.WRITE:
            self._loop.add_writer(descr, self._fire, descr, POLL_EVENT_TYPE.WRITE)

    def unsubscribe(self, descr):
        if self._callbacks.pop(descr, None) is None:
            return
        try:
            self._loop.remove_reader(descr)
            self._loop.remove_writer(descr)
        except OSError:
            # PySyncObj closes a socket before unsubscribing it, and the loop
            # cannot modify the registration of a closed descriptor: make sure
            # the loop forgets it (the selector may already have dropped it).
            try:
                self._loop._selector.unregister(descr)
            except KeyError:
                pass

    def poll(self, timeout):
        """Nothing to do: the loop waits for events, not PySyncObj."""

    def _fire(self, descr, event):
        callback = self._callbacks.get(descr)
        if callback is not None:
            callback(descr, event)
        self._on_event()


class _DurableTransport(TCPTransport):
    """TCP transport that syncs the journal before a message vouches for it.

    Acks, votes and every other message wait for the journal to be on disk. The
    leader's own append-entries do not: followers write and sync in parallel with
    the leader, and the leader still syncs before it counts itself towards a
    commit, because ``_after_tick`` syncs before the tick loop polls for acks.

    It also keeps the leader's pipelining intact: PySyncObj sets a follower's
    next index from every success reply, so a reply to an older append pulls it
    back and the entries sent since go out twice (the follower then truncates and
    rewrites them). Only a rejection (``reset``) may move the next index back.

    Finally it carries ReadIndex's traffic (``store.readindex``): its own
    request/reply messages, which PySyncObj never sees, and the confirmation
    round stamped on append-entries and echoed in their replies.
    """

    def send(self, node, message):
        if message.get("type") != "append_entries":
            self._syncObj.journal.sync()
        self._syncObj.read_index.stamp(node, message)
        return super().send(node, message)

    def setOnMessageReceivedCallback(self, callback):  # noqa: N802 (pysyncobj's name)
        if callback is None:
            return super().setOnMessageReceivedCallback(None)

        read_index = self._syncObj.read_index

        def receive(node, message):
            kind = message.get("type")
            if kind in readindex.MESSAGE_TYPES:
                read_index.on_message(node, message)
            elif kind == "append_entries":
                with read_index.answering(node, message):
                    callback(node, message)
            elif kind == "next_node_idx":
                read_index.on_ack(node, message)
                self._receive_ack(callback, node, message)
            else:
                callback(node, message)
        super().setOnMessageReceivedCallback(receive)

    def _receive_ack(self, callback, node, message):
        """Let PySyncObj see an append's reply, but never move the next index back on success."""
        if not message.get("success") or message.get("reset"):
            return callback(node, message)
        next_index = self._syncObj._SyncObj__raftNextIndex
        before = next_index.get(node)
        callback(node, message)
        if before is not None and next_index.get(node, before) < before:
            next_index[node] = before


class RaftNode(SyncObj):
    """Replicate ``Machine.apply`` across the cluster with durable, prompt commits.

    Construct it inside the running ``loop``. ``on_applied(command, result,
    events)`` runs after each command applies; ``on_restored(machine)`` after a
    snapshot replaced the machine. ``read_barrier`` serves linearizable reads
    (ReadIndex), giving up after ``read_timeout`` seconds.
    """

    #: Seconds between ticks when nothing happens (timers: heartbeats, elections).
    IDLE_TICK = 0.02

    def __init__(self, loop, self_addr, partner_addrs, data_dir, secret,
                 on_applied=None, on_restored=None, timeouts=(0.8, 1.6),
                 heartbeat=0.1, log_compact_entries=5000, read_timeout=5.0):
        global _next_journal, _next_poller
        os.makedirs(data_dir, exist_ok=True)
        self.machine = Machine()
        self.lock = threading.Lock()   # guards self.machine between apply and readers
        self._on_applied = on_applied or (lambda command, result, events: None)
        self._on_restored = on_restored or (lambda machine: None)
        self._dump_path = os.path.join(data_dir, DUMP_FILE)
        self._sent_log_index = 0
        self._sent_commit_index = 0
        self._loop = loop
        self._tick_scheduled = False
        self._stopped = False
        # Before PySyncObj starts: the transport consults it for every message.
        self.read_index = readindex.ReadIndex(self, read_timeout)
        conf = SyncObjConf(
            autoTick=False,
            password=secret,
            bindAddress=self_addr,
            journalFile=os.path.join(data_dir, JOURNAL_FILE),
            fullDumpFile=self._dump_path,
            serializer=self._write_dump,
            deserializer=self._read_dump,
            dynamicMembershipChange=True,
            commandsWaitLeader=False,
            appendEntriesUseBatch=True,
            appendEntriesPeriod=heartbeat,
            raftMinTimeout=timeouts[0],
            raftMaxTimeout=timeouts[1],
            connectionTimeout=max(3.5, timeouts[1] * 1.5),
            connectionRetryTime=0.5,
            leaderFallbackTimeout=max(5.0, timeouts[1] * 3),
            logCompactionMinEntries=log_compact_entries,
            logCompactionMinTime=3600,
            maxBindRetries=20,
        )
        with _construction_lock:
            _next_journal = DurableJournal(conf.journalFile, self._dump_path)
            _next_poller = LoopPoller(loop, self._schedule_tick)
            self.journal = _next_journal
            try:
                super().__init__(self_addr, list(partner_addrs), conf,
                                 transportClass=_DurableTransport)
            finally:
                _next_journal = _next_poller = None
        self.addOnTickCallback(self._after_tick)
        self._loop.call_soon(self._idle_tick)

    # -- driving the ticks from the loop -------------------------------------------
    def _schedule_tick(self):
        """Run one tick soon; any number of events before it share it."""
        if not self._tick_scheduled and not self._stopped:
            self._tick_scheduled = True
            self._loop.call_soon(self._tick)

    def _tick(self):
        self._tick_scheduled = False
        if self._stopped:
            return
        # Belt and braces: the leader's entries are on disk before a tick counts
        # acks towards a commit (``_after_tick`` normally synced them already).
        self.journal.sync()
        try:
            self.doTick(0.0)
        except Exception:
            log.exception("event=tick_failed")

    def _idle_tick(self):
        if self._stopped:
            return
        self._tick()
        self._loop.call_later(self.IDLE_TICK, self._idle_tick)

    # -- submitting ------------------------------------------------------------
    def submit(self, command, callback):
        """Replicate ``command``; ``callback(result, error_text)`` runs in a later tick."""
        def done(result, reason):
            if reason == FAIL_REASON.SUCCESS:
                callback(result, None)
            else:
                callback(None, FAILURES.get(reason, f"failed with reason {reason}"))
        self._apply_command(msgpack.packb(command, use_bin_type=True), callback=done)
        self._schedule_tick()

    @replicated(ver=0)
    def _apply_command(self, packed):
        """Apply one committed command; never raises (PySyncObj would freeze)."""
        try:
            command = msgpack.unpackb(packed, raw=False)
            with self.lock:
                result, events = self.machine.apply(command)
        except Exception as exc:  # the machine promises not to raise; be sure
            log.exception("apply failed")
            return {"error": {"code": "invalid", "message": f"command failed to apply: {exc}"}}
        try:
            self._on_applied(command, result, events)
        except Exception:
            log.exception("on_applied hook failed")
        return result

    def _after_tick(self):
        """Ship this tick's appends now (not at the next heartbeat), then make them durable.

        This runs before the loop handles any ack, so the leader's entries are on
        disk before a commit counts them.
        """
        if self._isLeader():
            log_index, commit_index = self.raftLastLogIndex, self.raftCommitIndex
            if log_index != self._sent_log_index or commit_index != self._sent_commit_index:
                self._sent_log_index, self._sent_commit_index = log_index, commit_index
                self._SyncObj__sendAppendEntries()
        self.read_index.on_tick()
        self.journal.sync()

    def read_barrier(self, callback):
        """Call ``callback(None)`` once a linearizable read may run here, else ``callback(error)``."""
        self.read_index.barrier(callback)
        self._schedule_tick()

    def send_peer(self, peer, message):
        """Send ``message`` to ``peer`` over Raft's connection; False if not connected."""
        return self._SyncObj__transport.send(peer, message)

    # -- snapshots -------------------------------------------------------------
    def _write_dump(self, path, raft_data):
        """Write the machine and PySyncObj's bookkeeping as one durable file."""
        with self.lock:
            snapshot = self.machine.to_snapshot()
        body = msgpack.packb({"format": 1, "machine": snapshot,
                              "raft": pickle.dumps(raft_data)}, use_bin_type=True)
        write_atomically(path, body)

    def _read_dump(self, path):
        with open(path, "rb") as f:
            dump = msgpack.unpackb(f.read(), raw=False, strict_map_key=False)
        machine = Machine.from_snapshot(dump["machine"])
        with self.lock:
            self.machine = machine
        try:
            self._on_restored(machine)
        except Exception:
            log.exception("on_restored hook failed")
        return pickle.loads(dump["raft"])

    # -- membership ------------------------------------------------------------
    def add_member(self, peer_addr, callback):
        """Add a voting member; ``callback(error_text_or_None)``."""
        self.addNodeToCluster(peer_addr, callback=self._membership_done(callback))
        self._schedule_tick()

    def remove_member(self, peer_addr, callback):
        """Remove a member; ``callback(error_text_or_None)``."""
        self.removeNodeFromCluster(peer_addr, callback=self._membership_done(callback))
        self._schedule_tick()

    @staticmethod
    def _membership_done(callback):
        def done(result, reason):
            callback(None if reason == FAIL_REASON.SUCCESS
                     else FAILURES.get(reason, f"failed with reason {reason}"))
        return done

    # -- read-only views (any thread) ----------------------------------------------
    @property
    def raftLastLogIndex(self):  # noqa: N802
        return self.journal[-1][1] if len(self.journal) else 0

    def is_leader(self):
        return self._isLeader()

    def leader_addr(self):
        leader = self._getLeader()
        return leader.address if leader is not None else None

    def peer_addrs(self):
        """Every voting member's peer address, this node's included."""
        return sorted([self.selfNode.address] + [n.address for n in self.otherNodes])

    def term(self):
        return self.raftCurrentTerm

    def stop(self):
        """Stop ticking and close sockets and files."""
        self._stopped = True
        self.destroy()


def write_restored_dump(data_dir, machine_snapshot, peer_addrs):
    """Seed a fresh member's data dir with a snapshot, as if it had compacted to it.

    Every member of a restored cluster gets the same dump, whose log starts at
    index 3 of term 0, so members that join later must receive the snapshot too
    (their empty log cannot match index 3).
    """
    from pysyncobj.node import TCPNode

    os.makedirs(data_dir, exist_ok=True)
    noop = bytes([_syncobj_module._COMMAND_TYPE.NO_OP])
    raft_data = ((noop, 3, 0), (noop, 2, 0), {TCPNode(addr) for addr in peer_addrs})
    body = msgpack.packb({"format": 1, "machine": machine_snapshot,
                          "raft": pickle.dumps(raft_data)}, use_bin_type=True)
    write_atomically(os.path.join(data_dir, DUMP_FILE), body)
