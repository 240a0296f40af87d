"""Linearizable reads without log entries: Raft's ReadIndex (Raft thesis, section 6.4).

A read is linearizable if it observes every write that completed before it
began. Instead of replicating a no-op through the log for each batch of reads,
the leader:

1. takes ``read_index`` = its commit index, once it has committed an entry of
   its own term (its commit index then covers every entry any earlier leader
   committed);
2. confirms it is still the leader: it starts a confirmation round ``seq`` and
   sends a heartbeat to every follower; every append-entries it sends from then
   on carries ``seq``, and a follower echoes the ``seq`` of the append it is
   answering in its ``next_node_idx`` reply. A majority (itself included) that
   echoed ``seq`` or later, while this node is still leader of the same term,
   confirms the round (the argument is in ``ReadIndex._confirmed``);
3. lets the read proceed once this node has applied ``read_index``.

A follower asks the leader for a read index with a ``steer_read_index`` peer
message (never seen by PySyncObj), then waits until it has applied that index
itself. Reads that arrive while a round (or a follower's request) is in flight
share the next one, so a burst of reads costs one heartbeat round.

Everything here runs on the event loop's thread, inside Raft's ticks.
"""

import contextlib
import time
from typing import Protocol

#: Peer message types this module handles instead of PySyncObj.
REQUEST = "steer_read_index"
REPLY = "steer_read_index_reply"
MESSAGE_TYPES = frozenset((REQUEST, REPLY))

#: Key carrying the confirmation round on append-entries and on their replies.
SEQ = "steer_seq"


class RaftView(Protocol):
    """The parts of ``store.raft.RaftNode`` that ReadIndex uses (a fake stands in for tests).

    Peers are opaque handles that compare equal and hash.
    """

    def is_leader(self): ...
    def leader(self): ...               # the last known leader's peer, or None
    def other_peers(self): ...          # the other voting members' peers
    def term(self): ...
    def commit_index(self): ...
    def last_applied(self): ...
    def noop_index(self): ...           # the leader's first index of its term, or None
    def send_append_entries(self): ...  # to every follower, now
    def send_peer(self, peer, message): ...


class _Round:
    """One leadership confirmation, shared by every read that joined it."""

    def __init__(self, seq, term, index, callbacks, now):
        self.seq, self.term, self.index = seq, term, index
        self.callbacks = callbacks
        self.started = now


class _Request:
    """A follower's outstanding request for a read index."""

    def __init__(self, rid, leader, callbacks, now):
        self.rid, self.leader, self.callbacks = rid, leader, callbacks
        self.started = self.sent = now


