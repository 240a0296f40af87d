"""A Deployment's status: counts and the Progressing, Available, ReplicaFailure conditions.

``Progress`` is mixed into DeploymentController (controller.py), which provides
``wall_clock``, ``queue`` and ``_write_status``; the numbers come from util.py.
"""

import copy
import datetime

from control.client import object_key
from control.controllers.deployment import util as du
from control.controllers.status import significant
from control.objects import meta


class Progress:
    """Status writes of DeploymentController, judged as sync.go and progress.go do."""

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
        if significant(status) == significant(d.get("status")):
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

