"""Write a controller's status: skip writes that change nothing, retry once on a Conflict.

Every workload controller computes a status from its caches and writes it with
``update_status``. The cache may be behind (often our own last write is not yet
in it), so a Conflict is retried once on a fresh read, as Kubernetes' controllers
do (updateReplicaSetStatus and friends).
"""

from control.client import Conflict, NotFound


def significant(status):
    """Status without zero or empty fields, which a server may omit when it stores them:
    compare two statuses by this to skip writes that change nothing."""
    return {k: v for k, v in (status or {}).items() if v not in (0, None, "", [], {})}


def write_status(rest, resource, obj, status, merge=None):
    """Write ``status`` onto ``obj`` unless it changes nothing; return the object as written.

    On a Conflict, read the object fresh and try once more: with ``status`` as it
    is, or with ``merge(fresh, status)`` when given (None: do not write, return
    the fresh object). An object deleted or replaced meanwhile (404, other uid)
    is left alone: None is returned.
    """
    meta = obj["metadata"]
    namespace, name, uid = meta.get("namespace"), meta["name"], meta.get("uid")
    for attempt in range(2):
        if significant(status) == significant(obj.get("status")):
            return obj
        try:
            return rest.update_status(resource, namespace, {**obj, "status": status}) or \
                {**obj, "status": status}
        except NotFound:
            return None
        except Conflict:
            if attempt:
                raise
            try:
                fresh = rest.get(resource, namespace, name)
            except NotFound:
                return None
            if uid is not None and fresh["metadata"].get("uid") != uid:
                return None
            if merge is not None:
                status = merge(fresh, status)
                if status is None:
                    return fresh
            obj = fresh
    return obj