class ReadIndex:
    """Hand out confirmed read indexes and hold reads until they are applied.

    ``node`` is a ``RaftView`` (the ``RaftNode``); a read that cannot complete within
    ``give_up_after`` seconds fails (the client's own timeout is the same).
    """

    #: Seconds before a follower asks again (its request or the reply was lost).
    RESEND_AFTER = 1.0

    def __init__(self, node, give_up_after, clock=time.monotonic):
        self._node = node
        self._give_up_after = give_up_after
        self._clock = clock
        self.seq = 0                # last confirmation round started; stamped on appends
        self._acks = {}             # peer -> highest round it echoed
        self._waiting = []          # (callback, since): leader reads for the next round
        self._round = None
        self._asking = []           # (callback, since): follower reads for the next request
        self._request = None
        self._next_rid = 0
        self._applying = []         # (index, callback, since)
        self._echo = None           # (peer, seq) while answering a stamped append

    # -- the public side ---------------------------------------------------------
    def barrier(self, callback):
        """Call ``callback(None)`` once a linearizable read may run here, else ``callback(error)``."""
        since = self._clock()

        def indexed(index, failure):
            if failure is not None:
                callback(failure)
            else:
                self._wait_applied(index, callback, since)

        self.obtain(indexed)

    def obtain(self, callback):
        """Call ``callback(read_index, None)`` with a confirmed read index, or ``(None, error)``."""
        node, now = self._node, self._clock()
        if node.is_leader():
            self._waiting.append((callback, now))
            self._start_round()
        elif node.leader() is not None:
            self._asking.append((callback, now))
            self._send_request()
        else:
            callback(None, "the cluster has no leader right now (election or lost quorum)")

    def on_tick(self):
        """Drive rounds, requests and applied-index waits; Raft calls this after every tick."""
        self._drive_round()
        self._drive_request()
        self._drive_applying()

    # -- hooks for the transport ----------------------------------------------------
    def on_message(self, peer, message):
        """Handle a ``steer_read_index`` or ``steer_read_index_reply`` message from ``peer``."""
        if message.get("type") == REQUEST:
            self._on_request(peer, message)
        else:
            self._on_reply(message)

    def on_ack(self, peer, message):
        """Record the round a follower's ``next_node_idx`` reply echoes."""
        seq = message.get(SEQ)
        if isinstance(seq, int) and seq > self._acks.get(peer, 0):
            self._acks[peer] = seq

    @contextlib.contextmanager
    def answering(self, peer, message):
        """Echo the round of the append-entries being handled in the replies it causes."""
        self._echo = (peer, message.get(SEQ))
        try:
            yield
        finally:
            self._echo = None

    def stamp(self, peer, message):
        """Tag an outgoing append-entries with the current round, or a reply with its echo."""
        kind = message.get("type")
        if kind == "append_entries":
            message[SEQ] = self.seq
        elif kind == "next_node_idx" and self._echo is not None:
            echo_peer, seq = self._echo
            if echo_peer == peer and seq is not None:
                message[SEQ] = seq

    # -- leader: confirmation rounds ----------------------------------------------------
    def _start_round(self):
        """Start a round for the waiting reads if none is in flight and the leader may serve."""
        node = self._node
        if self._round is not None or not self._waiting or not node.is_leader():
            return
        noop_index = node.noop_index()
        if noop_index is None or node.commit_index() < noop_index:
            return  # nothing of this term committed yet: the commit index may lag
        self.seq += 1
        callbacks = [callback for callback, _ in self._waiting]
        self._waiting = []
        self._round = _Round(self.seq, node.term(), node.commit_index(),
                             callbacks, self._clock())
        if not self._confirmed(self._round):
            node.send_append_entries()
        else:
            self._finish_round(self._round.index, None)

    def _confirmed(self, round_):
        """Tell whether a majority acknowledged this leader after ``round_`` began.

        A follower echoes ``round_.seq`` (or later) only from an append-entries
        sent after the round began, and PySyncObj answers an append only when
        its term is at least the follower's own. As this node is still leader
        of ``round_.term`` (checked by the caller), every such append carried
        that term, so each echoing follower had not yet moved to a later term
        at some moment after the round began. A new leader needs votes from a
        majority, and a voter moves to the new term first; the two majorities
        share a member, so no later leader existed when the round began, and no
        write completed before it is missing from ``round_.index``. Replies to
        appends sent before the round carry older rounds and never count.
        """
        others = self._node.other_peers()
        acks = 1 + sum(1 for peer in others if self._acks.get(peer, 0) >= round_.seq)
        return acks * 2 > len(others) + 1

    def _drive_round(self):
        round_, node = self._round, self._node
        if round_ is not None:
            if not node.is_leader() or node.term() != round_.term:
                self._round = None
                self._redispatch(round_.callbacks)
            elif self._confirmed(round_):
                self._finish_round(round_.index, None)
            elif self._clock() - round_.started > self._give_up_after:
                self._finish_round(None, "the leader could not confirm its leadership "
                                         f"within {self._give_up_after:g}s (no quorum?)")
        if self._waiting and not node.is_leader():
            waiting, self._waiting = self._waiting, []
            self._redispatch([callback for callback, _ in waiting])
        self._waiting = self._unexpired(self._waiting, "the leader has not committed an "
                                        "entry of its term yet")
        self._start_round()

    def _finish_round(self, index, failure):
        callbacks, self._round = self._round.callbacks, None
        for callback in callbacks:
            callback(index, failure)
        self._start_round()

    def _redispatch(self, callbacks):
        """Send reads whose round lost its leader wherever a read index is available now."""
        for callback in callbacks:
            self.obtain(callback)

    def _on_request(self, peer, message):
        rid = message.get("rid")

        def answer(index, failure):
            reply = {"type": REPLY, "rid": rid}
            if failure is None:
                reply["index"] = index
            else:
                reply["error"] = failure
            self._node.send_peer(peer, reply)

        if self._node.is_leader():
            self._waiting.append((answer, self._clock()))
            self._start_round()
        else:
            answer(None, "the node asked for a read index is not the leader any more")

    # -- follower: asking the leader ------------------------------------------------------
    def _send_request(self):
        """Ask the leader for a read index for the waiting reads unless a request is in flight."""
        if self._request is not None or not self._asking:
            return
        leader = self._node.leader()
        if leader is None or self._node.is_leader():
            return  # ``_drive_request`` moves or fails them
        self._next_rid += 1
        callbacks = [callback for callback, _ in self._asking]
        self._asking = []
        self._request = _Request(self._next_rid, leader, callbacks, self._clock())
        self._node.send_peer(leader, {"type": REQUEST, "rid": self._next_rid})

    def _on_reply(self, message):
        request = self._request
        if request is None or message.get("rid") != request.rid:
            return  # a duplicate, or the reply to a request given up on
        self._request = None
        index, failure = message.get("index"), message.get("error")
        if not isinstance(index, int) and failure is None:
            failure = "the leader's read index reply was malformed"
        for callback in request.callbacks:
            callback(index if failure is None else None,
                     None if failure is None else str(failure))
        self._send_request()

    def _drive_request(self):
        request, node, now = self._request, self._node, self._clock()
        if request is not None:
            leader = node.leader()
            if node.is_leader() or leader is None:
                self._request = None
                self._redispatch(request.callbacks)
            elif now - request.started > self._give_up_after:
                self._request = None
                for callback in request.callbacks:
                    callback(None, f"no read index from the leader within "
                                   f"{self._give_up_after:g}s")
            elif leader != request.leader or now - request.sent > self.RESEND_AFTER:
                # Any reply to the same rid is still valid for these reads: the
                # leader confirms after it receives the request.
                request.leader, request.sent = leader, now
                node.send_peer(leader, {"type": REQUEST, "rid": request.rid})
        if self._asking and (node.is_leader() or node.leader() is None):
            asking, self._asking = self._asking, []
            self._redispatch([callback for callback, _ in asking])
        self._send_request()

    # -- everyone: waiting for the applied index ---------------------------------------------
    def _wait_applied(self, index, callback, since):
        if self._node.last_applied() >= index:
            callback(None)
        else:
            self._applying.append((index, callback, since))

    def _drive_applying(self):
        if not self._applying:
            return
        applied, now = self._node.last_applied(), self._clock()
        waiting, self._applying = self._applying, []
        pending = []
        for index, callback, since in waiting:
            if applied >= index:
                callback(None)
            elif now - since > self._give_up_after:
                callback(f"this node did not apply index {index} within "
                         f"{self._give_up_after:g}s")
            else:
                pending.append((index, callback, since))
        self._applying.extend(pending)

    def _unexpired(self, waiting, why):
        """Fail the entries of ``waiting`` older than the time limit; return the others."""
        now, kept = self._clock(), []
        for callback, since in waiting:
            if now - since > self._give_up_after:
                callback(None, f"no read index within {self._give_up_after:g}s: {why}")
            else:
                kept.append((callback, since))
        return kept
