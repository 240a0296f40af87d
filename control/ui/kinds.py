"""The kinds the dashboard shows: their API paths, and their pods' label selectors."""

import urllib.parse

#: plural -> (API prefix, Kind); the workload pages list the first four.
KINDS = {
    "deployments": ("/apis/apps/v1", "Deployment"),
    "statefulsets": ("/apis/apps/v1", "StatefulSet"),
    "daemonsets": ("/apis/apps/v1", "DaemonSet"),
    "jobs": ("/apis/batch/v1", "Job"),
    "pods": ("/api/v1", "Pod"),
}
WORKLOADS = ("deployments", "statefulsets", "daemonsets", "jobs")
SCALABLE = ("deployments", "statefulsets")
RESTARTABLE = ("deployments", "statefulsets", "daemonsets")


def path(plural, namespace, name=None, sub=None):
    """Return the API path of a namespaced collection, object or subresource."""
    prefix, _ = KINDS[plural]
    quoted = [urllib.parse.quote(part, safe="") for part in (namespace, name, sub) if part]
    parts = [prefix, "namespaces", quoted[0], plural] + quoted[1:]
    return "/".join(parts)


def selector_string(selector):
    """Turn a LabelSelector object into the labelSelector query syntax."""
    selector = selector or {}
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            terms.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            terms.append(key)
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)


def workload_status(plural, obj):
    """Summarize a workload's readiness as 'ready/desired' (or a Job's completions)."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if plural == "daemonsets":
        return f"{status.get('numberReady', 0)}/{status.get('desiredNumberScheduled', 0)}"
    if plural == "jobs":
        return f"{status.get('succeeded', 0)}/{spec.get('completions', 1)} succeeded"
    return f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}"


def pod_ready(pod):
    """Return 'ready/total' containers of a pod."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or []) or len(statuses)
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def condition(obj, kind):
    """Return the status of condition ``kind`` ('True', 'False', 'Unknown' or '')."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c.get("status", "")
    return ""
