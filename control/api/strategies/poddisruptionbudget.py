"""PodDisruptionBudgets: a new budget starts with an empty status, as Kubernetes' strategy.

Only the disruption controller (and the eviction subresource) may say how many
disruptions a budget allows: a client's create cannot bring its own status, so a
new PDB allows nothing (observedGeneration 0 < generation 1) until the
controller has counted its pods.
"""

from control.api.strategies.base import Strategy

EMPTY_STATUS = {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0,
                "expectedPods": 0}


class PodDisruptionBudgetStrategy(Strategy):
    """Reset status on create; spec updates bump generation (base rules)."""

    def prepare_for_create(self, obj):
        obj["status"] = dict(EMPTY_STATUS)
        return obj
