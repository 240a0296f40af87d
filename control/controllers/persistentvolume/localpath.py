"""The local-path provisioner's decisions, as k3s's: a directory per claim on one node.

A claim of a class whose provisioner is ``steersman.io/local-path`` gets a volume
``pvc-<claim uid>``: a hostPath (DirectoryOrCreate) ``<root>/pvc-<uid>_<ns>_<name>``
under the node's storage root, with a required node affinity for that node, so
the scheduler puts every later pod of the claim there. The node agent creates the
directory when it mounts the volume. On reclaim Delete a helper pod pinned to the
node (k3s's way: ``rm -rf`` of the directory, with the storage root mounted as a
hostPath) removes it; only then is the volume deleted. So the controller never
touches a node's disk and a node reads only what its own pods reference.

The node's root comes from its annotation ``steersman.io/local-path-root`` (the
agent's ``--storage-root``), else ``DEFAULT_ROOT``.
"""

import os
import re

from control.controllers.persistentvolume import binder

PROVISIONER = "steersman.io/local-path"
DEFAULT_CLASS_NAME = "local-path"
DEFAULT_ROOT = "/var/lib/steersman/storage"
ROOT_ANNOTATION = "steersman.io/local-path-root"
HOSTNAME_LABEL = "kubernetes.io/hostname"
HELPER_NAMESPACE = "kube-system"
HELPER_IMAGE = "steer.local/busybox:1.35"
HELPER_LABEL = "steersman.io/local-path-helper"
#: Where the helper pod sees the node's storage root.
HELPER_MOUNT = "/storage-root"
_SAFE = re.compile(r"^/[A-Za-z0-9._/-]+$")


def default_storage_class():
    """The class ``steer up`` creates: local-path, default, WaitForFirstConsumer, Delete."""
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": DEFAULT_CLASS_NAME,
                         "annotations": {binder.DEFAULT_CLASS: "true"}},
            "provisioner": PROVISIONER, "reclaimPolicy": "Delete",
            "volumeBindingMode": binder.WAIT_FOR_FIRST_CONSUMER}


def node_root(node):
    """The storage root of ``node`` (an absolute path without '..'), or DEFAULT_ROOT."""
    root = ((node or {}).get("metadata", {}).get("annotations") or {}).get(ROOT_ANNOTATION)
    if root and _SAFE.match(root) and ".." not in root.split("/"):
        return root.rstrip("/") or DEFAULT_ROOT
    return DEFAULT_ROOT


def volume_name(claim):
    return f"pvc-{claim['metadata']['uid']}"


def new_volume(claim, storage_class, node):
    """The PersistentVolume provisioned for ``claim`` on ``node`` (pre-bound to it)."""
    meta = claim["metadata"]
    name = volume_name(claim)
    directory = os.path.join(node_root(node), f"{name}_{meta['namespace']}_{meta['name']}")
    spec = claim.get("spec") or {}
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "0")
    node_name = node["metadata"]["name"]
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {binder.PROVISIONED_BY: PROVISIONER},
                     "finalizers": [binder.PV_PROTECTION]},
        "spec": {
            "capacity": {"storage": storage},
            "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "storageClassName": storage_class["metadata"]["name"],
            "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy") or "Delete",
            "hostPath": {"path": directory, "type": "DirectoryOrCreate"},
            "claimRef": binder.claim_ref(claim),
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": HOSTNAME_LABEL, "operator": "In", "values": [node_name]}]}]}},
        },
    }


def volume_node(volume):
    """The node a local volume lives on (its required hostname affinity), or None."""
    required = (((volume.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {})
    for term in required.get("nodeSelectorTerms") or ():
        for expr in term.get("matchExpressions") or ():
            if expr.get("key") == HOSTNAME_LABEL and expr.get("operator") == "In" and \
                    len(expr.get("values") or ()) == 1:
                return expr["values"][0]
    return None


def is_local_path(volume):
    annotations = volume["metadata"].get("annotations") or {}
    return annotations.get(binder.PROVISIONED_BY) == PROVISIONER and \
        "hostPath" in (volume.get("spec") or {})


def helper_pod_name(volume):
    return f"helper-pod-delete-{volume['metadata']['name']}"[:63]


def helper_pod(volume, image=HELPER_IMAGE, root=None):
    """The pod that removes a local volume's directory on its node, or None if unsafe.

    The storage root (the directory's parent) is mounted at HELPER_MOUNT; the
    process runtime gives the container that mount under $STEER_ROOT instead, so
    the command works on both runtimes. The directory must be named after the
    volume and lie directly in the node's storage root (``root``, when known), so
    nothing but it can be removed.
    """
    path = volume["spec"]["hostPath"]["path"]
    node = volume_node(volume)
    parent, leaf = os.path.split(path.rstrip("/"))
    if not node or not _SAFE.match(path) or ".." in path.split("/") or \
            not leaf.startswith(volume["metadata"]["name"]) or \
            (root is not None and parent != root):
        return None
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": helper_pod_name(volume), "namespace": HELPER_NAMESPACE,
                     "labels": {HELPER_LABEL: "delete"}},
        "spec": {
            "nodeName": node, "restartPolicy": "Never",
            "tolerations": [{"operator": "Exists"}],
            "containers": [{
                "name": "helper-pod", "image": image, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", f'rm -rf -- "${{STEER_ROOT:-}}{HELPER_MOUNT}/{leaf}"'],
                "volumeMounts": [{"name": "data", "mountPath": HELPER_MOUNT}]}],
            "volumes": [{"name": "data", "hostPath": {"path": parent,
                                                      "type": "DirectoryOrCreate"}}],
        },
    }
