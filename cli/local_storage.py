"""The storage addon of `steer up`: the default StorageClass ``local-path``.

As k3s ships its local-path provisioner with a default class, `steer up` creates

    StorageClass  local-path  (default)  provisioner steersman.io/local-path,
                                         reclaimPolicy Delete, WaitForFirstConsumer

The provisioner itself runs in the controller manager (control/controllers/
persistentvolume/); each node keeps its volumes under its agent's --storage-root
(on a local cluster ``<cluster dir>/agents/<node>/storage``). A class that exists
is left as it is.
"""

from cli import local_addons

STORAGE_CLASSES = local_addons.kinds.lookup("storage.k8s.io", "v1", "storageclasses")
CLASS_NAME = "local-path"
PROVISIONER = "steersman.io/local-path"


def storage_class():
    """The default local-path StorageClass (control/controllers/persistentvolume/localpath.py)."""
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": CLASS_NAME, "annotations": {
                "storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": PROVISIONER, "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer"}


def start(ctx):
    """Create the default StorageClass on the cluster (an AddonContext)."""
    rest = local_addons.admin_client(ctx.url, ctx.creds)
    created = local_addons.deploy(rest, [(STORAGE_CLASSES, None, storage_class())])
    ctx.say(f"storage: default StorageClass {CLASS_NAME} ({PROVISIONER}, "
            "WaitForFirstConsumer, reclaim Delete)" + ("" if created else " (already there)"))
