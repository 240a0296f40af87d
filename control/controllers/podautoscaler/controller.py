"""Scale workloads on their pods' usage: Kubernetes' horizontal pod autoscaler controller.

Every HPA is reconciled once per sync period (--horizontal-pod-autoscaler-sync-period,
15 s), and at once when created or its spec changes. A reconcile reads the target's
scale subresource (Deployment, ReplicaSet, StatefulSet or a custom resource with
scale), lists the pods its selector picks (pod informer), reads their usage from
metrics.k8s.io, computes a proposal per metric (evaluate.py, replicas.py), passes it
through stabilization and rate limits (behavior.py), writes the new count through
the scale subresource, and records the status: currentReplicas, desiredReplicas,
currentMetrics, lastScaleTime and the AbleToScale / ScalingActive / ScalingLimited
conditions, with Kubernetes' reasons, messages and events.
"""

import logging
import time

from control.client import ApiException
from control.controllers.controller import Controller, by_namespace, split_key
from control.controllers.podautoscaler import metrics as metrics_client
from control.controllers.podautoscaler import replicas as calc
from control.controllers.podautoscaler.behavior import Behavior
from control.controllers.podautoscaler.evaluate import evaluate, failure_summary
from control.controllers.podautoscaler.status import (
    ABLE_TO_SCALE,
    SCALING_ACTIVE,
    SCALING_LIMITED,
    Conditions,
)
from control.controllers.podautoscaler.targets import TargetError, TargetResolver
from control.controllers.status import write_status
from control.objects import autoscaling, kinds, meta
from control.objects.selectors import SelectorError, parse_label_selector

log = logging.getLogger(__name__)

HPAS = kinds.lookup("autoscaling", "v2", "horizontalpodautoscalers")
SYNC_PERIOD = 15.0


class _Stop(Exception):
    """This reconcile ends here; its status is written and the next sync will retry."""


