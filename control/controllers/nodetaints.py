"""Judge a node's taints and kubelet conditions from its dict (pure).

Apart from the controller (nodelifecycle.py): which NoSchedule taints the
conditions call for, how taints are swapped and what "the kubelet went
silent" does to the conditions are rules a table can test.
"""

from control.objects import meta

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
#: The conditions the kubelet posts and this controller turns Unknown.
KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
#: TaintNodesByCondition: (condition type, status) -> NoSchedule taint key.
CONDITION_TAINTS = {
    ("Ready", "False"): NOT_READY,
    ("Ready", "Unknown"): UNREACHABLE,
    ("MemoryPressure", "True"): "node.kubernetes.io/memory-pressure",
    ("DiskPressure", "True"): "node.kubernetes.io/disk-pressure",
    ("PIDPressure", "True"): "node.kubernetes.io/pid-pressure",
    ("NetworkUnavailable", "True"): "node.kubernetes.io/network-unavailable",
}
#: Every NoSchedule taint key this controller owns (and so may remove).
MANAGED_NO_SCHEDULE = frozenset(CONDITION_TAINTS.values()) | {UNSCHEDULABLE}


def has_taint(node, key, effect):
    return any(t.get("key") == key and t.get("effect") == effect
               for t in (node.get("spec") or {}).get("taints") or ())


def no_schedule_taints(node):
    """The NoSchedule taint keys the node's conditions and spec call for."""
    keys = {CONDITION_TAINTS[(c.get("type"), c.get("status"))]
            for c in (node.get("status") or {}).get("conditions") or ()
            if (c.get("type"), c.get("status")) in CONDITION_TAINTS}
    if (node.get("spec") or {}).get("unschedulable"):
        keys.add(UNSCHEDULABLE)
    return keys


def swap_taints(taints, add, remove, now):
    """``taints`` with the (key, effect) pairs in ``remove`` gone and those in ``add`` present.

    A taint already present is kept as is (its timeAdded too); new NoExecute
    taints get timeAdded ``now`` (what the taint manager counts from).
    """
    result = [t for t in taints or () if (t.get("key"), t.get("effect")) not in remove]
    present = {(t.get("key"), t.get("effect")) for t in result}
    for key, effect in add:
        if (key, effect) not in present:
            taint = {"key": key, "effect": effect}
            if effect == "NoExecute":
                taint["timeAdded"] = meta.timestamp(now)
            result.append(taint)
    return result


def unknown_conditions(node, now):
    """(conditions, changed): the kubelet's conditions set Unknown, as when it stops posting."""
    conditions = [dict(c) for c in (node.get("status") or {}).get("conditions") or ()]
    by_type = {c.get("type"): c for c in conditions}
    changed = False
    for kind in KUBELET_CONDITIONS:
        cond = by_type.get(kind)
        if cond is None:
            conditions.append({
                "type": kind, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                "message": "Kubelet never posted node status.",
                "lastHeartbeatTime": node["metadata"].get("creationTimestamp"),
                "lastTransitionTime": now})
            changed = True
        elif cond.get("status") != "Unknown":
            cond.update(status="Unknown", reason="NodeStatusUnknown",
                        message="Kubelet stopped posting node status.", lastTransitionTime=now)
            changed = True
    return conditions, changed
