"""Priority levels in the manner of API Priority and Fairness (APF), with its defaults.

kube-apiserver classifies every request by FlowSchemas into priority levels; each
level has its own share of the server's seats and its own queue, so a flood from
one kind of client (an ordinary user's 300 lists) fills only its own level while
nodes, leader election and the controllers keep theirs. Steersman has APF's
default configuration fixed here (no FlowSchema or PriorityLevelConfiguration
objects are served): the schemas below in order of precedence, the first that
matches wins, and the levels' nominal concurrency shares of the seats
(``--max-requests-inflight`` + ``--max-mutating-requests-inflight``, per worker).

A request that finds no free seat in its level waits in the level's queue (one
FIFO, not APF's shuffle-sharded queues per flow) for at most ``queue_wait``
seconds; a full queue, or no seat by then, is a 429 with ``Retry-After``. Exempt
requests (system:masters, health probes) take no seat. Every answer names its
schema and level in ``X-Kubernetes-PF-FlowSchema-UID`` and
``X-Kubernetes-PF-PriorityLevel-UID`` (stable UIDs made from the names).
"""

import math
import threading
import time
import uuid
from dataclasses import dataclass

from control import errors
from control.api import metrics
from control.api.auth import user as users

EXEMPT = "exempt"
#: name -> (nominal concurrency shares, queue length; 0: no queue), as APF's defaults.
LEVELS = {
    "system": (30, 50),
    "leader-election": (10, 50),
    "workload-high": (40, 50),
    "workload-low": (100, 50),
    "global-default": (20, 50),
    "catch-all": (5, 0),
}
KUBE_SYSTEM = "kube-system"
CONTROL_PLANE_USERS = frozenset(("system:kube-controller-manager", "system:kube-scheduler"))
#: Steersman's kube-proxy (and NetworkPolicy enforcer) identity is a user, not a service account.
SYSTEM_WORKLOAD_USERS = CONTROL_PLANE_USERS | {"system:kube-proxy"}
LEADER_ELECTION_VERBS = frozenset(("get", "create", "update"))
PROBE_PATHS = ("/healthz", "/livez", "/readyz")
DEFAULT_QUEUE_WAIT = 15.0
RETRY_AFTER = 1


def _uid(kind, name):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"steersman.io/flowcontrol/{kind}/{name}"))


def _is_probe(path):
    return any(path == p or path.startswith(p + "/") for p in PROBE_PATHS)


def _kube_system_account(user):
    return user.name.startswith(users.service_account_user(KUBE_SYSTEM, ""))


def _leader_election(user, info):
    if not (user.name in CONTROL_PLANE_USERS or _kube_system_account(user)):
        return False
    if info is None or not info.resource_request or info.verb not in LEADER_ELECTION_VERBS:
        return False
    if info.api_group == "coordination.k8s.io" and info.resource == "leases":
        return True
    return (info.api_group == "" and info.resource in ("endpoints", "configmaps")
            and info.namespace == KUBE_SYSTEM)


#: (flow schema, priority level, matches(user, request_info, path)), in precedence order.
FLOW_SCHEMAS = (
    ("exempt", EXEMPT, lambda u, i, p: users.MASTERS in u.groups),
    ("probes", EXEMPT, lambda u, i, p: _is_probe(p)),
    ("system-leader-election", "leader-election", lambda u, i, p: _leader_election(u, i)),
    ("system-nodes", "system", lambda u, i, p: users.NODES_GROUP in u.groups),
    ("kube-system-components", "workload-high",
     lambda u, i, p: u.name in SYSTEM_WORKLOAD_USERS or _kube_system_account(u)),
    ("service-accounts", "workload-low",
     lambda u, i, p: users.SERVICE_ACCOUNTS_GROUP in u.groups),
    ("global-default", "global-default",
     lambda u, i, p: users.AUTHENTICATED in u.groups or users.UNAUTHENTICATED in u.groups),
    ("catch-all", "catch-all", lambda u, i, p: True),
)


