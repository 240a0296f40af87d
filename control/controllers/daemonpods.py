"""Decide which nodes a daemon pod belongs on and build it (pure).

Apart from the controller (daemonset.py) and the planning (daemonplan.py):
eligibility, the automatic tolerations and the node affinity are what both
the planning and the pod a controller creates depend on.
"""

import copy

from control.controllers import history
from control.controllers import pods as podutil
from control.controllers.ownership import controller_ref
from control.objects import taints
from control.scheduler import placement

API_VERSION, KIND = "apps/v1", "DaemonSet"
TEMPLATE_GENERATION_LABEL = "pod-template-generation"

#: The tolerations Kubernetes' DaemonSet controller adds to every daemon pod.
DAEMON_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
NETWORK_UNAVAILABLE = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
                       "effect": "NoSchedule"}


def with_daemon_tolerations(pod_spec):
    """A copy of ``pod_spec`` with the automatic daemon tolerations it lacks."""
    spec = copy.deepcopy(pod_spec)
    wanted = list(DAEMON_TOLERATIONS)
    if spec.get("hostNetwork"):
        wanted.append(NETWORK_UNAVAILABLE)
    tolerations = list(spec.get("tolerations") or ())
    for toleration in wanted:
        # AddOrUpdateTolerationInPodSpec: one for the same key, operator, value and
        # effect is replaced (a user's tolerationSeconds must not cut the pod's stay).
        same = [i for i, t in enumerate(tolerations) if _same_toleration(t, toleration)]
        if same:
            tolerations[same[0]] = dict(toleration)
        else:
            tolerations.append(dict(toleration))
    spec["tolerations"] = tolerations
    return spec


def _same_toleration(a, b):
    return all((a.get(f) or "") == (b.get(f) or "") for f in ("key", "value", "effect")) and \
        (a.get("operator") or "Equal") == (b.get("operator") or "Equal")


class _NodeInfo:
    """The one attribute placement's filters read."""

    def __init__(self, node):
        self.node = node


def node_should_run(node, pod_spec):
    """(should_run, should_continue_running) for a daemon pod with ``pod_spec`` on ``node``.

    ``pod_spec`` must already carry the daemon tolerations. A pod keeps running
    despite a NoSchedule taint it does not tolerate; only NoExecute ones evict.
    """
    pod = {"spec": pod_spec}
    if placement.filter_node_affinity(_NodeInfo(node), pod, None):
        return False, False
    node_taints = (node.get("spec") or {}).get("taints") or ()
    tolerations = pod_spec.get("tolerations") or ()

    def untolerated(effects):
        return any(t.get("effect") in effects and
                   not any(taints.tolerates(tol, t) for tol in tolerations) for t in node_taints)

    if untolerated(("NoExecute",)):
        return False, False
    return not untolerated(("NoSchedule",)), True


def target_node(pod):
    """The node a daemon pod is for: its nodeName, or the node its affinity names."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in required.get("nodeSelectorTerms") or ():
        for field in term.get("matchFields") or ():
            values = field.get("values") or ()
            if field.get("key") == "metadata.name" and field.get("operator") == "In" and \
                    len(values) == 1:
                return values[0]
    return None


def with_node_affinity(pod_spec, node_name):
    """``pod_spec`` requiring the node ``node_name`` (ReplaceDaemonSetPodNodeNameNodeAffinity)."""
    spec = copy.deepcopy(pod_spec)
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}
    return spec


def new_pod(ds, node_name, hash_):
    """A daemon pod for ``node_name``: template, revision labels, tolerations, node affinity."""
    pod = podutil.pod_from_template(ds)
    labels = pod["metadata"].setdefault("labels", {})
    labels[history.HASH_LABEL] = hash_
    labels[TEMPLATE_GENERATION_LABEL] = str(ds["metadata"].get("generation", 1))
    pod["metadata"]["ownerReferences"] = [controller_ref(ds, API_VERSION, KIND)]
    pod["spec"] = with_node_affinity(with_daemon_tolerations(pod["spec"]), node_name)
    return pod