class HorizontalPodAutoscalerController(Controller):
    """Reconcile every HPA each sync period from its target's scale and its pods' metrics."""

    def __init__(self, rest, hpa_informer, pod_informer, recorder, queue=None,
                 sync_period=SYNC_PERIOD,
                 downscale_stabilization=autoscaling.DEFAULT_DOWNSCALE_STABILIZATION,
                 tolerance=calc.TOLERANCE,
                 cpu_initialization_period=calc.CPU_INITIALIZATION_PERIOD,
                 initial_readiness_delay=calc.INITIAL_READINESS_DELAY,
                 clock=time.monotonic, wall_clock=meta.utcnow, fetch=None):
        super().__init__("horizontal-pod-autoscaler", [hpa_informer, pod_informer], queue)
        self.rest, self.recorder = rest, recorder
        self.hpa_store, self.pod_store = hpa_informer.store, pod_informer.store
        self.sync_period, self.downscale_stabilization = sync_period, downscale_stabilization
        self.periods = {"tolerance": tolerance,
                        "initialization_period": cpu_initialization_period,
                        "readiness_delay": initial_readiness_delay}
        self.wall_clock = wall_clock
        self.behavior = Behavior(clock)
        self.targets = TargetResolver(rest, clock=clock)
        self.fetch = fetch or metrics_client.pod_samples
        hpa_informer.add_handler(self.enqueue, self._updated, self._deleted)

    def _updated(self, old, new):
        if old["metadata"].get("generation") != new["metadata"].get("generation"):
            self.enqueue(new)

    def _deleted(self, obj):
        self.enqueue(obj)

    def sync(self, key):
        hpa = self.hpa_store.get(key)
        if hpa is None:
            self.behavior.forget(key)
            return
        self.queue.add_after(key, self.sync_period)
        if hpa["metadata"].get("deletionTimestamp"):
            return
        try:
            self.reconcile(key, hpa)
        except _Stop as stop:
            log.info("msg=hpa not scaled hpa=%s reason=%s", key, stop)

    def _event(self, hpa, event_type, reason, message):
        self.recorder.event(hpa, event_type, reason, message)

    def _write(self, hpa, conds, current, desired, metric_statuses, last_scale=None):
        status = {"currentReplicas": current, "desiredReplicas": desired,
                  "conditions": conds.as_list()}
        if metric_statuses:
            status["currentMetrics"] = metric_statuses
        last = last_scale or (hpa.get("status") or {}).get("lastScaleTime")
        if last:
            status["lastScaleTime"] = last
        write_status(self.rest, HPAS, hpa, status)

    def reconcile(self, key, hpa):
        """reconcileAutoscaler: one look at the metrics, maybe one rescale, one status."""
        namespace, _ = split_key(key)
        spec, previous = hpa.get("spec") or {}, hpa.get("status") or {}
        now = meta.timestamp(self.wall_clock())
        conds = Conditions(previous.get("conditions"), now)
        ref = spec.get("scaleTargetRef") or {}
        reference = f"{ref.get('kind')}/{ref.get('name')}"
        try:
            resource = self.targets.resolve(ref)
            scale = self.rest.get_scale(resource, namespace, ref.get("name"))
        except (TargetError, ApiException) as exc:
            conds.set(ABLE_TO_SCALE, False, "FailedGetScale",
                      f"the HPA controller was unable to get the target's current scale: {exc}")
            self._event(hpa, "Warning", "FailedGetScale", str(exc))
            self._write(hpa, conds, previous.get("currentReplicas", 0),
                        previous.get("desiredReplicas", 0), previous.get("currentMetrics"))
            raise _Stop(f"failed to query scale subresource for {reference}: {exc}") from None
        conds.set(ABLE_TO_SCALE, True, "SucceededGetScale",
                  "the HPA controller was able to get the target's current scale")
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        low, high = spec.get("minReplicas") or 1, spec.get("maxReplicas") or 1
        statuses, reason = [], ""
        if current == 0 and low != 0:
            desired = 0
            conds.set(SCALING_ACTIVE, False, "ScalingDisabled",
                      "scaling is disabled since the replica count of the target is zero")
        elif current > high:
            desired, reason = high, "Current number of replicas above Spec.MaxReplicas"
        elif current < low:
            desired, reason = low, "Current number of replicas below Spec.MinReplicas"
        else:
            desired, reason, statuses = self._from_metrics(key, hpa, namespace, scale, current,
                                                           conds)
        last_scale = None
        if desired != current:
            last_scale = self._rescale(hpa, resource, namespace, scale, current, desired, reason,
                                       conds)
            self.behavior.record_scale(key, current, desired,
                                       *autoscaling.effective_behavior(
                                           spec, self.downscale_stabilization))
        self._write(hpa, conds, current, desired, statuses, last_scale)

    def _pods(self, hpa, namespace, scale, conds):
        selector_text = (scale.get("status") or {}).get("selector")
        if not selector_text:
            message = "the HPA target's scale is missing a selector"
            conds.set(SCALING_ACTIVE, False, "InvalidSelector", message)
            self._event(hpa, "Warning", "SelectorRequired", message)
            return None
        try:
            selector = parse_label_selector(selector_text)
        except SelectorError as exc:
            message = f"couldn't convert selector into a corresponding internal selector " \
                      f"object: {exc}"
            conds.set(SCALING_ACTIVE, False, "InvalidSelector", message)
            self._event(hpa, "Warning", "InvalidSelector", message)
            return None
        return selector_text, [p for p in by_namespace(self.pod_store, namespace)
                               if selector.matches(p["metadata"].get("labels") or {})]

    def _from_metrics(self, key, hpa, namespace, scale, current, conds):
        """The metric path: (desired replicas, rescale reason, metric statuses)."""
        spec, previous = hpa["spec"], hpa.get("status") or {}
        found = self._pods(hpa, namespace, scale, conds)
        if found is None:
            self._write(hpa, conds, current, previous.get("desiredReplicas", 0), [])
            raise _Stop("the target's selector is missing or invalid")
        selector, pods = found

        def fetch(resource, container):
            return self.fetch(self.rest, namespace, selector, resource, container)
        metric_specs = spec.get("metrics") or []
        result = evaluate(metric_specs, current, pods, fetch,
                          self.wall_clock().timestamp(), **self.periods)
        for reason, message in result.events:
            self._event(hpa, "Warning", reason, message)
        if result.replicas is None:
            conds.set(SCALING_ACTIVE, False, *result.failure)
            summary = failure_summary(result, len(metric_specs))
            self._event(hpa, "Warning", "FailedComputeMetricsReplicas", summary)
            self._write(hpa, conds, current, previous.get("desiredReplicas", 0),
                        result.statuses)
            raise _Stop(summary)
        conds.set(SCALING_ACTIVE, True, "ValidMetricFound", "the HPA was able to successfully "
                  f"calculate a replica count from {result.metric_name}")
        reason = ""
        if result.replicas > current:
            reason = f"{result.metric_name} above target"
        elif result.replicas < current:
            reason = "All metrics below target"
        up, down = autoscaling.effective_behavior(spec, self.downscale_stabilization)
        decision = self.behavior.decide(key, current, result.replicas,
                                        spec.get("minReplicas") or 1, spec.get("maxReplicas"),
                                        up, down)
        conds.set(ABLE_TO_SCALE, True, decision.able_reason, decision.able_message)
        conds.set(SCALING_LIMITED, decision.limited, decision.limited_reason,
                  decision.limited_message)
        return decision.replicas, reason, result.statuses

    def _rescale(self, hpa, resource, namespace, scale, current, desired, reason, conds):
        """Write the new count through the scale subresource; return lastScaleTime."""
        body = {**scale, "spec": {**(scale.get("spec") or {}), "replicas": desired}}
        try:
            self.rest.update_scale(resource, namespace, scale["metadata"]["name"], body)
        except ApiException as exc:
            conds.set(ABLE_TO_SCALE, False, "FailedUpdateScale",
                      f"the HPA controller was unable to update the target scale: {exc}")
            self._event(hpa, "Warning", "FailedRescale",
                        f"New size: {desired}; reason: {reason}; error: {exc}")
            previous = hpa.get("status") or {}
            self._write(hpa, conds, current, previous.get("desiredReplicas", 0),
                        previous.get("currentMetrics"))
            raise _Stop(f"failed to rescale {scale['metadata']['name']}: {exc}") from None
        conds.set(ABLE_TO_SCALE, True, "SucceededRescale",
                  f"the HPA controller was able to update the target scale to {desired}")
        self._event(hpa, "Normal", "SuccessfulRescale", f"New size: {desired}; reason: {reason}")
        log.info("msg=rescaled hpa=%s/%s from=%d to=%d reason=%r", namespace,
                 hpa["metadata"]["name"], current, desired, reason)
        return meta.timestamp(self.wall_clock())
