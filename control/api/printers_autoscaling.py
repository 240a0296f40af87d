"""The ``kubectl get hpa`` columns, as kube-apiserver's printers (1.32) print them.

NAME, REFERENCE (``Deployment/web``), TARGETS (``cpu: 40%/50%``, ``<unknown>`` before
the controller's first reading, at most two metrics then ``+ N more...``), MINPODS
(``<unset>`` when nil), MAXPODS, REPLICAS (status.currentReplicas), AGE.
"""

from control.api.printers import AGE, NAME, column, created_age, metadata_of, spec_of, status_of

HPA_COLUMNS = [
    NAME,
    column("Reference", description="scaleTargetRef points to the target resource to scale, "
                                     "and is used to the pods for which metrics should be "
                                     "collected, as well as to actually change the replica "
                                     "count."),
    column("Targets", description="metrics contains the specifications for which to use to "
                                  "calculate the desired replica count (the maximum replica "
                                  "count across all metrics will be used)."),
    column("MinPods", description="minReplicas is the lower limit for the number of replicas "
                                  "to which the autoscaler can scale down."),
    column("MaxPods", description="maxReplicas is the upper limit for the number of replicas "
                                  "to which the autoscaler can scale up."),
    column("Replicas", description="currentReplicas is current number of replicas of pods "
                                   "managed by this autoscaler, as last seen by the "
                                   "autoscaler."),
    AGE,
]
_SHOWN = 2
UNKNOWN = "<unknown>"


def _current(statuses, index, field):
    status = statuses[index] if index < len(statuses) and isinstance(statuses[index], dict) \
        else {}
    return ((status.get(field) or {}).get("current")) or {}


def _resource_target(spec, statuses, index, field):
    source = spec.get(field) or {}
    target = source.get("target") or {}
    current = _current(statuses, index, field)
    name = source.get("name", "")
    if target.get("averageValue") is not None:
        shown = current.get("averageValue") or UNKNOWN
        return f"{name}: {shown}/{target['averageValue']}"
    utilization = current.get("averageUtilization")
    shown = UNKNOWN if utilization is None else f"{utilization}%"
    wanted = target.get("averageUtilization")
    return f"{name}: {shown}/{'<auto>' if wanted is None else f'{wanted}%'}"


def _custom_target(spec, statuses, index, field):
    target = ((spec.get(field) or {}).get("target")) or {}
    current = _current(statuses, index, field)
    if field == "pods":
        return f"{current.get('averageValue') or UNKNOWN}/{target.get('averageValue', '')}"
    if target.get("averageValue") is not None:
        shown = current.get("averageValue") or UNKNOWN
        return f"{shown}/{target['averageValue']} (avg)"
    return f"{current.get('value') or UNKNOWN}/{target.get('value', '')}"


def format_targets(specs, statuses):
    """formatHPAMetrics: one ``current/target`` per metric."""
    if not specs:
        return "<none>"
    shown = []
    for index, spec in enumerate(specs):
        kind = (spec or {}).get("type")
        if kind in ("Resource", "ContainerResource"):
            field = "resource" if kind == "Resource" else "containerResource"
            shown.append(_resource_target(spec, statuses, index, field))
        elif kind in ("Pods", "Object", "External"):
            shown.append(_custom_target(spec, statuses, index, kind.lower()))
        else:
            shown.append("<unknown type>")
    text = ", ".join(shown[:_SHOWN])
    return f"{text} + {len(shown) - _SHOWN} more..." if len(shown) > _SHOWN else text


def print_hpa(obj, now):
    spec, status = spec_of(obj), status_of(obj)
    ref = spec.get("scaleTargetRef") or {}
    low = spec.get("minReplicas")
    return [metadata_of(obj).get("name", ""), f"{ref.get('kind', '')}/{ref.get('name', '')}",
            format_targets(spec.get("metrics") or [], status.get("currentMetrics") or []),
            "<unset>" if low is None else low, spec.get("maxReplicas", 0),
            status.get("currentReplicas", 0), created_age(obj, now)]
