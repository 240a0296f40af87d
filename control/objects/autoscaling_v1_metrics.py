"""The metric specs and statuses of autoscaling/v1's annotations, to and from v2's form.

autoscaling/v1 keeps the metrics it cannot express in the annotations of
control/objects/autoscaling_v1.py, in its own (v2beta1-shaped) MetricSpec and
MetricStatus: ``targetAverageUtilization``, ``metricName``, ``currentValue``...
A quantity Go declares as a plain (non-pointer) Quantity is written as "0" when unset.
"""


def set_if(out, key, value):
    """Set ``out[key]`` unless ``value`` is None (Go's omitempty pointers)."""
    if value is not None:
        out[key] = value


def as_dict(value):
    return value if isinstance(value, dict) else {}


def reference(ref):
    """A CrossVersionObjectReference: kind and name always, apiVersion when set."""
    ref = as_dict(ref)
    out = {"kind": ref.get("kind", ""), "name": ref.get("name", "")}
    set_if(out, "apiVersion", ref.get("apiVersion"))
    return out


def _metric_id(name, selector):
    out = {"name": name or ""}
    set_if(out, "selector", selector)
    return out


# ---------------------------------------------------------------- metric specs

def metric_spec_to_v1(metric):
    """A v2 MetricSpec in v1's (v2beta1-shaped) MetricSpec form."""
    out = {"type": metric.get("type", "")}
    if isinstance(metric.get("object"), dict):
        source, target = metric["object"], as_dict(metric["object"].get("target"))
        ident = as_dict(source.get("metric"))
        out["object"] = {"target": reference(source.get("describedObject")),
                         "metricName": ident.get("name", ""),
                         "targetValue": target.get("value") or "0"}
        set_if(out["object"], "selector", ident.get("selector"))
        set_if(out["object"], "averageValue", target.get("averageValue"))
    if isinstance(metric.get("pods"), dict):
        source = metric["pods"]
        ident = as_dict(source.get("metric"))
        out["pods"] = {"metricName": ident.get("name", ""),
                       "targetAverageValue": as_dict(source.get("target")).get("averageValue")
                       or "0"}
        set_if(out["pods"], "selector", ident.get("selector"))
    for field in ("resource", "containerResource"):
        if isinstance(metric.get(field), dict):
            source, target = metric[field], as_dict(metric[field].get("target"))
            converted = {"name": source.get("name", "")}
            set_if(converted, "targetAverageUtilization", target.get("averageUtilization"))
            set_if(converted, "targetAverageValue", target.get("averageValue"))
            if field == "containerResource":
                converted["container"] = source.get("container", "")
            out[field] = converted
    if isinstance(metric.get("external"), dict):
        source, target = metric["external"], as_dict(metric["external"].get("target"))
        ident = as_dict(source.get("metric"))
        out["external"] = {"metricName": ident.get("name", "")}
        set_if(out["external"], "metricSelector", ident.get("selector"))
        set_if(out["external"], "targetValue", target.get("value"))
        set_if(out["external"], "targetAverageValue", target.get("averageValue"))
    return out


def metric_spec_from_v1(metric):
    """A v1 MetricSpec (from the metrics annotation) in the v2 form."""
    metric = as_dict(metric)
    out = {"type": metric.get("type", "")}
    if isinstance(metric.get("object"), dict):
        source = metric["object"]
        target = {"type": "Value" if source.get("averageValue") is None else "AverageValue",
                  "value": source.get("targetValue") or "0"}
        set_if(target, "averageValue", source.get("averageValue"))
        out["object"] = {"describedObject": reference(source.get("target")),
                         "metric": _metric_id(source.get("metricName"), source.get("selector")),
                         "target": target}
    if isinstance(metric.get("pods"), dict):
        source = metric["pods"]
        out["pods"] = {"metric": _metric_id(source.get("metricName"), source.get("selector")),
                       "target": {"type": "AverageValue",
                                  "averageValue": source.get("targetAverageValue") or "0"}}
    for field in ("resource", "containerResource"):
        if isinstance(metric.get(field), dict):
            source = metric[field]
            utilization = source.get("targetAverageUtilization")
            target = {"type": "AverageValue" if utilization is None else "Utilization"}
            set_if(target, "averageValue", source.get("targetAverageValue"))
            set_if(target, "averageUtilization", utilization)
            converted = {"name": source.get("name", "")}
            if field == "containerResource":
                converted["container"] = source.get("container", "")
            converted["target"] = target
            out[field] = converted
    if isinstance(metric.get("external"), dict):
        source = metric["external"]
        target = {"type": "AverageValue" if source.get("targetValue") is None else "Value"}
        set_if(target, "value", source.get("targetValue"))
        set_if(target, "averageValue", source.get("targetAverageValue"))
        out["external"] = {"metric": _metric_id(source.get("metricName"),
                                                source.get("metricSelector")),
                           "target": target}
    return out


