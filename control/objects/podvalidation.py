"""Validate the parts of a pod spec that name files: containers, volumes, mounts, paths.

As Kubernetes' ValidatePodSpec does for these fields, with its field paths and
wording: container and volume names are DNS-1123 labels, unique; every
volumeMount names a volume of the pod and has a unique mountPath; subPath,
subPathExpr and the paths of configMap, secret, downwardAPI and projected items
are relative and never step back (``..``); hostPath paths never step back.
One deviation, because the process runtime lays a mountPath out under the
container's directory on the host: a mountPath may not contain ``..`` either.

Each function returns ``(field path, reason, message)`` triples, the shape
``control.errors.Invalid`` takes; [] means valid. Nothing here does I/O.
"""

import json
import re

from control.objects import validation

#: Kinds whose spec.template is a PodTemplateSpec.
TEMPLATE_KINDS = ("ReplicaSet", "Deployment", "DaemonSet", "StatefulSet", "Job",
                  "ReplicationController")
#: The volume sources Kubernetes knows; a volume names exactly one.
VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret",
    "nfs", "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder",
    "cephfs", "flocker", "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume",
    "quobyte", "azureDisk", "photonPersistentDisk", "projected", "portworxVolume", "scaleIO",
    "storageos", "csi", "ephemeral", "image")
#: The largest file mode a volume may give (0777), as validateProjectionSources checks.
MAX_MODE = 0o777
_MODE_MESSAGE = "must be a number between 0 and 0777 (octal), both inclusive"


def _quote(value):
    """Quote a value as Go's %q does (what Kubernetes prints in 'Invalid value')."""
    return json.dumps(value) if isinstance(value, str) else json.dumps(value, default=str)


def invalid(path, value, message):
    """Return the error triple of field.Invalid."""
    return (path, "FieldValueInvalid", f"Invalid value: {_quote(value)}: {message}")


def required(path, message=""):
    """Return the error triple of field.Required."""
    return (path, "FieldValueRequired", "Required value" + (f": {message}" if message else ""))


def duplicate(path, value):
    """Return the error triple of field.Duplicate."""
    return (path, "FieldValueDuplicate", f"Duplicate value: {_quote(value)}")


def not_found(path, value):
    """Return the error triple of field.NotFound."""
    return (path, "FieldValueNotFound", f"Not found: {_quote(value)}")


def forbidden(path, message):
    """Return the error triple of field.Forbidden."""
    return (path, "FieldValueForbidden", f"Forbidden: {message}")


# -- paths -----------------------------------------------------------------------------


def _has_backstep(target):
    """True if any element of the path (either slash) is '..'."""
    return ".." in re.split(r"[/\\]", target)


def validate_no_backsteps(target, path):
    """validatePathNoBacksteps: no '..' element (one error is enough)."""
    return [invalid(path, target, "must not contain '..'")] if _has_backstep(target) else []


def validate_local_descending_path(target, path):
    """validateLocalDescendingPath: relative, and no '..' element."""
    errs = []
    if target.startswith("/") or target.startswith("\\"):
        errs.append(invalid(path, target, "must be a relative path"))
    return errs + validate_no_backsteps(target, path)


def validate_local_non_reserved_path(target, path):
    """validateLocalNonReservedPath: a descending path not starting with '..'."""
    errs = validate_local_descending_path(target, path)
    if target.startswith("..") and not _has_backstep(target):
        errs.append(invalid(path, target, "must not start with '..'"))
    return errs


def _validate_mode(mode, path):
    if mode is None:
        return []
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= MAX_MODE:
        return [invalid(path, mode, _MODE_MESSAGE)]
    return []


# -- volumes ---------------------------------------------------------------------------


def _validate_items(items, path, keyed=True):
    """validateKeyToPath (``keyed``) or a downwardAPI item's checks, for each item."""
    errs = []
    for index, item in enumerate(items or ()):
        item_path = f"{path}[{index}]"
        if not isinstance(item, dict):
            continue
        if keyed and not item.get("key"):
            errs.append(required(f"{item_path}.key"))
        if not item.get("path"):
            errs.append(required(f"{item_path}.path"))
        else:
            errs += validate_local_non_reserved_path(item["path"], f"{item_path}.path")
        errs += _validate_mode(item.get("mode"), f"{item_path}.mode")
    return errs


def _validate_projected(source, path):
    errs = _validate_mode(source.get("defaultMode"), f"{path}.defaultMode")
    for index, projection in enumerate(source.get("sources") or ()):
        if not isinstance(projection, dict):
            continue
        at = f"{path}.sources[{index}]"
        for kind in ("configMap", "secret"):
            if isinstance(projection.get(kind), dict):
                errs += _validate_items(projection[kind].get("items"), f"{at}.{kind}.items")
        if isinstance(projection.get("downwardAPI"), dict):
            errs += _validate_items(projection["downwardAPI"].get("items"),
                                   f"{at}.downwardAPI.items", keyed=False)
        token = projection.get("serviceAccountToken")
        if isinstance(token, dict):
            if not token.get("path"):
                errs.append(required(f"{at}.serviceAccountToken.path"))
            else:
                errs += validate_local_non_reserved_path(token["path"],
                                                         f"{at}.serviceAccountToken.path")
    return errs


