"""Run one pod of each DaemonSet on every eligible node: Kubernetes' DaemonSetsController.

A node is eligible when it matches the pod's nodeSelector and required node
affinity and has no NoSchedule/NoExecute taint the pod does not tolerate (the
pod gets the tolerations Kubernetes adds to every daemon pod). As since
Kubernetes 1.12, the controller does not bind pods itself: it creates them
unbound with a required node affinity ``metadata.name In [node]`` (matchFields)
and lets the scheduler bind them.

``sync`` keeps the ControllerRevision history (history.py), creates pods on
eligible nodes without one, deletes pods on nodes that are no longer eligible
(only NoExecute taints evict; a new NoSchedule taint does not), failed pods and
duplicates, rolls pods to the current template (RollingUpdate with
maxUnavailable, or with maxSurge: the new pod starts beside the old one; or
OnDelete) and writes status.
"""

import logging
import time

from control.client import NotFound, object_key
from control.client.events import EventRecorder
from control.controllers import history
from control.controllers.batch import parallel, slow_start_batch
from control.controllers.controller import Controller, by_namespace, split_key
from control.controllers.daemonplan import (
    daemon_set_status,
    node_actions,
    rolling_limits,
    rolling_update_surge,
    rolling_update_victims,
)
from control.controllers.daemonpods import (
    new_pod,
    node_should_run,
    target_node,
    with_daemon_tolerations,
)
from control.controllers.expectations import Expectations
from control.controllers.ownership import ChildEvents, Owners, RefManager
from control.objects import kinds, meta
from control.objects.selectors import LabelSelector, SelectorError

log = logging.getLogger(__name__)

BURST_REPLICAS = 250


