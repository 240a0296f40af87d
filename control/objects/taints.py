"""Taints and tolerations: which toleration covers which taint (k8s ToleratesTaint).

The scheduler filters nodes by it, the taint manager evicts by it and the
DefaultTolerationSeconds admission step adds tolerations by it; one rule for all.
"""


def tolerates(toleration, taint):
    """Return whether one toleration tolerates one taint.

    An empty effect matches every effect, an empty key with ``Exists`` matches every
    key, ``Equal`` (the default operator) also compares values.
    """
    if not isinstance(toleration, dict):
        return False
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def pod_tolerates(pod, taint):
    """Return whether any of the pod's tolerations tolerates the taint."""
    tolerations = ((pod or {}).get("spec") or {}).get("tolerations") or ()
    return any(tolerates(t, taint) for t in tolerations)
