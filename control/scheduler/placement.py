"""Choose a node for a pod: filters, then scores, over an immutable Snapshot.

``schedule`` is pure: the same snapshot and pod give the same Placement (ties go
to the first node by name, unless an ``rng`` is given). Filters follow
kube-scheduler's default plugins and order, and a failing node gets the same
reason strings, so the FailedScheduling message reads as Kubernetes' does:
"0/3 nodes are available: 1 Insufficient cpu, 2 node(s) were unschedulable."
"""

from collections import Counter
from dataclasses import dataclass, field
from types import MappingProxyType

from control.objects import conditions, taints
from control.objects.selectors import DOES_NOT_EXIST, EXISTS, GT, IN, LT, NOT_IN, Requirement
from control.scheduler.snapshot import controller_uid, host_ports, pod_requests, shares_host_network
from control.scheduler.volumebinding import NO_VOLUMES, NODE_CONFLICT

MAX_SCORE = 100
#: Relative weights of the scores (kube-scheduler: taints 3, spreading 2, fit 1).
WEIGHTS = {"least_allocated": 1, "spread": 2, "taint_toleration": 3}

NOT_READY = "node(s) were not ready"
UNSCHEDULABLE = "node(s) were unschedulable"
AFFINITY = "node(s) didn't match Pod's node affinity/selector"
PORTS = "node(s) didn't have free ports for the requested pod ports"
TOO_MANY_PODS = "Too many pods"
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}

_NODE_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST,
                   "Gt": GT, "Lt": LT}


@dataclass(frozen=True)
class Placement:
    """Where a pod goes (``node_name`` and every feasible node's score), or why nowhere."""

    node_name: str = None
    scores: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    reasons: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    @property
    def scheduled(self):
        return self.node_name is not None

    @property
    def message(self):
        """The FailedScheduling message, in kube-scheduler's FitError format."""
        return failure_message(self.reasons)


def failure_message(reasons):
    """Summarise {node: [reason, ...]} as kube-scheduler does: counts, sorted as strings."""
    if not reasons:
        return "no nodes available to schedule pods"
    histogram = Counter(reason for node_reasons in reasons.values() for reason in node_reasons)
    # Go's sort.Strings on "count reason": "10 x" sorts before "2 y", as upstream prints it.
    parts = sorted(f"{count} {reason}" for reason, count in histogram.items())
    return f"0/{len(reasons)} nodes are available: {', '.join(parts)}."


# -- filters: each returns a list of reasons, empty when the node fits -------------------
def filter_ready(info, pod, facts):
    return [] if conditions.is_ready(info.node) else [NOT_READY]


def filter_unschedulable(info, pod, facts):
    if (info.node.get("spec") or {}).get("unschedulable") and \
            not taints.pod_tolerates(pod, UNSCHEDULABLE_TAINT):
        return [UNSCHEDULABLE]
    return []


def filter_taints(info, pod, facts):
    for taint in (info.node.get("spec") or {}).get("taints") or ():
        if taint.get("effect") in ("NoSchedule", "NoExecute") and \
                not taints.pod_tolerates(pod, taint):
            return [f"node(s) had untolerated taint {{{taint.get('key')}: "
                    f"{taint.get('value') or ''}}}"]
    return []


def _term_matches(term, node):
    """One nodeSelectorTerm: every expression and field must hold; an empty term never does."""
    expressions, fields = term.get("matchExpressions") or (), term.get("matchFields") or ()
    if not expressions and not fields:
        return False
    labels = node["metadata"].get("labels") or {}
    for expr in expressions:
        operator = _NODE_OPERATORS.get(expr.get("operator"))
        if operator is None or \
                not Requirement(expr["key"], operator, tuple(expr.get("values") or ())).matches(
                    labels):
            return False
    for expr in fields:
        # metadata.name is the only field a node selector may match on.
        operator = _NODE_OPERATORS.get(expr.get("operator"))
        if expr.get("key") != "metadata.name" or operator not in (IN, NOT_IN):
            return False
        if not Requirement(expr["key"], operator, tuple(expr.get("values") or ())).matches(
                {"metadata.name": node["metadata"]["name"]}):
            return False
    return True


def filter_node_affinity(info, pod, facts):
    spec = pod.get("spec") or {}
    labels = info.node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return [AFFINITY]
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is not None and \
            not any(_term_matches(t, info.node) for t in required.get("nodeSelectorTerms") or ()):
        return [AFFINITY]
    return []


def _ports_conflict(wanted, used):
    protocol, ip, port = wanted
    return any(p == protocol and n == port and (ip == "0.0.0.0" or i == "0.0.0.0" or i == ip)
               for p, i, n in used)


def filter_host_ports(info, pod, facts):
    wanted_ports = facts.process_ports if shares_host_network(info.node) else facts.ports
    if any(_ports_conflict(wanted, info.ports) for wanted in wanted_ports):
        return [PORTS]
    return []


def filter_resources(info, pod, facts):
    requests = facts.requests
    free, used = info.allocatable, info.requested
    reasons = []
    if used.pods + 1 > free.pods:
        reasons.append(TOO_MANY_PODS)
    if requests.cpu and used.cpu + requests.cpu > free.cpu:
        reasons.append("Insufficient cpu")
    if requests.memory and used.memory + requests.memory > free.memory:
        reasons.append("Insufficient memory")
    return reasons


