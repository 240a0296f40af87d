"""Keep each ReplicaSet's number of pods: Kubernetes' ReplicaSetController.

``sync`` claims the active pods of the ReplicaSet's namespace (adopting orphans
that match its selector, releasing owned pods that stopped matching), creates
the missing pods in slow-start batches or deletes the surplus ones that matter
least, and writes status. Expectations (expectations.py) keep it from acting again on a
ReplicaSet until the informer has shown it the effects of its last action.
"""

import logging
import time

from control.client import NotFound, object_key
from control.controllers import pods as podutil
from control.controllers.batch import parallel, slow_start_batch
from control.controllers.controller import Controller, namespace_terminating, split_key
from control.controllers.expectations import Expectations
from control.controllers.ownership import (
    ChildEvents,
    Owners,
    RefManager,
    create_owned,
    get_controller_of,
)
from control.controllers.status import write_status
from control.objects import kinds, meta
from control.objects.selectors import LabelSelector, SelectorError

log = logging.getLogger(__name__)

API_VERSION, KIND = kinds.REPLICASETS.api_version, kinds.REPLICASETS.kind
#: Kubernetes' BurstReplicas: at most this many creates or deletes per sync.
BURST_REPLICAS = 500


#: Pod index: the uid of the pod's controller, or "orphan:<namespace>" for pods without one.
CONTROLLER_INDEX = "controller"


def orphan_index_value(namespace):
    return f"orphan:{namespace}"


def controller_index(pod):
    """Index a pod by its controller's uid (client-go's controllerUIDIndex), orphans by namespace."""
    ref = get_controller_of(pod)
    if ref is not None and ref.get("uid"):
        return ref["uid"]
    return orphan_index_value(pod["metadata"].get("namespace", ""))


class ReplicaSetController(Controller):
    """Converge ReplicaSets through ``rest``, reading the two informers' caches."""

    def __init__(self, rest, rs_informer, pod_informer, queue=None, clock=time.monotonic,
                 wall_clock=meta.utcnow, burst_replicas=BURST_REPLICAS):
        super().__init__("replicaset", [rs_informer, pod_informer], queue)
        self.rest = rest
        self.rs_store, self.pod_store = rs_informer.store, pod_informer.store
        if not self.pod_store.has_index(CONTROLLER_INDEX):
            pod_informer.add_index(CONTROLLER_INDEX, controller_index)
        self.expectations = Expectations(clock)
        self.wall_clock = wall_clock
        self.burst_replicas = burst_replicas
        self.owners = Owners(self.rs_store, kinds.REPLICASETS)
        rs_informer.add_handler(self.enqueue, lambda old, new: self.enqueue(new),
                                self._rs_deleted)
        ChildEvents(self.owners, self.enqueue, **self.expectations.hooks(),
                    updated=self.enqueue_when_available).attach(pod_informer)

    # -- event handlers: note expectations, enqueue keys ------------------------------
    def _rs_deleted(self, rs):
        self.expectations.delete(object_key(rs))
        self.enqueue(rs)

    # -- the reconcile ----------------------------------------------------------------
    def sync(self, key):
        """Converge the ReplicaSet ``key``: claim pods, create or delete, write status."""
        namespace, _ = split_key(key)
        rs = self.rs_store.get(key)
        if rs is None:
            self.expectations.delete(key)
            return
        try:
            selector = LabelSelector.from_object(rs["spec"].get("selector"))
        except SelectorError as exc:
            # Validation should have refused it; retrying cannot help.
            log.error("replicaset %s has an invalid selector: %s", key, exc)
            return
        needs_sync = self.expectations.satisfied(key)
        # Only its own pods and the namespace's orphans can be claimed: read just those
        # (scanning the whole namespace on every sync is quadratic in pods).
        candidates = self.pod_store.by_index(CONTROLLER_INDEX, rs["metadata"]["uid"]) + \
            self.pod_store.by_index(CONTROLLER_INDEX, orphan_index_value(namespace))
        active = [p for p in candidates if podutil.is_active(p)]
        pods = self.claim_pods(rs, selector, active)
        error, failed = None, None
        if needs_sync and not rs["metadata"].get("deletionTimestamp"):
            error, failed = self.manage_replicas(key, rs, pods)
        status = podutil.replica_set_status(rs, pods, failed, self.wall_clock())
        self._write_status(rs, status)
        if error is not None:
            raise error
        replicas = rs["spec"].get("replicas", 1)
        min_ready = rs["spec"].get("minReadySeconds") or 0
        if min_ready and status.get("readyReplicas", 0) == replicas and \
                status.get("availableReplicas", 0) != replicas:
            self.queue.add_after(key, min_ready)

    def _write_status(self, rs, status):
        write_status(self.rest, kinds.REPLICASETS, rs, status)

    def claim_pods(self, rs, selector, pods):
        """The pods ``rs`` owns after adopting matching orphans and releasing strays."""
        return RefManager(self.rest, kinds.REPLICASETS, rs, selector).claim(kinds.PODS, pods)

    def manage_replicas(self, key, rs, pods):
        """Create or delete pods toward spec.replicas; return (first error, "create"|"delete")."""
        namespace = rs["metadata"]["namespace"]
        diff = len(pods) - rs["spec"].get("replicas", 1)
        if diff < 0:
            count = min(-diff, self.burst_replicas)
            # Expect first: the informer may show the new pods before create() returns.
            self.expectations.expect_creations(key, count)
            body = podutil.pod_from_template(rs)

            def create():
                create_owned(self.rest, kinds.PODS, namespace, body, rs, API_VERSION, KIND)

            successes, error = slow_start_batch(count, 1, create)
            for _ in range(count - successes):
                # Pods never asked for will never be seen.
                self.expectations.creation_observed(key)
            if namespace_terminating(error):
                log.info("replicaset %s: not creating pods: its namespace is being deleted", key)
                return None, None
            if error is not None:
                log.warning("replicaset %s: created %d of %d pods: %s", key, successes,
                            count, error)
            return error, "create" if error else None
        if diff > 0:
            victims = podutil.pods_to_delete(pods, min(diff, self.burst_replicas))
            victim_keys = [object_key(p) for p in victims]
            self.expectations.expect_deletions(key, victim_keys)
            errors = []

            def delete(pod):
                try:
                    self.rest.delete(kinds.PODS, namespace, pod["metadata"]["name"])
                except Exception as exc:    # noqa: BLE001 - collected, the first is returned
                    self.expectations.deletion_observed(key, object_key(pod))
                    if not isinstance(exc, NotFound):
                        errors.append(exc)

            parallel(delete, victims)
            return (errors[0], "delete") if errors else (None, None)
        return None, None
