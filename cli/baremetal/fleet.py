"""Run one step on many hosts at once and say how each went.

Every host gets its own thread and its own SSH connection (paramiko's transports are
per connection, so threads never share one). A step's failure on any host is
collected, not raised mid-way: the caller sees every host's outcome and reports
them all, each naming the host, the step and the fix.
"""

import concurrent.futures
from dataclasses import dataclass


class StepError(Exception):
    """A step failed on a host: says which host, which step, what happened and what to do."""

    def __init__(self, host, step, message, fix=""):
        super().__init__(f"{host}: {step}: {message}" + (f"\n  fix: {fix}" if fix else ""))
        self.host, self.step, self.message, self.fix = host, step, message, fix


@dataclass
class Outcome:
    host: str
    value: object = None
    error: BaseException | None = None


def each(hosts, fn, max_workers=16):
    """Call ``fn(host)`` for every host in parallel; return [Outcome] in ``hosts`` order."""
    hosts = list(hosts)
    if not hosts:
        return []
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(max_workers, len(hosts)),
                                               thread_name_prefix="host") as pool:
        futures = [pool.submit(fn, host) for host in hosts]
        outcomes = []
        for host, future in zip(hosts, futures):
            try:
                outcomes.append(Outcome(host, value=future.result()))
            except Exception as exc:        # reported per host by the caller
                outcomes.append(Outcome(host, error=exc))
        return outcomes


def raise_first(outcomes, step, fix_for=None):
    """Raise a StepError for the first failed outcome (all failures in its message)."""
    failed = [o for o in outcomes if o.error is not None]
    if not failed:
        return {_name(o.host): o.value for o in outcomes}
    errors = [_as_step_error(_name(o.host), step, o.error, fix_for) for o in failed]
    if len(errors) == 1:
        raise errors[0]
    first = errors[0]
    combined = StepError(first.host, step, "; ".join(f"{e.host}: {e.message}" for e in errors),
                         first.fix)
    combined.errors = errors
    raise combined


def _name(host):
    return getattr(host, "name", host)


def _as_step_error(host, step, error, fix_for):
    if isinstance(error, StepError):
        return error
    fix = fix_for(error) if fix_for else ""
    return StepError(host, step, str(error) or type(error).__name__, fix)
