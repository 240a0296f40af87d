"""EndpointSlices: validated as Kubernetes does; addressType fixed once set.

As kube-apiserver's endpointslice strategy, any change beyond metadata bumps
``metadata.generation`` (the kind has no spec), which the EndpointSlice
controller reads to tell its own writes from a stale cache.
"""

from control import errors
from control.api.strategies.base import Strategy
from control.objects import endpointslices, meta


class EndpointSliceStrategy(Strategy):
    """EndpointSlice rules: limits, address formats, immutable addressType."""

    def prepare_for_update(self, old, new):
        merged = super().prepare_for_update(old, new)
        if merged.get("addressType") != old.get("addressType"):
            raise self._invalid(merged, [endpointslices.invalid(
                "addressType", merged.get("addressType"), "field is immutable")])
        if _content(merged) != _content(old):
            merged["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        return merged

    def validate(self, obj):
        name = obj["metadata"].get("name", "")
        problems = (meta.name_errors(self.resource.kind, name) + self.meta_errors(obj) +
                    endpointslices.validate(obj))
        if problems:
            raise self._invalid(obj, problems)

    def _invalid(self, obj, problems):
        return errors.Invalid(self.resource.kind, obj["metadata"].get("name", ""), problems,
                              group=self.resource.group)


def _content(obj):
    """What an EndpointSlice says, metadata aside (what its generation counts)."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind")}
