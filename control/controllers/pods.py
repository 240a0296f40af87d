"""Judge pods as workload controllers do: active, ready, available, and which to delete.

Pure functions over pod dicts (never mutated), shared by the ReplicaSet
controller and, later, the other workload controllers.
"""

import copy
import datetime

from control.objects import conditions, meta
from control.objects.conditions import is_ready  # noqa: F401 - pod judgements live here too

TERMINAL_PHASES = ("Succeeded", "Failed")
#: ActivePods' phase order: a pod further from running is cheaper to delete.
_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def is_active(pod):
    """Counts toward replicas: not terminal and not being deleted (FilterActivePods)."""
    return pod.get("status", {}).get("phase") not in TERMINAL_PHASES and \
        not pod["metadata"].get("deletionTimestamp")


def ready_since(pod):
    """When the pod last became Ready (its condition's lastTransitionTime), or None."""
    cond = conditions.find(pod, "Ready")
    if cond is None or cond.get("status") != "True":
        return None
    return meta.parse_time(cond.get("lastTransitionTime"))


def is_available(pod, min_ready_seconds, now):
    """Ready for at least ``min_ready_seconds`` by ``now`` (an aware datetime)."""
    if not is_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = ready_since(pod)
    return since is not None and since + datetime.timedelta(seconds=min_ready_seconds) <= now


def pod_from_template(rs):
    """A new pod for ``rs`` from spec.template: generateName "<rs>-", labels, annotations."""
    template = rs["spec"].get("template") or {}
    tmeta = template.get("metadata") or {}
    pmeta = {"generateName": rs["metadata"]["name"] + "-",
             "namespace": rs["metadata"]["namespace"]}
    for field in ("labels", "annotations", "finalizers"):
        if tmeta.get(field):
            pmeta[field] = copy.deepcopy(tmeta[field])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pmeta,
            "spec": copy.deepcopy(template.get("spec") or {})}


def _restarts(pod):
    return sum(s.get("restartCount", 0)
               for s in (pod.get("status") or {}).get("containerStatuses") or ())


def _deletion_rank(pod, per_node):
    """Sort key: smaller means delete first (Kubernetes' ActivePods, simplified)."""
    node = pod.get("spec", {}).get("nodeName")
    phase = (pod.get("status") or {}).get("phase")
    since = ready_since(pod)
    created = pod["metadata"].get("creationTimestamp") or ""
    return (
        bool(node),                              # unscheduled first
        _PHASE_RANK.get(phase, 1),               # Pending < Unknown < Running
        is_ready(pod),                           # not ready before ready
        -per_node.get(node, 0),                  # pods doubled up on a node before lone ones
        # Ready for less time first: a later (larger) timestamp sorts earlier.
        _negate(since.isoformat() if since else ""),
        -_restarts(pod),                         # more restarts first
        _negate(created),                        # newer first
    )


def _negate(text):
    """A key that sorts strings in reverse (ISO times of one format compare as strings)."""
    return tuple(-ord(c) for c in text) + (1,)


def pods_to_delete(pods, count):
    """The ``count`` pods whose deletion hurts least, in order."""
    per_node = {}
    for pod in pods:
        node = pod.get("spec", {}).get("nodeName")
        if node:
            per_node[node] = per_node.get(node, 0) + 1
    return sorted(pods, key=lambda p: _deletion_rank(p, per_node))[:count]


def replica_set_status(rs, pods, failed, now):
    """The status ``rs`` should have for its claimed active ``pods``.

    ``failed`` is "create" or "delete" when the last manage step failed, which sets
    the ReplicaFailure condition; success clears it. Other status fields are kept.
    """
    template_labels = ((rs["spec"].get("template") or {}).get("metadata") or {}).get("labels") \
        or {}
    min_ready = rs["spec"].get("minReadySeconds") or 0
    old = rs.get("status") or {}
    status = {k: v for k, v in old.items() if k != "conditions"}
    labels = [p["metadata"].get("labels") or {} for p in pods]
    status.update(
        replicas=len(pods),
        fullyLabeledReplicas=sum(all(lb.get(k) == v for k, v in template_labels.items())
                                 for lb in labels),
        readyReplicas=sum(is_ready(p) for p in pods),
        availableReplicas=sum(is_available(p, min_ready, now) for p in pods),
        observedGeneration=rs["metadata"].get("generation", 0))
    kept = [c for c in old.get("conditions") or () if c.get("type") != "ReplicaFailure"]
    if failed:
        previous = [c for c in old.get("conditions") or () if c.get("type") == "ReplicaFailure"]
        reason = "FailedCreate" if failed == "create" else "FailedDelete"
        if previous and previous[0].get("reason") == reason:
            kept.append(previous[0])       # keep its transition time: nothing changed
        else:
            kept.append({"type": "ReplicaFailure", "status": "True", "reason": reason,
                               "message": f"pod {failed} failed",
                               "lastTransitionTime": meta.timestamp(now)})
    if kept:
        status["conditions"] = kept
    return status
