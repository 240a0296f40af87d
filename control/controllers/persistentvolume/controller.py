"""Bind claims to volumes, provision local-path volumes and reclaim released ones.

Kubernetes' persistentvolume-binder, pvc-protection and pv-protection controllers
in one loop, with the local-path provisioner (localpath.py) for its own class:

- a claim without storageClassName gets the default class (retroactive default
  StorageClass assignment, as the PV controller does since 1.28);
- a claim binds to the best Available volume (binder.find_best_match), both ways:
  the volume's claimRef, then the claim's volumeName and both phases Bound;
- no volume fits and the class's provisioner is ours: Immediate provisions at
  once (on the Ready node with fewest local volumes), WaitForFirstConsumer waits
  until the scheduler writes ``volume.kubernetes.io/selected-node`` on the claim;
- a volume whose claim is gone is Released; reclaim Retain keeps it, Delete runs
  the local-path helper pod on its node and deletes the volume once it succeeded;
- finalizers: a claim used by a live pod, or a Bound volume, is not removed.

Keys are ``claim:<namespace>/<name>`` and ``volume:<name>``; the volume side is
in reclaim.py.
"""

import logging

from control.client import AlreadyExists, Conflict, NotFound, object_key
from control.client.events import EventRecorder
from control.controllers.controller import Controller, by_namespace
from control.controllers.persistentvolume import binder, localpath
from control.controllers.persistentvolume.reclaim import VolumeSync
from control.objects import conditions, kinds

log = logging.getLogger(__name__)

PVCS = kinds.lookup("", "v1", "persistentvolumeclaims")
PVS = kinds.lookup("", "v1", "persistentvolumes")
CLASSES = kinds.lookup("storage.k8s.io", "v1", "storageclasses")


