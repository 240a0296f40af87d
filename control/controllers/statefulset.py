"""Give each StatefulSet stable, ordered pods: Kubernetes' StatefulSetController.

Pods are named ``<set>-<ordinal>`` and labelled with
``statefulset.kubernetes.io/pod-name``, ``apps.kubernetes.io/pod-index`` and
``controller-revision-hash`` (the name of the ControllerRevision they were made
from). With podManagementPolicy OrderedReady, ordinal k is created only once
0..k-1 are Running and Ready (and available, with minReadySeconds), and scale
down removes the highest ordinal first, one at a time; Parallel creates and
deletes all at once. A failed or deleted pod is recreated under the same name.
spec.ordinals.start shifts the ordinals (start .. start+replicas-1).
RollingUpdate replaces pods from the highest ordinal down to the partition, one
at a time, each waiting for the previous to be healthy; OnDelete leaves that to
the user. volumeClaimTemplates give each pod its own claims, made before the pod
and kept or deleted by persistentVolumeClaimRetentionPolicy (statefulset_claims.py).

``next_actions`` is the pure decision (given the pods, what to create and
delete now); ``sync`` feeds it from the caches and writes status.
"""

import logging
import re
import time
from dataclasses import dataclass, field

from control.client import AlreadyExists, NotFound
from control.client.events import EventRecorder
from control.controllers import history
from control.controllers import pods as podutil
from control.controllers import statefulset_claims as claims
from control.controllers.batch import parallel
from control.controllers.controller import Controller, by_namespace, split_key
from control.controllers.ownership import (
    ChildEvents,
    Owners,
    RefManager,
    controller_ref,
    get_controller_of,
)
from control.objects import kinds, meta
from control.objects.selectors import LabelSelector, SelectorError

log = logging.getLogger(__name__)

API_VERSION, KIND = "apps/v1", "StatefulSet"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
_ORDINAL = re.compile(r"^(.*)-([0-9]+)$")


# -- pure judgements -------------------------------------------------------------------------
def ordinal_of(pod, set_name):
    """The ordinal of a member pod of ``set_name``, or None if the name is not ``<set>-<n>``."""
    match = _ORDINAL.match(pod["metadata"]["name"])
    if match is None or match.group(1) != set_name:
        return None
    return int(match.group(2))


def revision_of(pod):
    return (pod["metadata"].get("labels") or {}).get(history.HASH_LABEL)


def is_terminating(pod):
    return bool(pod["metadata"].get("deletionTimestamp"))


def is_failed(pod):
    return (pod.get("status") or {}).get("phase") in podutil.TERMINAL_PHASES


def is_healthy(pod, min_ready, now):
    """Running, Ready (for minReadySeconds) and not being deleted."""
    return (pod.get("status") or {}).get("phase") == "Running" and not is_terminating(pod) \
        and podutil.is_available(pod, min_ready, now)


def new_pod(sts, ordinal, revision_name, template):
    """The pod ``<set>-<ordinal>`` from ``template`` (the spec.template of that revision)."""
    name = f"{sts['metadata']['name']}-{ordinal}"
    pod = podutil.pod_from_template({"metadata": sts["metadata"], "spec": {"template": template}})
    pmeta = pod["metadata"]
    del pmeta["generateName"]
    pmeta["name"] = name
    pmeta["labels"] = {**(pmeta.get("labels") or {}), POD_NAME_LABEL: name,
                       POD_INDEX_LABEL: str(ordinal), history.HASH_LABEL: revision_name}
    pmeta["ownerReferences"] = [controller_ref(sts, API_VERSION, KIND)]
    pod["spec"].setdefault("hostname", name)
    if sts["spec"].get("serviceName"):
        pod["spec"].setdefault("subdomain", sts["spec"]["serviceName"])
    return pod


@dataclass
class Plan:
    """What one sync should do: pods to create (ordinal, revision name), pods to delete."""

    create: list = field(default_factory=list)
    delete: list = field(default_factory=list)


