"""Find or create a Deployment's new ReplicaSet and keep revision numbers in step.

``NewReplicaSets`` is mixed into DeploymentController (controller.py), which
provides ``rest``, ``rs_store``, ``wall_clock``, ``_event`` and ``_write_status``.
The new ReplicaSet is ``<deployment>-<pod-template-hash>``; a hash collision
with another template raises status.collisionCount, as Kubernetes does.
"""

import copy
import logging

from control.client import AlreadyExists, ApiException, Conflict, NotFound, object_key
from control.controllers.deployment import conditions, revisions, sizing, templatehash
from control.controllers.ownership import controller_ref, get_controller_of
from control.objects import kinds

log = logging.getLogger(__name__)

API_VERSION, KIND = kinds.DEPLOYMENTS.api_version, kinds.DEPLOYMENTS.kind


class NewReplicaSets:
    """The new ReplicaSet of a Deployment, and its revision annotation."""

    def get_all_replica_sets(self, d, rs_list, create):
        """(new ReplicaSet or None, old ReplicaSets, Deployment) with revisions synced."""
        new_rs = revisions.find_new_rs(d, rs_list)
        old_rss = [rs for rs in rs_list if new_rs is None or
                   rs["metadata"]["uid"] != new_rs["metadata"]["uid"]]
        new_rs, d = self.get_new_replica_set(d, new_rs, old_rss, create)
        return new_rs, old_rss, d

    def get_new_replica_set(self, d, existing, old_rss, create):
        """Bring the existing new ReplicaSet's annotations up to date, or create it."""
        new_revision = revisions.max_revision(old_rss) + 1
        if existing is not None:
            annotations = revisions.new_rs_annotations(d, existing, new_revision, exists=True)
            min_ready = d["spec"].get("minReadySeconds") or 0
            if annotations != (existing["metadata"].get("annotations") or {}) or \
                    (existing["spec"].get("minReadySeconds") or 0) != min_ready:
                body = copy.deepcopy(existing)
                body["metadata"]["annotations"] = annotations
                body["spec"]["minReadySeconds"] = min_ready
                return self.rest.update(kinds.REPLICASETS, body["metadata"]["namespace"], body), d
            d = self._set_revision(d, revisions.revision_of(existing))
            if conditions.has_progress_deadline(d) and \
                    conditions.get_condition(d.get("status"), "Progressing") is None:
                status = copy.deepcopy(d.get("status") or {})
                conditions.set_condition(status, conditions.new_condition(
                    "Progressing", "True", conditions.FOUND_NEW_RS_REASON,
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
        tmeta["labels"] = {**(tmeta.get("labels") or {}), templatehash.HASH_LABEL: pod_hash}
        selector = copy.deepcopy(d["spec"].get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), templatehash.HASH_LABEL: pod_hash}
        return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": f"{d['metadata']['name']}-{pod_hash}", "namespace": namespace,
                             "labels": dict(tmeta["labels"]),
                             "ownerReferences": [controller_ref(d, API_VERSION, KIND)]},
                "spec": {"replicas": 0, "minReadySeconds": d["spec"].get("minReadySeconds") or 0,
                         "selector": selector, "template": template}}

    def _create_new_replica_set(self, d, old_rss, new_revision):
        collisions = (d.get("status") or {}).get("collisionCount")
        body = self._new_replica_set_body(d, templatehash.compute_hash(d["spec"].get("template"),
                                                             collisions))
        name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
        body["spec"]["replicas"] = sizing.new_rs_new_replicas(d, old_rss + [body], body)
        body["metadata"]["annotations"] = revisions.new_rs_annotations(d, body, new_revision,
                                                                exists=False)
        already_exists = False
        try:
            created = self.rest.create(kinds.REPLICASETS, namespace, body)
        except AlreadyExists:
            # A slow cache, or a hash collision with a ReplicaSet of another template.
            try:
                rs = self.rs_store.get(f"{namespace}/{name}") or \
                    self.rest.get(kinds.REPLICASETS, namespace, name)
            except NotFound:
                raise Conflict(409, "Conflict", f"replica set {name} exists but cannot be "
                               "read yet") from None
            ref = get_controller_of(rs)
            if ref is not None and ref.get("uid") == d["metadata"]["uid"] and \
                    templatehash.equal_ignore_hash(d["spec"].get("template"), rs["spec"].get("template")):
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
            if conditions.has_progress_deadline(d):
                status = copy.deepcopy(d.get("status") or {})
                conditions.set_condition(status, conditions.new_condition(
                    "Progressing", "False", conditions.FAILED_RS_CREATE_REASON, message,
                    self.wall_clock()))
                try:
                    self._write_status(d, status)
                except ApiException as status_exc:
                    log.info("deployment %s: cannot write status: %s", object_key(d), status_exc)
            self._event(d, "Warning", conditions.FAILED_RS_CREATE_REASON, message)
            raise
        replicas = body["spec"]["replicas"]
        if not already_exists and replicas > 0:
            self._event(d, "Normal", "ScalingReplicaSet",
                        f"Scaled up replica set {name} to {replicas}")
        d = self._set_revision(d, new_revision)
        if not already_exists and conditions.has_progress_deadline(d):
            status = copy.deepcopy(d.get("status") or {})
            conditions.set_condition(status, conditions.new_condition(
                "Progressing", "True", conditions.NEW_RS_REASON, f'Created new replica set "{name}"',
                self.wall_clock()))
            d = self._write_status(d, status)
        return created, d

    def _set_revision(self, d, revision):
        """Record the new ReplicaSet's revision on the Deployment (metadata, so a patch)."""
        revision = str(revision)
        annotations = d["metadata"].get("annotations") or {}
        if annotations.get(revisions.REVISION) == revision:
            return d
        meta = d["metadata"]
        result = self.rest.patch(kinds.DEPLOYMENTS, meta["namespace"], meta["name"],
                                 {"metadata": {"annotations": {revisions.REVISION: revision}}})
        return result or {**d, "metadata": {**meta,
                                            "annotations": {**annotations, revisions.REVISION: revision}}}

