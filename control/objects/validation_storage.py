"""Validate PersistentVolumes, PersistentVolumeClaims and StorageClasses as Kubernetes does.

ValidatePersistentVolume(Update), ValidatePersistentVolumeClaim(Update) and
ValidateStorageClass(Update) of Kubernetes 1.32, for the fields Steersman uses:
access modes, capacity and requests as quantities, one volume source, reclaim
policies and binding modes; a claim's spec is immutable once created but for a
growing storage request and the volumeName the binder sets; a class's
parameters, provisioner, reclaimPolicy and volumeBindingMode never change.
"""

from control.objects.quantity import QuantityError, value
from control.objects.selectors import validate_label_selector
from control.objects.validation_common import (
    enum,
    forbidden,
    immutable,
    invalid,
    not_supported,
    required,
)

ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
RECLAIM_POLICIES = ("Delete", "Recycle", "Retain")
CLASS_RECLAIM_POLICIES = ("Delete", "Retain")
VOLUME_MODES = ("Block", "Filesystem")
BINDING_MODES = ("Immediate", "WaitForFirstConsumer")
#: The volume sources a PersistentVolume may name (exactly one).
VOLUME_SOURCES = ("hostPath", "local", "nfs", "csi", "iscsi", "fc", "rbd", "cephfs",
                  "glusterfs", "flexVolume", "awsElasticBlockStore", "gcePersistentDisk",
                  "azureDisk", "azureFile", "vsphereVolume", "portworxVolume", "scaleIO",
                  "storageos", "quobyte", "photonPersistentDisk", "cinder", "flocker")
CLAIM_IMMUTABLE = ("spec is immutable after creation except resources.requests and "
                   "volumeAttributesClassName for bound claims")


def _spec(obj):
    spec = obj.get("spec") if isinstance(obj, dict) else None
    return spec if isinstance(spec, dict) else {}


