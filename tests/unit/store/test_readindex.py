"""ReadIndex bookkeeping against a fake Raft node: what confirms a round and what never does."""

import inspect

from store.raft import RaftNode
from store.readindex import REPLY, REQUEST, SEQ, RaftView, ReadIndex
from tests.support.fake_raft import FakeRaftNode


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def make(node, give_up_after=5.0):
    clock = Clock()
    return ReadIndex(node, give_up_after, clock=clock), clock


def ack(reads, peer, seq):
    reads.on_ack(peer, {"type": "next_node_idx", SEQ: seq})


def collect():
    results = []
    return results, lambda index, failure: results.append((index, failure))


def test_leader_confirms_with_a_majority_echo_of_the_round():
    node = FakeRaftNode()
    reads, _ = make(node)
    results, callback = collect()
    reads.obtain(callback)
    assert node.heartbeats == 1 and results == []
    ack(reads, "b", reads.seq)
    reads.on_tick()
    assert results == [(10, None)]


def test_replies_to_appends_sent_before_the_round_never_confirm_it():
    node = FakeRaftNode()
    reads, _ = make(node)
    results, callback = collect()
    reads.obtain(callback)
    ack(reads, "b", reads.seq - 1)
    ack(reads, "c", reads.seq - 1)
    reads.on_tick()
    assert results == []


def test_outgoing_appends_carry_the_round_and_replies_echo_it():
    node = FakeRaftNode()
    reads, _ = make(node)
    reads.obtain(lambda index, failure: None)
    append = {"type": "append_entries"}
    reads.stamp("b", append)
    assert append[SEQ] == reads.seq
    follower = ReadIndex(FakeRaftNode(leader=False), 5.0)
    reply = {"type": "next_node_idx"}
    with follower.answering("a", append):
        follower.stamp("a", reply)
    assert reply[SEQ] == reads.seq
    unrelated = {"type": "next_node_idx"}
    follower.stamp("a", unrelated)
    assert SEQ not in unrelated


def test_a_leader_that_lost_its_term_fails_the_round_instead_of_confirming():
    node = FakeRaftNode()
    reads, _ = make(node)
    results, callback = collect()
    reads.obtain(callback)
    node.current_term, node.leading, node.known_leader = 4, False, None
    ack(reads, "b", reads.seq)
    reads.on_tick()
    assert len(results) == 1 and results[0][0] is None


def test_no_read_index_before_the_leader_commits_an_entry_of_its_term():
    node = FakeRaftNode()
    node.noop = 11
    reads, _ = make(node)
    results, callback = collect()
    reads.obtain(callback)
    reads.on_tick()
    assert node.heartbeats == 0 and results == []
    node.commit = 11
    reads.on_tick()
    ack(reads, "c", reads.seq)
    reads.on_tick()
    assert results == [(11, None)]


def test_single_node_cluster_needs_no_confirmation():
    node = FakeRaftNode(others=())
    reads, _ = make(node)
    results, callback = collect()
    reads.obtain(callback)
    assert results == [(10, None)] and node.heartbeats == 0


def test_reads_arriving_during_a_round_share_the_next_one():
    node = FakeRaftNode()
    reads, _ = make(node)
    first, second = collect(), collect()
    reads.obtain(first[1])
    reads.obtain(second[1])
    reads.obtain(second[1])
    assert node.heartbeats == 1
    node.commit = 12
    ack(reads, "b", reads.seq)
    reads.on_tick()
    assert first[0] == [(10, None)] and node.heartbeats == 2
    ack(reads, "b", reads.seq)
    reads.on_tick()
    assert second[0] == [(12, None), (12, None)]


def test_unconfirmed_round_gives_up_after_the_time_limit():
    node = FakeRaftNode()
    reads, clock = make(node, give_up_after=2.0)
    results, callback = collect()
    reads.obtain(callback)
    clock.now += 2.5
    reads.on_tick()
    assert len(results) == 1 and results[0][0] is None


def test_follower_asks_the_leader_and_waits_until_it_applied_the_index():
    node = FakeRaftNode(leader=False)
    node.known_leader = "a"
    reads, _ = make(node)
    done = []
    reads.barrier(done.append)
    peer, request = node.sent[-1]
    assert peer == "a" and request["type"] == REQUEST
    reads.on_message("a", {"type": REPLY, "rid": request["rid"], "index": 12})
    assert done == []
    node.applied = 12
    reads.on_tick()
    assert done == [None]


def test_follower_fails_fast_without_a_leader_and_times_out_without_a_reply():
    node = FakeRaftNode(leader=False)
    reads, clock = make(node, give_up_after=2.0)
    results, callback = collect()
    reads.obtain(callback)
    assert len(results) == 1 and results[0][0] is None
    node.known_leader = "a"
    reads.obtain(callback)
    clock.now += 1.5
    reads.on_tick()
    assert len(node.sent) == 2  # asked again: the request or its reply may be lost
    clock.now += 1.0
    reads.on_tick()
    assert len(results) == 2 and results[1][0] is None
    reads.on_message("a", {"type": REPLY, "rid": node.sent[0][1]["rid"], "index": 1})
    assert len(results) == 2


def test_leader_answers_a_followers_request_after_confirmation():
    node = FakeRaftNode()
    reads, _ = make(node)
    reads.on_message("b", {"type": REQUEST, "rid": 7})
    assert node.sent == []
    ack(reads, "c", reads.seq)
    reads.on_tick()
    assert node.sent == [("b", {"type": REPLY, "rid": 7, "index": 10})]


def test_the_raft_node_and_the_fake_both_offer_what_read_index_uses():
    wanted = [name for name, _ in inspect.getmembers(RaftView, inspect.isfunction)
              if not name.startswith("_")]
    assert "noop_index" in wanted
    for cls in (RaftNode, FakeRaftNode):
        for name in wanted:
            theirs = inspect.signature(getattr(cls, name)).parameters
            assert list(theirs) == list(inspect.signature(getattr(RaftView, name)).parameters), (cls, name)
