"""Stabilize and rate-limit an HPA's recommendation: Kubernetes' behavior rules.

``Behavior`` keeps, per HPA key, the recent unstabilized recommendations and the
scale events (how many replicas were added or removed when), and turns a metric
recommendation into the replica count to set:

1. stabilization: the count moves no further up than the lowest recommendation of
   the scale-up window and no further down than the highest of the scale-down window
   (the first recommendation remembered is the current count);
2. rate limits: each policy allows, from the count at the start of its period (now
   minus the changes made within it), +value pods or +value% (rounded up) going up,
   -value pods or -value% going down; selectPolicy Max takes the most permissive
   policy, Min the least, Disabled forbids the direction;
3. bounds: minReplicas and maxReplicas.

Each step's reason and message are Kubernetes' AbleToScale and ScalingLimited
condition texts. Time comes from an injected ``clock`` (seconds).
"""

import math
import threading
import time
from dataclasses import dataclass


@dataclass
class Decision:
    """The replica count to set and the conditions explaining it."""

    replicas: int
    able_reason: str
    able_message: str
    limited: bool
    limited_reason: str
    limited_message: str


def _change_in_period(events, period, now):
    """Replicas changed in one direction within the last ``period`` seconds."""
    return sum(change for stamp, change in events if stamp > now - period)


def scale_up_limit(current, up_events, down_events, rules, now):
    """calculateScaleUpLimitWithScalingRules: the most replicas the rules allow now."""
    select = rules.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    proposals = []
    for policy in rules.get("policies") or ():
        period = policy["periodSeconds"]
        start = (current - _change_in_period(up_events, period, now)
                 + _change_in_period(down_events, period, now))
        if policy["type"] == "Pods":
            proposals.append(start + policy["value"])
        else:
            proposals.append(math.ceil(start * (1 + policy["value"] / 100)))
    if not proposals:
        return current
    return min(proposals) if select == "Min" else max(proposals)


def scale_down_limit(current, up_events, down_events, rules, now):
    """calculateScaleDownLimitWithBehaviors: the fewest replicas the rules allow now."""
    select = rules.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    proposals = []
    for policy in rules.get("policies") or ():
        period = policy["periodSeconds"]
        start = (current - _change_in_period(up_events, period, now)
                 + _change_in_period(down_events, period, now))
        if policy["type"] == "Pods":
            proposals.append(start - policy["value"])
        else:
            proposals.append(int(start * (1 - policy["value"] / 100)))
    if not proposals:
        return current
    return max(proposals) if select == "Min" else min(proposals)


def _longest_period(rules):
    return max((p["periodSeconds"] for p in rules.get("policies") or ()), default=0)


class Behavior:
    """The recommendations and scale events of every HPA, and the rules applied to them."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._recommendations = {}      # key -> [(time, replicas)]
        self._up_events = {}            # key -> [(time, replicas added)]
        self._down_events = {}          # key -> [(time, replicas removed)]
        self._lock = threading.Lock()

    def forget(self, key):
        """Drop what is remembered of an HPA that was deleted."""
        with self._lock:
            for table in (self._recommendations, self._up_events, self._down_events):
                table.pop(key, None)

    def _stabilize(self, key, current, desired, up_window, down_window, now):
        history = self._recommendations.setdefault(key, [(now, current)])
        up, down = desired, desired
        for stamp, replicas in history:
            if stamp > now - up_window:
                up = min(up, replicas)
            if stamp > now - down_window:
                down = max(down, replicas)
        horizon = now - max(up_window, down_window)
        history[:] = [(s, r) for s, r in history if s > horizon] + [(now, desired)]
        recommendation = min(max(current, up), down)
        if desired >= current:
            reason, message = ("ScaleUpStabilized", "recent recommendations were lower than "
                               "current one, applying the lowest recent recommendation")
        else:
            reason, message = ("ScaleDownStabilized", "recent recommendations were higher "
                               "than current one, applying the highest recent recommendation")
        return recommendation, reason, message

    def decide(self, key, current, desired, min_replicas, max_replicas, up_rules, down_rules):
        """normalizeDesiredReplicasWithBehaviors: the count to set now, and why."""
        now = self.clock()
        with self._lock:
            stabilized, reason, message = self._stabilize(
                key, current, desired, up_rules.get("stabilizationWindowSeconds") or 0,
                down_rules.get("stabilizationWindowSeconds") or 0, now)
            if stabilized == desired:
                reason, message = "ReadyForNewScale", "recommended size matches current size"
            ups, downs = self._up_events.get(key, []), self._down_events.get(key, [])
            replicas, limited_reason, limited_message = self._limit(
                current, stabilized, min_replicas, max_replicas, ups, downs, up_rules,
                down_rules, now)
        return Decision(replicas, reason, message, replicas != stabilized, limited_reason,
                        limited_message)

    @staticmethod
    def _limit(current, desired, min_replicas, max_replicas, ups, downs, up_rules, down_rules,
               now):
        """convertDesiredReplicasWithBehaviorRate."""
        if desired > current:
            limit = max(scale_up_limit(current, ups, downs, up_rules, now), current)
            if max_replicas > limit:
                allowed, reason, message = limit, "ScaleUpLimit", (
                    "the desired replica count is increasing faster than the maximum scale rate")
            else:
                allowed, reason, message = max_replicas, "TooManyReplicas", (
                    "the desired replica count is more than the maximum replica count")
            if desired > allowed:
                return allowed, reason, message
        elif desired < current:
            limit = min(scale_down_limit(current, ups, downs, down_rules, now), current)
            if min_replicas < limit:
                allowed, reason, message = limit, "ScaleDownLimit", (
                    "the desired replica count is decreasing faster than the maximum scale rate")
            else:
                allowed, reason, message = min_replicas, "TooFewReplicas", (
                    "the desired replica count is less than the minimum replica count")
            if desired < allowed:
                return allowed, reason, message
        return desired, "DesiredWithinRange", "the desired count is within the acceptable range"

    def record_scale(self, key, before, after, up_rules, down_rules):
        """storeScaleEvent: remember a change, forgetting events older than every period."""
        now = self.clock()
        with self._lock:
            if after > before:
                table, rules, change = self._up_events, up_rules, after - before
            elif after < before:
                table, rules, change = self._down_events, down_rules, before - after
            else:
                return
            period = _longest_period(rules)
            events = [(s, c) for s, c in table.get(key, []) if s > now - period]
            table[key] = events + [(now, change)]