def next_actions(sts, pods, current_revision, update_revision, now):
    """The creations and deletions to make now, given the member ``pods`` by ordinal.

    Follows updateStatefulSet: first the wanted ordinals start..start+N-1
    (recreate failed pods, create missing ones; OrderedReady stops at the first
    that is not yet healthy), then the condemned ordinals outside that range
    from the highest, then one rolling-update step. ``pods`` maps ordinal -> pod.
    """
    spec = sts["spec"]
    replicas = spec.get("replicas", 1)
    ordered = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
    min_ready = spec.get("minReadySeconds") or 0
    strategy = spec.get("updateStrategy") or {}
    rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
    partition = ((strategy.get("rollingUpdate") or {}).get("partition") or 0) if rolling else 0
    start = (spec.get("ordinals") or {}).get("start") or 0
    wanted = range(start, start + replicas)
    plan = Plan()

    for ordinal in wanted:
        pod = pods.get(ordinal)
        if pod is not None and is_failed(pod) and not is_terminating(pod):
            plan.delete.append(pod)         # recreated under the same name once gone
            if ordered:
                return plan
            continue
        if pod is None:
            below = rolling and ordinal - start < partition
            plan.create.append((ordinal, current_revision if below else update_revision))
            if ordered:
                return plan
            continue
        if ordered and not is_healthy(pod, min_ready, now):
            return plan                     # wait for it before touching the next one

    condemned = sorted(o for o in pods if o not in wanted)
    # OrderedReady deletes only while no pod but the one going is unhealthy.
    first_unhealthy = next((o for o in [*(o for o in wanted if o in pods), *condemned]
                            if not is_healthy(pods[o], min_ready, now)), None)
    for ordinal in reversed(condemned):
        pod = pods[ordinal]
        if is_terminating(pod):
            if ordered:
                return plan
            continue
        if ordered and first_unhealthy not in (None, ordinal):
            return plan
        plan.delete.append(pod)
        if ordered:
            return plan
    if condemned or plan.create or plan.delete:
        return plan

    if rolling:
        for ordinal in range(start + replicas - 1, start + partition - 1, -1):
            pod = pods.get(ordinal)
            if pod is None:
                return plan
            if revision_of(pod) != update_revision and not is_terminating(pod):
                plan.delete.append(pod)
                return plan
            if not is_healthy(pod, min_ready, now):
                return plan
    return plan


def stateful_set_status(sts, pods, current_revision, update_revision, now):
    """Status from the member ``pods`` (ordinal -> pod) and the two revision names."""
    min_ready = sts["spec"].get("minReadySeconds") or 0
    status = dict(sts.get("status") or {})
    created = list(pods.values())
    live = [p for p in created if not is_terminating(p)]
    counts = dict(
        replicas=len(created),
        readyReplicas=sum((p.get("status") or {}).get("phase") == "Running" and
                          podutil.is_ready(p) for p in created),
        availableReplicas=sum(is_healthy(p, min_ready, now) for p in live),
        currentReplicas=sum(revision_of(p) == current_revision for p in live),
        updatedReplicas=sum(revision_of(p) == update_revision for p in live))
    status.update(counts, currentRevision=current_revision, updateRevision=update_revision,
                  observedGeneration=sts["metadata"].get("generation", 0))
    status.setdefault("collisionCount", 0)
    strategy = (sts["spec"].get("updateStrategy") or {}).get("type", "RollingUpdate")
    replicas = sts["spec"].get("replicas", 1)
    if strategy == "RollingUpdate" and counts["updatedReplicas"] == replicas and \
            counts["readyReplicas"] == replicas and counts["replicas"] == replicas:
        # The rollout is complete: the update revision is now the current one.
        status["currentRevision"] = update_revision
        status["currentReplicas"] = counts["updatedReplicas"]
    return status


