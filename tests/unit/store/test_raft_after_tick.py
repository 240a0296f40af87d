"""The leader's appends reach the sockets before its own fdatasync blocks the loop.

Otherwise followers receive an entry only after the leader's disk flush, and the
two flushes of a commit run one after the other instead of side by side.
"""

from store.batching import Batcher
from store.raft import RaftNode


class Recorder:
    def __init__(self):
        self.calls = []


class FakeReplica:
    def __init__(self, calls):
        self.calls = calls

    def is_leader(self):
        return True

    def commit_index(self):
        return 1

    def send_append_entries(self):
        self.calls.append("send_append_entries")

    def flush_peers(self):
        self.calls.append("flush_peers")


class FakeJournal(list):
    def __init__(self, calls):
        super().__init__([(b"cmd", 2, 1)])
        self.calls = calls

    def sync(self):
        self.calls.append("fdatasync")


class FakeReadIndex:
    def on_tick(self):
        pass


def test_appends_are_written_out_before_the_leader_syncs():
    calls = []
    node = RaftNode.__new__(RaftNode)
    node._replica, node.journal = FakeReplica(calls), FakeJournal(calls)
    node.read_index, node._batcher = FakeReadIndex(), Batcher(8, 1 << 20)
    node._sent_log_index = node._sent_commit_index = 0
    node._after_tick()
    assert calls == ["send_append_entries", "flush_peers", "fdatasync"]