class PersistentVolumeController(VolumeSync, Controller):
    """Converge claims and volumes through ``rest`` from the informer caches."""

    def __init__(self, rest, claim_informer, volume_informer, class_informer, pod_informer,
                 node_informer, recorder=None, helper_image=localpath.HELPER_IMAGE, queue=None):
        super().__init__("persistentvolume-binder", [claim_informer, volume_informer,
                                                    class_informer, pod_informer,
                                                    node_informer], queue)
        self.rest, self.helper_image = rest, helper_image
        self.claims, self.volumes = claim_informer.store, volume_informer.store
        self.classes, self.pods = class_informer.store, pod_informer.store
        self.nodes = node_informer.store
        self.recorder = recorder or EventRecorder(rest, "persistentvolume-controller")
        claim_informer.add_handler(self._claim, lambda old, new: self._claim(new), self._claim)
        volume_informer.add_handler(self._volume, lambda old, new: self._volume(new),
                                    self._volume)
        pod_informer.add_handler(self._pod, lambda old, new: self._pod(new), self._pod)
        class_informer.add_handler(lambda c: self._all_claims(), None, None)

    # -- handlers: only queue keys ----------------------------------------------------
    def _claim(self, claim):
        self.queue.add("claim:" + object_key(claim))
        name = (claim.get("spec") or {}).get("volumeName")
        if name:
            self.queue.add("volume:" + name)

    def _volume(self, volume):
        self.queue.add("volume:" + volume["metadata"]["name"])
        ref = (volume.get("spec") or {}).get("claimRef")
        if ref and ref.get("namespace") and ref.get("name"):
            self.queue.add(f"claim:{ref['namespace']}/{ref['name']}")

    def _pod(self, pod):
        namespace = pod["metadata"].get("namespace")
        for volume in (pod.get("spec") or {}).get("volumes") or ():
            name = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if name:
                self.queue.add(f"claim:{namespace}/{name}")
        labels = pod["metadata"].get("labels") or {}
        if localpath.HELPER_LABEL in labels and pod["metadata"]["name"].startswith(
                "helper-pod-delete-"):
            self.queue.add("volume:" + pod["metadata"]["name"][len("helper-pod-delete-"):])

    def _all_claims(self):
        for claim in self.claims.list():
            self.queue.add("claim:" + object_key(claim))

    def sync(self, key):
        kind, _, rest = key.partition(":")
        if kind == "claim":
            self.sync_claim(rest)
        elif kind == "volume":
            self.sync_volume(rest)

    # -- claims ------------------------------------------------------------------------
    def sync_claim(self, key):
        claim = self.claims.get(key)
        if claim is None:
            return
        meta = claim["metadata"]
        if meta.get("deletionTimestamp"):
            self._release_claim_finalizer(claim)
            return
        if binder.PVC_PROTECTION not in (meta.get("finalizers") or ()):
            self._patch_claim(claim, {"metadata": {"finalizers": [
                *(meta.get("finalizers") or ()), binder.PVC_PROTECTION]}})
            return                      # the update comes back through the informer
        if binder.claim_class(claim) is None:
            default = binder.default_class(self.classes.list())
            if default is not None:
                self._patch_claim(claim, {"spec": {
                    "storageClassName": default["metadata"]["name"]}})
                return
        name = claim["spec"].get("volumeName")
        if name:
            self._sync_bound_claim(claim, name)
        else:
            self._sync_unbound_claim(claim)

    def _release_claim_finalizer(self, claim):
        """pvc-protection: let a deleted claim go once no live pod uses it."""
        meta = claim["metadata"]
        if binder.PVC_PROTECTION not in (meta.get("finalizers") or ()):
            return
        pods = by_namespace(self.pods, meta["namespace"])
        if (meta["namespace"], meta["name"]) in binder.claims_in_use(pods):
            return
        rest = [f for f in meta["finalizers"] if f != binder.PVC_PROTECTION]
        self._patch_claim(claim, {"metadata": {"finalizers": rest,
                                               "resourceVersion": meta["resourceVersion"]}})

    def _sync_bound_claim(self, claim, name):
        volume = self.volumes.get(name)
        if volume is None:
            if (claim.get("status") or {}).get("phase") == "Bound":
                self._claim_status(claim, "Lost", None)
                self.recorder.event(claim, "Warning", "ClaimLost",
                                    "Bound claim has lost its PersistentVolume. Data on the "
                                    "volume is lost!")
            return
        if binder.bound_to(volume, claim):
            self._claim_status(claim, "Bound", volume)
            return
        if binder.is_available(volume) and binder.mismatch(volume, claim) is None:
            self._bind(volume, claim)               # the user named the volume
            return
        self._claim_status(claim, "Pending", None)

    def _sync_unbound_claim(self, claim):
        volume = binder.find_best_match(claim, self.volumes.list())
        if volume is not None:
            self._bind(volume, claim)
            return
        class_name = binder.claim_class(claim)
        storage_class = self.classes.get(class_name) if class_name else None
        if storage_class is None or storage_class.get("provisioner") != localpath.PROVISIONER:
            self._claim_status(claim, "Pending", None)
            if storage_class is not None:
                self._external(claim, storage_class["provisioner"])
            elif class_name:
                self.recorder.event(claim, "Warning", "ProvisioningFailed",
                                    f'storageclass.storage.k8s.io "{class_name}" not found')
            elif not class_name:
                self.recorder.event(claim, "Normal", "FailedBinding",
                                    "no persistent volumes available for this claim and no "
                                    "storage class is set")
            return
        annotations = claim["metadata"].get("annotations") or {}
        node_name = annotations.get(binder.SELECTED_NODE)
        if storage_class.get("volumeBindingMode") == binder.WAIT_FOR_FIRST_CONSUMER and \
                not node_name:
            self._claim_status(claim, "Pending", None)
            self.recorder.event(claim, "Normal", "WaitForFirstConsumer",
                                "waiting for first consumer to be created before binding")
            return
        node = self.nodes.get(node_name) if node_name else self._least_used_node()
        if node is None and node_name:
            # As rescheduleProvisioning: drop the choice so that the scheduler picks again.
            self.recorder.event(claim, "Warning", "ProvisioningFailed",
                                f'failed to provision volume: node "{node_name}" not found')
            self._patch_claim(claim, {"metadata": {"annotations": {
                binder.SELECTED_NODE: None}}})
            return
        if node is None:
            self.recorder.event(claim, "Warning", "ProvisioningFailed",
                                "failed to provision volume: no Ready node")
            raise RuntimeError(f"no node to provision {object_key(claim)} on")
        self._provision(claim, storage_class, node)

    def _external(self, claim, provisioner):
        """Another provisioner's class: say who should make the volume, as Kubernetes."""
        annotations = claim["metadata"].get("annotations") or {}
        if annotations.get(binder.STORAGE_PROVISIONER) != provisioner:
            self._patch_claim(claim, {"metadata": {"annotations": {
                binder.STORAGE_PROVISIONER: provisioner,
                binder.BETA_STORAGE_PROVISIONER: provisioner}}})
        self.recorder.event(claim, "Normal", "ExternalProvisioning",
                            f"Waiting for a volume to be created either by the external "
                            f"provisioner '{provisioner}' or manually by the system "
                            "administrator. If volume creation is delayed, please verify that "
                            "the provisioner is running and correctly registered.")

    def _least_used_node(self):
        ready = [n for n in self.nodes.list() if conditions.is_ready(n)
                 and not (n.get("spec") or {}).get("unschedulable")]
        counts = {n["metadata"]["name"]: 0 for n in ready}
        for volume in self.volumes.list():
            node = localpath.volume_node(volume)
            if node in counts:
                counts[node] += 1
        return min(ready, key=lambda n: (counts[n["metadata"]["name"]], n["metadata"]["name"]),
                   default=None)

    def _provision(self, claim, storage_class, node):
        annotations = claim["metadata"].get("annotations") or {}
        if annotations.get(binder.STORAGE_PROVISIONER) != localpath.PROVISIONER:
            self._patch_claim(claim, {"metadata": {"annotations": {
                binder.STORAGE_PROVISIONER: localpath.PROVISIONER,
                binder.BETA_STORAGE_PROVISIONER: localpath.PROVISIONER}}})
            self.recorder.event(claim, "Normal", "Provisioning",
                                f'External provisioner is provisioning volume for claim '
                                f'"{object_key(claim)}"')
        volume = localpath.new_volume(claim, storage_class, node)
        try:
            self.rest.create(PVS, None, volume)
        except AlreadyExists:
            return                      # made by an earlier sync: binding follows
        self.recorder.event(claim, "Normal", "ProvisioningSucceeded",
                            f"Successfully provisioned volume {volume['metadata']['name']}")

    # -- binding -----------------------------------------------------------------------
    def _bind(self, volume, claim):
        if not binder.bound_to(volume, claim):
            volume = self._bind_volume(volume, claim)
            if volume is None:
                return
        meta = claim["metadata"]
        self._patch_claim(claim, {"metadata": {
            "resourceVersion": meta["resourceVersion"],
            "annotations": {binder.BIND_COMPLETED: "yes", binder.BOUND_BY_CONTROLLER: "yes"}},
            "spec": {"volumeName": volume["metadata"]["name"]}})

    def _bind_volume(self, volume, claim):
        """Point the volume's claimRef at the claim and mark it Bound; None on a race."""
        meta = volume["metadata"]
        patch = {"metadata": {"resourceVersion": meta["resourceVersion"]},
                 "spec": {"claimRef": binder.claim_ref(claim)}}
        if not (volume["spec"].get("claimRef")):
            patch["metadata"]["annotations"] = {binder.BOUND_BY_CONTROLLER: "yes"}
        try:
            updated = self.rest.patch(PVS, None, meta["name"], patch)
        except (Conflict, NotFound):
            return None
        self._volume_phase(updated or volume, "Bound")
        return updated or volume

    def _claim_status(self, claim, phase, volume):
        status = dict(claim.get("status") or {})
        wanted = {"phase": phase}
        if volume is not None:
            wanted["accessModes"] = volume["spec"].get("accessModes") or []
            wanted["capacity"] = volume["spec"].get("capacity") or {}
        if all(status.get(k) == v for k, v in wanted.items()):
            return
        try:
            self.rest.patch(PVCS, claim["metadata"]["namespace"], claim["metadata"]["name"],
                            {"status": wanted}, subresource="status")
        except NotFound:
            pass

    def _patch_claim(self, claim, patch):
        try:
            self.rest.patch(PVCS, claim["metadata"]["namespace"], claim["metadata"]["name"],
                            patch)
        except NotFound:
            pass
