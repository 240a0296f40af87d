"""NodeRestriction admission: a node agent writes only its own Node and Lease, not its labels'
restricted keys, and asks ServiceAccount tokens only bound to its own pods.

The Node authorizer (node.py) cannot see a POST's object name or a write's
labels; these checks run inside the write, on the object itself, for requests
from node users only (kube-apiserver's NodeRestriction plugin does the same).
"""

from control import errors
from control.api.auth import context
from control.api.auth import user as users

#: Labels under this prefix are for the cluster admin to set on nodes, never the node.
RESTRICTED_DOMAIN = "node-restriction.kubernetes.io"


def _node_of_request():
    auth = context.current.get()
    if auth is None or auth.authorizer.allows_everything:
        return None
    return users.node_name(auth.user)


def _restricted(labels):
    """Return the labels whose prefix is node-restriction.kubernetes.io (or a subdomain)."""
    found = {}
    for key, value in (labels or {}).items():
        domain, slash, _ = key.partition("/")
        if slash and (domain == RESTRICTED_DOMAIN or domain.endswith("." + RESTRICTED_DOMAIN)):
            found[key] = value
    return found


def _refuse(node, message):
    return errors.Forbidden(f'node "{node}" is not allowed to {message}')


def admit_own_object(kind, obj):
    """Refuse a node creating or writing a Node or Lease named after another node."""
    node = _node_of_request()
    if node is None:
        return
    name = obj.get("metadata", {}).get("name")
    if name != node:
        raise _refuse(node, f"modify {kind.lower()} \"{name}\"")


def admit_node_labels(old, new):
    """Refuse a node adding, changing or removing its node-restriction.kubernetes.io/ labels."""
    node = _node_of_request()
    if node is None:
        return
    admit_own_object("Node", new)
    old_labels = _restricted((old or {}).get("metadata", {}).get("labels"))
    new_labels = _restricted(new.get("metadata", {}).get("labels"))
    if old_labels != new_labels:
        changed = sorted(k for k in set(old_labels) | set(new_labels)
                         if old_labels.get(k) != new_labels.get(k))
        raise _refuse(node, f"modify labels: {', '.join(changed)}")


def admit_token_request(account, pod):
    """Refuse a node's TokenRequest unless it binds the token to a pod on that node.

    As Kubernetes' NodeRestriction: the token must be bound to a Pod (``pod`` is the
    bound pod, or None), the pod must be bound to the requesting node, and it must
    run as the ServiceAccount ``account`` the token is asked for.
    """
    node = _node_of_request()
    if node is None:
        return
    if pod is None:
        raise _refuse(node, "request a token not bound to a pod")
    spec = pod.get("spec") or {}
    if spec.get("nodeName") != node:
        raise _refuse(node, "request a token bound to a pod scheduled on another node")
    if (spec.get("serviceAccountName") or "default") != account:
        raise _refuse(node, f"request a token for serviceaccount \"{account}\": the bound pod "
                            "runs as another")
