"""How a Deployment's ReplicaSets are resized: rolling.go, recreate.go and sync.go's scale.

``Rollouts`` is mixed into DeploymentController (controller.py), which provides
``rest``, ``_event``, ``get_new_replica_set``, ``sync_rollout_status`` and
``sync_deployment_status``. Each method here takes the Deployment and its
ReplicaSets as the sync found them and writes ReplicaSet updates (with a
ScalingReplicaSet Event for each resize) or deletions; the numbers come from
sizing.py, proportion.py and revisions.py.
"""

import copy

from control.client import NotFound
from control.controllers.deployment import conditions, proportion, revisions, sizing
from control.objects import kinds


class Rollouts:
    """Scaling, RollingUpdate, Recreate and history cleanup for DeploymentController."""

    # -- scaling ------------------------------------------------------------------------
    def is_scaling_event(self, d, new_rs, old_rss):
        """True if an active ReplicaSet was sized for a different spec.replicas."""
        for rs in [r for r in old_rss + [new_rs] if revisions.is_active(r)]:
            desired = revisions.desired_replicas_annotation(rs)
            if desired is not None and desired != sizing.replicas_of(d):
                return True
        return False

    def scale_replica_set(self, rs, new_scale, d, operation):
        """Set ``rs`` to ``new_scale`` with the Deployment's replica annotations; (scaled, rs)."""
        desired = sizing.replicas_of(d)
        max_replicas = desired + sizing.max_surge(d)
        old_scale = sizing.replicas_of(rs)
        resize = old_scale != new_scale
        if not resize and not revisions.replicas_annotations_need_update(rs, desired, max_replicas):
            return False, rs
        body = copy.deepcopy(rs)
        body["spec"]["replicas"] = new_scale
        body["metadata"]["annotations"] = {**(body["metadata"].get("annotations") or {}),
                                           revisions.DESIRED_REPLICAS: str(desired),
                                           revisions.MAX_REPLICAS: str(max_replicas)}
        updated = self.rest.update(kinds.REPLICASETS, body["metadata"]["namespace"], body) or body
        if resize:
            self._event(d, "Normal", "ScalingReplicaSet",
                        f"Scaled {operation} replica set {rs['metadata']['name']} to "
                        f"{new_scale} from {old_scale}")
        return resize, updated

    def scale_and_record(self, rs, new_scale, d):
        if sizing.replicas_of(rs) == new_scale:
            return False, rs
        operation = "up" if sizing.replicas_of(rs) < new_scale else "down"
        return self.scale_replica_set(rs, new_scale, d, operation)

    def scale(self, d, new_rs, old_rss):
        """Resize without moving the rollout on: the one active ReplicaSet, or all in proportion."""
        target = revisions.find_active_or_latest(new_rs, old_rss)
        if target is not None:
            if sizing.replicas_of(target) != sizing.replicas_of(d):
                self.scale_and_record(target, sizing.replicas_of(d), d)
            return
        if revisions.is_saturated(d, new_rs):
            for rs in old_rss:
                if revisions.is_active(rs):
                    self.scale_and_record(rs, 0, d)
            return
        if sizing.is_rolling_update(d):
            active = [rs for rs in old_rss + [new_rs] if revisions.is_active(rs)]
            sizes, operation = proportion.proportional_sizes(d, active)
            for rs, size in sizes:
                self.scale_replica_set(rs, size, d, operation)

    def sync_scale(self, d, new_rs, old_rss):
        """A paused Deployment or a scaling event: scale, and clean history only when paused."""
        self.scale(d, new_rs, old_rss)
        if d["spec"].get("paused"):
            self.cleanup_deployment(old_rss, d)
        self.sync_deployment_status(old_rss + [new_rs], new_rs, d)

    # -- RollingUpdate (rolling.go) ---------------------------------------------------------
    def rollout_rolling(self, d, new_rs, old_rss, rs_list):
        if new_rs is None:
            new_rs, d = self.get_new_replica_set(d, None, old_rss, create=True)
        all_rss = old_rss + [new_rs]
        if self.reconcile_new_replica_set(all_rss, new_rs, d):
            self.sync_rollout_status(all_rss, new_rs, d)
            return
        if self.reconcile_old_replica_sets(all_rss, [r for r in old_rss if revisions.is_active(r)],
                                           new_rs, d):
            self.sync_rollout_status(all_rss, new_rs, d)
            return
        if conditions.deployment_complete(d, d.get("status") or {}):
            self.cleanup_deployment(old_rss, d)
        self.sync_rollout_status(all_rss, new_rs, d)

    def reconcile_new_replica_set(self, all_rss, new_rs, d):
        """Scale the new ReplicaSet up as far as maxSurge allows (or down to replicas)."""
        replicas = sizing.replicas_of(d)
        if sizing.replicas_of(new_rs) == replicas:
            return False
        if sizing.replicas_of(new_rs) > replicas:
            return self.scale_and_record(new_rs, replicas, d)[0]
        return self.scale_and_record(new_rs, sizing.new_rs_new_replicas(d, all_rss, new_rs), d)[0]

    def reconcile_old_replica_sets(self, all_rss, old_rss, new_rs, d):
        """Scale old ReplicaSets down: unhealthy replicas first, then within maxUnavailable."""
        if sizing.total_replicas(old_rss) == 0:
            return False
        min_available = sizing.replicas_of(d) - sizing.max_unavailable(d)
        new_unavailable = sizing.replicas_of(new_rs) - sizing.available_of(new_rs)
        max_scaled_down = sizing.total_replicas(all_rss) - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        old_rss, cleaned = self.cleanup_unhealthy_replicas(old_rss, d, max_scaled_down)
        scaled = self.scale_down_old_for_rolling_update(old_rss + [new_rs], old_rss, d)
        return cleaned + scaled > 0

    def cleanup_unhealthy_replicas(self, old_rss, d, max_cleanup):
        """Remove old replicas that are not available: that costs no availability."""
        old_rss = sorted(old_rss, key=revisions.creation_key)
        total = 0
        for i, rs in enumerate(old_rss):
            if total >= max_cleanup:
                break
            replicas, available = sizing.replicas_of(rs), sizing.available_of(rs)
            if replicas == 0 or replicas == available:
                continue
            count = min(max_cleanup - total, replicas - available)
            if count <= 0:
                continue
            _, old_rss[i] = self.scale_and_record(rs, replicas - count, d)
            total += count
        return old_rss, total

    def scale_down_old_for_rolling_update(self, all_rss, old_rss, d):
        """Scale old ReplicaSets down, oldest first, while more than minAvailable are available."""
        min_available = sizing.replicas_of(d) - sizing.max_unavailable(d)
        available = sum(sizing.available_of(rs) for rs in all_rss)
        if available <= min_available:
            return 0
        to_remove, total = available - min_available, 0
        for rs in sorted(old_rss, key=revisions.creation_key):
            if total >= to_remove:
                break
            if sizing.replicas_of(rs) == 0:
                continue
            count = min(sizing.replicas_of(rs), to_remove - total)
            self.scale_and_record(rs, sizing.replicas_of(rs) - count, d)
            total += count
        return total

    # -- Recreate (recreate.go) -----------------------------------------------------------
    def rollout_recreate(self, d, new_rs, old_rss, rs_list, pod_map):
        all_rss = old_rss + [new_rs]
        scaled_down = False
        for rs in old_rss:
            if revisions.is_active(rs) and self.scale_and_record(rs, 0, d)[0]:
                scaled_down = True
        if scaled_down or self._old_pods_running(new_rs, old_rss, pod_map):
            self.sync_rollout_status(all_rss, new_rs, d)
            return
        if new_rs is None:
            new_rs, d = self.get_new_replica_set(d, None, old_rss, create=True)
            all_rss = old_rss + [new_rs]
        self.scale_and_record(new_rs, sizing.replicas_of(d), d)
        if conditions.deployment_complete(d, d.get("status") or {}):
            self.cleanup_deployment(old_rss, d)
        self.sync_rollout_status(all_rss, new_rs, d)

    @staticmethod
    def _old_pods_running(new_rs, old_rss, pod_map):
        """Old ReplicaSets still count pods, or some old pod (even terminating) is not finished."""
        if sizing.total_status(old_rss, "replicas") > 0:
            return True
        new_uid = new_rs["metadata"]["uid"] if new_rs is not None else None
        for uid, pods in pod_map.items():
            if uid == new_uid:
                continue
            if any((p.get("status") or {}).get("phase") not in ("Failed", "Succeeded")
                   for p in pods):
                return True
        return False

    # -- history ----------------------------------------------------------------------------
    def cleanup_deployment(self, old_rss, d):
        """Delete the oldest empty old ReplicaSets beyond revisionHistoryLimit."""
        if not revisions.has_revision_history_limit(d):
            return
        alive = [rs for rs in old_rss if not rs["metadata"].get("deletionTimestamp")]
        excess = len(alive) - d["spec"]["revisionHistoryLimit"]
        if excess <= 0:
            return
        alive.sort(key=lambda rs: (revisions.revision_of(rs), revisions.creation_key(rs)))
        for rs in alive[:excess]:
            if sizing.status_of(rs, "replicas") or sizing.replicas_of(rs) or \
                    (rs["metadata"].get("generation") or 0) > sizing.status_of(rs, "observedGeneration"):
                continue
            try:
                self.rest.delete(kinds.REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])
            except NotFound:
                pass
