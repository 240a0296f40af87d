"""Prometheus metrics of the API server, per worker process, served at /metrics.

kube-apiserver's names: apiserver_request_total, apiserver_request_duration_seconds,
apiserver_current_inflight_requests and apiserver_registered_watchers. No client
library: a counter, a histogram and a gauge read live are all it takes, rendered
in the text exposition format (version 0.0.4).
"""

import bisect
import threading
import time
from collections import defaultdict

from control.api import limits
from control.api.handlers import namespace_subresource

#: kube-apiserver's buckets for apiserver_request_duration_seconds.
DURATION_BUCKETS = (0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0,
                    4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(names, values, extra=""):
    pairs = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        pairs.append(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _escape(value):
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Counter:
    """A counter per label-value tuple."""

    def __init__(self, name, help_text, label_names):
        self.name, self.help, self.label_names = name, help_text, tuple(label_names)
        self.values = defaultdict(int)
        self._lock = threading.Lock()

    def inc(self, labels, amount=1):
        with self._lock:
            self.values[tuple(labels)] += amount

    def render(self, kind="counter"):
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {kind}"]
        with self._lock:
            items = sorted(self.values.items())
        lines += [f"{self.name}{_labels(self.label_names, k)} {v}" for k, v in items]
        return lines


class Gauge(Counter):
    """A gauge moved up and down (``inc`` with a negative amount), or read live."""

    def __init__(self, name, help_text, label_names, read=None):
        super().__init__(name, help_text, label_names)
        self.read = read            # () -> {label tuple: value}, replacing stored values

    def render(self, kind="gauge"):
        if self.read is not None:
            with self._lock:
                self.values = defaultdict(int, self.read())
        return super().render(kind)


class Histogram:
    """Cumulative buckets, sum and count per label-value tuple."""

    def __init__(self, name, help_text, label_names, buckets):
        self.name, self.help, self.label_names = name, help_text, tuple(label_names)
        self.buckets = tuple(buckets)
        self.counts = defaultdict(lambda: [0] * (len(self.buckets) + 1))
        self.sums = defaultdict(float)
        self._lock = threading.Lock()

    def observe(self, labels, value):
        with self._lock:
            self.counts[tuple(labels)][bisect.bisect_left(self.buckets, value)] += 1
            self.sums[tuple(labels)] += value

    def render(self):
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with self._lock:
            items = sorted((k, list(v), self.sums[k]) for k, v in self.counts.items())
        for labels, counts, total_sum in items:
            total = 0
            for bound, count in zip(self.buckets + (float("inf"),), counts):
                total += count
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                bucket = _labels(self.label_names, labels, 'le="' + le + '"')
                lines.append(f"{self.name}_bucket{bucket} {total}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, labels)} {total_sum:.6f}")
            lines.append(f"{self.name}_count{_labels(self.label_names, labels)} {total}")
        return lines


def render(metrics):
    """Render metrics in the Prometheus text format."""
    return "\n".join(line for metric in metrics for line in metric.render()) + "\n"


def verb_of(req, params):
    """kube-apiserver's verb label: LIST, WATCH, GET, POST, PUT, PATCH, DELETE(COLLECTION)."""
    if params is None:
        return req.method
    collection = "name" not in params
    if req.method == "GET" and collection:
        return "WATCH" if req.get_param_as_bool("watch") else "LIST"
    if req.method == "DELETE" and collection:
        return "DELETECOLLECTION"
    return req.method


class ApiMetrics:
    """Falcon middleware recording every request; also the /metrics resource."""

    def __init__(self, inflight=None, extra=()):
        self.extra = tuple(extra)       # more metrics to render (priority levels')
        labels = ("verb", "group", "resource", "subresource", "code")
        self.requests = Counter("apiserver_request_total",
                                "Counter of apiserver requests broken out for each verb, "
                                "group, resource, subresource and HTTP response code.", labels)
        self.durations = Histogram("apiserver_request_duration_seconds",
                                   "Response latency distribution in seconds for each verb, "
                                   "group, resource and subresource.", labels[:-1],
                                   DURATION_BUCKETS)
        self.inflight = Gauge("apiserver_current_inflight_requests",
                              "Maximal number of currently used inflight request limit of this "
                              "apiserver per request kind.", ("request_kind",),
                              read=lambda: {(k,): v for k, v in (inflight or dict)().items()})
        self.watchers = Gauge("apiserver_registered_watchers",
                              "Number of currently registered watchers for a given resource.",
                              ("group", "resource"))

    def process_request(self, req, resp):
        req.context.metrics_start = time.monotonic()

    def process_resource(self, req, resp, resource, params):
        req.context.metrics_params = namespace_subresource(params) or dict(params)

    def process_response(self, req, resp, resource, req_succeeded):
        start = req.context.get("metrics_start")
        if start is None:
            return
        params = req.context.get("metrics_params")
        verb = verb_of(req, params)
        params = params or {}
        labels = (verb, params.get("group", ""), params.get("plural", ""),
                  params.get("sub", ""))
        self.requests.inc(labels + (str(resp.status_code),))
        if not limits.is_long_running(req):
            # A watch or a followed log is only starting here; its length says nothing.
            self.durations.observe(labels, time.monotonic() - start)

    def on_get(self, req, resp):
        resp.content_type = CONTENT_TYPE
        resp.text = render((self.requests, self.durations, self.inflight, self.watchers)
                           + self.extra)


class CountedWatches:
    """Wrap a watch source so apiserver_registered_watchers counts open watches."""

    def __init__(self, source, gauge):
        self.source = source
        self.gauge = gauge

    def open(self, resource, namespace, since):
        watch = self.source.open(resource, namespace, since)
        key = (resource.group, resource.plural)
        self.gauge.inc(key)
        return _CountedWatch(watch, lambda: self.gauge.inc(key, -1))


class _CountedWatch:
    def __init__(self, watch, release):
        self._watch = watch
        self._release = release

    def __getattr__(self, name):
        return getattr(self._watch, name)

    def cancel(self):
        release, self._release = self._release, None
        if release is not None:
            release()
        self._watch.cancel()
