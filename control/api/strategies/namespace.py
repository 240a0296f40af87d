"""Namespaces: born Active with the ``kubernetes`` finalizer, emptied before they go.

A namespace's ``spec.finalizers`` say what must be cleaned up first (the
namespace controller deletes its content, then removes ``kubernetes``). Only the
``finalize`` subresource changes them, as in kube-apiserver; a delete marks the
namespace Terminating until they are gone.
"""

from control.api.strategies.base import Strategy

FINALIZER = "kubernetes"


class NamespaceStrategy(Strategy):
    """Namespace rules for create, update and delete."""

    def prepare_for_create(self, obj):
        obj.setdefault("spec", {}).setdefault("finalizers", [FINALIZER])
        obj.setdefault("status", {})["phase"] = "Active"
        return obj

    def prepare_for_update(self, old, new):
        merged = super().prepare_for_update(old, new)
        finalizers = old.get("spec", {}).get("finalizers")
        merged.setdefault("spec", {}).pop("finalizers", None)
        if finalizers is not None:
            merged["spec"]["finalizers"] = finalizers
        return merged

    def awaits_cleanup(self, obj):
        return bool(obj.get("spec", {}).get("finalizers"))

    def prepare_for_delete(self, obj):
        obj.setdefault("status", {})["phase"] = "Terminating"


class NamespaceFinalizeStrategy(NamespaceStrategy):
    """PUT namespaces/{name}/finalize: the one write that may change spec.finalizers."""

    def prepare_for_update(self, old, new):
        return Strategy.prepare_for_update(self, old, new)

    def warnings(self, obj):
        return []
