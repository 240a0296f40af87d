"""Adapt PySyncObj to the store: the only module that imports ``pysyncobj``.

Every use of PySyncObj's names, public or private (``_SyncObj__...``), and every
patch of its modules lives here, behind ``Replica``: a ``SyncObj`` with a small
snake_case interface that ``store.raft.RaftNode`` owns. Pinned versions only
(``REQUIRED``): the private names change between releases, so an unsupported
version is refused at import with the fix, not left to fail later in a tick.

What the patches do:

- the journal and the poller are ours (``store.journal.DurableJournal``, under
  PySyncObj's method names, and ``LoopPoller``, which hands PySyncObj's sockets
  to the asyncio loop), through PySyncObj's module-level factories;
- the transport is ours (``_PeerTransport`` over ``store.peer_transport``: mutual
  TLS and msgpack frames on the loop, no shared secret); it lets the owner see
  every message going out and coming in (durability and ReadIndex), checks each
  incoming one (``store.peer_messages``), and keeps the leader's pipelining intact;
- PySyncObj's pickle module is replaced by ``store.raft_codec.EntryCodec`` (log
  entries, membership changes and the dump's Raft state in msgpack), so no byte
  from a peer reaches an unrestricted ``pickle.loads`` (old pickled entries go
  through ``store.raft_codec.SafeUnpickler``).

Everything here runs on the event loop's thread.
"""

import dataclasses
import re
import threading
import time
from collections.abc import Callable
from importlib import metadata

from store import peer_messages
from store.journal import DurableJournal
from store.peer_frames import APPEND_BYTES
from store.peer_transport import PeerNetwork
from store.raft_codec import EntryCodec, SafeUnpickler

#: The PySyncObj releases this module was written and tested against.
REQUIRED = ">=0.3.17,<0.4"
_LOWEST, _BEYOND = (0, 3, 17), (0, 4)


class UnsupportedPySyncObj(RuntimeError):
    """The installed PySyncObj is missing or not a version this module supports."""


def check_version(installed):
    """Raise ``UnsupportedPySyncObj`` unless ``installed`` (a version string or None) fits ``REQUIRED``."""
    fix = f"install a supported one with: pip install 'pysyncobj{REQUIRED}'"
    if installed is None:
        raise UnsupportedPySyncObj(f"the store needs pysyncobj{REQUIRED}, which is not "
                                   f"installed; {fix}")
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", installed)
    parts = tuple(int(p) for p in match.groups(default="0")) if match else None
    if parts is None or not _LOWEST <= parts < _BEYOND:
        raise UnsupportedPySyncObj(f"the store needs pysyncobj{REQUIRED} but {installed} "
                                   f"is installed (this module uses its private names); {fix}")


def installed_version():
    """Return the installed PySyncObj's version string, or None if it is not installed."""
    try:
        return metadata.version("pysyncobj")
    except metadata.PackageNotFoundError:
        return None


# Before importing it: an unsupported release may lack the names imported below.
check_version(installed_version())

from pysyncobj import SyncObj, SyncObjConf, replicated  # noqa: E402
from pysyncobj import syncobj as _syncobj_module  # noqa: E402
from pysyncobj.config import FAIL_REASON  # noqa: E402
from pysyncobj.node import Node, TCPNode  # noqa: E402
from pysyncobj.poller import POLL_EVENT_TYPE  # noqa: E402
from pysyncobj.transport import Transport, TransportNotReadyError  # noqa: E402

#: Why a proposed command did not apply, in words a client can act on.
FAILURES = {
    FAIL_REASON.QUEUE_FULL: "the node's command queue is full; retry later",
    FAIL_REASON.MISSING_LEADER: "the cluster has no leader right now (election or lost quorum)",
    FAIL_REASON.DISCARDED: "the command was discarded by a new leader",
    FAIL_REASON.NOT_LEADER: "leadership changed before the command committed",
    FAIL_REASON.LEADER_CHANGED: "leadership changed before the command committed",
    FAIL_REASON.REQUEST_DENIED: "the request was denied (another membership change is in progress?)",
    FAIL_REASON.UNKNOWN_OUTCOME: "the outcome is unknown",
}


def failure_text(reason):
    """Return None for success, else why the command failed."""
    if reason == FAIL_REASON.SUCCESS:
        return None
    return FAILURES.get(reason, f"failed with reason {reason}")


# PySyncObj builds its journal and poller through module-level factories; we
# hand it ours for the node being constructed (the lock keeps two nodes built on
# different threads, as in-process tests may, from swapping them).
_construction_lock = threading.Lock()
_next_journal = None
_next_poller = None
_syncobj_module.createJournal = lambda path: _next_journal
_syncobj_module.createPoller = lambda poller_type: _next_poller


# Log entries, membership changes and the dump's Raft state: msgpack, not pickle.
EntryCodec.node_types = (Node,)
SafeUnpickler.allowed = {("pysyncobj.node", "TCPNode"): TCPNode, ("pysyncobj.node", "Node"): Node}
_syncobj_module.pickle = EntryCodec


