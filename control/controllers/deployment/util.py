"""Pure judgements of the Deployment controller (Kubernetes' deployment/util package).

Everything here works on plain dicts and never mutates them: the pod-template
hash, maxSurge/maxUnavailable resolution, how many replicas a new ReplicaSet may
have, proportional shares when a Deployment is resized mid-rollout, revision and
replica annotations, conditions, and the Deployment status computed from its
ReplicaSets. The controller (controller.py) decides what to write; this module
says what the numbers are, so each rule can be tested by a table.
"""

import copy
import datetime
import json
import math

from control.objects import meta

#: The label (and selector term) that ties a ReplicaSet and its pods to one template.
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
#: Deployment annotations never copied to its ReplicaSets (annotationsToSkip).
SKIPPED_ANNOTATIONS = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY,
    DESIRED_REPLICAS, MAX_REPLICAS, "deprecated.deployment.rollback.to"})
#: Kubernetes' limit on the revision-history annotation's length.
MAX_REVISION_HISTORY_CHARS = 2000
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

#: rand.SafeEncodeString's alphabet: no vowels, no 0/1/3, so no words and no look-alikes.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_FNV32_OFFSET, _FNV32_PRIME = 0x811C9DC5, 0x01000193


class SpecError(ValueError):
    """The Deployment's spec cannot be acted on (a bad maxSurge, say); retrying won't help."""


# -- the pod-template hash ------------------------------------------------------------------
def _pruned(value):
    """``value`` without null, empty-map and empty-list fields, recursively.

    Kubernetes compares templates semantically (nil and empty are equal); clients
    that send ``creationTimestamp: null`` or ``resources: {}`` (kubectl rollout undo
    does) must not get a different hash or a "different" template.
    """
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            item = _pruned(item)
            if item is not None and item != {} and item != []:
                out[key] = item
        return out
    if isinstance(value, list):
        return [_pruned(item) for item in value]
    return value


def fnv32a(data):
    """The 32-bit FNV-1a hash of ``data`` (bytes), as Go's hash/fnv New32a."""
    h = _FNV32_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV32_PRIME) & 0xFFFFFFFF
    return h


def safe_encode(text):
    """rand.SafeEncodeString: map each byte of ``text`` into SAFE_ALPHABET."""
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in text)


