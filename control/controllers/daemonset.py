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

import copy
import logging
import math
import time

from control.client import NotFound, object_key
from control.client.events import EventRecorder
from control.controllers import history
from control.controllers import pods as podutil
from control.controllers.batch import parallel, slow_start_batch
from control.controllers.controller import Controller, by_namespace, split_key
from control.controllers.expectations import Expectations
from control.controllers.ownership import ChildEvents, Owners, RefManager, controller_ref
from control.objects import kinds, meta, taints
from control.objects.selectors import LabelSelector, SelectorError
from control.scheduler import placement

log = logging.getLogger(__name__)

API_VERSION, KIND = "apps/v1", "DaemonSet"
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
BURST_REPLICAS = 250

#: The tolerations Kubernetes' DaemonSet controller adds to every daemon pod.
DAEMON_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
NETWORK_UNAVAILABLE = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
                       "effect": "NoSchedule"}


# -- pure judgements -------------------------------------------------------------------------
def with_daemon_tolerations(pod_spec):
    """A copy of ``pod_spec`` with the automatic daemon tolerations it lacks."""
    spec = copy.deepcopy(pod_spec)
    wanted = list(DAEMON_TOLERATIONS)
    if spec.get("hostNetwork"):
        wanted.append(NETWORK_UNAVAILABLE)
    tolerations = list(spec.get("tolerations") or ())
    for toleration in wanted:
        # AddOrUpdateTolerationInPodSpec: one for the same key, operator, value and
        # effect is replaced (a user's tolerationSeconds must not cut the pod's stay).
        same = [i for i, t in enumerate(tolerations) if _same_toleration(t, toleration)]
        if same:
            tolerations[same[0]] = dict(toleration)
        else:
            tolerations.append(dict(toleration))
    spec["tolerations"] = tolerations
    return spec


def _same_toleration(a, b):
    return all((a.get(f) or "") == (b.get(f) or "") for f in ("key", "value", "effect")) and \
        (a.get("operator") or "Equal") == (b.get("operator") or "Equal")


class _NodeInfo:
    """The one attribute placement's filters read."""

    def __init__(self, node):
        self.node = node


def node_should_run(node, pod_spec):
    """(should_run, should_continue_running) for a daemon pod with ``pod_spec`` on ``node``.

    ``pod_spec`` must already carry the daemon tolerations. A pod keeps running
    despite a NoSchedule taint it does not tolerate; only NoExecute ones evict.
    """
    pod = {"spec": pod_spec}
    if placement.filter_node_affinity(_NodeInfo(node), pod, None):
        return False, False
    node_taints = (node.get("spec") or {}).get("taints") or ()
    tolerations = pod_spec.get("tolerations") or ()

    def untolerated(effects):
        return any(t.get("effect") in effects and
                   not any(taints.tolerates(tol, t) for tol in tolerations) for t in node_taints)

    if untolerated(("NoExecute",)):
        return False, False
    return not untolerated(("NoSchedule",)), True


