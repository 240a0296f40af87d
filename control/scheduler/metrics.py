"""The scheduler's metrics, with kube-scheduler's names (served by its --secure-port)."""

from control.client import metrics

PROFILE = "default-scheduler"

ATTEMPTS = metrics.counter(
    "scheduler_schedule_attempts_total",
    "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could "
    "not be scheduled, while 'error' means an internal scheduler problem.",
    ("result", "profile"))
ATTEMPT_DURATION = metrics.histogram(
    "scheduler_scheduling_attempt_duration_seconds",
    "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
    ("result", "profile"), buckets=metrics.SCHEDULING_BUCKETS)


def record_attempt(result, seconds, profile=PROFILE):
    """Count one pod's scheduling attempt: scheduled, unschedulable or error."""
    ATTEMPTS.inc(result, profile)
    ATTEMPT_DURATION.observe(result, profile, value=seconds)


def register_pending_pods(scheduler, registry=None):
    """Add scheduler_pending_pods{queue}: active, backoff and unschedulable pods of ``scheduler``."""
    def collect():
        counts = scheduler.pending_counts()
        return [((queue,), counts[queue]) for queue in ("active", "backoff", "unschedulable")]
    (registry or metrics.REGISTRY).register(metrics.Collected(
        "scheduler_pending_pods",
        "Number of pending pods, by the queue type. 'active' means number of pods in "
        "activeQ; 'backoff' means number of pods in backoffQ; 'unschedulable' means number "
        "of pods in unschedulablePods.", ("queue",), collect))
