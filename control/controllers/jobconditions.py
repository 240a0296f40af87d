"""Judge and set a Job's conditions: shared by the Job, CronJob and TTL controllers.

Kept apart from job.py because CronJob and TTL-after-finished read whether a
Job is finished without needing anything of the Job controller itself.
"""

from control.objects import conditions, meta

#: The condition types a finished Job carries, and the interim ones set first.
COMPLETE, FAILED, SUSPENDED = "Complete", "Failed", "Suspended"
SUCCESS_CRITERIA_MET, FAILURE_TARGET = "SuccessCriteriaMet", "FailureTarget"
BACKOFF_LIMIT_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")
COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")


def condition(job, type_):
    """The Job's condition of ``type_`` with status True, or None."""
    cond = conditions.find(job, type_)
    return cond if cond is not None and cond.get("status") == "True" else None


def finished(job):
    """(condition type, its condition) if Complete or Failed, else (None, None)."""
    for type_ in (COMPLETE, FAILED):
        cond = condition(job, type_)
        if cond is not None:
            return type_, cond
    return None, None


def set_condition(conditions, type_, status, reason, message, now):
    """Conditions with ``type_`` set; the transition time kept if the status did not change."""
    result = []
    found = False
    for cond in conditions:
        if cond.get("type") != type_:
            result.append(cond)
            continue
        found = True
        if cond.get("status") == status:
            result.append({**cond, "reason": reason, "message": message})
        else:
            result.append({"type": type_, "status": status, "lastProbeTime": meta.timestamp(now),
                           "lastTransitionTime": meta.timestamp(now), "reason": reason,
                           "message": message})
    if not found:
        result.append({"type": type_, "status": status, "lastProbeTime": meta.timestamp(now),
                       "lastTransitionTime": meta.timestamp(now), "reason": reason, "message": message})
    return result