def target_node(pod):
    """The node a daemon pod is for: its nodeName, or the node its affinity names."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in required.get("nodeSelectorTerms") or ():
        for field in term.get("matchFields") or ():
            values = field.get("values") or ()
            if field.get("key") == "metadata.name" and field.get("operator") == "In" and \
                    len(values) == 1:
                return values[0]
    return None


def with_node_affinity(pod_spec, node_name):
    """``pod_spec`` requiring the node ``node_name`` (ReplaceDaemonSetPodNodeNameNodeAffinity)."""
    spec = copy.deepcopy(pod_spec)
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}
    return spec


def new_pod(ds, node_name, hash_):
    """A daemon pod for ``node_name``: template, revision labels, tolerations, node affinity."""
    pod = podutil.pod_from_template(ds)
    labels = pod["metadata"].setdefault("labels", {})
    labels[history.HASH_LABEL] = hash_
    labels[TEMPLATE_GENERATION_LABEL] = str(ds["metadata"].get("generation", 1))
    pod["metadata"]["ownerReferences"] = [controller_ref(ds, API_VERSION, KIND)]
    pod["spec"] = with_node_affinity(with_daemon_tolerations(pod["spec"]), node_name)
    return pod


def _created(pod):
    return (pod["metadata"].get("creationTimestamp") or "", pod["metadata"]["name"])


def _surge_extras(pods, hash_, min_ready, now):
    """With surge, a node may hold one old and one new pod: the other duplicates go, and
    the old pod goes once the new one is available (or at once if it is not Ready)."""
    oldest_new = oldest_old = None
    extras = []
    for pod in sorted(pods, key=_created):
        if _hash_of(pod) == hash_ and oldest_new is None:
            oldest_new = pod
        elif _hash_of(pod) != hash_ and oldest_old is None:
            oldest_old = pod
        else:
            extras.append(pod)
    if oldest_new is not None and oldest_old is not None and \
            (not podutil.is_ready(oldest_old) or
             podutil.is_available(oldest_new, min_ready, now)):
        extras.append(oldest_old)
    return extras


def node_actions(nodes, pod_spec, pods_by_node, surge_hash=None, min_ready=0, now=None):
    """Which nodes need a daemon pod created, and which pods to delete.

    ``pods_by_node`` maps a node name to its daemon pods (any phase). Returns
    (node names to create on, pods to delete, failed pods to delete once their
    node's backoff allows), as podsShouldBeOnNode does without surge: failed pods
    go (and are replaced on a later sync), duplicates go but the oldest (with
    surge, given ``surge_hash``: see _surge_extras), pods on nodes no longer
    eligible go.
    """
    create, delete, failed = [], [], []
    names = set()
    for node in nodes:
        name = node["metadata"]["name"]
        names.add(name)
        should_run, should_continue = node_should_run(node, pod_spec)
        pods = [p for p in pods_by_node.get(name, ()) if not p["metadata"].get("deletionTimestamp")]
        if should_run and not pods_by_node.get(name):
            create.append(name)
        elif should_continue:
            running = []
            for pod in pods:
                if (pod.get("status") or {}).get("phase") == "Failed":
                    failed.append(pod)
                else:
                    running.append(pod)
            if surge_hash is None:
                delete.extend(sorted(running, key=_created)[1:])
            else:
                delete.extend(_surge_extras(running, surge_hash, min_ready, now))
        else:
            delete.extend(pods)
    for name, pods in pods_by_node.items():
        if name not in names:       # the node is gone
            delete.extend(p for p in pods if not p["metadata"].get("deletionTimestamp"))
    return create, delete, failed


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


def _scaled(value, desired):
    """An int-or-percent as a count; percents of ``desired`` round up, as in Kubernetes."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * desired / 100)
    return int(value or 0)


def rolling_limits(ds, desired):
    """(maxSurge, maxUnavailable) as counts; if both are 0, one pod may be unavailable."""
    rolling = ((ds["spec"].get("updateStrategy") or {}).get("rollingUpdate") or {})
    surge = _scaled(rolling.get("maxSurge", 0), desired)
    unavailable = _scaled(rolling.get("maxUnavailable", 1), desired)
    if surge <= 0 and unavailable <= 0:
        unavailable = 1
    return max(surge, 0), max(unavailable, 0)


def _hash_of(pod):
    return (pod["metadata"].get("labels") or {}).get(history.HASH_LABEL)


def rolling_update_surge(nodes_to_pods, hash_, min_ready, now, max_surge):
    """One rolling-update step with maxSurge: (nodes to start a new pod on, old pods to delete).

    A new pod starts beside the old one (at most ``max_surge`` nodes at a time,
    but at once where the old pod is not available anyway); the old pod goes
    once the new one is available.
    """
    surging, allowed, candidates, old_to_delete = 0, [], [], []
    for name in sorted(nodes_to_pods):
        pods = nodes_to_pods[name]
        new = [p for p in pods if _hash_of(p) == hash_]
        old = [p for p in pods if _hash_of(p) != hash_]
        if len(new) > 1 or len(old) > 1:
            surging += 1                    # node_actions cleans this node up first
        elif not old:
            continue
        elif not new:
            if podutil.is_available(old[0], min_ready, now):
                candidates.append(name)
            else:
                allowed.append(name)
        elif not podutil.is_available(new[0], min_ready, now):
            surging += 1                    # waiting for the new pod
        else:
            old_to_delete.append(old[0])
    room = max(0, max_surge - surging)
    return allowed + candidates[:room], old_to_delete


def rolling_update_victims(nodes_to_pods, hash_, min_ready, now, limit):
    """The old pods to delete in one rolling-update step (without surge).

    ``nodes_to_pods`` maps each eligible node to its live daemon pods. Old pods
    that are not available go at once (they cost no availability); available
    ones only while fewer than ``limit`` nodes lack an available pod.
    """
    unavailable, replace_now, candidates = 0, [], []
    for name in sorted(nodes_to_pods):
        pods = nodes_to_pods[name]
        if not any(podutil.is_available(p, min_ready, now) for p in pods):
            unavailable += 1
        if len(pods) != 1:
            continue                        # none, or duplicates: node_actions handles them
        pod = pods[0]
        if (pod["metadata"].get("labels") or {}).get(history.HASH_LABEL) == hash_:
            continue
        if podutil.is_available(pod, min_ready, now):
            candidates.append(pod)
        else:
            replace_now.append(pod)
    budget = max(limit - unavailable, 0)
    return replace_now + candidates[:budget]


def daemon_set_status(ds, nodes, pod_spec, pods_by_node, hash_, now):
    """The status ``ds`` should have, from eligible nodes and their pods."""
    min_ready = ds["spec"].get("minReadySeconds") or 0
    desired = current = misscheduled = ready = available = updated = 0
    for node in nodes:
        name = node["metadata"]["name"]
        should_run = node_should_run(node, pod_spec)[0]
        pods = sorted((p for p in pods_by_node.get(name, ())
                       if not p["metadata"].get("deletionTimestamp")), key=_created)
        if should_run:
            desired += 1
        if not pods:
            continue
        if not should_run:
            # Including a pod left on a node tainted NoSchedule since (as Kubernetes counts).
            misscheduled += 1
            continue
        current += 1
        pod = pods[0]
        if podutil.is_ready(pod):
            ready += 1
            if podutil.is_available(pod, min_ready, now):
                available += 1
        if (pod["metadata"].get("labels") or {}).get(history.HASH_LABEL) == hash_:
            updated += 1
    status = dict(ds.get("status") or {})
    status.update(desiredNumberScheduled=desired, currentNumberScheduled=current,
                  numberMisscheduled=misscheduled, numberReady=ready,
                  numberAvailable=available, updatedNumberScheduled=updated,
                  numberUnavailable=desired - available,
                  observedGeneration=ds["metadata"].get("generation", 0))
    return status


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
