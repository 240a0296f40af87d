"""Storage admission: DefaultStorageClass, StorageObjectInUseProtection, PVC resize.

As kube-apiserver's: a PersistentVolumeClaim created with no storageClassName at
all (not "", which asks for no class) gets the default StorageClass, the newest
of those annotated ``storageclass.kubernetes.io/is-default-class: "true"``; and
every new claim and volume gets its protection finalizer
(``kubernetes.io/pvc-protection``, ``kubernetes.io/pv-protection``), which the
PV controller removes once the claim is unused or the volume unbound
(control/controllers/persistentvolume/). PersistentVolumeClaimResize refuses a
bigger request unless the claim's class sets allowVolumeExpansion.
"""

from control import errors
from control.objects import kinds
from control.objects.quantity import QuantityError, value

STORAGECLASSES = kinds.lookup("storage.k8s.io", "v1", "storageclasses")
DEFAULT_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                       "storageclass.beta.kubernetes.io/is-default-class")
FINALIZERS = {"PersistentVolumeClaim": "kubernetes.io/pvc-protection",
              "PersistentVolume": "kubernetes.io/pv-protection"}


def _creating(attrs, kind):
    return attrs.operation == "CREATE" and not attrs.subresource and \
        attrs.resource.group == "" and attrs.resource.kind == kind


def default_class(classes):
    """The default StorageClass of ``classes`` (the newest marked default), or None."""
    marked = [c for c in classes
              if any((c["metadata"].get("annotations") or {}).get(a) == "true"
                     for a in DEFAULT_ANNOTATIONS)]
    return max(marked, key=lambda c: (c["metadata"].get("creationTimestamp") or "",
                                      c["metadata"]["name"]), default=None)


class DefaultStorageClassAdmission:
    """Give a new claim that names no class the cluster's default StorageClass."""

    def __init__(self, service):
        self.service = service

    def admit(self, attrs):
        if not _creating(attrs, "PersistentVolumeClaim"):
            return attrs.obj
        spec = attrs.obj.get("spec")
        if not isinstance(spec, dict) or "storageClassName" in spec and \
                spec["storageClassName"] is not None:
            return attrs.obj
        items, _, _ = self.service.registry.list(STORAGECLASSES, None)
        default = default_class(items)
        if default is not None:
            spec["storageClassName"] = default["metadata"]["name"]
        return attrs.obj


class StorageObjectInUseProtectionAdmission:
    """Put the protection finalizer on every new claim and volume."""

    def __init__(self, service):
        self.service = service

    def admit(self, attrs):
        for kind, finalizer in FINALIZERS.items():
            if _creating(attrs, kind):
                meta = attrs.obj.setdefault("metadata", {})
                if isinstance(meta, dict):
                    finalizers = meta.get("finalizers")
                    finalizers = list(finalizers) if isinstance(finalizers, list) else []
                    if finalizer not in finalizers:
                        meta["finalizers"] = finalizers + [finalizer]
        return attrs.obj


def _storage_request(claim):
    requests = ((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}
    try:
        return value(str(requests["storage"]))
    except (KeyError, QuantityError, ValueError):
        return None


class PersistentVolumeClaimResizeAdmission:
    """Let a claim grow only if its StorageClass allows volume expansion."""

    def __init__(self, service):
        self.service = service

    def validate(self, attrs):
        if attrs.operation != "UPDATE" or attrs.subresource or attrs.resource.group != "" or \
                attrs.resource.kind != "PersistentVolumeClaim" or attrs.old is None:
            return
        wanted, had = _storage_request(attrs.obj), _storage_request(attrs.old)
        if wanted is None or had is None or wanted <= had:
            return
        class_name = (attrs.old.get("spec") or {}).get("storageClassName")
        try:
            storage_class = self.service.registry.get(STORAGECLASSES, None, class_name) \
                if class_name else None
        except errors.NotFound:
            storage_class = None
        if not (storage_class or {}).get("allowVolumeExpansion"):
            name = (attrs.obj.get("metadata") or {}).get("name", "")
            raise errors.Forbidden(
                f'persistentvolumeclaims "{name}" is forbidden: only dynamically provisioned '
                "pvc can be resized and the storageclass that provisions the pvc must support "
                "resize", name=name, kind="persistentvolumeclaims")
