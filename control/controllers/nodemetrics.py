"""kube_node_status_condition from the controller manager's node informer.

Prometheus cannot read Node conditions from the API; kube-state-metrics serves
them as ``kube_node_status_condition{node,condition,status}`` (1 for the status
the condition has, 0 for the other two). The controller manager already keeps
every Node in its informer, so it serves that one family on its /metrics, enough
for a NodeNotReady alert. Only the leader's informers run, so only the leader
reports nodes (a standby serves the family empty).
"""

from control.client import metrics

STATUSES = ("true", "false", "unknown")


def node_condition_samples(nodes):
    """[((node, condition, status), 0 or 1)] for every condition of every node."""
    samples = []
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        name = node["metadata"]["name"]
        for condition in (node.get("status") or {}).get("conditions") or ():
            actual = str(condition.get("status", "Unknown")).lower()
            for status in STATUSES:
                samples.append(((name, condition.get("type", ""), status),
                                1 if actual == status else 0))
    return samples


def register_node_conditions(node_informer, registry=None):
    """Serve kube_node_status_condition from ``node_informer``'s cache."""
    (registry or metrics.REGISTRY).register(metrics.Collected(
        "kube_node_status_condition", "The condition of a cluster node.",
        ("node", "condition", "status"),
        lambda: node_condition_samples(node_informer.store.list())))