# -- the controller ----------------------------------------------------------------------------
class StatefulSetController(Controller):
    """Converge StatefulSets through ``rest`` from the set, pod and revision caches."""

    def __init__(self, rest, sts_informer, pod_informer, revision_informer, queue=None,
                 wall_clock=meta.utcnow, recorder=None, clock=time.monotonic):
        super().__init__("statefulset", [sts_informer, pod_informer, revision_informer], queue)
        self.rest = rest
        self.sts_store, self.pod_store = sts_informer.store, pod_informer.store
        self.revision_store = revision_informer.store
        self.wall_clock = wall_clock
        self.recorder = recorder or EventRecorder(rest, "statefulset-controller")
        sts_informer.add_handler(self.enqueue, lambda old, new: self.enqueue(new), self.enqueue)
        owners = Owners(self.sts_store, kinds.STATEFULSETS)
        ChildEvents(owners, self.enqueue, updated=self.enqueue_when_available).attach(
            pod_informer)
        ChildEvents(owners, self.enqueue).attach(revision_informer)

    def sync(self, key):
        namespace, name = split_key(key)
        sts = self.sts_store.get(key)
        if sts is None:
            return
        try:
            selector = LabelSelector.from_object(sts["spec"].get("selector"))
        except SelectorError as exc:
            log.error("statefulset %s has an invalid selector: %s", key, exc)
            self.recorder.event(sts, "Warning", "InvalidSelector", f"invalid selector: {exc}")
            return
        if selector.empty:
            self.recorder.event(sts, "Warning", "SelectingAll",
                                "This statefulset is selecting all pods. A non-empty selector "
                                "is required.")
            return
        revisions = RefManager(self.rest, kinds.STATEFULSETS, sts, selector).claim(
            kinds.CONTROLLERREVISIONS, by_namespace(self.revision_store, namespace))
        if sts["metadata"].get("deletionTimestamp"):
            return
        update, revisions = history.current_revision(self.rest, kinds.STATEFULSETS, sts,
                                                     revisions)
        by_name = {r["metadata"]["name"]: r for r in revisions}
        current = by_name.get((sts.get("status") or {}).get("currentRevision")) or update
        # As isMemberOf: only pods named like members are claimed (or released).
        members = RefManager(self.rest, kinds.STATEFULSETS, sts, selector,
                             member=lambda p: ordinal_of(p, name) is not None).claim(
            kinds.PODS, by_namespace(self.pod_store, namespace))
        pods = {ordinal_of(p, name): p for p in members}
        now = self.wall_clock()
        plan = next_actions(sts, pods, current["metadata"]["name"], update["metadata"]["name"],
                            now)
        error = self._act(sts, plan, by_name, current, update)
        status = stateful_set_status(sts, pods, current["metadata"]["name"],
                                     update["metadata"]["name"], now)
        self._write_status(sts, status)
        live = {revision_of(p) for p in members} | {current["metadata"]["name"],
                                                   update["metadata"]["name"]}
        history.truncate(self.rest, revisions, live, sts["spec"].get("revisionHistoryLimit", 10))
        if error is not None:
            raise error
        min_ready = sts["spec"].get("minReadySeconds") or 0
        if min_ready and status["availableReplicas"] != status["readyReplicas"]:
            self.queue.add_after(key, min_ready)

    def _act(self, sts, plan, by_name, current, update):
        """Make the plan's calls; return the first error (AlreadyExists and NotFound are fine)."""
        namespace, set_name = sts["metadata"]["namespace"], sts["metadata"]["name"]
        errors = []

        def create(item):
            ordinal, revision_name = item
            revision = by_name.get(revision_name, update)
            template = revision["data"]["spec"]["template"]
            template = {k: v for k, v in template.items() if k != "$patch"}
            pod = claims.with_claim_volumes(new_pod(sts, ordinal, revision_name, template),
                                            sts, ordinal)
            if not self._create_claims(sts, ordinal, pod["metadata"]["name"], errors):
                return
            try:
                self.rest.create(kinds.PODS, namespace, pod)
            except AlreadyExists:
                self._name_taken(sts, pod["metadata"]["name"])
                return
            except Exception as exc:    # noqa: BLE001 - reported below
                self.recorder.event(sts, "Warning", "FailedCreate",
                                    f"create Pod {pod['metadata']['name']} in StatefulSet "
                                    f"{set_name} failed error: {exc}")
                errors.append(exc)
                return
            self.recorder.event(sts, "Normal", "SuccessfulCreate",
                                f"create Pod {pod['metadata']['name']} in StatefulSet "
                                f"{set_name} successful")

        def delete(pod):
            pod_name = pod["metadata"]["name"]
            if not self._hand_claims_to(sts, pod, errors):
                return
            try:
                self.rest.delete(kinds.PODS, namespace, pod_name)
            except NotFound:
                return
            except Exception as exc:    # noqa: BLE001 - reported below
                errors.append(exc)
                return
            self.recorder.event(sts, "Normal", "SuccessfulDelete",
                                f"delete Pod {pod_name} in StatefulSet {set_name} successful")

        parallel(delete, plan.delete)
        parallel(create, plan.create)
        return errors[0] if errors else None

    def _name_taken(self, sts, pod_name):
        """A create found the name taken: ours and not yet cached is fine; else say why."""
        try:
            existing = self.rest.get(kinds.PODS, sts["metadata"]["namespace"], pod_name)
        except NotFound:
            return              # gone meanwhile: the next sync creates it
        if (get_controller_of(existing) or {}).get("uid") == sts["metadata"]["uid"]:
            return              # ours, not yet in the cache
        # Someone else's pod holds the name (an orphan that matches is adopted instead).
        self.recorder.event(sts, "Warning", "FailedCreate",
                            f"create Pod {pod_name} in StatefulSet {sts['metadata']['name']} "
                            f"failed error: pods \"{pod_name}\" already exists and is not "
                            "controlled by this StatefulSet")

    def _create_claims(self, sts, ordinal, pod_name, errors):
        """Create the pod's missing claims first; False (error recorded) if one failed."""
        set_name = sts["metadata"]["name"]
        for claim in claims.new_claims(sts, ordinal):
            claim_name = claim["metadata"]["name"]
            try:
                self.rest.create(claims.PVCS, sts["metadata"]["namespace"], claim)
            except AlreadyExists:
                continue                # kept from an earlier pod: its data is the point
            except Exception as exc:    # noqa: BLE001 - reported, and the pod waits
                self.recorder.event(sts, "Warning", "FailedCreate",
                                    f"create Claim {claim_name} for Pod {pod_name} in "
                                    f"StatefulSet {set_name} failed error: {exc}")
                errors.append(exc)
                return False
            self.recorder.event(sts, "Normal", "SuccessfulCreate",
                                f"create Claim {claim_name} Pod {pod_name} in StatefulSet "
                                f"{set_name} success")
        return True

    def _hand_claims_to(self, sts, pod, errors):
        """whenScaled=Delete: a pod condemned by scale down becomes its claims' owner."""
        ordinal = ordinal_of(pod, sts["metadata"]["name"])
        start = (sts["spec"].get("ordinals") or {}).get("start") or 0
        condemned = ordinal is not None and not \
            start <= ordinal < start + sts["spec"].get("replicas", 1)
        if not condemned or claims.retention(sts)[1] != claims.DELETE:
            return True
        for template in claims.templates(sts):
            name = claims.claim_name(template, sts["metadata"]["name"], ordinal)
            try:
                claim = self.rest.get(claims.PVCS, sts["metadata"]["namespace"], name)
                patch = claims.pod_owner_patch(claim, pod)
                if patch is not None:
                    self.rest.patch(claims.PVCS, sts["metadata"]["namespace"], name, patch)
            except NotFound:
                continue
            except Exception as exc:    # noqa: BLE001 - the pod stays until this works
                errors.append(exc)
                return False
        return True

    def _write_status(self, sts, status):
        history.write_status(self.rest, kinds.STATEFULSETS, sts, status)
