"""Share a resize among a rollout's active ReplicaSets in proportion to their sizes (pure).

Apart from sizing.py because it also reads the max-replicas annotation and
the ReplicaSets' creation order (revisions.py): Kubernetes' proportional
scaling, used when a Deployment is resized in the middle of a rollout.
"""

import math

from control.controllers.deployment.revisions import (
    MAX_REPLICAS,
    annotation_int,
    creation_key,
    newer_first,
)
from control.controllers.deployment.sizing import (
    max_surge,
    replicas_of,
    status_of,
    total_replicas,
)


def round_half_away(x):
    """Go's math.Round: halves away from zero (Python's round() goes to even)."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def _rs_fraction(rs, d):
    """getReplicaSetFraction: this ReplicaSet's change if the Deployment keeps its proportions."""
    replicas = replicas_of(d)
    if replicas == 0:
        return -replicas_of(rs)
    deployment_replicas = replicas + max_surge(d)
    annotated = annotation_int(rs, MAX_REPLICAS)
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
        rss.sort(key=newer_first)
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

