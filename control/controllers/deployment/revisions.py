"""Tell a Deployment's new ReplicaSet from its old ones: revisions and annotations (pure).

Apart from the replica arithmetic (sizing.py): which ReplicaSet is new, in
what order they were made, and the revision and replica annotations that
record it (SetNewReplicaSetAnnotations and friends).
"""

from control.controllers.deployment.sizing import max_surge, replicas_of, status_of
from control.controllers.deployment.templatehash import equal_ignore_hash

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
#: revisionHistoryLimit of MaxInt32 means "keep every revision", as in Kubernetes.
UNLIMITED_HISTORY = 2 ** 31 - 1


def annotation_int(rs, key):
    """The annotation ``key`` of ``rs`` as an int, or None if absent or not a number."""
    value = ((rs.get("metadata") or {}).get("annotations") or {}).get(key)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def desired_replicas_annotation(rs):
    return annotation_int(rs, DESIRED_REPLICAS)


def creation_key(rs):
    """ReplicaSetsByCreationTimestamp: older first, then by name."""
    meta = rs.get("metadata") or {}
    return (meta.get("creationTimestamp") or "", meta.get("name") or "")


def newer_first(rs):
    """A sort key putting newer ReplicaSets first, then names in reverse."""
    created, name = creation_key(rs)
    return tuple(-ord(c) for c in created) + (1,), tuple(-ord(c) for c in name) + (1,)


def revision_of(rs):
    """The deployment.kubernetes.io/revision annotation as an int (0 if absent or bad)."""
    return annotation_int(rs, REVISION) or 0


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


def has_revision_history_limit(d):
    value = (d.get("spec") or {}).get("revisionHistoryLimit")
    return value is not None and value != UNLIMITED_HISTORY

