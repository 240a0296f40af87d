"""Plan a DaemonSet's pod changes: per-node creates and deletes, rolling steps, status.

Pure functions from nodes and their daemon pods to what should change, apart
from the controller (daemonset.py) that carries them out, so each rule can be
tested by a table.
"""

import math

from control.controllers import history
from control.controllers import pods as podutil
from control.controllers.daemonpods import node_should_run


def _created(pod):
    return (pod["metadata"].get("creationTimestamp") or "", pod["metadata"]["name"])


def _surge_extras(pods, hash_, min_ready, now):
    """With surge, a node may hold one old and one new pod: the other duplicates go, and
    the old pod goes once the new one is available (or at once if it is not Ready)."""
    oldest_new = oldest_old = None
    extras = []
    for pod in sorted(pods, key=_created):
        if _hash_of(pod) == hash_ and oldest_new is None:
            oldest_new = pod
        elif _hash_of(pod) != hash_ and oldest_old is None:
            oldest_old = pod
        else:
            extras.append(pod)
    if oldest_new is not None and oldest_old is not None and \
            (not podutil.is_ready(oldest_old) or
             podutil.is_available(oldest_new, min_ready, now)):
        extras.append(oldest_old)
    return extras


def node_actions(nodes, pod_spec, pods_by_node, surge_hash=None, min_ready=0, now=None):
    """Which nodes need a daemon pod created, and which pods to delete.

    ``pods_by_node`` maps a node name to its daemon pods (any phase). Returns
    (node names to create on, pods to delete, failed pods to delete once their
    node's backoff allows), as podsShouldBeOnNode does without surge: failed pods
    go (and are replaced on a later sync), duplicates go but the oldest (with
    surge, given ``surge_hash``: see _surge_extras), pods on nodes no longer
    eligible go.
    """
    create, delete, failed = [], [], []
    names = set()
    for node in nodes:
        name = node["metadata"]["name"]
        names.add(name)
        should_run, should_continue = node_should_run(node, pod_spec)
        pods = [p for p in pods_by_node.get(name, ()) if not p["metadata"].get("deletionTimestamp")]
        if should_run and not pods_by_node.get(name):
            create.append(name)
        elif should_continue:
            running = []
            for pod in pods:
                if (pod.get("status") or {}).get("phase") == "Failed":
                    failed.append(pod)
                else:
                    running.append(pod)
            if surge_hash is None:
                delete.extend(sorted(running, key=_created)[1:])
            else:
                delete.extend(_surge_extras(running, surge_hash, min_ready, now))
        else:
            delete.extend(pods)
    for name, pods in pods_by_node.items():
        if name not in names:       # the node is gone
            delete.extend(p for p in pods if not p["metadata"].get("deletionTimestamp"))
    return create, delete, failed


def _scaled(value, desired):
    """An int-or-percent as a count; percents of ``desired`` round up, as in Kubernetes."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * desired / 100)
    return int(value or 0)


def rolling_limits(ds, desired):
    """(maxSurge, maxUnavailable) as counts; if both are 0, one pod may be unavailable."""
    rolling = ((ds["spec"].get("updateStrategy") or {}).get("rollingUpdate") or {})
    surge = _scaled(rolling.get("maxSurge", 0), desired)
    unavailable = _scaled(rolling.get("maxUnavailable", 1), desired)
    if surge <= 0 and unavailable <= 0:
        unavailable = 1
    return max(surge, 0), max(unavailable, 0)


def _hash_of(pod):
    return (pod["metadata"].get("labels") or {}).get(history.HASH_LABEL)


def rolling_update_surge(nodes_to_pods, hash_, min_ready, now, max_surge):
    """One rolling-update step with maxSurge: (nodes to start a new pod on, old pods to delete).

    A new pod starts beside the old one (at most ``max_surge`` nodes at a time,
    but at once where the old pod is not available anyway); the old pod goes
    once the new one is available.
    """
    surging, allowed, candidates, old_to_delete = 0, [], [], []
    for name in sorted(nodes_to_pods):
        pods = nodes_to_pods[name]
        new = [p for p in pods if _hash_of(p) == hash_]
        old = [p for p in pods if _hash_of(p) != hash_]
        if len(new) > 1 or len(old) > 1:
            surging += 1                    # node_actions cleans this node up first
        elif not old:
            continue
        elif not new:
            if podutil.is_available(old[0], min_ready, now):
                candidates.append(name)
            else:
                allowed.append(name)
        elif not podutil.is_available(new[0], min_ready, now):
            surging += 1                    # waiting for the new pod
        else:
            old_to_delete.append(old[0])
    room = max(0, max_surge - surging)
    return allowed + candidates[:room], old_to_delete


def rolling_update_victims(nodes_to_pods, hash_, min_ready, now, limit):
    """The old pods to delete in one rolling-update step (without surge).

    ``nodes_to_pods`` maps each eligible node to its live daemon pods. Old pods
    that are not available go at once (they cost no availability); available
    ones only while fewer than ``limit`` nodes lack an available pod.
    """
    unavailable, replace_now, candidates = 0, [], []
    for name in sorted(nodes_to_pods):
        pods = nodes_to_pods[name]
        if not any(podutil.is_available(p, min_ready, now) for p in pods):
            unavailable += 1
        if len(pods) != 1:
            continue                        # none, or duplicates: node_actions handles them
        pod = pods[0]
        if (pod["metadata"].get("labels") or {}).get(history.HASH_LABEL) == hash_:
            continue
        if podutil.is_available(pod, min_ready, now):
            candidates.append(pod)
        else:
            replace_now.append(pod)
    budget = max(limit - unavailable, 0)
    return replace_now + candidates[:budget]


def daemon_set_status(ds, nodes, pod_spec, pods_by_node, hash_, now):
    """The status ``ds`` should have, from eligible nodes and their pods."""
    min_ready = ds["spec"].get("minReadySeconds") or 0
    desired = current = misscheduled = ready = available = updated = 0
    for node in nodes:
        name = node["metadata"]["name"]
        should_run = node_should_run(node, pod_spec)[0]
        pods = sorted((p for p in pods_by_node.get(name, ())
                       if not p["metadata"].get("deletionTimestamp")), key=_created)
        if should_run:
            desired += 1
        if not pods:
            continue
        if not should_run:
            # Including a pod left on a node tainted NoSchedule since (as Kubernetes counts).
            misscheduled += 1
            continue
        current += 1
        pod = pods[0]
        if podutil.is_ready(pod):
            ready += 1
            if podutil.is_available(pod, min_ready, now):
                available += 1
        if (pod["metadata"].get("labels") or {}).get(history.HASH_LABEL) == hash_:
            updated += 1
    status = dict(ds.get("status") or {})
    status.update(desiredNumberScheduled=desired, currentNumberScheduled=current,
                  numberMisscheduled=misscheduled, numberReady=ready,
                  numberAvailable=available, updatedNumberScheduled=updated,
                  numberUnavailable=desired - available,
                  observedGeneration=ds["metadata"].get("generation", 0))
    return status

