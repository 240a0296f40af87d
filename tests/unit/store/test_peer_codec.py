"""The peer port's frames and message checks, and the log entry codec that replaced pickle."""

import os
import pickle

import msgpack
import pytest

from store import peer_frames, peer_messages, peer_transport, readindex
from store.peer_frames import FrameError, FrameReader, pack, unpack
from store.peer_transport import certificate_names_host
from store.pysyncobj_compat import (
    _syncobj_module,
    decode_raft_state,
    encode_raft_state,
    restored_raft_state,
)
from store.raft_codec import MAGIC, EntryCodec, UnsafePickle


class _RunsCode:
    """Unpickling this would run ``os.system``: the attack a peer's bytes could carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# -- frames ---------------------------------------------------------------------------
def test_frames_split_across_reads_come_out_whole_and_in_order():
    messages = [{"type": "ping"}, {"type": "append_entries", "term": 3, "commit_index": 1,
                                   "entries": ((b"x" * 5000, 1, 3),)}]
    stream = b"".join(pack(m) for m in messages)
    reader, bodies = FrameReader(peer_frames.MAX_FRAME_BYTES), []
    for i in range(0, len(stream), 7):
        bodies += reader.feed(stream[i:i + 7])
    assert [unpack(b) for b in bodies] == [{"type": "ping"}, {
        "type": "append_entries", "term": 3, "commit_index": 1,
        "entries": ((b"x" * 5000, 1, 3),)}]


def test_a_length_over_the_limit_is_refused_from_the_header_alone():
    reader = FrameReader(peer_frames.MAX_HELLO_BYTES)
    with pytest.raises(FrameError, match="over the limit"):
        list(reader.feed(peer_frames.HEADER.pack(peer_frames.MAX_HELLO_BYTES + 1)))
    with pytest.raises(FrameError, match="over the limit"):
        list(FrameReader(peer_frames.MAX_FRAME_BYTES).feed(b"\xff\xff\xff\xff"))


def test_the_limit_rises_after_the_hello_even_within_one_read():
    big = {"type": "append_entries", "term": 1, "commit_index": 0, "prevLogIdx": 0,
           "prevLogTerm": 0, "entries": ((b"e" * 100_000, 1, 1),)}
    reader, seen = FrameReader(peer_frames.MAX_HELLO_BYTES), []
    for body in reader.feed(pack({"type": "hello"}) + pack(big)):
        seen.append(unpack(body))
        reader.limit = peer_frames.MAX_FRAME_BYTES      # what identifying the link does
    assert seen == [{"type": "hello"}, big]


@pytest.mark.parametrize("body", [b"\xc1\xc1", msgpack.packb([1, 2]), msgpack.packb({"a": 1}),
                                  msgpack.packb({"type": 7}), b"", pickle.dumps({"type": "x"})])
def test_bodies_that_are_not_a_typed_map_are_refused(body):
    with pytest.raises(FrameError):
        unpack(body)


def test_decoding_gives_tuples_where_pysyncobj_had_them():
    message = unpack(pack({"type": "append_entries", "serialized": (b"d", True, False)})[4:])
    assert message["serialized"] == (b"d", True, False)


# -- message checks -----------------------------------------------------------------
GOOD = [
    {"type": "request_vote", "term": 2, "last_log_index": 5, "last_log_term": 1},
    {"type": "response_vote", "term": 2},
    {"type": "append_entries", "term": 2, "commit_index": 4, "prevLogIdx": 4, "prevLogTerm": 1,
     "entries": ((b"\x00", 5, 2),), readindex.SEQ: 9},
    {"type": "append_entries", "term": 2, "commit_index": 4, "serialized": (b"dump", True, False)},
    {"type": "append_entries", "term": 2, "commit_index": 4, "serialized": None},
    {"type": "next_node_idx", "next_node_idx": 6, "reset": False, "success": True},
    {"type": "apply_command_response", "request_id": 1, "error": 3},
    {"type": readindex.REQUEST, "rid": 1},
    {"type": readindex.REPLY, "rid": 1, "index": 7},
]


@pytest.mark.parametrize("message", GOOD)
def test_what_members_send_passes_the_check(message):
    assert peer_messages.check(unpack(pack(message)[4:])) == message


BAD = [
    ({"type": "request_vote", "term": "2", "last_log_index": 5, "last_log_term": 1}, "wrong type"),
    ({"type": "request_vote", "term": 2}, "lacks"),
    ({"type": "append_entries", "term": 2, "commit_index": 4, "prevLogIdx": 1, "prevLogTerm": 1,
      "transmission": "finish", "data": b"\x80\x02"}, "unexpected field"),
    ({"type": "append_entries", "term": 2, "commit_index": 4, "prevLogIdx": 1, "prevLogTerm": 1,
      "entries": ((b"x", "1", 2),)}, "wrong type"),
    ({"type": "append_entries", "term": 2, "commit_index": 4, "prevLogIdx": 1}, "both"),
    ({"type": "next_node_idx", "next_node_idx": 6, "reset": 0, "success": True}, "wrong type"),
    ({"type": "set_version", "ver": 1}, "unknown"),
    ({"type": "response_vote", "term": True}, "wrong type"),
]


@pytest.mark.parametrize("message,why", BAD)
def test_wrong_messages_are_refused_with_the_reason(message, why):
    with pytest.raises(peer_messages.BadMessage, match=why):
        peer_messages.check(unpack(pack(message)[4:]))


# -- certificates --------------------------------------------------------------------
def test_the_certificate_must_name_the_claimed_host():
    cert = {"subjectAltName": (("DNS", "s1"), ("IP Address", "127.0.0.1"), ("IP Address", "::1"))}
    assert certificate_names_host(cert, "127.0.0.1")
    assert certificate_names_host(cert, "[::1]")
    assert certificate_names_host(cert, "S1")
    assert not certificate_names_host(cert, "127.0.0.2")
    assert not certificate_names_host(cert, "s2")
    assert not certificate_names_host(None, "127.0.0.1")


# -- the entry codec -------------------------------------------------------------------
def test_pysyncobj_pickles_through_the_msgpack_codec():
    assert _syncobj_module.pickle is EntryCodec
    command = (3, (b"packed \x00 bytes",))
    encoded = EntryCodec.dumps(command)
    assert encoded[:1] == MAGIC and b"pickle" not in encoded
    assert EntryCodec.loads(encoded) == command
    assert EntryCodec.loads(EntryCodec.dumps(7)) == 7


def test_a_membership_change_names_the_node_by_address():
    node = _syncobj_module.TCPNode("127.0.0.1:4001")
    assert EntryCodec.loads(EntryCodec.dumps(["add", node.id, node])) == \
        ("add", "127.0.0.1:4001", "127.0.0.1:4001")


def test_old_pickled_entries_still_load():
    assert EntryCodec.loads(pickle.dumps((3, (b"old",)), 2)) == (3, (b"old",))
    old_state = ((b"\x00", 3, 0), (b"\x00", 2, 0), {_syncobj_module.TCPNode("127.0.0.1:1")})
    assert decode_raft_state(pickle.dumps(old_state)) == old_state


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_a_pickle_that_runs_code_is_refused_and_does_not_run(tmp_path, protocol):
    marker = tmp_path / "ran"
    evil = pickle.dumps((3, (_RunsCode(marker),)), protocol)
    with pytest.raises(UnsafePickle, match="posix.system|os.system"):
        EntryCodec.loads(evil)
    with pytest.raises(UnsafePickle):
        _syncobj_module.pickle.loads(evil)     # the name PySyncObj applies entries with
    assert not marker.exists()


def test_the_dump_state_round_trips_without_pickle():
    state = restored_raft_state(["127.0.0.1:2", "127.0.0.1:1"])
    assert state[:1] == MAGIC
    newer, older, members = decode_raft_state(state)
    assert (newer[1:], older[1:]) == ((3, 0), (2, 0))
    assert {m.address for m in members} == {"127.0.0.1:1", "127.0.0.1:2"}
    assert decode_raft_state(encode_raft_state((newer, older, members))) == (newer, older, members)


# -- one link: coalescing and backpressure, over a fake transport ----------------------
class _FakeLoop:
    def __init__(self):
        self.soon = []

    def call_soon(self, fn, *args):
        self.soon.append((fn, args))

    def run(self):
        while self.soon:
            fn, args = self.soon.pop(0)
            fn(*args)


class _FakeNetwork:
    def __init__(self):
        self.loop, self.made, self.lost, self.frames = _FakeLoop(), [], [], []
        self.frames_sent = self.writes_sent = 0

    def clock(self):
        return 0.0

    def link_made(self, link):
        self.made.append(link)

    def link_lost(self, link):
        self.lost.append(link)

    def frame_received(self, link, message):
        self.frames.append(message)


class _FakeTransport:
    def __init__(self, buffered=0):
        self.writes, self.buffered, self.aborted = [], buffered, False

    def write(self, data):
        self.writes.append(data)

    def get_write_buffer_size(self):
        return self.buffered

    def get_extra_info(self, name):
        return None

    def abort(self):
        self.aborted = True


def test_messages_sent_in_one_loop_turn_leave_in_one_write():
    network, transport = _FakeNetwork(), _FakeTransport()
    link = peer_transport.PeerLink(network, "127.0.0.1:1")
    link.connection_made(transport)
    for rid in range(50):
        assert link.send({"type": readindex.REQUEST, "rid": rid})
    network.loop.run()
    assert len(transport.writes) == 1 and (network.frames_sent, network.writes_sent) == (50, 1)
    reader = FrameReader(peer_frames.MAX_FRAME_BYTES)
    assert [unpack(b)["rid"] for b in reader.feed(transport.writes[0])] == list(range(50))


def test_a_peer_that_does_not_read_is_dropped_not_buffered_for():
    network = _FakeNetwork()
    transport = _FakeTransport(buffered=peer_transport.MAX_QUEUED_BYTES)
    link = peer_transport.PeerLink(network, "127.0.0.1:1")
    link.connection_made(transport)
    assert not link.send({"type": "ping"})
    assert transport.aborted and not link.send({"type": "ping"})


def test_a_hostile_frame_aborts_only_its_link_before_the_network_sees_it():
    network, transport = _FakeNetwork(), _FakeTransport()
    link = peer_transport.PeerLink(network)            # not identified yet: hello-sized cap
    link.connection_made(transport)
    link.data_received(peer_frames.HEADER.pack(1 << 20) + b"x" * 100)
    assert transport.aborted and network.frames == []