def _access_modes(modes, path):
    if not modes:
        return [required(path, "at least 1 access mode is required")]
    if not isinstance(modes, list):
        return [invalid(path, modes, "must be a list of access modes")]
    errs = [not_supported(path, m, ACCESS_MODES) for m in modes if m not in ACCESS_MODES]
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        errs.append(forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return errs


def _storage(resources, path):
    """The storage quantity of ``resources`` ({"storage": q}): Required, parsable, > 0."""
    if not isinstance(resources, dict) or "storage" not in resources:
        return [required(f"{path}[storage]", "")]
    quantity = resources["storage"]
    try:
        amount = value(str(quantity))
    except (QuantityError, ValueError):
        return [invalid(f"{path}[storage]", quantity,
                        "quantities must match the regular expression "
                        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    if amount <= 0:
        return [invalid(f"{path}[storage]", quantity, "must be greater than zero")]
    return []


def persistentvolume_errors(obj):
    """ValidatePersistentVolume."""
    spec = _spec(obj)
    errs = _access_modes(spec.get("accessModes"), "spec.accessModes")
    if not spec.get("capacity"):
        errs.append(required("spec.capacity", ""))
    else:
        errs += _storage(spec["capacity"], "spec.capacity")
    errs += enum(spec.get("persistentVolumeReclaimPolicy"), RECLAIM_POLICIES,
                 "spec.persistentVolumeReclaimPolicy")
    errs += enum(spec.get("volumeMode"), VOLUME_MODES, "spec.volumeMode")
    sources = [s for s in VOLUME_SOURCES if spec.get(s) is not None]
    if not sources:
        errs.append(required("spec", "must specify a volume type"))
    elif len(sources) > 1:
        errs.append(forbidden(f"spec.{sources[1]}", "may not specify more than 1 volume type"))
    host_path = spec.get("hostPath")
    if isinstance(host_path, dict):
        path = host_path.get("path")
        if not path:
            errs.append(required("spec.hostPath.path", ""))
        elif isinstance(path, str) and ".." in path.split("/"):
            errs.append(invalid("spec.hostPath.path", path, "must not contain '..'"))
    local = spec.get("local")
    if isinstance(local, dict):
        if not local.get("path"):
            errs.append(required("spec.local.path", ""))
        if not ((spec.get("nodeAffinity") or {}).get("required")):
            errs.append(required("spec.nodeAffinity", "Local volume requires node affinity"))
    return errs


def persistentvolume_update_errors(new, old):
    """ValidatePersistentVolumeUpdate: the source, volumeMode and a set node affinity stay."""
    spec, before = _spec(new), _spec(old)
    errs = []
    if {s: spec.get(s) for s in VOLUME_SOURCES} != {s: before.get(s) for s in VOLUME_SOURCES}:
        errs.append(forbidden("spec.persistentvolumesource",
                              "spec.persistentvolumesource is immutable after creation"))
    errs += immutable(spec.get("volumeMode"), before.get("volumeMode"), "spec.volumeMode")
    if before.get("nodeAffinity") and spec.get("nodeAffinity") != before.get("nodeAffinity"):
        errs.append(forbidden("spec.nodeAffinity", "field is immutable"))
    return errs


def persistentvolumeclaim_errors(obj):
    """ValidatePersistentVolumeClaim."""
    spec = _spec(obj)
    errs = _access_modes(spec.get("accessModes"), "spec.accessModes")
    errs += _storage((spec.get("resources") or {}).get("requests"), "spec.resources")
    errs += enum(spec.get("volumeMode"), VOLUME_MODES, "spec.volumeMode")
    errs += [e.cause() for e in validate_label_selector(spec.get("selector"), "spec.selector")]
    return errs


def _requested(spec):
    try:
        return value(str(((spec.get("resources") or {}).get("requests") or {})["storage"]))
    except (KeyError, QuantityError, ValueError):
        return None


def persistentvolumeclaim_update_errors(new, old):
    """ValidatePersistentVolumeClaimUpdate: only a growing request and a first volumeName."""
    spec, before = _spec(new), _spec(old)
    errs = []
    comparable_new, comparable_old = dict(spec), dict(before)
    for comparable in (comparable_new, comparable_old):
        comparable.pop("resources", None)
        comparable.pop("volumeAttributesClassName", None)
    # The binder names the volume once; a claim with no class gets the default (1.28+).
    for field in ("volumeName", "storageClassName"):
        if before.get(field) is None:
            comparable_new.pop(field, None)
            comparable_old.pop(field, None)
    unbound_resized = not before.get("volumeName") and \
        spec.get("resources") != before.get("resources")
    if comparable_new != comparable_old or unbound_resized:
        errs.append(forbidden("spec", CLAIM_IMMUTABLE))
    wanted, had = _requested(spec), _requested(before)
    if wanted is not None and had is not None and wanted < had:
        errs.append(forbidden("spec.resources.requests.storage",
                              "field can not be less than previous value"))
    return errs


def storageclass_errors(obj):
    """ValidateStorageClass."""
    errs = []
    if not obj.get("provisioner"):
        errs.append(required("provisioner", ""))
    errs += enum(obj.get("reclaimPolicy"), CLASS_RECLAIM_POLICIES, "reclaimPolicy")
    errs += enum(obj.get("volumeBindingMode"), BINDING_MODES, "volumeBindingMode")
    parameters = obj.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        errs.append(invalid("parameters", parameters, "must be a map of strings"))
    return errs


def storageclass_update_errors(new, old):
    """ValidateStorageClassUpdate: parameters, provisioner, reclaimPolicy, binding mode stay."""
    errs = []
    for field in ("parameters", "provisioner", "reclaimPolicy"):
        if (new.get(field) or None) != (old.get(field) or None):
            errs.append(forbidden(field, f"updates to {field} are forbidden."))
    errs += immutable(new.get("volumeBindingMode"), old.get("volumeBindingMode"),
                      "volumeBindingMode")
    return errs
