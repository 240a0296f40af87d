"""The Deployment controller: find a Deployment's ReplicaSets, then roll it out.

``sync`` claims the ReplicaSets that match the selector (adopting orphans,
releasing strays), then:

* while the Deployment is being deleted, only writes status;
* while it is paused, or when only ``replicas`` changed (a scaling event), scales
  the ReplicaSets it has, in proportion, without moving the rollout on;
* otherwise rolls out: RollingUpdate or Recreate (rollout.py).
"""

import logging

from control.client.events import EventRecorder
from control.controllers.controller import Controller, by_namespace
from control.controllers.deployment import sizing
from control.controllers.deployment.progress import Progress
from control.controllers.deployment.replicasets import NewReplicaSets
from control.controllers.deployment.rollout import Rollouts
from control.controllers.ownership import (
    ChildEvents,
    Owners,
    RefManager,
    get_controller_of,
    selector_of,
)
from control.controllers.status import write_status
from control.objects import kinds, meta
from control.objects.selectors import SelectorError

log = logging.getLogger(__name__)

API_VERSION, KIND = kinds.DEPLOYMENTS.api_version, kinds.DEPLOYMENTS.kind


def _ignore(*args):
    pass


class DeploymentController(Rollouts, NewReplicaSets, Progress, Controller):
    """Converge Deployments through ``rest``, reading three informers' caches."""

    def __init__(self, rest, d_informer, rs_informer, pod_informer, queue=None,
                 wall_clock=meta.utcnow, recorder=None):
        super().__init__("deployment", [d_informer, rs_informer, pod_informer], queue)
        self.rest = rest
        self.d_store, self.rs_store = d_informer.store, rs_informer.store
        self.pod_store = pod_informer.store
        self.wall_clock = wall_clock
        self.recorder = recorder or EventRecorder(rest, "deployment-controller")
        self.owners = Owners(self.d_store, kinds.DEPLOYMENTS)
        self.rs_owners = Owners(self.rs_store, kinds.REPLICASETS)
        d_informer.add_handler(self.enqueue, lambda old, new: self.enqueue(new), self.enqueue)
        ChildEvents(self.owners, self.enqueue).attach(rs_informer)
        # Only deletions matter (Recreate waits for old pods to be gone).
        pod_informer.add_handler(_ignore, _ignore, self._pod_deleted)

    def _event(self, d, event_type, reason, message):
        self.recorder.event({**d, "apiVersion": API_VERSION, "kind": KIND}, event_type, reason,
                            message)

    def _pod_deleted(self, pod):
        """A Recreate rollout waits for the old pods to go: look again when the last one has."""
        rs = self.rs_owners.owner_of(pod)
        d = self.owners.owner_of(rs) if rs is not None else None
        if d is None or sizing.strategy_type(d) != "Recreate":
            return
        try:
            selector = selector_of(d)
        except SelectorError:
            return
        owned = [r for r in by_namespace(self.rs_store, d["metadata"].get("namespace"))
                 if (get_controller_of(r) or {}).get("uid") == d["metadata"].get("uid")]
        pods = [p for group in self.pod_map(d, selector, owned).values() for p in group]
        # Kubernetes counts every pod; finished ones cannot block Recreate, so skip them.
        if not any((p.get("status") or {}).get("phase") not in ("Failed", "Succeeded")
                   for p in pods):
            self.enqueue(d)

    # -- the reconcile ------------------------------------------------------------------
    def sync(self, key):
        """Converge the Deployment ``key``; raise to be retried with backoff."""
        d = self.d_store.get(key)
        if d is None:
            return
        try:
            selector = selector_of(d)
        except SelectorError as exc:
            log.error("deployment %s has an invalid selector: %s", key, exc)
            self._event(d, "Warning", "InvalidSelector", f"invalid selector: {exc}")
            return
        if selector.empty:
            self._event(d, "Warning", "SelectingAll", "This deployment is selecting all pods. "
                        "A non-empty selector is required.")
            if (d.get("status") or {}).get("observedGeneration", 0) < \
                    (d["metadata"].get("generation") or 0):
                status = dict(d.get("status") or {},
                              observedGeneration=d["metadata"].get("generation"))
                self._write_status(d, status)
            return
        rs_list = self.claim_replica_sets(d, selector)
        try:
            self._reconcile(d, selector, rs_list)
        except sizing.SpecError as exc:
            # Validation should have refused it; a retry cannot help.
            log.error("deployment %s: %s", key, exc)
            self._event(d, "Warning", "InvalidSpec", str(exc))

    def _reconcile(self, d, selector, rs_list):
        if d["metadata"].get("deletionTimestamp"):
            new_rs, old_rss, d = self.get_all_replica_sets(d, rs_list, create=False)
            self.sync_deployment_status(old_rss + [new_rs], new_rs, d)
            return
        d = self.check_paused_conditions(d)
        new_rs, old_rss, d = self.get_all_replica_sets(d, rs_list, create=False)
        if (d.get("spec") or {}).get("paused") or self.is_scaling_event(d, new_rs, old_rss):
            self.sync_scale(d, new_rs, old_rss)
        elif sizing.strategy_type(d) == "Recreate":
            self.rollout_recreate(d, new_rs, old_rss, rs_list,
                                  self.pod_map(d, selector, rs_list))
        else:
            self.rollout_rolling(d, new_rs, old_rss, rs_list)

    # -- claiming ReplicaSets ----------------------------------------------------------
    def claim_replica_sets(self, d, selector):
        """The ReplicaSets ``d`` owns after adopting matching orphans and releasing strays."""
        return RefManager(self.rest, kinds.DEPLOYMENTS, d, selector).claim(
            kinds.REPLICASETS, by_namespace(self.rs_store, d["metadata"].get("namespace")))

    def pod_map(self, d, selector, rs_list):
        """{ReplicaSet uid: [its pods matching the selector]}, terminating pods included."""
        pods = {rs["metadata"]["uid"]: [] for rs in rs_list}
        for pod in by_namespace(self.pod_store, d["metadata"].get("namespace")):
            ref = get_controller_of(pod)
            if ref is not None and ref.get("uid") in pods and \
                    selector.matches(pod["metadata"].get("labels") or {}):
                pods[ref["uid"]].append(pod)
        return pods

    def _write_status(self, d, status):
        """Write ``status`` if it differs; return the Deployment as the server has it now."""
        return write_status(self.rest, kinds.DEPLOYMENTS, d, status) or {**d, "status": status}
