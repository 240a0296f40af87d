"""Decide when leases expire: the leader's clock, never the state machine's.

Every node notes, at the moment it applies a grant or keepalive, when that lease
would expire by its own monotonic clock. Only the leader acts: when a deadline
passes it submits a ``lease_revoke`` through Raft, so expiry is a committed
command and every replica deletes the same keys at the same revision. A node that
becomes leader first pushes every deadline to now + ttl (as etcd does), so a
leader change never expires a lease whose owner kept it alive.
"""


class LeaseClock:
    """Track lease deadlines on one node; pure apart from the injected clock."""

    #: Seconds before a revoke that has not been seen to apply is submitted again.
    RETRY_AFTER = 2.0

    def __init__(self, clock):
        self._clock = clock
        self._deadlines = {}    # lease id -> (deadline, ttl)
        self._revoking = {}     # lease id -> time the revoke was submitted
        self._was_leader = False

    def applied(self, command, result):
        """Update deadlines from one applied command and its result."""
        if "error" in result:
            return
        op = command.get("op")
        if op in ("lease_grant", "lease_keepalive"):
            ttl = result["ttl"]
            self._deadlines[result["id"]] = (self._clock() + ttl, ttl)
        elif op == "lease_revoke":
            self._deadlines.pop(command.get("id"), None)
            self._revoking.pop(command.get("id"), None)

    def restored(self, leases):
        """Start over from a snapshot's live leases [(id, ttl)]."""
        now = self._clock()
        self._deadlines = {lease_id: (now + ttl, ttl) for lease_id, ttl in leases}
        self._revoking.clear()

    def remaining(self, lease_id):
        """Seconds left for a lease by this node's clock, or None if unknown."""
        entry = self._deadlines.get(lease_id)
        return None if entry is None else max(0.0, entry[0] - self._clock())

    def expired(self, is_leader):
        """Return the lease ids the leader should revoke now."""
        now = self._clock()
        if is_leader and not self._was_leader:
            self._deadlines = {i: (now + ttl, ttl) for i, (_, ttl) in self._deadlines.items()}
        self._was_leader = is_leader
        if not is_leader:
            return []
        due = []
        for lease_id, (deadline, _) in self._deadlines.items():
            if deadline > now:
                continue
            submitted = self._revoking.get(lease_id)
            if submitted is None or now - submitted > self.RETRY_AFTER:
                self._revoking[lease_id] = now
                due.append(lease_id)
        return due
