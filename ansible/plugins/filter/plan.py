"""Filters over a host plan (the host_plan lookup's result) for the roles' tasks."""

from __future__ import annotations


def files_for(plan, services, secret=None):
    """The plan's files read by any of ``services`` ([] selects files no service reads)."""
    wanted = set(services)
    chosen = []
    for item in plan["files"]:
        owners = set(item["services"])
        if (owners & wanted if wanted else not owners) and (
                secret is None or item["secret"] == secret):
            chosen.append(item)
    return chosen


def to_restart(changed, services, started=()):
    """``services`` (in plan order) whose files changed, less those just started."""
    return [name for name in services if name in changed and name not in started]


class FilterModule:
    """Steersman's plan filters."""

    def filters(self):
        return {"files_for": files_for, "to_restart": to_restart}
