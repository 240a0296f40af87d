"""Apply LimitRanges to pods and claims, as Kubernetes' LimitRanger admission plugin does.

``default_pod`` fills in each container's missing limits (``default``) and
requests (``defaultRequest``) from a LimitRange's Container items and notes it in
the ``kubernetes.io/limit-ranger`` annotation; ``pod_violations`` and
``claim_violations`` return Kubernetes' messages for what breaks min, max or
maxLimitRequestRatio (the plugin answers them as one 403). Pure: no I/O.
"""

from control.objects.quota import pod_requests_limits
from control.objects.quota_amounts import Amount, parse_list

ANNOTATION = "kubernetes.io/limit-ranger"


def _items(limit_range, kind):
    return [item for item in ((limit_range.get("spec") or {}).get("limits") or [])
            if isinstance(item, dict) and item.get("type") == kind]


def container_defaults(limit_range):
    """Return the (limits, requests) a LimitRange's Container items give containers."""
    limits, requests = {}, {}
    for item in _items(limit_range, "Container"):
        limits.update(item.get("default") or {})
        requests.update(item.get("defaultRequest") or {})
    return limits, requests


def _merge(container, limits, requests, label):
    """Fill in what ``container`` misses; return the annotation notes of what was set."""
    resources = container.get("resources")
    if not isinstance(resources, dict):
        resources = container["resources"] = {}
    notes = []
    for part, defaults, word in (("requests", requests, "request"),
                                 ("limits", limits, "limit")):
        current = resources.get(part)
        if not isinstance(current, dict):
            current = {}
        missing = sorted(name for name in defaults if name not in current)
        if missing:
            resources[part] = {**current, **{name: defaults[name] for name in missing}}
            notes.append(f"{', '.join(missing)} {word} for {label} {container.get('name', '')}")
    return notes


def default_pod(pod, limit_range):
    """Fill in containers' missing requests and limits from ``limit_range`` (in place)."""
    limits, requests = container_defaults(limit_range)
    if not limits and not requests:
        return pod
    spec = pod.get("spec") or {}
    notes = []
    for key, label in (("containers", "container"), ("initContainers", "init container")):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                notes += _merge(container, limits, requests, label)
    if notes:
        metadata = pod.setdefault("metadata", {})
        annotations = metadata.get("annotations") or {}
        metadata["annotations"] = {**annotations,
                                   ANNOTATION: "LimitRanger plugin set: " + "; ".join(notes)}
    return pod


# -- constraints --------------------------------------------------------------------------------
def min_violation(kind, name, enforced, requests, limits):
    """minConstraint: a request (and a limit, if given) at least the minimum."""
    floor = Amount.parse(enforced)
    if name not in requests:
        return f"minimum {name} usage per {kind} is {floor}.  No request is specified"
    if requests[name].value < floor.value:
        return f"minimum {name} usage per {kind} is {floor}, but request is {requests[name]}"
    if name in limits and limits[name].value < floor.value:
        return f"minimum {name} usage per {kind} is {floor}, but limit is {limits[name]}"
    return None


def max_violation(kind, name, enforced, requests, limits):
    """maxConstraint: a limit is given and neither it nor the request is above the maximum."""
    ceiling = Amount.parse(enforced)
    if name not in limits:
        return f"maximum {name} usage per {kind} is {ceiling}.  No limit is specified"
    if limits[name].value > ceiling.value:
        return f"maximum {name} usage per {kind} is {ceiling}, but limit is {limits[name]}"
    if name in requests and requests[name].value > ceiling.value:
        return f"maximum {name} usage per {kind} is {ceiling}, but request is {requests[name]}"
    return None


def ratio_violation(kind, name, enforced, requests, limits):
    """limitRequestRatioConstraint: limit / request at most maxLimitRequestRatio."""
    ratio = Amount.parse(enforced)
    prefix = f"{name} max limit to request ratio per {kind} is {ratio}"
    if name not in requests or requests[name].value == 0:
        return f"{prefix}, but no request is specified or request is 0"
    if name not in limits or limits[name].value == 0:
        return f"{prefix}, but no limit is specified or limit is 0"
    observed = limits[name].value / requests[name].value
    if observed > ratio.value:
        return f"{prefix}, but provided ratio is {float(observed):f}"
    return None


def _check_item(item, kind, requests, limits):
    problems = []
    for field, check in (("min", min_violation), ("max", max_violation),
                         ("maxLimitRequestRatio", ratio_violation)):
        for name, enforced in sorted((item.get(field) or {}).items()):
            try:
                problem = check(kind, name, enforced, requests, limits)
            except ValueError:
                continue        # an invalid stored LimitRange constrains nothing
            if problem:
                problems.append(problem)
    return problems


def pod_violations(pod, limit_range):
    """Return the messages of every Container and Pod constraint ``pod`` breaks."""
    spec = pod.get("spec") or {}
    problems = []
    for item in _items(limit_range, "Container"):
        for key in ("containers", "initContainers"):
            for container in spec.get(key) or []:
                resources = container.get("resources") if isinstance(container, dict) else None
                resources = resources if isinstance(resources, dict) else {}
                problems += _check_item(item, "Container", parse_list(resources.get("requests")),
                                        parse_list(resources.get("limits")))
    for item in _items(limit_range, "Pod"):
        requests, limits = pod_requests_limits(spec)
        problems += _check_item(item, "Pod", requests, limits)
    return problems


def claim_violations(claim, limit_range):
    """Return the messages of the PersistentVolumeClaim min/max a claim's request breaks."""
    requests = parse_list(((claim.get("spec") or {}).get("resources") or {}).get("requests"))
    problems = []
    for item in _items(limit_range, "PersistentVolumeClaim"):
        for name, enforced in sorted((item.get("min") or {}).items()):
            try:
                problem = min_violation("PersistentVolumeClaim", name, enforced, requests, {})
            except ValueError:
                continue
            if problem:
                problems.append(problem)
        for name, enforced in sorted((item.get("max") or {}).items()):
            try:
                ceiling = Amount.parse(enforced)
            except ValueError:
                continue
            prefix = f"maximum {name} usage per PersistentVolumeClaim is {ceiling}"
            if name not in requests:
                problems.append(f"{prefix}.  No request is specified")
            elif requests[name].value > ceiling.value:
                problems.append(f"{prefix}, but request is {requests[name]}")
    return problems


def aggregate(problems):
    """Join messages as utilerrors.NewAggregate prints them: one alone, else "[a, b]"."""
    return problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"
