"""Namespaces: born Active with the ``kubernetes`` finalizer, emptied before they go.

A namespace's ``spec.finalizers`` say what must be cleaned up first (the
namespace controller deletes its content, then removes ``kubernetes``). Only the
``finalize`` subresource changes them, as in kube-apiserver; a delete marks the
namespace Terminating until they are gone. As kube-apiserver's NamespaceLifecycle
admission plugin, default, kube-system and kube-public may never be deleted: the
control plane lives in them (kube-node-lease is re-created instead, by
control/api/systemnamespaces.py).
"""

from control import errors
from control.api.strategies.base import Strategy

FINALIZER = "kubernetes"
#: Namespaces that may not be deleted (NamespaceLifecycle's immortal namespaces).
IMMORTAL = frozenset(("default", "kube-system", "kube-public"))


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

    def check_delete(self, obj):
        name = obj["metadata"].get("name", "")
        if name in IMMORTAL:
            raise errors.Forbidden(f'namespaces "{name}" is forbidden: this namespace may '
                                   "not be deleted", name=name, kind="namespaces")


class NamespaceFinalizeStrategy(NamespaceStrategy):
    """PUT namespaces/{name}/finalize: the one write that may change spec.finalizers."""

    def prepare_for_update(self, old, new):
        return Strategy.prepare_for_update(self, old, new)

    def warnings(self, obj):
        return []
