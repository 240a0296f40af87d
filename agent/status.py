"""Build a pod's status from what its worker knows, as kubelet's status manager does.

Pure functions: the worker hands in one ``ContainerView`` per container and the
time; out comes phase, conditions (with transition times kept from the previous
status when a condition did not change), containerStatuses and
initContainerStatuses. The phase rules are kubelet's getPhase.
"""

import dataclasses
import datetime

from control.objects import meta


def _stamp(seconds):
    """Format the agent's wall-clock epoch seconds as a Kubernetes timestamp."""
    return meta.timestamp(datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc))


@dataclasses.dataclass
class ContainerView:
    """What the worker knows of one container: its current and previous attempts."""
    name: str
    image: str = ""
    current: object = None          # runtime Record or None
    previous: object = None         # the last finished attempt before ``current``
    restart_count: int = 0
    waiting_reason: str = None      # ContainerCreating, CrashLoopBackOff, ...
    waiting_message: str = None
    ready: bool = False
    started: bool = False


def _terminated(record, scheme):
    out = {"exitCode": record.exit_code, "reason": record.reason or
           ("Completed" if record.exit_code == 0 else "Error"),
           "startedAt": _stamp(record.started_at) if record.started_at else None,
           "finishedAt": _stamp(record.finished_at) if record.finished_at else None,
           "containerID": f"{scheme}://{record.container_id}"}
    if getattr(record, "message", None):
        out["message"] = record.message
    if record.exit_code and record.exit_code > 128:
        out["signal"] = record.exit_code - 128
    return out


def container_status(view, scheme):
    """One entry of containerStatuses / initContainerStatuses."""
    record = view.current
    if view.waiting_reason or record is None:
        state = {"waiting": {"reason": view.waiting_reason or "ContainerCreating"}}
        if view.waiting_message:
            state["waiting"]["message"] = view.waiting_message
    elif record.running:
        state = {"running": {"startedAt": _stamp(record.started_at)}}
    else:
        state = {"terminated": _terminated(record, scheme)}
    last = {"terminated": _terminated(view.previous, scheme)} if view.previous else {}
    image_id = getattr(record, "image_id", "") if record is not None else ""
    out = {"name": view.name, "image": view.image, "imageID": image_id or "", "state": state,
           "lastState": last, "ready": bool(view.ready), "restartCount": view.restart_count,
           "started": bool(view.started)}
    shown = record if record is not None else None
    if shown is not None:
        out["containerID"] = f"{scheme}://{shown.container_id}"
    return out


def _counts(statuses):
    running = waiting = stopped = succeeded = 0
    for status in statuses:
        state = status["state"]
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            succeeded += state["terminated"]["exitCode"] == 0
        elif status.get("lastState", {}).get("terminated"):
            stopped += 1        # waiting to restart after a run: counts as stopped
        else:
            waiting += 1
    return running, waiting, stopped, succeeded


def phase(restart_policy, init_statuses, statuses, init_failed):
    """kubelet's getPhase for a pod that is not being deleted."""
    initialized = all("terminated" in s["state"] and s["state"]["terminated"]["exitCode"] == 0
                      for s in init_statuses)
    if not initialized:
        return "Failed" if init_failed and restart_policy == "Never" else "Pending"
    running, waiting, stopped, succeeded = _counts(statuses)
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if restart_policy == "Never" else "Running"
    return "Pending"


def _condition(old_conditions, kind, value, now, reason=None, message=None):
    previous = next((c for c in old_conditions if c.get("type") == kind), None)
    status = "True" if value else "False"
    since = previous.get("lastTransitionTime") if previous and \
        previous.get("status") == status and previous.get("lastTransitionTime") else now
    out = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": since}
    if not value and reason:
        out["reason"] = reason
        if message:
            out["message"] = message
    return out


def build(pod, init_views, views, now, host_ip, pod_ip, start_time, scheme, init_failed=False,
          phase_override=None, old=None):
    """Return the pod's new status; ``now`` and ``start_time`` are wall-clock seconds.

    ``old`` is the status last posted (transition times are kept from it), by
    default the pod's current one.
    """
    old = old if old is not None else (pod.get("status") or {})
    stamp = _stamp(now)
    restart_policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    init_statuses = [container_status(v, scheme) for v in init_views]
    statuses = [container_status(v, scheme) for v in views]
    pod_phase = phase_override or phase(restart_policy, init_statuses, statuses, init_failed)
    done = pod_phase in ("Succeeded", "Failed")
    pending_init = [s["name"] for s in init_statuses
                    if not ("terminated" in s["state"] and
                            s["state"]["terminated"]["exitCode"] == 0)]
    unready = [s["name"] for s in statuses if not s["ready"]]
    old_conditions = old.get("conditions") or ()
    if done:
        ready_reason, ready_message = "PodCompleted", None
        initialized, init_reason, init_message = not pending_init or not init_failed, \
            "PodCompleted", None
    else:
        ready_reason = "ContainersNotReady"
        ready_message = f"containers with unready status: [{' '.join(unready)}]"
        initialized, init_reason = not pending_init, "ContainersNotInitialized"
        init_message = f"containers with incomplete status: [{' '.join(pending_init)}]"
    ready = not unready and not done and not pending_init
    conditions = [
        _condition(old_conditions, "PodReadyToStartContainers", True, stamp),
        _condition(old_conditions, "Initialized", initialized, stamp, init_reason, init_message),
        _condition(old_conditions, "Ready", ready, stamp, ready_reason, ready_message),
        _condition(old_conditions, "ContainersReady", ready, stamp, ready_reason, ready_message),
        _condition(old_conditions, "PodScheduled", True, stamp)]
    status = {"phase": pod_phase, "conditions": conditions, "hostIP": host_ip,
              "hostIPs": [{"ip": host_ip}], "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
              "startTime": old.get("startTime") or _stamp(start_time),
              "containerStatuses": statuses, "qosClass": old.get("qosClass") or qos_class(pod)}
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    return status


def qos_class(pod):
    """Guaranteed, Burstable or BestEffort, from the containers' requests and limits."""
    containers = ((pod.get("spec") or {}).get("containers") or [])
    requests = [(c.get("resources") or {}).get("requests") or {} for c in containers]
    limits = [(c.get("resources") or {}).get("limits") or {} for c in containers]
    if not any(requests) and not any(limits):
        return "BestEffort"
    if all(lim.get("cpu") and lim.get("memory") and
           req.get("cpu", lim["cpu"]) == lim["cpu"] and
           req.get("memory", lim["memory"]) == lim["memory"]
           for req, lim in zip(requests, limits)):
        return "Guaranteed"
    return "Burstable"


def same(old, new):
    """True if posting ``new`` would change nothing a reader acts on."""
    return old == new
