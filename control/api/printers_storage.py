"""The ``kubectl get pv/pvc/sc`` columns, as kube-apiserver's printers (1.32) print them."""

from control.api.printers import AGE, NAME, column, created_age, metadata_of, spec_of, status_of

_MODES = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
          "ReadWriteOncePod": "RWOP"}
_UNSET = "<unset>"


def access_modes(modes):
    """GetAccessModesAsString: RWO,ROX,RWX,RWOP in that order, each once."""
    modes = modes or ()
    return ",".join(_MODES[m] for m in ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany",
                                        "ReadWriteOncePod") if m in modes)


PV_COLUMNS = [
    NAME,
    column("Capacity", description="capacity is the description of the persistent volume's "
           "resources and capacity."),
    column("Access Modes", description="accessModes contains all ways the volume can be "
           "mounted."),
    column("Reclaim Policy", description="persistentVolumeReclaimPolicy defines what happens "
           "to a persistent volume when released from its claim."),
    column("Status", description="phase indicates if a volume is available, bound to a claim, "
           "or released by a claim."),
    column("Claim", description="claimRef is part of a bi-directional binding between "
           "PersistentVolume and PersistentVolumeClaim."),
    column("StorageClass", description="storageClassName is the name of StorageClass to which "
           "this persistent volume belongs."),
    column("VolumeAttributesClass", description="Name of VolumeAttributesClass to which this "
           "persistent volume belongs."),
    column("Reason", description="reason is a brief CamelCase string that describes any "
           "failure."),
    AGE,
    column("VolumeMode", description="volumeMode defines if a volume is intended to be used "
           "with a formatted filesystem or to remain in raw block state.", priority=1),
]

PVC_COLUMNS = [
    NAME,
    column("Status", description="phase represents the current phase of "
           "PersistentVolumeClaim."),
    column("Volume", description="volumeName is the binding reference to the PersistentVolume "
           "backing this claim."),
    column("Capacity", description="capacity represents the actual resources of the "
           "underlying volume."),
    column("Access Modes", description="accessModes contains the desired access modes the "
           "volume should have."),
    column("StorageClass", description="storageClassName is the name of the StorageClass "
           "required by the claim."),
    column("VolumeAttributesClass", description="volumeAttributesClassName may be used to set "
           "the VolumeAttributesClass used by this claim."),
    AGE,
    column("VolumeMode", description="volumeMode defines what type of volume is required by "
           "the claim.", priority=1),
]

SC_COLUMNS = [
    NAME,
    column("Provisioner", description="provisioner indicates the type of the provisioner."),
    column("ReclaimPolicy", description="reclaimPolicy controls the reclaimPolicy for "
           "dynamically provisioned PersistentVolumes of this storage class."),
    column("VolumeBindingMode", description="volumeBindingMode indicates how "
           "PersistentVolumeClaims should be provisioned and bound."),
    column("AllowVolumeExpansion", description="allowVolumeExpansion shows whether the storage "
           "class allow volume expand."),
    AGE,
]


def print_persistentvolume(obj, now):
    spec, status = spec_of(obj), status_of(obj)
    ref = spec.get("claimRef") or {}
    claim = f"{ref.get('namespace')}/{ref.get('name')}" if ref.get("name") else ""
    return [metadata_of(obj).get("name", ""), (spec.get("capacity") or {}).get("storage", ""),
            access_modes(spec.get("accessModes")),
            spec.get("persistentVolumeReclaimPolicy") or "", status.get("phase") or "", claim,
            spec.get("storageClassName") or "", spec.get("volumeAttributesClassName") or _UNSET,
            status.get("reason") or "", created_age(obj, now),
            spec.get("volumeMode") or "Filesystem"]


def print_persistentvolumeclaim(obj, now):
    spec, status = spec_of(obj), status_of(obj)
    bound = status.get("phase") == "Bound"
    capacity = (status.get("capacity") or {}).get("storage", "") if bound else ""
    modes = access_modes(status.get("accessModes")) if bound else ""
    return [metadata_of(obj).get("name", ""), status.get("phase") or "",
            spec.get("volumeName") or "", capacity, modes, spec.get("storageClassName") or "",
            spec.get("volumeAttributesClassName") or _UNSET, created_age(obj, now),
            spec.get("volumeMode") or "Filesystem"]


def print_storageclass(obj, now):
    meta = metadata_of(obj)
    annotations = meta.get("annotations") or {}
    name = meta.get("name", "")
    if "true" in (annotations.get("storageclass.kubernetes.io/is-default-class"),
                  annotations.get("storageclass.beta.kubernetes.io/is-default-class")):
        name += " (default)"
    return [name, obj.get("provisioner") or "", obj.get("reclaimPolicy") or "Delete",
            obj.get("volumeBindingMode") or "Immediate",
            str(bool(obj.get("allowVolumeExpansion"))).lower(), created_age(obj, now)]