class _Journal(DurableJournal):
    """``DurableJournal`` under the names of PySyncObj's journal interface."""

    deleteEntriesFrom = DurableJournal.delete_from  # noqa: N815 (pysyncobj's names)
    deleteEntriesTo = DurableJournal.delete_to  # noqa: N815
    _destroy = DurableJournal.close
    setRaftCommitIndex = DurableJournal.set_commit_index  # noqa: N815
    getRaftCommitIndex = DurableJournal.commit_index  # noqa: N815
    setCurrentTerm = DurableJournal.set_term  # noqa: N815
    getCurrentTerm = DurableJournal.term  # noqa: N815
    getVotedForNodeId = DurableJournal.voted_for  # noqa: N815
    onOneSecondTimer = DurableJournal.every_second  # noqa: N815


def open_journal(path, dump_path):
    """Open the durable journal at ``path`` in the form a ``Replica`` needs."""
    return _Journal(path, dump_path)


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


class _PeerTransport(Transport):
    """PySyncObj's transport over ``store.peer_transport.PeerNetwork`` (mutual TLS, msgpack).

    ``Hooks.before_send`` sees (and may stamp) each outgoing message;
    ``Hooks.on_receive`` gets each incoming one, checked by ``store.peer_messages``,
    with ``deliver``, which hands it to PySyncObj (the owner may keep its own
    message types to itself). Read-only nodes and PySyncObj's utility commands
    over the peer port are not supported.

    Pipelining: PySyncObj sets a follower's next index from every success reply,
    so a reply to an older append pulls it back and the entries sent since go out
    twice (the follower then truncates and rewrites them). Only a rejection
    (``reset``) may move the next index back.
    """

    def __init__(self, syncObj, selfNode, otherNodes):  # noqa: N803 (pysyncobj's names)
        super().__init__(syncObj, selfNode, otherNodes)
        self._syncObj = syncObj
        self._nodes = {}
        self._ready = False
        self._bind_attempts = 0
        setup = syncObj.peer_setup
        self.network = PeerNetwork(
            setup.loop, selfNode.address, setup.contexts, setup.cluster,
            on_connected=lambda addr: self._onNodeConnected(self._nodes[addr]),
            on_disconnected=lambda addr: self._onNodeDisconnected(self._nodes[addr]),
            on_message=self._received, on_event=syncObj.hooks.wake,
            timeout=syncObj.conf.connectionTimeout, retry=syncObj.conf.connectionRetryTime)
        syncObj.addOnTickCallback(self.network.tick)
        for node in otherNodes:
            self.addNode(node)

    def _received(self, addr, message):
        node = self._nodes.get(addr)
        if node is not None:
            self._onMessageReceived(node, peer_messages.check(message))

    def tryGetReady(self):  # noqa: N802
        if self._ready:
            return
        try:
            self.network.bind()
        except OSError as exc:
            self._bind_attempts += 1
            if self._bind_attempts >= self._syncObj.conf.maxBindRetries:
                raise TransportNotReadyError(f"cannot bind the peer port: {exc}") from exc
            time.sleep(self._syncObj.conf.bindRetryTime)
            return
        self._ready = True

    @property
    def ready(self):
        return self._ready

    def waitReady(self):  # noqa: N802
        while not self._ready:
            self.tryGetReady()

    def addNode(self, node):  # noqa: N802
        self._nodes[node.address] = node
        self.network.add_peer(node.address)

    def dropNode(self, node):  # noqa: N802
        self.network.drop_peer(node.address)
        self._nodes.pop(node.address, None)

    def send(self, node, message):
        self._syncObj.hooks.before_send(node, message)
        return self.network.send(node.address, message)

    def destroy(self):
        for setter in (self.setOnMessageReceivedCallback, self.setOnNodeConnectedCallback,
                       self.setOnNodeDisconnectedCallback):
            setter(None)
        self.network.close()

    def setOnMessageReceivedCallback(self, callback):  # noqa: N802 (pysyncobj's name)
        if callback is None:
            return super().setOnMessageReceivedCallback(None)
        on_receive = self._syncObj.hooks.on_receive

        def deliver_ack(node, message):
            if not message.get("success") or message.get("reset"):
                return callback(node, message)
            next_index = self._syncObj._SyncObj__raftNextIndex
            before = next_index.get(node)
            callback(node, message)
            if before is not None and next_index.get(node, before) < before:
                next_index[node] = before

        def receive(node, message):
            deliver = deliver_ack if message.get("type") == "next_node_idx" else callback
            on_receive(node, message, deliver)
        super().setOnMessageReceivedCallback(receive)


@dataclasses.dataclass
class PeerSetup:
    """What the peer transport needs: the loop, mutual TLS contexts and the cluster's name."""

    loop: object
    contexts: tuple          # (server, client) from store.tls.peer_contexts
    cluster: str


