"""The volume side of the PV controller: phases, protection and reclaim.

A volume without claimRef is Available; pointing at its live claim (same uid) and
named back by it, Bound; its claim gone (or replaced by a new one of that name),
Released. Reclaim Retain keeps a Released volume; Delete of a local-path volume
runs the helper pod on its node (localpath.helper_pod) and deletes the volume once
the pod succeeded; any other Delete, or Recycle, is Failed with Kubernetes'
message. pv-protection: a deleted volume goes once it is no longer Bound.
"""

import copy
import logging

from control.client import AlreadyExists, NotFound
from control.controllers.persistentvolume import binder, localpath
from control.objects import kinds

log = logging.getLogger(__name__)

PVS = kinds.lookup("", "v1", "persistentvolumes")


class VolumeSync:
    """``sync_volume`` and its helpers; mixed into PersistentVolumeController."""

    def sync_volume(self, name):
        volume = self.volumes.get(name)
        if volume is None:
            return
        meta, spec = volume["metadata"], volume.get("spec") or {}
        phase = (volume.get("status") or {}).get("phase")
        if meta.get("deletionTimestamp"):
            if phase != "Bound" and binder.PV_PROTECTION in (meta.get("finalizers") or ()):
                self._patch_volume(volume, {"metadata": {
                    "resourceVersion": meta["resourceVersion"],
                    "finalizers": [f for f in meta["finalizers"] if f != binder.PV_PROTECTION]}})
            return
        if binder.PV_PROTECTION not in (meta.get("finalizers") or ()):
            self._patch_volume(volume, {"metadata": {"finalizers": [
                *(meta.get("finalizers") or ()), binder.PV_PROTECTION]}})
            return
        ref = spec.get("claimRef")
        if not ref:
            self._volume_phase(volume, "Available")
            return
        claim = self.claims.get(f"{ref.get('namespace')}/{ref.get('name')}")
        if claim is not None and (not ref.get("uid") or ref["uid"] == claim["metadata"]["uid"]):
            if claim["spec"].get("volumeName") == name:
                self._volume_phase(volume, "Bound")
            elif phase not in ("Bound", "Released"):
                self._volume_phase(volume, "Available" if not ref.get("uid") else "Pending")
            return
        if claim is None and not ref.get("uid"):
            self._volume_phase(volume, "Available")     # pre-bound to a claim yet to come
            return
        if phase not in ("Released", "Failed"):
            self._volume_phase(volume, "Released")
            return
        if phase == "Released":
            self._reclaim(volume)

    def _reclaim(self, volume):
        policy = volume["spec"].get("persistentVolumeReclaimPolicy") or "Retain"
        if policy == "Retain":
            return
        if policy != "Delete" or not localpath.is_local_path(volume):
            message = (f"error getting deleter volume plugin for volume "
                       f"\"{volume['metadata']['name']}\": no deletable volume plugin matched"
                       if policy == "Delete" else f"reclaim policy {policy} is not supported")
            self._volume_phase(volume, "Failed", message)
            self.recorder.event(volume, "Warning", "VolumeFailedDelete", message)
            return
        self._delete_local(volume)

    def _delete_local(self, volume):
        """Run the helper pod; delete the volume once it has removed the directory."""
        pod_name = localpath.helper_pod_name(volume)
        pod = self.pods.get(f"{localpath.HELPER_NAMESPACE}/{pod_name}")
        if pod is None:
            node = self.nodes.get(localpath.volume_node(volume) or "")
            root = localpath.node_root(node) if node is not None else None
            body = localpath.helper_pod(volume, self.helper_image, root)
            if body is None:
                message = (f"refusing to delete {volume['spec']['hostPath']['path']}: not a "
                           "volume directory in its node's storage root")
                self._volume_phase(volume, "Failed", message)
                self.recorder.event(volume, "Warning", "VolumeFailedDelete", message)
                return
            try:
                self.rest.create(kinds.PODS, localpath.HELPER_NAMESPACE, body)
            except AlreadyExists:
                pass
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase == "Failed":
            message = f"helper pod {pod_name} failed to remove the volume's directory"
            self.recorder.event(volume, "Warning", "VolumeFailedDelete", message)
            self._delete_quietly(kinds.PODS, localpath.HELPER_NAMESPACE, pod_name)
            self._volume_phase(volume, "Failed", message)
            return
        if phase != "Succeeded":
            return                          # its status update queues us again
        self._delete_quietly(PVS, None, volume["metadata"]["name"])
        self._delete_quietly(kinds.PODS, localpath.HELPER_NAMESPACE, pod_name)
        log.info("msg=deleted local volume volume=%s path=%s", volume["metadata"]["name"],
                 volume["spec"]["hostPath"]["path"])

    def _delete_quietly(self, resource, namespace, name):
        try:
            self.rest.delete(resource, namespace, name)
        except NotFound:
            pass

    def _volume_phase(self, volume, phase, message=None):
        status = volume.get("status") or {}
        if status.get("phase") == phase and (message is None or status.get("message") == message):
            return
        wanted = copy.deepcopy({"phase": phase, "message": message})
        try:
            self.rest.patch(PVS, None, volume["metadata"]["name"], {"status": wanted},
                            subresource="status")
        except NotFound:
            pass

    def _patch_volume(self, volume, patch):
        try:
            self.rest.patch(PVS, None, volume["metadata"]["name"], patch)
        except NotFound:
            pass