def compute_hash(template, collision_count=None):
    """The pod-template-hash of ``template``: the same in every process and every run.

    FNV-1a over the canonical JSON of the template (sorted keys, no spaces, nulls
    and empties dropped), then, if there were collisions, the collision count as 4
    little-endian bytes; the decimal value is rendered with the safe alphabet.
    """
    data = json.dumps(_pruned(template or {}), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()
    if collision_count is not None:
        data += (collision_count & 0xFFFFFFFF).to_bytes(4, "little")
    return safe_encode(str(fnv32a(data)))


def _without_hash(template):
    template = _pruned(template or {})
    labels = (template.get("metadata") or {}).get("labels")
    if labels and HASH_LABEL in labels:
        template = copy.deepcopy(template)
        del template["metadata"]["labels"][HASH_LABEL]
        if not template["metadata"]["labels"]:
            del template["metadata"]["labels"]
        if not template["metadata"]:
            del template["metadata"]
    return template


def equal_ignore_hash(a, b):
    """EqualIgnoreHash: two pod templates are the same but for the pod-template-hash label."""
    return _without_hash(a) == _without_hash(b)


# -- replicas, surge and unavailability -----------------------------------------------------
def replicas_of(obj):
    """spec.replicas (1 when unset, as the API server defaults it)."""
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def status_of(obj, field):
    return int((obj.get("status") or {}).get(field) or 0)


def scaled_value(value, total, round_up):
    """GetScaledValueFromIntOrPercent: an int as is, "25%" of ``total`` rounded up or down."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise SpecError(f"invalid value {value!r}: want an integer or a percentage")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            percent = int(value[:-1])
        except ValueError:
            raise SpecError(f"invalid value for IntOrString: {value!r}") from None
        exact = percent * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    if isinstance(value, str) and value.isdigit():
        raise SpecError(f"invalid value for IntOrString: invalid type: string is not a "
                        f"percentage: {value!r}")
    raise SpecError(f"invalid value for IntOrString: {value!r}")


def strategy_type(d):
    return ((d.get("spec") or {}).get("strategy") or {}).get("type") or "RollingUpdate"


def is_rolling_update(d):
    return strategy_type(d) == "RollingUpdate"


def resolve_fenceposts(max_surge, max_unavailable, desired):
    """(surge, unavailable): surge rounds up, unavailable down; both 0 makes unavailable 1."""
    surge = scaled_value(max_surge if max_surge is not None else 0, desired, True)
    unavailable = scaled_value(max_unavailable if max_unavailable is not None else 0, desired,
                               False)
    if surge == 0 and unavailable == 0:
        # Rounding may have made both 0; with no surge there is nothing to surge.
        unavailable = 1
    return surge, unavailable


def _rolling_params(d):
    rolling = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    return rolling.get("maxSurge", "25%"), rolling.get("maxUnavailable", "25%")


def max_surge(d):
    """MaxSurge: 0 unless RollingUpdate."""
    if not is_rolling_update(d):
        return 0
    return resolve_fenceposts(*_rolling_params(d), replicas_of(d))[0]


def max_unavailable(d):
    """MaxUnavailable: 0 unless RollingUpdate or with 0 replicas; never above replicas."""
    replicas = replicas_of(d)
    if not is_rolling_update(d) or replicas == 0:
        return 0
    return min(resolve_fenceposts(*_rolling_params(d), replicas)[1], replicas)


def total_replicas(rss):
    """GetReplicaCountForReplicaSets: the sum of spec.replicas."""
    return sum(replicas_of(rs) for rs in rss if rs is not None)


def total_status(rss, field):
    """The sum of status.<field> (replicas, readyReplicas, availableReplicas)."""
    return sum(status_of(rs, field) for rs in rss if rs is not None)


def available_of(rs):
    """Available replicas of ``rs`` that it will keep: at most spec.replicas.

    Kubernetes reads status.availableReplicas as is. Just after a scale-down that
    status still counts the pods being deleted, and trusting it lets a second
    scale-down take availability below maxUnavailable; capping it at spec.replicas
    never counts a pod that is on its way out.
    """
    if rs is None:
        return 0
    return min(status_of(rs, "availableReplicas"), replicas_of(rs))


def new_rs_new_replicas(d, all_rss, new_rs):
    """NewRSNewReplicas: how big the new ReplicaSet may be now."""
    replicas = replicas_of(d)
    if not is_rolling_update(d):
        return replicas
    surge = scaled_value(_rolling_params(d)[0], replicas, True)
    # Kubernetes counts spec.replicas only. A ReplicaSet just scaled down still runs
    # its old pods until its controller deletes them (status.replicas says so), and
    # counting those keeps the pods, not only the specs, within maxSurge.
    current = sum(max(replicas_of(rs), status_of(rs, "replicas")) for rs in all_rss)
    max_total = replicas + surge
    if current >= max_total:
        return replicas_of(new_rs)      # cannot scale up now
    up = min(max_total - current, replicas - replicas_of(new_rs))
    return replicas_of(new_rs) + up


def round_half_away(x):
    """Go's math.Round: halves away from zero (Python's round() goes to even)."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def _annotation_int(rs, key):
    value = ((rs.get("metadata") or {}).get("annotations") or {}).get(key)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def desired_replicas_annotation(rs):
    return _annotation_int(rs, DESIRED_REPLICAS)


def _rs_fraction(rs, d):
    """getReplicaSetFraction: this ReplicaSet's change if the Deployment keeps its proportions."""
    replicas = replicas_of(d)
    if replicas == 0:
        return -replicas_of(rs)
    deployment_replicas = replicas + max_surge(d)
    annotated = _annotation_int(rs, MAX_REPLICAS)
    if annotated is None:
        annotated = status_of(d, "replicas")
    if not annotated:
        return 0
    size = replicas_of(rs) * deployment_replicas / annotated
    return round_half_away(size) - replicas_of(rs)


