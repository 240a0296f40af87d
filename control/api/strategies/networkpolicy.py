"""NetworkPolicies: validated as kube-apiserver's networkpolicy strategy does.

A change of ``spec`` bumps ``metadata.generation`` (meta.prepare_update does that
for every kind), so a network plugin can tell which version it has enforced.
"""

from control import errors
from control.api.strategies.base import Strategy
from control.objects import meta, networkpolicies


class NetworkPolicyStrategy(Strategy):
    """NetworkPolicy rules: selectors, policyTypes, ports and ipBlocks (networkpolicies.py)."""

    def validate(self, obj):
        name = obj["metadata"].get("name", "")
        problems = (meta.name_errors(self.resource.kind, name) + self.meta_errors(obj) +
                    networkpolicies.validate(obj))
        if problems:
            raise errors.Invalid(self.resource.kind, name, problems, group=self.resource.group)
