"""HorizontalPodAutoscaler (autoscaling/v2) defaults, as pkg/apis/autoscaling/v2 sets them.

``minReplicas`` defaults to 1 and an empty ``metrics`` to cpu at 80% of the request.
A ``behavior`` given only in part is completed from the default rules: scale up by
the larger of 100% and 4 pods per 15 s with no stabilization, scale down by 100% per
15 s with its window left unset, so that the controller's
--horizontal-pod-autoscaler-downscale-stabilization (300 s) applies. The controller
uses the same rules for an HPA with no behavior at all.
"""

import copy

DEFAULT_CPU_UTILIZATION = 80
DEFAULT_DOWNSCALE_STABILIZATION = 300.0


def default_scale_up_rules():
    """Kubernetes' scale-up rules: +100% or +4 pods per 15 s, whichever is more, at once."""
    return {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
            "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                         {"type": "Percent", "value": 100, "periodSeconds": 15}]}


def default_scale_down_rules():
    """Kubernetes' scale-down rules: -100% per 15 s; the window comes from the controller."""
    return {"selectPolicy": "Max",
            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}


def _complete(rules, defaults):
    """Fill the unset fields of ``rules`` from ``defaults`` (GenerateHPAScale*Rules)."""
    if not isinstance(rules, dict):
        return defaults
    for key in ("stabilizationWindowSeconds", "selectPolicy", "policies"):
        if rules.get(key) is None and key in defaults:
            rules[key] = defaults[key]
    return rules


def default_hpa(hpa):
    """SetDefaults_HorizontalPodAutoscaler, in place."""
    spec = hpa.get("spec")
    if not isinstance(spec, dict):
        return
    if spec.get("minReplicas") is None:
        spec["minReplicas"] = 1
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization",
                                      "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        behavior["scaleUp"] = _complete(behavior.get("scaleUp"), default_scale_up_rules())
        behavior["scaleDown"] = _complete(behavior.get("scaleDown"),
                                          default_scale_down_rules())


def effective_behavior(spec, downscale_window=DEFAULT_DOWNSCALE_STABILIZATION):
    """The (scaleUp, scaleDown) rules the controller follows for ``spec``, fully set."""
    behavior = copy.deepcopy(spec.get("behavior") or {})
    up = _complete(behavior.get("scaleUp"), default_scale_up_rules())
    down = _complete(behavior.get("scaleDown"), default_scale_down_rules())
    if down.get("stabilizationWindowSeconds") is None:
        down["stabilizationWindowSeconds"] = downscale_window
    return up, down
