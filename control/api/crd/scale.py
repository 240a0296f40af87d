"""The scale subresource of a custom resource, at the paths its CRD names.

``specReplicasPath`` holds the desired replicas, ``statusReplicasPath`` the
observed ones and ``labelSelectorPath`` (optional) the serialized selector, as
kube-apiserver reads them for an autoscaling/v1 Scale.
"""

from control import errors
from control.api.crd import jsonpath


def to_scale(resource, obj):
    """The autoscaling/v1 Scale view of a custom object."""
    paths = resource.custom.scale
    metadata = obj["metadata"]
    selector = jsonpath.get_simple(obj, paths["labelSelectorPath"]) \
        if paths.get("labelSelectorPath") else None
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: metadata[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                  "creationTimestamp") if k in metadata},
            "spec": {"replicas": jsonpath.get_simple(obj, paths["specReplicasPath"]) or 0},
            "status": {"replicas": jsonpath.get_simple(obj, paths["statusReplicasPath"]) or 0,
                       **({"selector": selector} if isinstance(selector, str) else {})}}


def set_replicas(resource, obj, replicas):
    """Write ``replicas`` at the CRD's specReplicasPath (the update validates the rest)."""
    path = resource.custom.scale["specReplicasPath"]
    try:
        jsonpath.set_simple(obj, path, replicas)
    except jsonpath.PathError as exc:
        raise errors.BadRequest(f"the CRD's specReplicasPath {path!r} is unusable: {exc}") \
            from None
    return obj
