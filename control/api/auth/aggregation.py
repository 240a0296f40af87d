"""Fill the rules of aggregating ClusterRoles, as kube-controller-manager's aggregator does.

A ClusterRole with an ``aggregationRule`` holds the union of the rules of every
ClusterRole whose labels match one of its ``clusterRoleSelectors``. Aggregated
roles may feed others (edit feeds admin, view feeds edit), so the union is taken
until nothing changes. The API server applies it in memory to every policy
snapshot (authorization never waits for it) and writes it back on start and
after each ClusterRole write it serves.
"""

from control import errors
from control.objects import kinds
from control.objects.selectors import LabelSelector, SelectorError

#: Rounds of aggregation; chains in the default policy are three deep.
MAX_ROUNDS = 10


def _selectors(role):
    found = []
    for selector in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or ():
        try:
            found.append(LabelSelector.from_object(selector or {}))
        except SelectorError:
            continue
    return found


def aggregated_rules(cluster_roles):
    """Return {name: rules} for each aggregating role in ``cluster_roles`` (name -> role)."""
    rules = {name: list(role.get("rules") or ()) for name, role in cluster_roles.items()}
    aggregating = {name: _selectors(role) for name, role in cluster_roles.items()
                   if role.get("aggregationRule")}
    for _ in range(MAX_ROUNDS):
        changed = False
        for name, selectors in aggregating.items():
            union = []
            for other in sorted(cluster_roles):
                labels = cluster_roles[other].get("metadata", {}).get("labels") or {}
                if other == name or not any(s.matches(labels) for s in selectors):
                    continue
                for rule in rules[other]:
                    if rule not in union:
                        union.append(rule)
            if union != rules[name]:
                rules[name], changed = union, True
        if not changed:
            break
    return {name: rules[name] for name in aggregating}


def aggregate(service, retries=3):
    """Write the aggregated rules of every aggregating ClusterRole whose rules are stale."""
    items, _, _ = service.list(kinds.CLUSTERROLES)
    roles = {r["metadata"]["name"]: r for r in items}
    for name, rules in aggregated_rules(roles).items():
        if (roles[name].get("rules") or []) == rules:
            continue
        for _ in range(retries):
            try:
                service.update(kinds.CLUSTERROLES, None, name, {**roles[name], "rules": rules})
                break
            except errors.Conflict:
                roles[name] = service.get(kinds.CLUSTERROLES, None, name)
            except errors.NotFound:
                break