def _validate_source(volume, path):
    """Check the one source a volume names and the paths inside it."""
    sources = [name for name in VOLUME_SOURCES if volume.get(name) is not None]
    if not sources:
        return [required(path, "must specify a volume type")]
    if len(sources) > 1:
        return [forbidden(f"{path}.{sources[1]}", "may not specify more than 1 volume type")]
    name = sources[0]
    source, at = volume[name], f"{path}.{name}"
    if not isinstance(source, dict):
        return []
    if name == "hostPath":
        target = source.get("path")
        if not target:
            return [required(f"{at}.path")]
        return validate_no_backsteps(target, f"{at}.path")
    if name in ("configMap", "secret"):
        return (_validate_mode(source.get("defaultMode"), f"{at}.defaultMode") +
                _validate_items(source.get("items"), f"{at}.items"))
    if name == "downwardAPI":
        return (_validate_mode(source.get("defaultMode"), f"{at}.defaultMode") +
                _validate_items(source.get("items"), f"{at}.items", keyed=False))
    if name == "projected":
        return _validate_projected(source, at)
    return []


def _unique_label(name, path, seen):
    """Check a required DNS-1123 label name not in ``seen``; add it to ``seen`` if valid."""
    if not name:
        return [required(path)]
    if not isinstance(name, str):
        return [invalid(path, name, "must be a string")]
    errs = [invalid(path, name, message) for message in validation.validate_dns1123_label(name)]
    if name in seen:
        errs.append(duplicate(path, name))
    elif not errs:
        seen.add(name)
    return errs


def validate_volumes(volumes, path):
    """ValidateVolumes: return (errors, the set of valid volume names)."""
    errs, names = [], set()
    for index, volume in enumerate(volumes or ()):
        at = f"{path}[{index}]"
        if not isinstance(volume, dict):
            continue
        errs += _unique_label(volume.get("name"), f"{at}.name", names)
        errs += _validate_source(volume, at)
    return errs, names


# -- containers ------------------------------------------------------------------------


def validate_volume_mounts(mounts, volumes, path):
    """ValidateVolumeMounts for one container's volumeMounts."""
    errs, mount_points = [], set()
    for index, mount in enumerate(mounts or ()):
        at = f"{path}[{index}]"
        if not isinstance(mount, dict):
            continue
        name = mount.get("name")
        if not name:
            errs.append(required(f"{at}.name"))
        elif name not in volumes:
            errs.append(not_found(f"{at}.name", name))
        mount_path = mount.get("mountPath")
        if not mount_path:
            errs.append(required(f"{at}.mountPath"))
        elif isinstance(mount_path, str):
            if mount_path in mount_points:
                errs.append(invalid(f"{at}.mountPath", mount_path, "must be unique"))
            mount_points.add(mount_path)
            errs += validate_no_backsteps(mount_path, f"{at}.mountPath")
        sub_path, sub_path_expr = mount.get("subPath"), mount.get("subPathExpr")
        if isinstance(sub_path, str) and sub_path:
            errs += validate_local_descending_path(sub_path, f"{at}.subPath")
        if isinstance(sub_path_expr, str) and sub_path_expr:
            if sub_path:
                errs.append(invalid(f"{at}.subPathExpr", sub_path_expr,
                                    "subPathExpr and subPath are mutually exclusive"))
            errs += validate_local_descending_path(sub_path_expr, f"{at}.subPathExpr")
    return errs


def _validate_containers(containers, list_name, volumes, seen, path):
    errs = []
    for index, container in enumerate(containers or ()):
        at = f"{path}.{list_name}[{index}]"
        if not isinstance(container, dict):
            continue
        errs += _unique_label(container.get("name"), f"{at}.name", seen)
        errs += validate_volume_mounts(container.get("volumeMounts"), volumes,
                                       f"{at}.volumeMounts")
    return errs


def validate_pod_spec(spec, path="spec", claim_templates=()):
    """Return the errors of a pod spec's containers, volumes and mounts.

    ``claim_templates``: a StatefulSet's volumeClaimTemplates names, which its
    pods get as volumes, so mounts may name them.
    """
    if not isinstance(spec, dict):
        return []
    errs, volumes = validate_volumes(spec.get("volumes"), f"{path}.volumes")
    volumes = set(volumes) | set(claim_templates)
    seen = set()
    # Kubernetes checks init containers against the app containers' names too.
    errs += _validate_containers(spec.get("containers"), "containers", volumes, seen, path)
    errs += _validate_containers(spec.get("initContainers"), "initContainers", volumes, seen,
                                 path)
    errs += _validate_containers(spec.get("ephemeralContainers"), "ephemeralContainers",
                                 volumes, seen, path)
    return errs


def pod_spec_of(kind, obj):
    """Return (pod spec, its field path) of a Pod or a pod-template kind; (None, "") if none."""
    spec = obj.get("spec") if isinstance(obj, dict) else None
    if not isinstance(spec, dict):
        return None, ""
    if kind == "Pod":
        return spec, "spec"
    if kind == "CronJob":
        job = spec.get("jobTemplate")
        spec = job.get("spec") if isinstance(job, dict) else None
        template = spec.get("template") if isinstance(spec, dict) else None
        pod = template.get("spec") if isinstance(template, dict) else None
        return pod, "spec.jobTemplate.spec.template.spec"
    if kind in TEMPLATE_KINDS:
        template = spec.get("template")
        return (template.get("spec") if isinstance(template, dict) else None), \
            "spec.template.spec"
    return None, ""


def validate_object(kind, obj):
    """Return the pod-spec errors of any object that is or holds a pod spec."""
    spec, path = pod_spec_of(kind, obj)
    if spec is None:
        return []
    templates = ()
    if kind == "StatefulSet":
        templates = [(t.get("metadata") or {}).get("name") for t in
                     (obj["spec"].get("volumeClaimTemplates") or ()) if isinstance(t, dict)]
    return validate_pod_spec(spec, path, templates)
