"""Table columns of ResourceQuotas and LimitRanges, as kube-apiserver's printers make them.

``kubectl get quota`` shows NAME, AGE, REQUEST and LIMIT: each resource of
status.hard as ``name: used/hard``, sorted by name, those named ``limits.*`` under
LIMIT and the rest under REQUEST; ``kubectl get limitrange`` NAME and CREATED AT.
"""

from control.api.printers import AGE, NAME, column, created_age, metadata_of

QUOTA_COLUMNS = [
    NAME, AGE,
    column("Request", description="Request represents a minimum amount of cpu/memory that a "
           "container may consume."),
    column("Limit", description="Limits control the maximum amount of cpu/memory that a "
           "container may use independent of contention on the node.")]
LIMITRANGE_COLUMNS = [
    NAME,
    column("Created At", "date", description="CreationTimestamp is a timestamp representing "
           "the server time when this object was created. It is represented in RFC3339 form "
           "and is in UTC.")]


def quota_columns(status):
    """Return the REQUEST and LIMIT cells of a quota's status."""
    hard, used = status.get("hard") or {}, status.get("used") or {}
    request, limit = [], []
    for name in sorted(hard):
        cell = f"{name}: {used.get(name, '0')}/{hard[name]}"
        (limit if name.split(".")[0] == "limits" and "." in name else request).append(cell)
    return ", ".join(request), ", ".join(limit)


def print_resourcequota(obj, now):
    """NAME, AGE, REQUEST, LIMIT."""
    request, limit = quota_columns(obj.get("status") or {})
    return [metadata_of(obj).get("name", ""), created_age(obj, now), request, limit]


def print_limitrange(obj, now):
    """NAME, CREATED AT (the RFC 3339 creation time)."""
    metadata = metadata_of(obj)
    return [metadata.get("name", ""), metadata.get("creationTimestamp")]
