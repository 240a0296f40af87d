"""Prometheus metrics of a control-plane process: counters, gauges, histograms, text format.

No client library: the scheduler and controller manager need a handful of
families (workqueue, leader election, scheduling attempts, process) rendered in
the Prometheus text exposition format 0.0.4. Every family registers itself in a
``Registry`` (the process-wide ``REGISTRY`` by default) so that the code that
counts (workqueue.py, leaderelection.py, the scheduler) needs no reference to the
server that renders. Names and labels are Kubernetes' where it has the metric.
"""

import bisect
import math
import os
import threading
import time

#: Buckets of durations in seconds (Kubernetes' workqueue uses 1e-8 * 10**n, n = 0..9).
DURATION_BUCKETS = tuple(10.0 ** exponent for exponent in range(-8, 2))
#: Buckets of a scheduling attempt (kube-scheduler: exponential from 1 ms, factor 2, 15).
SCHEDULING_BUCKETS = tuple(0.001 * 2 ** n for n in range(15))


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names, values, extra=()):
    pairs = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)] + list(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _number(value):
    if value == math.inf:
        return "+Inf"
    return str(value) if isinstance(value, int) else repr(float(value))


class Registry:
    """The families one /metrics page renders, in registration order."""

    def __init__(self):
        self._families = {}
        self._lock = threading.Lock()

    def register(self, family):
        """Add ``family``; one already registered under its name is returned instead."""
        with self._lock:
            return self._families.setdefault(family.name, family)

    def render(self):
        with self._lock:
            families = list(self._families.values())
        lines = []
        for family in families:
            lines += family.render()
        return "\n".join(lines) + "\n"


REGISTRY = Registry()


class _Family:
    kind = "untyped"

    def __init__(self, name, help_text, labels=()):
        self.name, self.help, self.labelnames = name, help_text, tuple(labels)
        self._values = {}
        self._lock = threading.Lock()

    def _key(self, labels):
        if len(labels) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {labels}")
        return tuple(str(v) for v in labels)

    def header(self):
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def remove(self, *labels):
        with self._lock:
            self._values.pop(self._key(labels), None)

    def render(self):
        with self._lock:
            items = sorted(self._values.items())
        return self.header() + [f"{self.name}{_labels(self.labelnames, key)} {_number(value)}"
                                for key, value in items]


class Counter(_Family):
    """A value that only goes up."""
    kind = "counter"

    def inc(self, *labels, amount=1):
        with self._lock:
            key = self._key(labels)
            self._values[key] = self._values.get(key, 0) + amount

    def value(self, *labels):
        return self._values.get(self._key(labels), 0)


class Gauge(Counter):
    """A value that goes up and down, or is set."""
    kind = "gauge"

    def set(self, *labels, value):
        with self._lock:
            self._values[self._key(labels)] = value

    def dec(self, *labels, amount=1):
        self.inc(*labels, amount=-amount)


class Histogram(_Family):
    """Observations counted into cumulative buckets, with their sum and count."""
    kind = "histogram"

    def __init__(self, name, help_text, labels=(), buckets=DURATION_BUCKETS):
        super().__init__(name, help_text, labels)
        self.buckets = tuple(sorted(buckets))

    def observe(self, *labels, value):
        with self._lock:
            key = self._key(labels)
            counts, total = self._values.get(key, ([0] * (len(self.buckets) + 1), 0.0))
            counts[bisect.bisect_left(self.buckets, value)] += 1
            self._values[key] = (counts, total + value)

    def count(self, *labels):
        counts, _ = self._values.get(self._key(labels), ([0], 0.0))
        return sum(counts)

    def render(self):
        with self._lock:
            items = sorted((key, (list(c), s)) for key, (c, s) in self._values.items())
        lines = self.header()
        for key, (counts, total) in items:
            running = 0
            for bound, count in zip(self.buckets + (math.inf,), counts):
                running += count
                le = 'le="' + _number(bound) + '"'
                lines.append(f"{self.name}_bucket{_labels(self.labelnames, key, [le])} {running}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, key)} {_number(total)}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, key)} {running}")
        return lines


class Collected(_Family):
    """A family whose samples a function gives at render time: [(label values, value)]."""

    def __init__(self, name, help_text, labels, collect, kind="gauge"):
        super().__init__(name, help_text, labels)
        self.kind, self._collect = kind, collect

    def render(self):
        return self.header() + [f"{self.name}{_labels(self.labelnames, key)} {_number(value)}"
                                for key, value in self._collect()]


def counter(name, help_text, labels=(), registry=None):
    return (registry or REGISTRY).register(Counter(name, help_text, labels))


def gauge(name, help_text, labels=(), registry=None):
    return (registry or REGISTRY).register(Gauge(name, help_text, labels))


def histogram(name, help_text, labels=(), buckets=DURATION_BUCKETS, registry=None):
    return (registry or REGISTRY).register(Histogram(name, help_text, labels, buckets))


# -- the process (client_golang's process collector) -----------------------------------------
def _process_stat(proc="/proc/self"):
    """(cpu seconds, resident bytes, start time in Unix seconds) from /proc, or None."""
    try:
        with open(f"{proc}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
    except (OSError, StopIteration, IndexError, ValueError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks       # utime + stime
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, rss, boot + int(fields[19]) / ticks


def register_process_metrics(registry=None):
    """Add process_cpu_seconds_total, process_resident_memory_bytes, process_start_time_seconds."""
    registry = registry or REGISTRY

    def one(index):
        def collect():
            stat = _process_stat()
            return [((), stat[index])] if stat else []
        return collect

    registry.register(Collected("process_cpu_seconds_total",
                                "Total user and system CPU time spent in seconds.", (), one(0),
                                kind="counter"))
    registry.register(Collected("process_resident_memory_bytes",
                                "Resident memory size in bytes.", (), one(1)))
    registry.register(Collected("process_start_time_seconds",
                                "Start time of the process since unix epoch in seconds.", (),
                                one(2)))


def now():
    """The clock durations are measured with (monotonic)."""
    return time.monotonic()