@dataclasses.dataclass
class Hooks:
    """What the owner of a ``Replica`` does for it; every hook runs on the loop's thread."""

    apply: Callable          # (packed command) -> result; must never raise
    after_tick: Callable     # () -> None, after each tick
    wake: Callable           # () -> None: a socket is ready, tick soon
    before_send: Callable    # (peer, message) -> None, just before it leaves
    on_receive: Callable     # (peer, message, deliver) -> None
    save_dump: Callable      # (path, raft_state bytes) -> None, durable when it returns
    load_dump: Callable      # (path) -> raft_state bytes


class Replica(SyncObj):
    """A PySyncObj node driven by the loop's ticks, seen through snake_case methods.

    Peers are opaque handles (PySyncObj's nodes): compare and hash them, or ask
    ``peer_addrs`` for addresses.
    """

    def __init__(self, loop, self_addr, partner_addrs, journal, dump_file, hooks, *,
                 peer_setup, timeouts, heartbeat, log_compact_entries):
        """Start a replica on ``journal`` (from ``open_journal``) and ``dump_file`` beside it.

        ``peer_setup`` (a ``PeerSetup``) configures the peer port's mutual TLS.
        """
        global _next_journal, _next_poller
        self.hooks = hooks     # before PySyncObj starts: the transport reads both
        self.peer_setup = peer_setup
        conf = SyncObjConf(
            autoTick=False,
            bindAddress=self_addr,
            journalFile=journal.path,
            fullDumpFile=dump_file,
            serializer=lambda path, raft_data: hooks.save_dump(path, encode_raft_state(raft_data)),
            deserializer=lambda path: decode_raft_state(hooks.load_dump(path)),
            # No entry reaches this size (client requests are capped far below it),
            # so appends never take PySyncObj's chunked path, which pickles.
            appendEntriesBatchSizeBytes=APPEND_BYTES,
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
            _next_journal, _next_poller = journal, LoopPoller(loop, hooks.wake)
            try:
                super().__init__(self_addr, list(partner_addrs), conf,
                                 transportClass=_PeerTransport)
            finally:
                _next_journal = _next_poller = None
        self.addOnTickCallback(hooks.after_tick)

    # The replicated method's name and version identify it in the log: keep both.
    @replicated(ver=0)
    def _apply_command(self, packed):
        return self.hooks.apply(packed)

    def propose(self, packed, callback):
        """Replicate ``packed``; ``callback(result, failure_text_or_None)`` runs in a later tick."""
        self._apply_command(packed, callback=lambda result, reason:
                            callback(result, failure_text(reason)))

    def add_member(self, peer_addr, callback):
        """Add a voting member; ``callback(failure_text_or_None)``."""
        self.addNodeToCluster(peer_addr, callback=lambda _, reason: callback(failure_text(reason)))

    def remove_member(self, peer_addr, callback):
        """Remove a member; ``callback(failure_text_or_None)``."""
        self.removeNodeFromCluster(peer_addr,
                                   callback=lambda _, reason: callback(failure_text(reason)))

    def tick(self):
        self.doTick(0.0)

    def is_leader(self):
        return self._isLeader()

    def leader(self):
        """The last known leader's peer handle (this node's own when it leads), or None."""
        return self._getLeader()

    def term(self):
        return self.raftCurrentTerm

    def commit_index(self):
        return self.raftCommitIndex

    def last_applied(self):
        return self.raftLastApplied

    def noop_index(self):
        """The index of this leader's first entry of its term (None before it led)."""
        return self._SyncObj__noopIDx

    def other_peers(self):
        """The other voting members' peer handles."""
        return self.otherNodes

    def peer_addrs(self):
        """Every voting member's peer address, this node's included."""
        return sorted([self.selfNode.address] + [n.address for n in self.otherNodes])

    def send(self, peer, message):
        """Send ``message`` to ``peer`` over Raft's connection; False if not connected."""
        return self._SyncObj__transport.send(peer, message)

    def peer_counters(self):
        """(frames sent to peers, socket writes that carried them)."""
        network = self._SyncObj__transport.network
        return network.frames_sent, network.writes_sent

    def send_append_entries(self):
        """Send append-entries (or heartbeats) to every follower now."""
        self._SyncObj__sendAppendEntries()

    def flush_peers(self):
        """Write the frames queued for peers to their sockets now."""
        self._SyncObj__transport.network.flush()

    def stop(self):
        """Close sockets and files."""
        self.destroy()


def restored_raft_state(peer_addrs):
    """Return the Raft state of a dump whose log was compacted to index 3 of term 0."""
    noop = bytes([_syncobj_module._COMMAND_TYPE.NO_OP])
    return encode_raft_state(((noop, 3, 0), (noop, 2, 0), {TCPNode(a) for a in peer_addrs}))


def encode_raft_state(raft_state):
    """Encode PySyncObj's dump state (two log entries and the member set) without pickle."""
    return EntryCodec.dumps(raft_state)


def decode_raft_state(data):
    """Decode ``encode_raft_state``'s bytes (or an old dump's restricted pickle)."""
    newer, older, members = EntryCodec.loads(data)
    return (tuple(newer), tuple(older),
            {m if isinstance(m, Node) else TCPNode(m) for m in members})
