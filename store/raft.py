"""Raft replication of the state machine: a node that owns a PySyncObj replica.

PySyncObj (behind ``store.pysyncobj_compat``) gives leader election, log
replication and snapshots. This module closes the gaps that matter for a store
that replaces etcd:

- durability: the journal is ``store.journal.DurableJournal``; every Raft message
  leaves the node only after the entries it acknowledges are fdatasync'ed, and the
  end of every tick syncs too (one flush for all writes that arrived together);
- latency: Raft runs on the server's asyncio loop, one thread with the client port:
  no GIL hand-off between a tick thread and the loop on every message. A proposed
  command schedules a tick at once, and new entries or a new commit index are sent
  at the end of that tick instead of at the next heartbeat (PySyncObj's batching
  adds ~100 ms otherwise);
- batching: write requests that arrive while this leader has an entry in flight
  (appended but not committed) wait in ``store.batching.Batcher`` and go out
  together as ONE entry (one journal record, one slot per append): the machine
  applies them in order, each at its own revision, and each request gets its
  own result. A member from before batching reads a batch entry as one invalid
  command: upgrade every member together, not one at a time;
- snapshots: the full dump is the state machine's own snapshot, written and fsynced
  by us, always next to the journal;
- the peer port: mutual TLS with each member's certificate from the store CA and
  msgpack frames on this loop (``store.peer_transport``), log entries in msgpack
  (``store.raft_codec``): no shared secret, and no byte from a peer reaches an
  unrestricted unpickler. A member from before this transport (pickle + a shared
  secret) cannot talk to one after it: upgrade every member together, not one at
  a time. The commit index piggybacks on the next append when requests wait to
  be proposed (``_after_tick``);
- safety of apply: the replicated method never raises (errors are results), and it
  carries an explicit version so a later format gets its own method;
- linearizable reads without log entries: ReadIndex (``store.readindex``) rides on
  the peer messages this node sees go out and come in.

Everything here runs on the event loop's thread: apply, ticks, dumps (PySyncObj
calls our serializer inline, never in a fork or thread) and every reader of
``machine`` in the server, so the machine needs no lock.
"""

import logging
import os

import msgpack

from store import readindex
from store.batching import MAX_BATCH_BYTES, MAX_BATCH_REQUESTS, Batcher, settle_batch, unpack_entry
from store.journal import write_atomically
from store.machine import Machine
from store.pysyncobj_compat import Hooks, PeerSetup, Replica, open_journal, restored_raft_state

log = logging.getLogger("steer.store.raft")

JOURNAL_FILE = "raft.journal"
DUMP_FILE = "raft.dump"


