"""The horizontal pod autoscaler: replica calculator, behavior rules, and the controller."""

from control.controllers.podautoscaler.controller import (
    HPAS,
    SYNC_PERIOD,
    HorizontalPodAutoscalerController,
)

__all__ = ["HPAS", "SYNC_PERIOD", "HorizontalPodAutoscalerController"]
