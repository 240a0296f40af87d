"""Writes to the status subresource: they change status and nothing else.

As kube-apiserver's status strategies do, a PUT or PATCH of ``.../status`` keeps
the stored object and takes only its ``status`` from the request; the rules of
the kind (validation, what a delete releases) stay those of its own strategy.
"""

from control.api.strategies.base import Strategy


class StatusStrategy(Strategy):
    """Reset everything but status to the stored object; defer the rest to the kind."""

    def __init__(self, parent):
        super().__init__(parent.resource)
        self.parent = parent

    def prepare_for_update(self, old, new):
        merged = {**old, "status": new.get("status", {})}
        merged["metadata"] = {**old["metadata"],
                              "resourceVersion": new["metadata"]["resourceVersion"]}
        return merged

    def validate(self, obj):
        self.parent.validate(obj)

    def warnings(self, obj):
        return []       # the spec is the stored one: it was warned about when written

    def after_delete(self, obj, allocator):
        self.parent.after_delete(obj, allocator)

    def awaits_cleanup(self, obj):
        return self.parent.awaits_cleanup(obj)
