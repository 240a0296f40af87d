"""Count and build a Job's pods: completion indexes, failure times, backoff (pure).

Pure functions over pod and Job dicts, apart from the sync (jobsync.py) that
acts on them, so each rule can be tested by a table.
"""

import copy
import itertools

from control.controllers import pods as podutil
from control.objects import meta

JOB_NAME_LABEL, LEGACY_JOB_NAME_LABEL = "batch.kubernetes.io/job-name", "job-name"
CONTROLLER_UID_LABEL, LEGACY_CONTROLLER_UID_LABEL = ("batch.kubernetes.io/controller-uid",
                                                     "controller-uid")
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
#: Kubernetes' DefaultJobPodFailureBackOff and the documented six-minute cap.
DEFAULT_BACKOFF = 10.0
MAX_BACKOFF = 360.0


def is_indexed(job):
    return job["spec"].get("completionMode") == "Indexed"


def completion_index(pod, completions):
    """The pod's valid completion index (annotation, else label), or None."""
    meta = pod["metadata"]
    text = (meta.get("annotations") or {}).get(COMPLETION_INDEX)
    if text is None:
        text = (meta.get("labels") or {}).get(COMPLETION_INDEX)
    try:
        index = int(text)
    except (TypeError, ValueError):
        return None
    return index if 0 <= index < (completions or 0) else None


def format_indexes(indexes):
    """Kubernetes' compressed interval list: {0, 1, 2, 5, 7, 8} -> "0-2,5,7,8"."""
    parts = []
    for _, run in itertools.groupby(enumerate(sorted(indexes)), lambda p: p[1] - p[0]):
        run = [index for _, index in run]
        if len(run) > 2:
            parts.append(f"{run[0]}-{run[-1]}")
        else:
            parts.extend(str(index) for index in run)
    return ",".join(parts)


def pod_phase(pod):
    """The pod's status.phase, or None."""
    return (pod.get("status") or {}).get("phase")


def is_terminating(pod):
    return bool(pod["metadata"].get("deletionTimestamp")) and \
        pod_phase(pod) not in podutil.TERMINAL_PHASES


def container_finish_time(pod):
    """The latest ``finishedAt`` of the pod's terminated containers, or None."""
    times = []
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        terminated = (status.get("state") or {}).get("terminated") or {}
        when = meta.parse_time(terminated.get("finishedAt"))
        if when is not None:
            times.append(when)
    return max(times) if times else None


def backoff_delay(failures, base=DEFAULT_BACKOFF, cap=MAX_BACKOFF):
    """The wait before re-creating pods after ``failures`` failures since the last success."""
    if failures <= 0:
        return 0.0
    return min(base * 2 ** (failures - 1), cap)


def restarts(pod):
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    statuses += (pod.get("status") or {}).get("initContainerStatuses") or []
    return sum(s.get("restartCount", 0) for s in statuses)


def pod_for_index(job, index=None):
    """A new pod from the Job's template; with ``index``, an Indexed Job's pod."""
    template = job["spec"].get("template") or {}
    tmeta = template.get("metadata") or {}
    name = job["metadata"]["name"]
    meta = {"generateName": f"{name}-" if index is None else f"{name}-{index}-",
            "namespace": job["metadata"]["namespace"]}
    for field in ("labels", "annotations", "finalizers"):
        if tmeta.get(field):
            meta[field] = copy.deepcopy(tmeta[field])
    spec = copy.deepcopy(template.get("spec") or {})
    if index is not None:
        meta.setdefault("labels", {})[COMPLETION_INDEX] = str(index)
        meta.setdefault("annotations", {})[COMPLETION_INDEX] = str(index)
        spec.setdefault("hostname", f"{name}-{index}")
        env = {"name": COMPLETION_INDEX_ENV, "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}}
        for list_name in ("initContainers", "containers"):
            for container in spec.get(list_name) or ():
                names = {e.get("name") for e in container.get("env") or ()}
                if COMPLETION_INDEX_ENV not in names:
                    container["env"] = [*(container.get("env") or ()), env]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}

