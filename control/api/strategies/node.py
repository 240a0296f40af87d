"""Nodes and Leases written by node agents: NodeRestriction applies to them."""

from control.api.auth import noderestriction
from control.api.strategies.base import Strategy


class NodeStrategy(Strategy):
    """A node agent may create and write only its own Node, never its restricted labels."""

    def prepare_for_create(self, obj):
        noderestriction.admit_node_labels(None, obj)
        return obj

    def prepare_for_update(self, old, new):
        merged = super().prepare_for_update(old, new)
        noderestriction.admit_node_labels(old, merged)
        return merged


class LeaseStrategy(Strategy):
    """A node agent may create and renew only the Lease named after it."""

    def prepare_for_create(self, obj):
        noderestriction.admit_own_object("Lease", obj)
        return obj

    def prepare_for_update(self, old, new):
        merged = super().prepare_for_update(old, new)
        noderestriction.admit_own_object("Lease", merged)
        return merged
