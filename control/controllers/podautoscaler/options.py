"""kube-controller-manager's --horizontal-pod-autoscaler-* flags, and the controller's factory."""

import argparse

from control.client.events import EventRecorder
from control.controllers.podautoscaler import replicas as calc
from control.controllers.podautoscaler.controller import (
    HPAS,
    SYNC_PERIOD,
    HorizontalPodAutoscalerController,
)
from control.objects import autoscaling, kinds

#: (flag suffix, attribute, default, help): every flag takes a Go duration or seconds.
_DURATIONS = (
    ("sync-period", "horizontal_pod_autoscaler_sync_period", SYNC_PERIOD,
     "how often every HPA is reconciled (15s)"),
    ("downscale-stabilization", "horizontal_pod_autoscaler_downscale_stabilization",
     autoscaling.DEFAULT_DOWNSCALE_STABILIZATION,
     "the scale-down stabilization window of HPAs whose behavior sets none (5m)"),
    ("cpu-initialization-period", "horizontal_pod_autoscaler_cpu_initialization_period",
     calc.CPU_INITIALIZATION_PERIOD,
     "after a pod starts, how long its cpu samples are skipped unless it is Ready (5m)"),
    ("initial-readiness-delay", "horizontal_pod_autoscaler_initial_readiness_delay",
     calc.INITIAL_READINESS_DELAY,
     "after a pod starts, how long a readiness change still counts as its first (30s)"),
)


def _duration(text):
    # The manager's parser of Go durations; imported late: manager imports this module.
    from control.controllers.manager import duration
    return duration(text)


def add_flags(parser):
    """Add the HPA controller's flags to the controller manager's parser."""
    for suffix, _, default, help_text in _DURATIONS:
        parser.add_argument(f"--horizontal-pod-autoscaler-{suffix}", type=_duration,
                            default=default, help=help_text)
    parser.add_argument("--horizontal-pod-autoscaler-tolerance", type=_tolerance,
                        default=calc.TOLERANCE,
                        help="the least relative difference between usage and target that "
                             "changes the replica count (0.1)")


def _tolerance(text):
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("the tolerance must not be negative")
    return value


def _option(options, name, default):
    return getattr(options, name, default) if options is not None else default


def controller_factory(rest, informers, options):
    """Build the controller from the shared informers and the parsed flags."""
    periods = {attr: _option(options, attr, default) for _, attr, default, _ in _DURATIONS}
    return HorizontalPodAutoscalerController(
        rest, informers.informer(HPAS), informers.informer(kinds.PODS),
        recorder=EventRecorder(rest, "horizontal-pod-autoscaler"),
        sync_period=periods["horizontal_pod_autoscaler_sync_period"],
        downscale_stabilization=periods["horizontal_pod_autoscaler_downscale_stabilization"],
        tolerance=_option(options, "horizontal_pod_autoscaler_tolerance", calc.TOLERANCE),
        cpu_initialization_period=periods["horizontal_pod_autoscaler_cpu_initialization_period"],
        initial_readiness_delay=periods["horizontal_pod_autoscaler_initial_readiness_delay"])