class RaftNode:
    """Replicate ``Machine.apply`` across the cluster with durable, prompt commits.

    Construct it inside the running ``loop``. ``on_applied(command, result,
    events)`` runs after each command applies; ``on_restored(machine)`` after a
    snapshot replaced the machine. ``read_barrier`` serves linearizable reads
    (ReadIndex), giving up after ``read_timeout`` seconds. Peers are opaque
    handles that compare equal and hash; ``peer_addrs`` gives addresses.
    ``max_batch_requests`` and ``max_batch_bytes`` cap one batched entry.
    ``peer_tls`` is the peer port's (server, client) contexts from
    ``store.tls.peer_contexts``; ``cluster`` names the cluster to its peers.
    """

    #: Seconds between ticks when nothing happens (timers: heartbeats, elections).
    IDLE_TICK = 0.02
    #: Send a new commit index at once even when an append is about to carry it
    #: (the behaviour before piggybacking; an A/B switch for the benchmark).
    commit_index_alone = os.environ.get("STEER_STORE_COMMIT_INDEX_ALONE") == "1"

    def __init__(self, loop, self_addr, partner_addrs, data_dir, peer_tls,
                 on_applied=None, on_restored=None, timeouts=(0.8, 1.6),
                 heartbeat=0.1, log_compact_entries=5000, read_timeout=5.0,
                 max_batch_requests=MAX_BATCH_REQUESTS, max_batch_bytes=MAX_BATCH_BYTES,
                 cluster="steersman"):
        os.makedirs(data_dir, exist_ok=True)
        self.machine = Machine()
        self._on_applied = on_applied or (lambda command, result, events: None)
        self._on_restored = on_restored or (lambda machine: None)
        self._sent_log_index = 0
        self._sent_commit_index = 0
        self._loop = loop
        self._tick_scheduled = False
        self._stopped = False
        self._batcher = Batcher(max_batch_requests, max_batch_bytes)
        #: Raft entries and requests this node proposed (requests / entries = batch size).
        self.entries_proposed = 0
        self.requests_proposed = 0
        # Before the replica starts: its transport consults it for every message.
        self.read_index = readindex.ReadIndex(self, read_timeout)
        journal_file = os.path.join(data_dir, JOURNAL_FILE)
        dump_file = os.path.join(data_dir, DUMP_FILE)
        self.journal = open_journal(journal_file, dump_file)
        hooks = Hooks(apply=self._apply, after_tick=self._after_tick,
                      wake=self._schedule_tick, before_send=self._before_send,
                      on_receive=self._on_receive, save_dump=self._write_dump,
                      load_dump=self._read_dump)
        self._replica = Replica(loop, self_addr, partner_addrs, self.journal, dump_file, hooks,
                                peer_setup=PeerSetup(loop, peer_tls, cluster),
                                timeouts=timeouts, heartbeat=heartbeat,
                                log_compact_entries=log_compact_entries)
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
        if len(self._batcher) and not self._entry_in_flight():
            self._flush_proposals()
        try:
            self._replica.tick()
        except Exception:
            log.exception("event=tick_failed")

    def _idle_tick(self):
        if self._stopped:
            return
        self._tick()
        self._loop.call_later(self.IDLE_TICK, self._idle_tick)

    def _after_tick(self):
        """Ship this tick's appends now (not at the next heartbeat), then make them durable.

        This runs before the loop handles any ack, so the leader's entries are on
        disk before a commit counts them.
        """
        replica = self._replica
        if replica.is_leader():
            log_index, commit_index = self.last_log_index(), replica.commit_index()
            new_entries = log_index != self._sent_log_index
            # A new commit index alone waits when requests are waiting for it: the
            # next tick proposes them and their append carries it (one message per
            # follower instead of two). Otherwise it goes now (followers apply sooner).
            new_commit = commit_index != self._sent_commit_index and (
                self.commit_index_alone or not len(self._batcher))
            if new_entries or new_commit:
                self._sent_log_index, self._sent_commit_index = log_index, commit_index
                replica.send_append_entries()
        self.read_index.on_tick()
        # The appends leave before this member's fdatasync blocks the loop, so the
        # followers write and sync theirs at the same time instead of after it.
        replica.flush_peers()
        self.journal.sync()
        if len(self._batcher) and not self._entry_in_flight():
            self._schedule_tick()  # the entry in flight committed: send the next batch

    # -- peer traffic ----------------------------------------------------------------
    def _before_send(self, peer, message):
        """Sync the journal before a message vouches for it; stamp ReadIndex's round.

        Acks, votes and every other message wait for the journal to be on disk.
        The leader's own append-entries do not: followers write and sync in
        parallel with the leader, and the leader still syncs before it counts
        itself towards a commit (``_after_tick`` syncs before acks are polled).
        """
        if message.get("type") != "append_entries":
            self.journal.sync()
        self.read_index.stamp(peer, message)

    def _on_receive(self, peer, message, deliver):
        """Keep ReadIndex's own messages; let it see appends and their replies."""
        kind = message.get("type")
        if kind in readindex.MESSAGE_TYPES:
            self.read_index.on_message(peer, message)
        elif kind == "append_entries":
            with self.read_index.answering(peer, message):
                deliver(peer, message)
        elif kind == "next_node_idx":
            self.read_index.on_ack(peer, message)
            deliver(peer, message)
        else:
            deliver(peer, message)

    # -- proposing and applying ----------------------------------------------------
    def propose(self, command, callback):
        """Replicate ``command``; ``callback(result, error_text)`` runs in a later tick.

        The command joins the next batch; a full batch goes out at once.
        """
        self._batcher.add(msgpack.packb(command, use_bin_type=True), callback)
        if self._batcher.full():
            self._flush_proposals()
        self._schedule_tick()

    def _entry_in_flight(self):
        """True while this leader has appended an entry that has not committed yet."""
        replica = self._replica
        return replica.is_leader() and self.last_log_index() > replica.commit_index()

    def _flush_proposals(self):
        """Propose every waiting command, as few entries as the caps allow."""
        for entry, callbacks in self._batcher.take():
            self.entries_proposed += 1
            self.requests_proposed += len(callbacks)
            self._replica.propose(entry, lambda results, failure, callbacks=callbacks:
                                  settle_batch(callbacks, results, failure))

    def _apply(self, packed):
        """Apply one committed entry (a batch); never raises (PySyncObj would freeze).

        Returns the list of the batch's results, in order (a legacy single-command
        entry returns its one result).
        """
        try:
            commands, is_batch = unpack_entry(packed)
            applied = self.machine.apply_batch(commands)
        except Exception as exc:  # the machine promises not to raise; be sure
            log.exception("apply failed")
            return {"error": {"code": "invalid", "message": f"entry failed to apply: {exc}"}}
        for command, (result, events) in zip(commands, applied):
            try:
                self._on_applied(command, result, events)
            except Exception:
                log.exception("on_applied hook failed")
        results = [result for result, _ in applied]
        return results if is_batch else results[0]

    def read_barrier(self, callback):
        """Call ``callback(None)`` once a linearizable read may run here, else ``callback(error)``."""
        self.read_index.barrier(callback)
        self._schedule_tick()

    # -- snapshots -------------------------------------------------------------
    def _write_dump(self, path, raft_state):
        """Write the machine and the replica's state as one durable file."""
        write_atomically(path, _pack_dump(self.machine.to_snapshot(), raft_state))

    def _read_dump(self, path):
        """Install the dump's machine and return the replica's state from it."""
        with open(path, "rb") as f:
            dump = msgpack.unpackb(f.read(), raw=False, strict_map_key=False)
        self.machine = Machine.from_snapshot(dump["machine"])
        try:
            self._on_restored(self.machine)
        except Exception:
            log.exception("on_restored hook failed")
        return dump["raft"]

    # -- membership ------------------------------------------------------------
    def add_member(self, peer_addr, callback):
        """Add a voting member; ``callback(error_text_or_None)``."""
        self._replica.add_member(peer_addr, callback)
        self._schedule_tick()

    def remove_member(self, peer_addr, callback):
        """Remove a member; ``callback(error_text_or_None)``."""
        self._replica.remove_member(peer_addr, callback)
        self._schedule_tick()

    # -- views (the server's, and ``store.readindex.RaftView``) -----------------------
    def is_leader(self):
        return self._replica.is_leader()

    def leader(self):
        """The last known leader's peer handle, or None."""
        return self._replica.leader()

    def leader_addr(self):
        leader = self._replica.leader()
        return leader.address if leader is not None else None

    def other_peers(self):
        return self._replica.other_peers()

    def peer_addrs(self):
        """Every voting member's peer address, this node's included."""
        return self._replica.peer_addrs()

    def term(self):
        return self._replica.term()

    def last_log_index(self):
        return self.journal[-1][1] if len(self.journal) else 0

    def commit_index(self):
        return self._replica.commit_index()

    def last_applied(self):
        return self._replica.last_applied()

    def noop_index(self):
        """The index of this leader's first entry of its term (None before it led)."""
        return self._replica.noop_index()

    def send_append_entries(self):
        """Send append-entries (heartbeats if nothing is new) to every follower now."""
        self._replica.send_append_entries()

    def peer_counters(self):
        """(frames sent to peers, socket writes that carried them)."""
        return self._replica.peer_counters()

    def send_peer(self, peer, message):
        """Send ``message`` to ``peer`` over Raft's connection; False if not connected."""
        return self._replica.send(peer, message)

    def stop(self):
        """Stop ticking and close sockets and files."""
        self._stopped = True
        self._replica.stop()


def _pack_dump(machine_snapshot, raft_state):
    return msgpack.packb({"format": 1, "machine": machine_snapshot, "raft": raft_state},
                         use_bin_type=True)


def write_restored_dump(data_dir, machine_snapshot, peer_addrs):
    """Seed a fresh member's data dir with a snapshot, as if it had compacted to it.

    Every member of a restored cluster gets the same dump, whose log starts at
    index 3 of term 0, so members that join later must receive the snapshot too
    (their empty log cannot match index 3).
    """
    os.makedirs(data_dir, exist_ok=True)
    write_atomically(os.path.join(data_dir, DUMP_FILE),
                     _pack_dump(machine_snapshot, restored_raft_state(peer_addrs)))
