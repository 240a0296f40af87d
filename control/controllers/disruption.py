"""Keep each PodDisruptionBudget's status true: Kubernetes' disruption controller.

For every PDB: the pods its selector matches (nil selects nothing, ``{}`` every pod
of the namespace), the pods expected from their controllers' scale (a Deployment
through its ReplicaSet, a ReplicaSet, a StatefulSet, and any other controller
through its scale subresource, as Kubernetes' finders), the Ready ones, and so
how many may be disrupted now. The arithmetic is disruption_budget.py. The
eviction subresource decrements ``disruptionsAllowed`` and records the pod in
``disruptedPods``; this controller forgets an entry once the pod is being deleted
or after two minutes (then it warns NotDeleted). A sync that fails writes the
fail-safe status: nothing allowed, condition DisruptionAllowed=False/SyncFailed.
"""

import logging

from control.client import ApiException, Conflict, NotFound, object_key
from control.controllers import disruption_budget as budget
from control.controllers.controller import Controller
from control.objects import kinds, meta
from control.objects.selectors import LabelSelector, SelectorError

log = logging.getLogger(__name__)

PDBS = kinds.lookup("policy", "v1", "poddisruptionbudgets")


def pdb_selector(pdb):
    """The PDB's label selector (policy/v1: nil selects nothing, {} everything)."""
    return LabelSelector.from_object((pdb.get("spec") or {}).get("selector"))


def _group(api_version):
    return (api_version or "").rpartition("/")[0]


class DisruptionController(Controller):
    """Write PodDisruptionBudget status from the pod, workload and PDB informers' caches."""

    def __init__(self, rest, pdb_informer, pod_informer, rs_informer, deployment_informer,
                 statefulset_informer, recorder=None, queue=None, clock=meta.utcnow):
        super().__init__("disruption", [pdb_informer, pod_informer, rs_informer,
                                        deployment_informer, statefulset_informer], queue)
        self.rest, self.recorder, self.clock = rest, recorder, clock
        self.pdb_store, self.pod_store = pdb_informer.store, pod_informer.store
        self.rs_store, self.deployment_store = rs_informer.store, deployment_informer.store
        self.statefulset_store = statefulset_informer.store
        pdb_informer.add_handler(self.enqueue, lambda old, new: self.enqueue(new), self.enqueue)
        pod_informer.add_handler(self._pod_changed, lambda old, new: self._pod_changed(new, old),
                                 self._pod_changed)

    # -- events -------------------------------------------------------------------------
    def _pod_changed(self, pod, old=None):
        """Queue every PDB of the pod's namespace that selects it (or selected it before)."""
        namespace = pod["metadata"].get("namespace")
        for pdb in self.pdb_store.by_index("namespace", namespace):
            try:
                selector = pdb_selector(pdb)
            except SelectorError:
                continue
            if selector.matches(pod["metadata"].get("labels")) or (
                    old is not None and selector.matches(old["metadata"].get("labels"))):
                self.enqueue(pdb)

    def _event(self, pdb, event_type, reason, message):
        if self.recorder is not None:
            self.recorder.event(pdb, event_type, reason, message)

    # -- finders (Kubernetes' finders: controller -> uid and scale) ---------------------------
    def find_scale(self, pod, ref):
        """Return (uid, replicas) of the pod's controller, or None if no finder knows it."""
        namespace = pod["metadata"]["namespace"]
        group, kind, name = _group(ref.get("apiVersion")), ref.get("kind"), ref.get("name")
        if group == "apps" and kind == "ReplicaSet":
            rs = self.rs_store.get(f"{namespace}/{name}")
            if rs is None or rs["metadata"].get("uid") != ref.get("uid"):
                return None
            owner = budget.controller_ref(rs)
            if owner and _group(owner.get("apiVersion")) == "apps" \
                    and owner.get("kind") == "Deployment":
                deployment = self.deployment_store.get(f"{namespace}/{owner.get('name')}")
                if deployment is None or deployment["metadata"].get("uid") != owner.get("uid"):
                    return None
                return deployment["metadata"]["uid"], _replicas(deployment)
            return rs["metadata"]["uid"], _replicas(rs)
        if group == "apps" and kind == "StatefulSet":
            sts = self.statefulset_store.get(f"{namespace}/{name}")
            if sts is None or sts["metadata"].get("uid") != ref.get("uid"):
                return None
            return sts["metadata"]["uid"], _replicas(sts)
        return self._scale_subresource(namespace, ref)

    def _scale_subresource(self, namespace, ref):
        """Any other controller: its scale subresource, if it has one and is the same object."""
        resource = kinds.by_api_version_kind(ref.get("apiVersion") or "", ref.get("kind") or "")
        if resource is None or "scale" not in resource.subresources:
            return None
        try:
            scale = self.rest.get_scale(resource, namespace, ref.get("name"))
        except NotFound:
            return None
        if (scale.get("metadata") or {}).get("uid") != ref.get("uid"):
            return None
        return ref.get("uid"), int((scale.get("spec") or {}).get("replicas") or 0)

    # -- sync -----------------------------------------------------------------------------
    def sync(self, key):
        pdb = self.pdb_store.get(key)
        if pdb is None or pdb["metadata"].get("deletionTimestamp"):
            return
        now = self.clock()
        try:
            status, recheck = self._try_sync(pdb, now)
        except Conflict:
            raise
        except (budget.BudgetError, SelectorError, ApiException, ValueError) as exc:
            log.warning("disruption: PDB %s: %s", key, exc)
            self._write(pdb, budget.failed_status(pdb, str(exc), now))
            return
        self._write(pdb, status)
        if recheck is not None:
            self.queue.add_after(key, max(0.0, (recheck - now).total_seconds()) + 1)

    def _try_sync(self, pdb, now):
        namespace = pdb["metadata"]["namespace"]
        selector = pdb_selector(pdb)
        pods = [p for p in self.pod_store.by_index("namespace", namespace)
                if selector.matches(p["metadata"].get("labels"))]
        if not pods:
            self._event(pdb, "Normal", "NoPods", "No matching pods found")
        try:
            status, unmanaged, overdue, recheck = budget.budget_status(
                pdb, pods, self.find_scale, now)
        except budget.BudgetError as exc:
            self._event(pdb, "Warning", "CalculateExpectedPodCountFailed",
                        f"Failed to calculate the number of expected pods: {exc}")
            raise
        if unmanaged:
            log.info("disruption: PDB %s selects unmanaged pods %s", object_key(pdb), unmanaged)
            self._event(pdb, "Warning", "UnmanagedPods", budget.UNMANAGED_MESSAGE.format(
                selector=(pdb.get("spec") or {}).get("selector")))
        for name in overdue:
            self._event(pdb, "Warning", "NotDeleted",
                        f"Pod was expected by PDB {pdb['metadata']['name']} to be deleted but "
                        f"it wasn't (pod {namespace}/{name})")
        return status, recheck

    def _write(self, pdb, status):
        old = pdb.get("status") or {}
        if budget.status_unchanged(old, status) and \
                old.get("observedGeneration") == pdb["metadata"].get("generation"):
            return
        body = {**pdb, "status": status}
        try:
            self.rest.update_status(PDBS, pdb["metadata"]["namespace"], body)
        except NotFound:
            pass


def _replicas(obj):
    replicas = (obj.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)
