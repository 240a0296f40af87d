"""Match claims with volumes, as Kubernetes' PV controller does (pure functions).

A claim is satisfied by an Available volume of the same class, with every access
mode it asks for, the same volumeMode, labels its selector accepts and at least
the capacity it requests; among those the smallest wins (so a big volume is not
wasted on a small claim). A volume pre-bound to a claim (``spec.claimRef``) is
only ever given to that claim. The annotations and phase names are Kubernetes'.
"""

from control.objects.quantity import QuantityError, value
from control.objects.selectors import LabelSelector, SelectorError

#: Annotations the PV controller writes (pkg/controller/volume/persistentvolume).
BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
BETA_DEFAULT_CLASS = "storageclass.beta.kubernetes.io/is-default-class"
#: Finalizers of the pvc-protection and pv-protection controllers.
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"

WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"


def claim_class(claim):
    """The claim's storage class name ("" for none; None while still unset)."""
    return (claim.get("spec") or {}).get("storageClassName")


def volume_class(volume):
    return (volume.get("spec") or {}).get("storageClassName") or ""


def quantity_bytes(text):
    """A quantity in bytes, or None when it does not parse."""
    try:
        return value(str(text))
    except (QuantityError, ValueError, TypeError):
        return None


def requested_bytes(claim):
    requests = ((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}
    return quantity_bytes(requests.get("storage", "0")) or 0


def capacity_bytes(volume):
    capacity = (volume.get("spec") or {}).get("capacity") or {}
    return quantity_bytes(capacity.get("storage", "0")) or 0


def is_default_class(storage_class):
    annotations = storage_class.get("metadata", {}).get("annotations") or {}
    return "true" in (annotations.get(DEFAULT_CLASS), annotations.get(BETA_DEFAULT_CLASS))


def default_class(classes):
    """The default StorageClass: the newest of those marked default (as Kubernetes 1.26+)."""
    marked = [c for c in classes if is_default_class(c)]
    if not marked:
        return None
    return max(marked, key=lambda c: (c["metadata"].get("creationTimestamp") or "",
                                      c["metadata"]["name"]))


def _claim_ref_matches(volume, claim):
    ref = (volume.get("spec") or {}).get("claimRef")
    if not ref:
        return True
    meta = claim["metadata"]
    return ref.get("name") == meta["name"] and ref.get("namespace") == meta.get("namespace") \
        and ref.get("uid") in (None, "", meta.get("uid"))


def mismatch(volume, claim):
    """Why ``volume`` cannot serve ``claim`` (a short phrase), or None if it can."""
    spec, wanted = volume.get("spec") or {}, claim.get("spec") or {}
    if not _claim_ref_matches(volume, claim):
        return "pre-bound to another claim"
    if volume_class(volume) != (claim_class(claim) or ""):
        return "storage class differs"
    if (spec.get("volumeMode") or "Filesystem") != (wanted.get("volumeMode") or "Filesystem"):
        return "volumeMode differs"
    if not set(wanted.get("accessModes") or ()) <= set(spec.get("accessModes") or ()):
        return "access modes do not include the claim's"
    if capacity_bytes(volume) < requested_bytes(claim):
        return "capacity too small"
    selector = wanted.get("selector")
    if selector:
        try:
            if not LabelSelector.from_object(selector).matches(
                    volume["metadata"].get("labels") or {}):
                return "labels do not match the selector"
        except SelectorError:
            return "invalid selector"
    return None


def is_available(volume):
    """Free for binding: not being deleted, Available (or new), claimRef empty or the claim's."""
    if volume["metadata"].get("deletionTimestamp"):
        return False
    return ((volume.get("status") or {}).get("phase") or "Available") in ("Available", "Pending")


def find_best_match(claim, volumes):
    """The volume to bind ``claim`` to, or None: pre-bound first, else the smallest fit."""
    fits = [v for v in volumes if is_available(v) and mismatch(v, claim) is None]
    prebound = [v for v in fits if (v.get("spec") or {}).get("claimRef")]
    if prebound:
        return prebound[0]
    # A volume pre-bound to nobody; with a selector-less claim, the smallest that fits.
    return min(fits, key=lambda v: (capacity_bytes(v), v["metadata"]["name"]), default=None)


def claim_ref(claim):
    meta = claim["metadata"]
    return {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
            "namespace": meta.get("namespace"), "name": meta["name"], "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion")}


def bound_to(volume, claim):
    """True if the volume's claimRef names this very claim (its uid included)."""
    ref = (volume.get("spec") or {}).get("claimRef") or {}
    meta = claim["metadata"]
    return ref.get("name") == meta["name"] and ref.get("namespace") == meta.get("namespace") \
        and ref.get("uid") == meta.get("uid")


def claims_in_use(pods):
    """{(namespace, claim name)} used by pods that are not finished (pvc-protection)."""
    used = set()
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        for volume in (pod.get("spec") or {}).get("volumes") or ():
            name = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if name:
                used.add((pod["metadata"].get("namespace"), name))
    return used
