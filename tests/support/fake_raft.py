"""A fake Raft node for unit tests: ``store.readindex.RaftView`` with settable state.

Peers are plain strings; this node is ``"a"``. Nothing is sent anywhere: peer
messages are recorded in ``sent`` and append-entries rounds counted in ``heartbeats``.
"""


class FakeRaftNode:
    """Stand in for ``store.raft.RaftNode`` wherever only its views and sends are used."""

    def __init__(self, leader=True, others=("b", "c")):
        self.leading = leader
        self.known_leader = "a" if leader else None
        self.peers = set(others)
        self.commit = 10
        self.applied = 10
        self.current_term = 3
        self.noop = 10
        self.heartbeats = 0
        self.sent = []

    def is_leader(self):
        return self.leading

    def leader(self):
        return self.known_leader

    def other_peers(self):
        return set(self.peers)

    def term(self):
        return self.current_term

    def commit_index(self):
        return self.commit

    def last_applied(self):
        return self.applied

    def noop_index(self):
        return self.noop

    def send_append_entries(self):
        self.heartbeats += 1

    def send_peer(self, peer, message):
        self.sent.append((peer, message))
        return True
