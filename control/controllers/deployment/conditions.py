"""Judge a Deployment's conditions and compute its status from its ReplicaSets (pure).

Apart from the replica arithmetic: the Progressing, Available and
ReplicaFailure conditions and the status counts that progress.py writes.
"""

import datetime

from control.controllers.deployment.sizing import (
    max_unavailable,
    replicas_of,
    status_of,
    total_replicas,
    total_status,
)
from control.objects import meta

#: progressDeadlineSeconds of MaxInt32 means "no deadline", as in Kubernetes.
NO_DEADLINE = 2 ** 31 - 1

# Condition reasons, as Kubernetes names them.
NEW_RS_REASON = "NewReplicaSetCreated"
FOUND_NEW_RS_REASON = "FoundNewReplicaSet"
RS_UPDATED_REASON = "ReplicaSetUpdated"
NEW_RS_AVAILABLE_REASON = "NewReplicaSetAvailable"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"
FAILED_RS_CREATE_REASON = "ReplicaSetCreateError"
PAUSED_REASON = "DeploymentPaused"
RESUMED_REASON = "DeploymentResumed"
MIN_AVAILABLE_REASON = "MinimumReplicasAvailable"
MIN_UNAVAILABLE_REASON = "MinimumReplicasUnavailable"


def new_condition(ctype, status, reason, message, now):
    stamp = meta.timestamp(now)
    return {"type": ctype, "status": status, "lastUpdateTime": stamp,
            "lastTransitionTime": stamp, "reason": reason, "message": message}


def get_condition(status, ctype):
    for cond in (status or {}).get("conditions") or ():
        if cond.get("type") == ctype:
            return cond
    return None


def set_condition(status, cond):
    """SetDeploymentCondition on ``status`` (a dict we own): same status and reason is no change."""
    current = get_condition(status, cond["type"])
    if current is not None and current.get("status") == cond["status"] and \
            current.get("reason") == cond["reason"]:
        return
    if current is not None and current.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime")}
    remove_condition(status, cond["type"])
    status.setdefault("conditions", []).append(cond)


def remove_condition(status, ctype):
    conditions = [c for c in status.get("conditions") or () if c.get("type") != ctype]
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)


def has_progress_deadline(d):
    value = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return value is not None and value != NO_DEADLINE


def deployment_complete(d, status):
    """DeploymentComplete: every replica updated and available, and this generation seen."""
    replicas = replicas_of(d)
    return (status.get("updatedReplicas", 0) == replicas and status.get("replicas", 0) == replicas
            and status.get("availableReplicas", 0) == replicas
            and status.get("observedGeneration", 0) >= (d["metadata"].get("generation") or 0))


def deployment_progressing(d, status):
    """DeploymentProgressing: more updated, fewer old, more ready or more available pods."""
    old = d.get("status") or {}
    old_old = old.get("replicas", 0) - old.get("updatedReplicas", 0)
    new_old = status.get("replicas", 0) - status.get("updatedReplicas", 0)
    return (status.get("updatedReplicas", 0) > old.get("updatedReplicas", 0)
            or new_old < old_old
            or status.get("readyReplicas", 0) > old.get("readyReplicas", 0)
            or status.get("availableReplicas", 0) > old.get("availableReplicas", 0))


def deployment_timed_out(d, status, now):
    """DeploymentTimedOut: no progress reported for progressDeadlineSeconds."""
    if not has_progress_deadline(d):
        return False
    cond = get_condition(status, "Progressing")
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE_REASON:
        return False
    if cond.get("reason") == TIMED_OUT_REASON:
        return True
    since = meta.parse_time(cond.get("lastUpdateTime"))
    if since is None:
        return False
    deadline = since + datetime.timedelta(seconds=d["spec"]["progressDeadlineSeconds"])
    return deadline < now


def calculate_status(all_rss, new_rs, d, now):
    """calculateStatus: counts from the ReplicaSets, and the Available condition."""
    all_rss = [rs for rs in all_rss if rs is not None]
    available = total_status(all_rss, "availableReplicas")
    old = d.get("status") or {}
    status = {
        "observedGeneration": d["metadata"].get("generation") or 0,
        "replicas": total_status(all_rss, "replicas"),
        "updatedReplicas": status_of(new_rs, "replicas") if new_rs is not None else 0,
        "readyReplicas": total_status(all_rss, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": max(total_replicas(all_rss) - available, 0),
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = [dict(c) for c in old["conditions"]]
    if available >= replicas_of(d) - max_unavailable(d):
        set_condition(status, new_condition("Available", "True", MIN_AVAILABLE_REASON,
                                             "Deployment has minimum availability.", now))
    else:
        set_condition(status, new_condition("Available", "False", MIN_UNAVAILABLE_REASON,
                                             "Deployment does not have minimum availability.",
                                             now))
    return status


def replica_failure(all_rss, new_rs):
    """The ReplicaFailure condition to surface: the new ReplicaSet's first, else any old one's."""
    for rs in [new_rs] + [r for r in all_rss if r is not new_rs]:
        if rs is None:
            continue
        for cond in (rs.get("status") or {}).get("conditions") or ():
            if cond.get("type") == "ReplicaFailure":
                stamp = cond.get("lastTransitionTime")
                return {"type": "ReplicaFailure", "status": cond.get("status"),
                        "lastUpdateTime": stamp, "lastTransitionTime": stamp,
                        "reason": cond.get("reason"), "message": cond.get("message")}
    return None
