"""Keep the RBAC objects at hand: a snapshot of roles and bindings, reloaded when stale.

RBAC reads every role and binding on each request; reading them from the store
each time would cost four store round trips per request. A snapshot is kept for
``ttl`` seconds (as Kubernetes' authorizer reads informers, eventually
consistent), and dropped at once when this process serves a write to an RBAC
kind, so a client that creates a binding can use it on its next request.
"""

import threading
import time

from control.api.auth.aggregation import aggregated_rules
from control.objects import kinds

#: Seconds a snapshot is trusted (a write through another process shows after this).
DEFAULT_TTL = 1.0
RBAC_RESOURCES = (kinds.ROLES, kinds.CLUSTERROLES, kinds.ROLEBINDINGS, kinds.CLUSTERROLEBINDINGS)


class Snapshot:
    """Roles, ClusterRoles (aggregation applied) and bindings at one moment."""

    def __init__(self, roles=(), cluster_roles=(), role_bindings=(), cluster_role_bindings=()):
        self.roles = {(r["metadata"].get("namespace", ""), r["metadata"]["name"]): r
                      for r in roles}
        by_name = {r["metadata"]["name"]: r for r in cluster_roles}
        self.cluster_role_rules = {name: list(r.get("rules") or ())
                                   for name, r in by_name.items()}
        self.cluster_role_rules.update(aggregated_rules(by_name))
        self.role_bindings = {}
        for binding in role_bindings:
            self.role_bindings.setdefault(binding["metadata"].get("namespace", ""),
                                          []).append(binding)
        self.cluster_role_bindings = list(cluster_role_bindings)
        #: Values derived from this snapshot alone (rbac.py: the bindings of a user).
        self.memo = {}

    def role_rules(self, kind, namespace, name):
        """Return the rules of a Role (in ``namespace``) or ClusterRole; [] if missing."""
        if kind == "ClusterRole":
            return self.cluster_role_rules.get(name, [])
        if kind == "Role":
            return list(self.roles.get((namespace, name), {}).get("rules") or ())
        return []

    def rules_of(self, binding):
        """Return the rules a binding grants (a missing role grants nothing)."""
        ref = binding.get("roleRef") or {}
        return self.role_rules(ref.get("kind"), binding["metadata"].get("namespace", ""),
                               ref.get("name", ""))


class Policy:
    """Serve a Snapshot of the RBAC objects read through ``list_all(resource)``."""

    def __init__(self, list_all, ttl=DEFAULT_TTL, clock=time.monotonic):
        self.list_all = list_all
        self.ttl = ttl
        self.clock = clock
        self._snapshot = None
        self._read_at = 0.0
        self._generation = 0        # bumped by invalidate(): a reload begun before is void
        self._reloading = False
        self._lock = threading.Lock()

    @classmethod
    def for_service(cls, service, **kwargs):
        return cls(lambda resource: service.list(resource)[0], **kwargs)

    def current(self):
        """Return the snapshot, re-reading it when older than the ttl.

        A stale snapshot is still served while one request reloads it: requests never
        queue behind the four store reads (that queue was the p99 of every request).
        Only with no snapshot at all (start, or just invalidated) does a caller wait.
        """
        with self._lock:
            snapshot = self._snapshot
            if snapshot is not None and (self._reloading or
                                         self.clock() - self._read_at <= self.ttl):
                return snapshot
            self._reloading = True
            generation = self._generation
        try:
            fresh = Snapshot(*(self.list_all(r) for r in RBAC_RESOURCES))
        finally:
            with self._lock:
                self._reloading = False
        with self._lock:
            if generation == self._generation:
                self._snapshot, self._read_at = fresh, self.clock()
        return fresh

    def invalidate(self):
        """Forget the snapshot (after a write to an RBAC kind)."""
        with self._lock:
            self._snapshot = None
            self._generation += 1