def rs_proportion(rs, d, to_add, added):
    """GetReplicaSetProportion: this ReplicaSet's share of ``to_add`` (``added`` already given)."""
    if rs is None or replicas_of(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _rs_fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def proportional_sizes(d, active_rss):
    """The sizes ``scale`` gives active ReplicaSets when a rollout is resized mid-way.

    Returns ([(rs, new size)] in the order to write them, "up"|"down"|None). The
    spare replicas (replicas + maxSurge - current) are shared in proportion to each
    ReplicaSet's size; what rounding leaves over goes to the largest one.
    """
    current = total_replicas(active_rss)
    allowed = replicas_of(d) + max_surge(d) if replicas_of(d) > 0 else 0
    to_add = allowed - current
    rss = list(active_rss)
    operation = None
    if to_add > 0:
        rss.sort(key=_newer_first)
        rss.sort(key=lambda rs: -replicas_of(rs))
        operation = "up"
    elif to_add < 0:
        rss.sort(key=creation_key)
        rss.sort(key=lambda rs: -replicas_of(rs))
        operation = "down"
    sizes, added = [], 0
    for rs in rss:
        if to_add:
            share = rs_proportion(rs, d, to_add, added)
            sizes.append(replicas_of(rs) + share)
            added += share
        else:
            sizes.append(replicas_of(rs))
    if rss and to_add:
        sizes[0] = max(sizes[0] + to_add - added, 0)
    return list(zip(rss, sizes)), operation


# -- ordering and finding ReplicaSets ---------------------------------------------------------
def creation_key(rs):
    """ReplicaSetsByCreationTimestamp: older first, then by name."""
    meta = rs.get("metadata") or {}
    return (meta.get("creationTimestamp") or "", meta.get("name") or "")


def _newer_first(rs):
    created, name = creation_key(rs)
    return tuple(-ord(c) for c in created) + (1,), tuple(-ord(c) for c in name) + (1,)


def revision_of(rs):
    """The deployment.kubernetes.io/revision annotation as an int (0 if absent or bad)."""
    return _annotation_int(rs, REVISION) or 0


def max_revision(rss):
    return max((revision_of(rs) for rs in rss), default=0)


def find_new_rs(d, rss):
    """FindNewReplicaSet: the oldest ReplicaSet whose template is the Deployment's."""
    template = (d.get("spec") or {}).get("template")
    for rs in sorted(rss, key=creation_key):
        if equal_ignore_hash((rs.get("spec") or {}).get("template"), template):
            return rs
    return None


def is_active(rs):
    return rs is not None and replicas_of(rs) > 0


def find_active_or_latest(new_rs, old_rss):
    """FindActiveOrLatest: the only active ReplicaSet, or the newest if none is active."""
    if new_rs is None and not old_rss:
        return None
    old_sorted = sorted(old_rss, key=creation_key, reverse=True)
    active = [rs for rs in old_sorted + [new_rs] if is_active(rs)]
    if not active:
        return new_rs if new_rs is not None else old_sorted[0]
    if len(active) == 1:
        return active[0]
    return None


def is_saturated(d, rs):
    """IsSaturated: the new ReplicaSet has all the Deployment's replicas, all available."""
    if rs is None:
        return False
    replicas = replicas_of(d)
    return (replicas_of(rs) == replicas and desired_replicas_annotation(rs) == replicas
            and status_of(rs, "availableReplicas") == replicas)


# -- annotations ---------------------------------------------------------------------------
def replicas_annotations_need_update(rs, desired, max_replicas):
    annotations = (rs.get("metadata") or {}).get("annotations") or {}
    return annotations.get(DESIRED_REPLICAS) != str(desired) or \
        annotations.get(MAX_REPLICAS) != str(max_replicas)


def new_rs_annotations(d, rs, new_revision, exists):
    """SetNewReplicaSetAnnotations: the annotations ``rs`` should have as the new ReplicaSet.

    Copies the Deployment's own annotations, raises the revision to ``new_revision``
    if it is lower (keeping the old one in revision-history: a rollback), and, for
    a ReplicaSet about to be created, sets desired- and max-replicas.
    """
    annotations = dict((rs.get("metadata") or {}).get("annotations") or {})
    for key, value in ((d.get("metadata") or {}).get("annotations") or {}).items():
        if key not in SKIPPED_ANNOTATIONS:
            annotations[key] = value
    old = annotations.get(REVISION)
    try:
        old_int = int(old) if old else 0
    except ValueError:
        return annotations      # a revision we cannot read: leave it alone, as Kubernetes does
    if old_int < new_revision:
        annotations[REVISION] = str(new_revision)
        if old:
            history = annotations.get(REVISION_HISTORY, "")
            entries = [e for e in history.split(",") if e] + [old]
            while len(",".join(entries)) > MAX_REVISION_HISTORY_CHARS and len(entries) > 1:
                entries.pop(0)
            annotations[REVISION_HISTORY] = ",".join(entries)
    if not exists:
        annotations[DESIRED_REPLICAS] = str(replicas_of(d))
        annotations[MAX_REPLICAS] = str(replicas_of(d) + max_surge(d))
    return annotations


# -- conditions ----------------------------------------------------------------------------
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


def has_revision_history_limit(d):
    value = (d.get("spec") or {}).get("revisionHistoryLimit")
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