# ---------------------------------------------------------------- metric statuses

def metric_status_to_v1(metric):
    """A v2 MetricStatus in v1's MetricStatus form."""
    out = {"type": metric.get("type", "")}
    if isinstance(metric.get("object"), dict):
        source, current = metric["object"], as_dict(metric["object"].get("current"))
        ident = as_dict(source.get("metric"))
        out["object"] = {"target": reference(source.get("describedObject")),
                         "metricName": ident.get("name", ""),
                         "currentValue": current.get("value") or "0"}
        set_if(out["object"], "selector", ident.get("selector"))
        set_if(out["object"], "averageValue", current.get("averageValue"))
    if isinstance(metric.get("pods"), dict):
        source = metric["pods"]
        ident = as_dict(source.get("metric"))
        out["pods"] = {"metricName": ident.get("name", ""),
                       "currentAverageValue": as_dict(source.get("current")).get("averageValue")
                       or "0"}
        set_if(out["pods"], "selector", ident.get("selector"))
    for field in ("resource", "containerResource"):
        if isinstance(metric.get(field), dict):
            source, current = metric[field], as_dict(metric[field].get("current"))
            converted = {"name": source.get("name", "")}
            set_if(converted, "currentAverageUtilization", current.get("averageUtilization"))
            converted["currentAverageValue"] = current.get("averageValue") or "0"
            if field == "containerResource":
                converted["container"] = source.get("container", "")
            out[field] = converted
    if isinstance(metric.get("external"), dict):
        source, current = metric["external"], as_dict(metric["external"].get("current"))
        ident = as_dict(source.get("metric"))
        out["external"] = {"metricName": ident.get("name", "")}
        set_if(out["external"], "metricSelector", ident.get("selector"))
        out["external"]["currentValue"] = current.get("value") or "0"
        set_if(out["external"], "currentAverageValue", current.get("averageValue"))
    return out


def metric_status_from_v1(metric):
    """A v1 MetricStatus (from the current-metrics annotation) in the v2 form."""
    metric = as_dict(metric)
    out = {"type": metric.get("type", "")}
    if isinstance(metric.get("object"), dict):
        source = metric["object"]
        current = {"value": source.get("currentValue") or "0"}
        set_if(current, "averageValue", source.get("averageValue"))
        out["object"] = {"describedObject": reference(source.get("target")),
                         "metric": _metric_id(source.get("metricName"), source.get("selector")),
                         "current": current}
    if isinstance(metric.get("pods"), dict):
        source = metric["pods"]
        out["pods"] = {"metric": _metric_id(source.get("metricName"), source.get("selector")),
                       "current": {"averageValue": source.get("currentAverageValue") or "0"}}
    for field in ("resource", "containerResource"):
        if isinstance(metric.get(field), dict):
            source = metric[field]
            current = {"averageValue": source.get("currentAverageValue") or "0"}
            set_if(current, "averageUtilization", source.get("currentAverageUtilization"))
            converted = {"name": source.get("name", "")}
            if field == "containerResource":
                converted["container"] = source.get("container", "")
            converted["current"] = current
            out[field] = converted
    if isinstance(metric.get("external"), dict):
        source = metric["external"]
        current = {"value": source.get("currentValue") or "0"}
        set_if(current, "averageValue", source.get("currentAverageValue"))
        out["external"] = {"metric": _metric_id(source.get("metricName"),
                                                source.get("metricSelector")),
                           "current": current}
    return out
