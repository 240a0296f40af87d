"""Pods: deleted gracefully, so that their node agent can stop them first."""

from control.api.strategies.base import Strategy

#: A pod's grace period when neither the request nor the pod names one.
DEFAULT_GRACE = 30


class PodStrategy(Strategy):
    """Pod rules: the graceful part of a delete."""

    def grace_period(self, obj, requested):
        spec = obj.get("spec", {})
        grace = requested
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE)
        if not spec.get("nodeName"):
            return 0        # nothing runs it yet
        if obj.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return 0        # nothing left to stop
        return grace or 0
