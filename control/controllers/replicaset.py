"""Keep each ReplicaSet's number of pods: Kubernetes' ReplicaSetController.

``sync`` claims the active pods of the ReplicaSet's namespace (adopting orphans
that match its selector, releasing owned pods that stopped matching), creates
the missing pods in slow-start batches or deletes the surplus ones that matter
least, and writes status. Expectations (base.py) keep it from acting again on a
ReplicaSet until the informer has shown it the effects of its last action.
"""

import datetime
import logging
import time

from control.client import Conflict, NotFound, object_key
from control.controllers import pods as podutil
from control.controllers.base import (
    Controller,
    Expectations,
    by_namespace,
    create_owned,
    get_controller_of,
    namespace_terminating,
    parallel,
    significant,
    slow_start_batch,
    split_key,
)
from control.objects import kinds
from control.objects.selectors import LabelSelector, SelectorError

log = logging.getLogger(__name__)

PODS = kinds.lookup("", "v1", "pods")
REPLICASETS = kinds.lookup("apps", "v1", "replicasets")
API_VERSION, KIND = "apps/v1", "ReplicaSet"
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


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


class ReplicaSetController(Controller):
    """Converge ReplicaSets through ``rest``, reading the two informers' caches."""

    def __init__(self, rest, rs_informer, pod_informer, queue=None, clock=time.monotonic,
                 wall_clock=_utcnow, burst_replicas=BURST_REPLICAS):
        super().__init__("replicaset", [rs_informer, pod_informer], queue)
        self.rest = rest
        self.rs_store, self.pod_store = rs_informer.store, pod_informer.store
        if not self.pod_store.has_index(CONTROLLER_INDEX):
            pod_informer.add_index(CONTROLLER_INDEX, controller_index)
        self.expectations = Expectations(clock)
        self.wall_clock = wall_clock
        self.burst_replicas = burst_replicas
        rs_informer.add_handler(self.enqueue, lambda old, new: self.enqueue(new),
                                self._rs_deleted)
        pod_informer.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    # -- event handlers: note expectations, enqueue keys ------------------------------
    def _rs_deleted(self, rs):
        self.expectations.delete(object_key(rs))
        self.enqueue(rs)

    def _resolve(self, namespace, ref):
        """The cached ReplicaSet a controller ref points at (matching uid), or None."""
        if ref is None or ref.get("kind") != KIND or \
                ref.get("apiVersion", "").split("/")[0] != "apps":
            return None
        rs = self.rs_store.get(f"{namespace}/{ref['name']}")
        return rs if rs is not None and rs["metadata"].get("uid") == ref.get("uid") else None

    def _matching_replica_sets(self, pod):
        """Cached ReplicaSets in the pod's namespace whose selector matches its labels."""
        namespace = pod["metadata"].get("namespace")
        labels = pod["metadata"].get("labels") or {}
        found = []
        for rs in by_namespace(self.rs_store, namespace):
            try:
                selector = LabelSelector.from_object(rs["spec"].get("selector"))
            except SelectorError:
                continue
            if not selector.empty and selector.matches(labels):
                found.append(rs)
        return found

    def _pod_added(self, pod):
        if pod["metadata"].get("deletionTimestamp"):
            # Restarted with a pod already being deleted: count it as a deletion.
            self._pod_deleted(pod)
            return
        namespace = pod["metadata"].get("namespace")
        ref = get_controller_of(pod)
        if ref is not None:
            rs = self._resolve(namespace, ref)
            if rs is not None:
                self.expectations.creation_observed(object_key(rs))
                self.enqueue(rs)
            return
        for rs in self._matching_replica_sets(pod):     # an orphan: maybe someone adopts it
            self.enqueue(rs)

    def _pod_updated(self, old, new):
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return          # a resync: nothing changed
        namespace = new["metadata"].get("namespace")
        labels_changed = old["metadata"].get("labels") != new["metadata"].get("labels")
        if new["metadata"].get("deletionTimestamp"):
            # A graceful delete starts with an update; act on it now, not when it ends.
            self._pod_deleted(new)
            if labels_changed:
                self._pod_deleted(old)
            return
        old_ref, new_ref = get_controller_of(old), get_controller_of(new)
        if old_ref != new_ref and old_ref is not None:
            rs = self._resolve(namespace, old_ref)
            if rs is not None:
                self.enqueue(rs)
        if new_ref is not None:
            rs = self._resolve(namespace, new_ref)
            if rs is not None:
                self.enqueue(rs)
                min_ready = rs["spec"].get("minReadySeconds") or 0
                if min_ready and not podutil.is_ready(old) and podutil.is_ready(new):
                    # Available only minReadySeconds after Ready: look again then.
                    self.enqueue_after(rs, min_ready + 1)
            return
        if labels_changed or old_ref != new_ref:
            for rs in self._matching_replica_sets(new):
                self.enqueue(rs)

    def _pod_deleted(self, pod):
        rs = self._resolve(pod["metadata"].get("namespace"), get_controller_of(pod))
        if rs is not None:
            self.expectations.deletion_observed(object_key(rs), object_key(pod))
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
        """Write ``status`` if it differs; on a Conflict (a stale cache), retry once on a fresh read."""
        for attempt in range(2):
            if significant(status) == significant(rs.get("status") or {}):
                return
            try:
                self.rest.update_status(REPLICASETS, rs["metadata"]["namespace"],
                                        {**rs, "status": status})
                return
            except Conflict:
                if attempt:
                    raise
                # Often our own last status write, not yet in the cache.
                rs = self.rest.get(REPLICASETS, rs["metadata"]["namespace"],
                                   rs["metadata"]["name"])

    def claim_pods(self, rs, selector, pods):
        """The pods ``rs`` owns after adopting matching orphans and releasing strays.

        A pod owned by another controller is never touched. Errors (other than the
        pod being gone) are raised after every pod had its turn.
        """
        uid, deleting = rs["metadata"]["uid"], bool(rs["metadata"].get("deletionTimestamp"))
        claimed, errors, fresh = [], [], None
        for pod in pods:
            ref = get_controller_of(pod)
            labels = pod["metadata"].get("labels") or {}
            try:
                if ref is not None:
                    if ref.get("uid") != uid:
                        continue
                    if selector.matches(labels) or deleting:
                        claimed.append(pod)
                    else:
                        self._patch_owners(pod, [r for r in pod["metadata"]["ownerReferences"]
                                                 if r.get("uid") != uid])
                    continue
                if deleting or not selector.matches(labels) or \
                        pod["metadata"].get("deletionTimestamp"):
                    continue
                if fresh is None:
                    # Adopt only if the ReplicaSet, read fresh, is still this one and alive.
                    fresh = self.rest.get(REPLICASETS, rs["metadata"]["namespace"],
                                          rs["metadata"]["name"])
                    if fresh["metadata"].get("uid") != uid or \
                            fresh["metadata"].get("deletionTimestamp"):
                        raise RuntimeError(f"not adopting into {object_key(rs)}: it is "
                                           "gone or being deleted")
                refs = list(pod["metadata"].get("ownerReferences") or ())
                refs.append(podutil.owner_ref(rs))
                claimed.append(self._patch_owners(pod, refs))
            except NotFound:
                continue
            except Exception as exc:    # noqa: BLE001 - try the other pods, then report
                errors.append(exc)
        if errors:
            raise errors[0]
        return claimed

    def _patch_owners(self, pod, refs):
        """Set a pod's ownerReferences, failing (409) if the pod changed since we read it."""
        meta = pod["metadata"]
        patch = {"metadata": {"ownerReferences": refs, "uid": meta["uid"],
                              "resourceVersion": meta["resourceVersion"]}}
        return self.rest.patch(PODS, meta["namespace"], meta["name"], patch) or pod

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
                create_owned(self.rest, PODS, namespace, body, rs, API_VERSION, KIND)

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
                    self.rest.delete(PODS, namespace, pod["metadata"]["name"])
                except Exception as exc:    # noqa: BLE001 - collected, the first is returned
                    self.expectations.deletion_observed(key, object_key(pod))
                    if not isinstance(exc, NotFound):
                        errors.append(exc)

            parallel(delete, victims)
            return (errors[0], "delete") if errors else (None, None)
        return None, None
