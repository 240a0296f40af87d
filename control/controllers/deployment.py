"""Roll Deployments out through ReplicaSets: Kubernetes' DeploymentController (apps/v1).

A Deployment owns one ReplicaSet per pod template, named ``<deployment>-<hash>``
and told apart by the ``pod-template-hash`` label and selector term. ``sync``
claims the ReplicaSets that match the selector (adopting orphans, releasing
strays), then:

* while the Deployment is being deleted, only writes status;
* while it is paused, or when only ``replicas`` changed (a scaling event), scales
  the ReplicaSets it has, in proportion, without moving the rollout on;
* otherwise rolls out: RollingUpdate scales the new ReplicaSet up within
  maxSurge and old ones down within maxUnavailable (rolling.go step for step);
  Recreate scales every old ReplicaSet to 0, waits until their pods are gone, and
  only then scales the new one up.

Status (counts, Progressing and Available conditions, collisionCount) is worked
out from the ReplicaSets' own status, which the ReplicaSet controller keeps. The
numeric rules are in deployment_util.py, the scaling steps (rolling, recreate,
proportional, history cleanup) in deployment_rollout.py; this module claims
ReplicaSets, finds or creates the new one, and writes status. A rollback is ``kubectl rollout undo`` copying an
old template back: the old ReplicaSet is then the "new" one and gets the next
revision.
"""

import copy
import datetime
import logging

from control.client import AlreadyExists, ApiException, Conflict, NotFound, object_key
from control.client.events import EventRecorder
from control.controllers import deployment_util as du
from control.controllers.base import Controller, by_namespace, controller_ref, get_controller_of
from control.controllers.deployment_rollout import Rollouts
from control.objects import kinds
from control.objects.selectors import LabelSelector, SelectorError

log = logging.getLogger(__name__)

DEPLOYMENTS = kinds.lookup("apps", "v1", "deployments")
REPLICASETS = kinds.lookup("apps", "v1", "replicasets")
PODS = kinds.lookup("", "v1", "pods")
API_VERSION, KIND = "apps/v1", "Deployment"


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)



def _ignore(obj):
    pass


def _selector(obj):
    return LabelSelector.from_object((obj.get("spec") or {}).get("selector"))


