"""Status conditions: the one way to find a condition of an object and read it.

Pods, Nodes, Deployments, Jobs and Namespaces all carry ``status.conditions``, a list
of ``{type, status, reason, message, last*Time}``; every reader asks the same two
questions (which condition of this type, and is it "True"), answered here once.
"""


def find(obj, condition_type):
    """Return the object's condition of this type, or None."""
    for condition in ((obj or {}).get("status") or {}).get("conditions") or ():
        if isinstance(condition, dict) and condition.get("type") == condition_type:
            return condition
    return None


def is_true(obj, condition_type):
    """Return whether the object's condition of this type has status "True"."""
    condition = find(obj, condition_type)
    return condition is not None and condition.get("status") == "True"


def is_ready(obj):
    """Return whether a Pod or Node reports Ready=True (podutil.IsPodReady, nodeutil's)."""
    return is_true(obj, "Ready")
