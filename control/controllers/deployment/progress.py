"""A Deployment's status: counts and the Progressing, Available, ReplicaFailure conditions.

``Progress`` is mixed into DeploymentController (controller.py), which provides
``wall_clock``, ``queue`` and ``_write_status``; the judgements come from
conditions.py.
"""

import copy
import datetime

from control.client import object_key
from control.controllers.deployment import conditions
from control.controllers.status import significant
from control.objects import meta


class Progress:
    """Status writes of DeploymentController, judged as sync.go and progress.go do."""

    def check_paused_conditions(self, d):
        """Progressing=Unknown DeploymentPaused / DeploymentResumed when spec.paused flips."""
        if not conditions.has_progress_deadline(d):
            return d
        cond = conditions.get_condition(d.get("status"), "Progressing")
        if cond is not None and cond.get("reason") == conditions.TIMED_OUT_REASON:
            return d
        paused_cond = cond is not None and cond.get("reason") == conditions.PAUSED_REASON
        paused = bool(d["spec"].get("paused"))
        if paused == paused_cond:
            return d
        status = copy.deepcopy(d.get("status") or {})
        if paused:
            new = conditions.new_condition("Progressing", "Unknown", conditions.PAUSED_REASON,
                                   "Deployment is paused", self.wall_clock())
        else:
            new = conditions.new_condition("Progressing", "Unknown", conditions.RESUMED_REASON,
                                   "Deployment is resumed", self.wall_clock())
        conditions.set_condition(status, new)
        return self._write_status(d, status)

    def sync_deployment_status(self, all_rss, new_rs, d):
        self._write_status(d, conditions.calculate_status(all_rss, new_rs, d, self.wall_clock()))

    def sync_rollout_status(self, all_rss, new_rs, d):
        """Status with the Progressing condition judged; requeue to catch the deadline."""
        now = self.wall_clock()
        status = conditions.calculate_status(all_rss, new_rs, d, now)
        if not conditions.has_progress_deadline(d):
            conditions.remove_condition(status, "Progressing")
        current = conditions.get_condition(d.get("status"), "Progressing")
        complete_before = status["replicas"] == status["updatedReplicas"] and \
            current is not None and current.get("reason") == conditions.NEW_RS_AVAILABLE_REASON
        subject = f'ReplicaSet "{new_rs["metadata"]["name"]}"' if new_rs is not None \
            else f'Deployment "{d["metadata"]["name"]}"'
        if conditions.has_progress_deadline(d) and not complete_before:
            if conditions.deployment_complete(d, status):
                conditions.set_condition(status, conditions.new_condition(
                    "Progressing", "True", conditions.NEW_RS_AVAILABLE_REASON,
                    f"{subject} has successfully progressed.", now))
            elif conditions.deployment_progressing(d, status):
                cond = conditions.new_condition("Progressing", "True", conditions.RS_UPDATED_REASON,
                                        f"{subject} is progressing.", now)
                if current is not None:
                    if current.get("status") == "True":
                        cond["lastTransitionTime"] = current.get("lastTransitionTime")
                    conditions.remove_condition(status, "Progressing")
                conditions.set_condition(status, cond)
            elif conditions.deployment_timed_out(d, status, now):
                conditions.set_condition(status, conditions.new_condition(
                    "Progressing", "False", conditions.TIMED_OUT_REASON,
                    f"{subject} has timed out progressing.", now))
        failure = conditions.replica_failure(all_rss, new_rs)
        if failure is not None:
            conditions.set_condition(status, failure)
        else:
            conditions.remove_condition(status, "ReplicaFailure")
        if significant(status) == significant(d.get("status")):
            self._requeue_stuck(d, status, now)
            return
        self._write_status(d, status)

    def _requeue_stuck(self, d, status, now):
        """Look again when the progress deadline would pass without progress."""
        cond = conditions.get_condition(d.get("status"), "Progressing")
        if not conditions.has_progress_deadline(d) or cond is None:
            return
        if conditions.deployment_complete(d, status) or cond.get("reason") == conditions.TIMED_OUT_REASON:
            return
        since = meta.parse_time(cond.get("lastUpdateTime"))
        if since is None:
            return
        after = (since + datetime.timedelta(seconds=d["spec"]["progressDeadlineSeconds"])
                 - now).total_seconds()
        key = object_key(d)
        if after < 1:
            self.queue.add_rate_limited(key)
        else:
            self.queue.add_after(key, after)