class DeploymentController(Rollouts, Controller):
    """Converge Deployments through ``rest``, reading three informers' caches."""

    def __init__(self, rest, d_informer, rs_informer, pod_informer, queue=None,
                 wall_clock=_utcnow, recorder=None):
        super().__init__("deployment", [d_informer, rs_informer, pod_informer], queue)
        self.rest = rest
        self.d_store, self.rs_store = d_informer.store, rs_informer.store
        self.pod_store = pod_informer.store
        self.wall_clock = wall_clock
        self.recorder = recorder or EventRecorder(rest, "deployment-controller")
        d_informer.add_handler(self.enqueue, lambda old, new: self.enqueue(new), self.enqueue)
        rs_informer.add_handler(self._rs_added, self._rs_updated, self._rs_deleted)
        # Only deletions matter (Recreate waits for old pods to be gone).
        pod_informer.add_handler(_ignore, lambda old, new: None, self._pod_deleted)

    # -- event handlers: only find the Deployment and enqueue it -----------------------
    def _event(self, d, event_type, reason, message):
        self.recorder.event({**d, "apiVersion": API_VERSION, "kind": KIND}, event_type, reason,
                            message)

    def _resolve(self, namespace, ref):
        """The cached Deployment a controller ref names (matching uid), or None."""
        if ref is None or ref.get("kind") != KIND or \
                ref.get("apiVersion", "").split("/")[0] != "apps":
            return None
        d = self.d_store.get(f"{namespace}/{ref['name']}")
        return d if d is not None and d["metadata"].get("uid") == ref.get("uid") else None

    def _matching_deployments(self, rs):
        """Deployments in the ReplicaSet's namespace whose selector matches its labels."""
        labels = rs["metadata"].get("labels") or {}
        found = []
        for d in by_namespace(self.d_store, rs["metadata"].get("namespace")):
            try:
                selector = _selector(d)
            except SelectorError:
                continue
            if not selector.empty and selector.matches(labels):
                found.append(d)
        return found

    def _rs_added(self, rs):
        if rs["metadata"].get("deletionTimestamp"):
            self._rs_deleted(rs)
            return
        ref = get_controller_of(rs)
        if ref is not None:
            d = self._resolve(rs["metadata"].get("namespace"), ref)
            if d is not None:
                self.enqueue(d)
            return
        for d in self._matching_deployments(rs):
            self.enqueue(d)

    def _rs_updated(self, old, new):
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        namespace = new["metadata"].get("namespace")
        old_ref, new_ref = get_controller_of(old), get_controller_of(new)
        if old_ref != new_ref and old_ref is not None:
            d = self._resolve(namespace, old_ref)
            if d is not None:
                self.enqueue(d)
        if new_ref is not None:
            d = self._resolve(namespace, new_ref)
            if d is not None:
                self.enqueue(d)
            return
        if old["metadata"].get("labels") != new["metadata"].get("labels") or old_ref != new_ref:
            for d in self._matching_deployments(new):
                self.enqueue(d)

    def _rs_deleted(self, rs):
        d = self._resolve(rs["metadata"].get("namespace"), get_controller_of(rs))
        if d is not None:
            self.enqueue(d)

    def _pod_deleted(self, pod):
        """A Recreate rollout waits for the old pods to go: look again when the last one has."""
        namespace = pod["metadata"].get("namespace")
        ref = get_controller_of(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.rs_store.get(f"{namespace}/{ref['name']}")
        if rs is None or rs["metadata"].get("uid") != ref.get("uid"):
            return
        d = self._resolve(namespace, get_controller_of(rs))
        if d is None or du.strategy_type(d) != "Recreate":
            return
        try:
            selector = _selector(d)
        except SelectorError:
            return
        owned = [r for r in by_namespace(self.rs_store, namespace)
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
            selector = _selector(d)
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
        except du.SpecError as exc:
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
        elif du.strategy_type(d) == "Recreate":
            self.rollout_recreate(d, new_rs, old_rss, rs_list,
                                  self.pod_map(d, selector, rs_list))
        else:
            self.rollout_rolling(d, new_rs, old_rss, rs_list)

    # -- claiming ReplicaSets ----------------------------------------------------------
    def claim_replica_sets(self, d, selector):
        """The ReplicaSets ``d`` owns after adopting matching orphans and releasing strays."""
        uid = d["metadata"]["uid"]
        deleting = bool(d["metadata"].get("deletionTimestamp"))
        claimed, errors, fresh = [], [], None
        for rs in by_namespace(self.rs_store, d["metadata"].get("namespace")):
            ref = get_controller_of(rs)
            matches = selector.matches(rs["metadata"].get("labels") or {})
            try:
                if ref is not None:
                    if ref.get("uid") != uid:
                        continue
                    if matches:
                        claimed.append(rs)
                    elif not deleting:
                        self._patch_owners(rs, [r for r in rs["metadata"]["ownerReferences"]
                                                if r.get("uid") != uid])
                    continue
                if deleting or not matches or rs["metadata"].get("deletionTimestamp"):
                    continue
                if fresh is None:
                    # Adopt only if the Deployment, read fresh, is still this one and alive.
                    fresh = self.rest.get(DEPLOYMENTS, d["metadata"]["namespace"],
                                          d["metadata"]["name"])
                    if fresh["metadata"].get("uid") != uid or \
                            fresh["metadata"].get("deletionTimestamp"):
                        raise RuntimeError(f"not adopting into {object_key(d)}: it is gone "
                                           "or being deleted")
                refs = list(rs["metadata"].get("ownerReferences") or ())
                refs.append(controller_ref(d, API_VERSION, KIND))
                claimed.append(self._patch_owners(rs, refs))
            except NotFound:
                continue
            except Exception as exc:    # noqa: BLE001 - try the others, then report
                errors.append(exc)
        if errors:
            raise errors[0]
        return claimed

    def _patch_owners(self, rs, refs):
        """Set a ReplicaSet's ownerReferences, failing (409) if it changed since we read it."""
        meta = rs["metadata"]
        patch = {"metadata": {"ownerReferences": refs, "uid": meta["uid"],
                              "resourceVersion": meta["resourceVersion"]}}
        result = self.rest.patch(REPLICASETS, meta["namespace"], meta["name"], patch)
        return result or {**rs, "metadata": {**meta, "ownerReferences": refs}}

    def pod_map(self, d, selector, rs_list):
        """{ReplicaSet uid: [its pods matching the selector]}, terminating pods included."""
        pods = {rs["metadata"]["uid"]: [] for rs in rs_list}
        for pod in by_namespace(self.pod_store, d["metadata"].get("namespace")):
            ref = get_controller_of(pod)
            if ref is not None and ref.get("uid") in pods and \
                    selector.matches(pod["metadata"].get("labels") or {}):
                pods[ref["uid"]].append(pod)
        return pods

    # -- the new ReplicaSet and revisions ---------------------------------------------
    def get_all_replica_sets(self, d, rs_list, create):
        """(new ReplicaSet or None, old ReplicaSets, Deployment) with revisions synced."""
        new_rs = du.find_new_rs(d, rs_list)
        old_rss = [rs for rs in rs_list if new_rs is None or
                   rs["metadata"]["uid"] != new_rs["metadata"]["uid"]]
        new_rs, d = self.get_new_replica_set(d, new_rs, old_rss, create)
        return new_rs, old_rss, d

    def get_new_replica_set(self, d, existing, old_rss, create):
        """Bring the existing new ReplicaSet's annotations up to date, or create it."""
        new_revision = du.max_revision(old_rss) + 1
        if existing is not None:
            annotations = du.new_rs_annotations(d, existing, new_revision, exists=True)
            min_ready = d["spec"].get("minReadySeconds") or 0
            if annotations != (existing["metadata"].get("annotations") or {}) or \
                    (existing["spec"].get("minReadySeconds") or 0) != min_ready:
                body = copy.deepcopy(existing)
                body["metadata"]["annotations"] = annotations
                body["spec"]["minReadySeconds"] = min_ready
                return self.rest.update(REPLICASETS, body["metadata"]["namespace"], body), d
            d = self._set_revision(d, du.revision_of(existing))
            if du.has_progress_deadline(d) and \
                    du.get_condition(d.get("status"), "Progressing") is None:
                status = copy.deepcopy(d.get("status") or {})
                du.set_condition(status, du.new_condition(
                    "Progressing", "True", du.FOUND_NEW_RS_REASON,
                    f'Found new replica set "{existing["metadata"]["name"]}"', self.wall_clock()))
                d = self._write_status(d, status)
            return existing, d
        if not create:
            return None, d
        return self._create_new_replica_set(d, old_rss, new_revision)

    def _new_replica_set_body(self, d, pod_hash):
        namespace = d["metadata"]["namespace"]
        template = copy.deepcopy(d["spec"].get("template") or {})
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), du.HASH_LABEL: pod_hash}
        selector = copy.deepcopy(d["spec"].get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), du.HASH_LABEL: pod_hash}
        return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": f"{d['metadata']['name']}-{pod_hash}", "namespace": namespace,
                             "labels": dict(tmeta["labels"]),
                             "ownerReferences": [controller_ref(d, API_VERSION, KIND)]},
                "spec": {"replicas": 0, "minReadySeconds": d["spec"].get("minReadySeconds") or 0,
                         "selector": selector, "template": template}}

    def _create_new_replica_set(self, d, old_rss, new_revision):
        collisions = (d.get("status") or {}).get("collisionCount")
        body = self._new_replica_set_body(d, du.compute_hash(d["spec"].get("template"),
                                                             collisions))
        name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
        body["spec"]["replicas"] = du.new_rs_new_replicas(d, old_rss + [body], body)
        body["metadata"]["annotations"] = du.new_rs_annotations(d, body, new_revision,
                                                                exists=False)
        already_exists = False
        try:
            created = self.rest.create(REPLICASETS, namespace, body)
        except AlreadyExists:
            # A slow cache, or a hash collision with a ReplicaSet of another template.
            try:
                rs = self.rs_store.get(f"{namespace}/{name}") or \
                    self.rest.get(REPLICASETS, namespace, name)
            except NotFound:
                raise Conflict(409, "Conflict", f"replica set {name} exists but cannot be "
                               "read yet") from None
            ref = get_controller_of(rs)
            if ref is not None and ref.get("uid") == d["metadata"]["uid"] and \
                    du.equal_ignore_hash(d["spec"].get("template"), rs["spec"].get("template")):
                created, already_exists = rs, True
            else:
                status = copy.deepcopy(d.get("status") or {})
                status["collisionCount"] = (collisions or 0) + 1
                log.info("deployment %s: hash collision on %s; collisionCount is now %d",
                         object_key(d), name, status["collisionCount"])
                self._write_status(d, status)
                raise
        except ApiException as exc:
            message = f'Failed to create new replica set "{name}": {exc}'
            if du.has_progress_deadline(d):
                status = copy.deepcopy(d.get("status") or {})
                du.set_condition(status, du.new_condition(
                    "Progressing", "False", du.FAILED_RS_CREATE_REASON, message,
                    self.wall_clock()))
                try:
                    self._write_status(d, status)
                except ApiException as status_exc:
                    log.info("deployment %s: cannot write status: %s", object_key(d), status_exc)
            self._event(d, "Warning", du.FAILED_RS_CREATE_REASON, message)
            raise
        replicas = body["spec"]["replicas"]
        if not already_exists and replicas > 0:
            self._event(d, "Normal", "ScalingReplicaSet",
                        f"Scaled up replica set {name} to {replicas}")
        d = self._set_revision(d, new_revision)
        if not already_exists and du.has_progress_deadline(d):
            status = copy.deepcopy(d.get("status") or {})
            du.set_condition(status, du.new_condition(
                "Progressing", "True", du.NEW_RS_REASON, f'Created new replica set "{name}"',
                self.wall_clock()))
            d = self._write_status(d, status)
        return created, d

    def _set_revision(self, d, revision):
        """Record the new ReplicaSet's revision on the Deployment (metadata, so a patch)."""
        revision = str(revision)
        annotations = d["metadata"].get("annotations") or {}
        if annotations.get(du.REVISION) == revision:
            return d
        meta = d["metadata"]
        result = self.rest.patch(DEPLOYMENTS, meta["namespace"], meta["name"],
                                 {"metadata": {"annotations": {du.REVISION: revision}}})
        return result or {**d, "metadata": {**meta,
                                            "annotations": {**annotations, du.REVISION: revision}}}

    # -- status -------------------------------------------------------------------------------
    def check_paused_conditions(self, d):
        """Progressing=Unknown DeploymentPaused / DeploymentResumed when spec.paused flips."""
        if not du.has_progress_deadline(d):
            return d
        cond = du.get_condition(d.get("status"), "Progressing")
        if cond is not None and cond.get("reason") == du.TIMED_OUT_REASON:
            return d
        paused_cond = cond is not None and cond.get("reason") == du.PAUSED_REASON
        paused = bool(d["spec"].get("paused"))
        if paused == paused_cond:
            return d
        status = copy.deepcopy(d.get("status") or {})
        if paused:
            new = du.new_condition("Progressing", "Unknown", du.PAUSED_REASON,
                                   "Deployment is paused", self.wall_clock())
        else:
            new = du.new_condition("Progressing", "Unknown", du.RESUMED_REASON,
                                   "Deployment is resumed", self.wall_clock())
        du.set_condition(status, new)
        return self._write_status(d, status)

    def sync_deployment_status(self, all_rss, new_rs, d):
        self._write_status(d, du.calculate_status(all_rss, new_rs, d, self.wall_clock()))

    def sync_rollout_status(self, all_rss, new_rs, d):
        """Status with the Progressing condition judged; requeue to catch the deadline."""
        now = self.wall_clock()
        status = du.calculate_status(all_rss, new_rs, d, now)
        if not du.has_progress_deadline(d):
            du.remove_condition(status, "Progressing")
        current = du.get_condition(d.get("status"), "Progressing")
        complete_before = status["replicas"] == status["updatedReplicas"] and \
            current is not None and current.get("reason") == du.NEW_RS_AVAILABLE_REASON
        subject = f'ReplicaSet "{new_rs["metadata"]["name"]}"' if new_rs is not None \
            else f'Deployment "{d["metadata"]["name"]}"'
        if du.has_progress_deadline(d) and not complete_before:
            if du.deployment_complete(d, status):
                du.set_condition(status, du.new_condition(
                    "Progressing", "True", du.NEW_RS_AVAILABLE_REASON,
                    f"{subject} has successfully progressed.", now))
            elif du.deployment_progressing(d, status):
                cond = du.new_condition("Progressing", "True", du.RS_UPDATED_REASON,
                                        f"{subject} is progressing.", now)
                if current is not None:
                    if current.get("status") == "True":
                        cond["lastTransitionTime"] = current.get("lastTransitionTime")
                    du.remove_condition(status, "Progressing")
                du.set_condition(status, cond)
            elif du.deployment_timed_out(d, status, now):
                du.set_condition(status, du.new_condition(
                    "Progressing", "False", du.TIMED_OUT_REASON,
                    f"{subject} has timed out progressing.", now))
        failure = du.replica_failure(all_rss, new_rs)
        if failure is not None:
            du.set_condition(status, failure)
        else:
            du.remove_condition(status, "ReplicaFailure")
        if du.significant(status) == du.significant(d.get("status")):
            self._requeue_stuck(d, status, now)
            return
        self._write_status(d, status)

    def _requeue_stuck(self, d, status, now):
        """Look again when the progress deadline would pass without progress."""
        cond = du.get_condition(d.get("status"), "Progressing")
        if not du.has_progress_deadline(d) or cond is None:
            return
        if du.deployment_complete(d, status) or cond.get("reason") == du.TIMED_OUT_REASON:
            return
        since = du.parse_time(cond.get("lastUpdateTime"))
        if since is None:
            return
        after = (since + datetime.timedelta(seconds=d["spec"]["progressDeadlineSeconds"])
                 - now).total_seconds()
        key = object_key(d)
        if after < 1:
            self.queue.add_rate_limited(key)
        else:
            self.queue.add_after(key, after)

    def _write_status(self, d, status):
        """Write ``status`` if it differs; return the Deployment as the server has it now."""
        if du.significant(status) == du.significant(d.get("status")):
            return d
        result = self.rest.update_status(DEPLOYMENTS, d["metadata"]["namespace"],
                                         {**d, "status": status})
        return result or {**d, "status": status}
