"""Turn a stored CustomResourceDefinition into the Resources the API server serves.

One Resource per served version; each carries a ``CustomInfo`` (kinds.Resource's
``custom``) with what the generic code needs of a custom kind: its schema, the
storage version objects are kept in, printer columns and the scale paths.
"""

import dataclasses
import re

from control.objects import kinds

CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
_KUBE_VERSION = re.compile(r"v(?P<major>[1-9][0-9]*)(?:(?P<stage>alpha|beta)(?P<minor>[1-9][0-9]*))?")


@dataclasses.dataclass(frozen=True, eq=False)
class CustomInfo:
    """What a CRD adds to one served version (compared by identity)."""

    crd_name: str
    group: str
    version: str
    storage_version: str
    schema: dict
    singular: str
    list_kind: str
    columns: tuple = ()
    scale: dict = None
    terminating: bool = False

    @property
    def storage_api_version(self):
        return f"{self.group}/{self.storage_version}"


def condition(crd, kind):
    """Return the CRD's status condition of ``kind``, or {}."""
    for cond in (crd.get("status") or {}).get("conditions") or ():
        if cond.get("type") == kind:
            return cond
    return {}


def is_established(crd):
    return condition(crd, "Established").get("status") == "True"


def storage_version(crd):
    for version in crd["spec"].get("versions") or ():
        if version.get("storage"):
            return version["name"]
    return None


def resources_for(crd):
    """Return the Resources an established CRD serves (none when it is not established)."""
    if not is_established(crd):
        return []
    spec, names = crd["spec"], crd["spec"]["names"]
    stored = storage_version(crd)
    terminating = bool(crd["metadata"].get("deletionTimestamp"))
    served = []
    for version in sorted(spec["versions"], key=lambda v: version_priority(v["name"])):
        if not version.get("served"):
            continue
        subresources = version.get("subresources") or {}
        info = CustomInfo(
            crd_name=crd["metadata"]["name"], group=spec["group"], version=version["name"],
            storage_version=stored,
            schema=(version.get("schema") or {}).get("openAPIV3Schema") or {},
            singular=names.get("singular") or names["kind"].lower(),
            list_kind=names.get("listKind") or names["kind"] + "List",
            columns=tuple(version.get("additionalPrinterColumns") or ()),
            scale=subresources.get("scale"), terminating=terminating)
        served.append(kinds.Resource(
            spec["group"], version["name"], names["kind"], names["plural"],
            spec["scope"] == "Namespaced", tuple(names.get("shortNames") or ()),
            tuple(sub for sub in ("status", "scale") if sub in subresources),
            tuple(names.get("categories") or ()), kinds.VERBS, info))
    return served


def version_priority(name):
    """Sort key of Kubernetes' version priority: v2 > v1 > v1beta2 > v1beta1 > v1alpha1 > x."""
    match = _KUBE_VERSION.fullmatch(name)
    if match is None:
        return (3, 0, 0, name)
    stage = {None: 0, "beta": 1, "alpha": 2}[match["stage"]]
    return (stage, -int(match["major"]), -int(match["minor"] or 0), name)


def to_storage(resource, obj):
    """Return ``obj`` as kept in the store: in the storage version (conversion None)."""
    info = resource.custom
    if info is None or obj.get("apiVersion") == info.storage_api_version:
        return obj
    return {**obj, "apiVersion": info.storage_api_version}


def from_storage(resource, obj):
    """Return a stored object as the requested version shows it (conversion None)."""
    if resource.custom is not None and isinstance(obj, dict) and "apiVersion" in obj:
        obj["apiVersion"] = resource.api_version
    return obj