#: The response headers of each (flow schema, priority level), made once.
_HEADERS = {(schema, level): (("X-Kubernetes-PF-FlowSchema-UID", _uid("flowschemas", schema)),
                              ("X-Kubernetes-PF-PriorityLevel-UID",
                               _uid("prioritylevels", level)))
            for schema, level, _ in FLOW_SCHEMAS}


def classify(user, info, path):
    """Return (flow schema, priority level) of a request by its user and attributes."""
    user = user or users.anonymous()
    for schema, level, matches in FLOW_SCHEMAS:
        if matches(user, info, path):
            return schema, level
    return "catch-all", "catch-all"


@dataclass
class Level:
    """One priority level's seats, queue and counts (guarded by PriorityLevels' lock)."""

    name: str
    seats: int
    queue_limit: int
    executing: int = 0
    waiting: int = 0


class PriorityLevels:
    """Admit requests to their priority level's seats, queueing or refusing with 429."""

    def __init__(self, server_concurrency, queue_wait=DEFAULT_QUEUE_WAIT, clock=time.monotonic):
        total_shares = sum(shares for shares, _ in LEVELS.values())
        self.levels = {name: Level(name, max(1, math.ceil(server_concurrency * shares
                                                          / total_shares)), queue)
                       for name, (shares, queue) in LEVELS.items()}
        self.queue_wait = queue_wait
        self.clock = clock
        self._lock = threading.Lock()
        self._freed = {name: threading.Condition(self._lock) for name in self.levels}
        self.rejected = metrics.Counter(
            "apiserver_flowcontrol_rejected_requests_total",
            "Number of requests rejected by API Priority and Fairness subsystem.",
            ("flow_schema", "priority_level", "reason"))
        self.executing = metrics.Gauge(
            "apiserver_flowcontrol_current_executing_requests",
            "Number of requests in initial (for a WATCH) or any (for a non-WATCH) execution "
            "stage in the API Priority and Fairness subsystem.", ("priority_level",),
            read=lambda: self._counts("executing"))
        self.in_queue = metrics.Gauge(
            "apiserver_flowcontrol_current_inqueue_requests",
            "Number of requests currently pending in queues of the API Priority and Fairness "
            "subsystem.", ("priority_level",), read=lambda: self._counts("waiting"))

    def metrics(self):
        """Return the metrics to render at /metrics."""
        return (self.rejected, self.executing, self.in_queue)

    def _counts(self, field):
        with self._lock:
            return {(name,): getattr(level, field) for name, level in self.levels.items()}

    def admit(self, req, resp):
        """Take a seat of the request's level (waiting in its queue); return the level's
        name to pass to ``release``, or None if exempt. 429 if no seat is had in time."""
        schema, name = classify(req.context.get("user"), req.context.get("request_info"),
                                req.path)
        for header, value in _HEADERS[schema, name]:
            resp.set_header(header, value)
        if name == EXEMPT:
            return None
        level = self.levels[name]
        with self._lock:
            if level.executing < level.seats and not level.waiting:
                level.executing += 1
                return name
            if level.waiting >= level.queue_limit:
                self._reject(schema, name, "queue-full")
            level.waiting += 1
            deadline = self.clock() + self.queue_wait
            try:
                while level.executing >= level.seats:
                    remaining = deadline - self.clock()
                    if remaining <= 0:
                        self._reject(schema, name, "time-out")
                    self._freed[name].wait(remaining)
            finally:
                level.waiting -= 1
            level.executing += 1
            return name

    def _reject(self, schema, name, reason):
        self.rejected.inc((schema, name, reason))
        raise errors.TooManyRequests("Too many requests, please try again later.",
                                     retry_after=RETRY_AFTER)

    def release(self, name):
        """Give back the seat ``admit`` took for level ``name``."""
        if name is None:
            return
        with self._lock:
            self.levels[name].executing -= 1
            self._freed[name].notify()