class FailedPodBackoff:
    """How long to wait before killing another failed pod of one DaemonSet on one node.

    Kubernetes' failedPodsBackoff (1 s, doubling to 15 min): a pod that fails at
    once on some node must not make the controller create and delete in a hot loop.
    """

    def __init__(self, clock, initial=1.0, maximum=900.0):
        self.clock, self.initial, self.maximum = clock, initial, maximum
        self._entries = {}          # key -> (delay, last update)

    def remaining(self, key):
        """Seconds left in ``key``'s backoff (0: act now)."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        delay, since = entry
        return max(0.0, since + delay - self.clock())

    def next(self, key):
        """Note a kill now: the next one waits twice as long (reset after a long calm)."""
        now = self.clock()
        entry = self._entries.get(key)
        if entry is None or now - entry[1] > 2 * self.maximum:
            delay = self.initial
        else:
            delay = min(entry[0] * 2, self.maximum)
        self._entries[key] = (delay, now)


# -- the controller ----------------------------------------------------------------------------
class DaemonSetController(Controller):
    """Converge DaemonSets through ``rest`` from the daemonset, pod, node and revision caches."""

    def __init__(self, rest, ds_informer, pod_informer, node_informer, revision_informer,
                 queue=None, clock=time.monotonic, wall_clock=meta.utcnow, recorder=None):
        super().__init__("daemonset", [ds_informer, pod_informer, node_informer,
                                       revision_informer], queue)
        self.rest = rest
        self.ds_store, self.pod_store = ds_informer.store, pod_informer.store
        self.node_store, self.revision_store = node_informer.store, revision_informer.store
        self.expectations = Expectations(clock)
        self.failed_backoff = FailedPodBackoff(clock)
        self.wall_clock = wall_clock
        self.recorder = recorder or EventRecorder(rest, "daemonset-controller")
        ds_informer.add_handler(self.enqueue, lambda old, new: self.enqueue(new),
                                self._ds_deleted)
        self.owners = Owners(self.ds_store, kinds.DAEMONSETS)
        ChildEvents(self.owners, self.enqueue, **self.expectations.hooks(),
                    updated=self.enqueue_when_available).attach(pod_informer)
        node_informer.add_handler(self._node_changed, self._node_updated, self._node_changed)
        ChildEvents(self.owners, self.enqueue).attach(revision_informer)

    # -- handlers -----------------------------------------------------------------------
    def _ds_deleted(self, ds):
        self.expectations.delete(object_key(ds))
        self.enqueue(ds)

    def _node_changed(self, node):
        for ds in self.ds_store.list():
            self.enqueue(ds)

    def _node_updated(self, old, new):
        def relevant(node):
            return (node["metadata"].get("labels"), (node.get("spec") or {}).get("taints"),
                    (node.get("spec") or {}).get("unschedulable"))
        if relevant(old) != relevant(new):
            self._node_changed(new)

    # -- the reconcile -----------------------------------------------------------------
    def sync(self, key):
        namespace, _ = split_key(key)
        ds = self.ds_store.get(key)
        if ds is None:
            self.expectations.delete(key)
            return
        try:
            selector = LabelSelector.from_object(ds["spec"].get("selector"))
        except SelectorError as exc:
            log.error("daemonset %s has an invalid selector: %s", key, exc)
            self.recorder.event(ds, "Warning", "InvalidSelector",
                                f"invalid selector: {exc}")
            return
        if selector.empty:
            self.recorder.event(ds, "Warning", "SelectingAll",
                                "This daemon set is selecting all pods. A non-empty selector "
                                "is required.")
            return
        refs = RefManager(self.rest, kinds.DAEMONSETS, ds, selector)
        revisions = refs.claim(kinds.CONTROLLERREVISIONS,
                               by_namespace(self.revision_store, namespace))
        if ds["metadata"].get("deletionTimestamp"):
            return
        current, revisions = history.current_revision(self.rest, kinds.DAEMONSETS, ds,
                                                      revisions)
        hash_ = current["metadata"]["labels"][history.HASH_LABEL]
        pods = refs.claim(kinds.PODS, by_namespace(self.pod_store, namespace))
        revisions, pods = self._dedupe(current, revisions, pods)
        pods_by_node = {}
        for pod in pods:
            node = target_node(pod)
            if node is not None:
                pods_by_node.setdefault(node, []).append(pod)
        nodes = self.node_store.list()
        pod_spec = with_daemon_tolerations((ds["spec"].get("template") or {}).get("spec") or {})
        now = self.wall_clock()
        error = None
        if self.expectations.satisfied(key):
            error = self.manage(key, ds, nodes, pod_spec, pods_by_node, hash_, now)
        status = daemon_set_status(ds, nodes, pod_spec, pods_by_node, hash_, now)
        self._write_status(ds, status)
        live = {history.revision_name(ds["metadata"]["name"], h) for h in
                {(p["metadata"].get("labels") or {}).get(history.HASH_LABEL) for p in pods}
                if h} | {current["metadata"]["name"]}
        history.truncate(self.rest, revisions, live, ds["spec"].get("revisionHistoryLimit", 10))
        if error is not None:
            raise error
        min_ready = ds["spec"].get("minReadySeconds") or 0
        if min_ready and status["numberAvailable"] != status["numberReady"]:
            self.queue.add_after(key, min_ready)

    def _dedupe(self, current, revisions, pods):
        """Fold revisions equal to ``current`` into it: relabel their pods, delete them.

        Returns the revisions and pods that remain (as Kubernetes' dedupCurHistories).
        """
        dupes = history.duplicates(revisions, current)
        if not dupes:
            return revisions, pods
        hash_ = current["metadata"]["labels"][history.HASH_LABEL]
        dupe_hashes = {(d["metadata"].get("labels") or {}).get(history.HASH_LABEL)
                       for d in dupes}
        kept = []
        for pod in pods:
            labels = pod["metadata"].get("labels") or {}
            if labels.get(history.HASH_LABEL) in dupe_hashes:
                pmeta = pod["metadata"]
                patched = self.rest.patch(kinds.PODS, pmeta["namespace"], pmeta["name"], {
                    "metadata": {"labels": {history.HASH_LABEL: hash_},
                                 "resourceVersion": pmeta["resourceVersion"]}})
                pod = patched or {**pod, "metadata": {**pmeta, "labels": {
                    **labels, history.HASH_LABEL: hash_}}}
            kept.append(pod)
        for dupe in dupes:
            try:
                self.rest.delete(kinds.CONTROLLERREVISIONS, dupe["metadata"]["namespace"],
                                 dupe["metadata"]["name"])
            except NotFound:
                pass
        names = {d["metadata"]["name"] for d in dupes}
        return [r for r in revisions if r["metadata"]["name"] not in names], kept

    def manage(self, key, ds, nodes, pod_spec, pods_by_node, hash_, now):
        """Create and delete pods toward one per eligible node, then roll; return an error."""
        strategy = (ds["spec"].get("updateStrategy") or {}).get("type", "RollingUpdate")
        min_ready = ds["spec"].get("minReadySeconds") or 0
        eligible = {}
        for node in nodes:
            if node_should_run(node, pod_spec)[0]:
                name = node["metadata"]["name"]
                eligible[name] = [p for p in pods_by_node.get(name, ())
                                  if not p["metadata"].get("deletionTimestamp")]
        max_surge, max_unavailable = rolling_limits(ds, len(eligible))
        surge = strategy == "RollingUpdate" and max_surge > 0
        create, delete, failed = node_actions(nodes, pod_spec, pods_by_node,
                                              hash_ if surge else None, min_ready, now)
        for pod in failed:
            node_name = target_node(pod)
            wait = self.failed_backoff.remaining((key, node_name))
            if wait > 0:
                self.queue.add_after(key, wait)
                continue
            self.failed_backoff.next((key, node_name))
            self.recorder.event(ds, "Warning", "FailedDaemonPod",
                                f"Found failed daemon pod {pod['metadata']['namespace']}/"
                                f"{pod['metadata']['name']} on node {node_name}, will try to "
                                "kill it")
            delete.append(pod)
        if strategy == "RollingUpdate" and not create and not delete:
            if surge:
                create, delete = rolling_update_surge(eligible, hash_, min_ready, now,
                                                      max_surge)
            else:
                delete = rolling_update_victims(eligible, hash_, min_ready, now,
                                                max_unavailable)
        create = create[:BURST_REPLICAS]
        delete = delete[:BURST_REPLICAS]
        if not create and not delete:
            return None
        # Expect first: the informer may show the effects before the calls return.
        self.expectations.expect(key, len(create), [object_key(p) for p in delete])
        errors = []

        def remove(pod):
            try:
                self.rest.delete(kinds.PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
                self.recorder.event(ds, "Normal", "SuccessfulDelete",
                                    f"Deleted pod: {pod['metadata']['name']}")
            except Exception as exc:        # noqa: BLE001 - the first is returned
                self.expectations.deletion_observed(key, object_key(pod))
                if not isinstance(exc, NotFound):
                    errors.append(exc)

        parallel(remove, delete)
        queue = list(create)

        def make():
            node_name = queue.pop()
            body = new_pod(ds, node_name, hash_)
            try:
                created = self.rest.create(kinds.PODS, ds["metadata"]["namespace"], body)
            except Exception as exc:
                self.recorder.event(ds, "Warning", "FailedCreate",
                                    f"Error creating: {exc}")
                raise
            self.recorder.event(ds, "Normal", "SuccessfulCreate",
                                f"Created pod: {created['metadata']['name']}")

        successes, error = slow_start_batch(len(create), 1, make)
        for _ in range(len(create) - successes):
            self.expectations.creation_observed(key)
        return error or (errors[0] if errors else None)

    def _write_status(self, ds, status):
        history.write_status(self.rest, kinds.DAEMONSETS, ds, status)