def filter_volume_binding(info, pod, facts):
    """VolumeBinding: bound volumes' node affinity, the node chosen for pending claims."""
    volumes = facts.volumes
    if volumes.problem:
        return [volumes.problem]
    if any(not any(_term_matches(t, info.node) for t in terms) for terms in volumes.node_terms):
        return [NODE_CONFLICT]
    if any(node not in (None, info.name) for _, _, node in volumes.pending):
        return [NODE_CONFLICT]
    return []


#: kube-scheduler's default filter order; a node stops at its first failing filter.
FILTERS = (filter_ready, filter_unschedulable, filter_taints, filter_node_affinity,
           filter_host_ports, filter_resources, filter_volume_binding)


@dataclass(frozen=True)
class PodFacts:
    """What the filters need of a pod, worked out once per pod rather than once per node."""

    requests: object
    ports: frozenset            # its hostPorts
    process_ports: frozenset    # what it takes on a process-runtime node: every containerPort
    volumes: object = NO_VOLUMES    # its claims' constraints (volumebinding.VolumeFacts)

    @classmethod
    def of(cls, pod, volumes=None):
        return cls(pod_requests(pod), host_ports(pod), host_ports(pod, host_network=True),
                   volumes or NO_VOLUMES)


def node_reasons(info, pod, facts=None):
    """Return why ``pod`` cannot run on this node (empty if it can)."""
    facts = facts or PodFacts.of(pod)
    for check in FILTERS:
        reasons = check(info, pod, facts)
        if reasons:
            return reasons
    return []


# -- scores: each maps the feasible nodes to 0..MAX_SCORE ----------------------------
def _least_allocated_one(requested, capacity):
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_SCORE // capacity


def score_least_allocated(infos, pod):
    """kube-scheduler's LeastAllocated: the mean free share of cpu and memory after placing."""
    wanted = pod_requests(pod, non_zero=True)
    scores = {}
    for info in infos:
        used, free = info.non_zero_requested, info.allocatable
        scores[info.name] = (_least_allocated_one(used.cpu + wanted.cpu, free.cpu) +
                             _least_allocated_one(used.memory + wanted.memory, free.memory)) // 2
    return scores


def score_spread(infos, pod):
    """Fewer pods of the same controller on a node scores higher (SelectorSpread)."""
    uid = controller_uid(pod)
    counts = {info.name: info.owners.get(uid, 0) if uid else 0 for info in infos}
    most = max(counts.values(), default=0)
    if most == 0:
        return {name: MAX_SCORE for name in counts}
    return {name: MAX_SCORE * (most - count) // most for name, count in counts.items()}


def score_taint_toleration(infos, pod):
    """Fewer untolerated PreferNoSchedule taints score higher (TaintToleration)."""
    counts = {info.name: sum(1 for taint in (info.node.get("spec") or {}).get("taints") or ()
                             if taint.get("effect") == "PreferNoSchedule"
                             and not taints.pod_tolerates(pod, taint))
              for info in infos}
    most = max(counts.values(), default=0)
    if most == 0:
        return {name: MAX_SCORE for name in counts}
    return {name: MAX_SCORE - MAX_SCORE * count // most for name, count in counts.items()}


SCORES = {"least_allocated": score_least_allocated, "spread": score_spread,
          "taint_toleration": score_taint_toleration}


def schedule(snapshot, pod, rng=None, weights=None, volumes=None):
    """Return the Placement for ``pod`` on ``snapshot`` (pure; ``rng`` only breaks ties).

    ``volumes`` is the pod's VolumeFacts (none: the pod has no claims to honour).
    """
    weights = WEIGHTS if weights is None else weights
    feasible, reasons, facts = [], {}, PodFacts.of(pod, volumes)
    for name, info in snapshot.infos.items():
        why = node_reasons(info, pod, facts)
        if why:
            reasons[name] = tuple(why)
        else:
            feasible.append(info)
    if not feasible:
        return Placement(reasons=MappingProxyType(reasons))
    totals = dict.fromkeys((info.name for info in feasible), 0)
    for score_name, weight in weights.items():
        if weight:
            for name, score in SCORES[score_name](feasible, pod).items():
                totals[name] += weight * score
    best = max(totals.values())
    winners = sorted(name for name, total in totals.items() if total == best)
    chosen = rng.choice(winners) if rng is not None else winners[0]
    return Placement(chosen, MappingProxyType(totals), MappingProxyType(reasons))


def schedule_batch(snapshot, pods, rng=None, weights=None, volumes=None):
    """Place ``pods`` in order, each seeing the ones placed before it; return Placements.

    Only the chosen node's aggregates are rebuilt after each placement, so a batch
    never overfills a node and never re-reads the world per pod. ``volumes`` maps
    a pod (by position) to its VolumeFacts, when given.
    """
    placements = []
    for index, pod in enumerate(pods):
        placement = schedule(snapshot, pod, rng, weights, volumes[index] if volumes else None)
        if placement.scheduled:
            snapshot = snapshot.with_pod(placement.node_name, pod)
        placements.append(placement)
    return placements
