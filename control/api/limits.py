"""The in-flight request limits of kube-apiserver (--max-requests-inflight and
--max-mutating-requests-inflight), per worker process, and limits of their own
for watches and for long-running subresources (logs, exec, proxies).

A request over its limit is refused at once with 429 TooManyRequests and
``Retry-After: 1``, so clients back off instead of piling onto a saturated server.
A request is counted only once its body has been read (bodies.buffer_body, within
a deadline): clients trickling bodies hold their own connections, never the slots
every other write needs. Only a GET is a watch (``?watch=true`` on a POST is a
write like any other); a watch or log stream holds its slot until the stream is
closed, not merely until its headers are sent.

With priority levels (priority.py, ``--enable-priority-and-fairness``, on by
default in the server) the read-only and mutating requests are admitted by their
priority level instead, out of the two limits' sum, as kube-apiserver does when
API Priority and Fairness is on; they are still counted by kind for the metrics.
"""

import threading

from control import errors
from control.api import bodies

MUTATING = frozenset(("POST", "PUT", "PATCH", "DELETE"))
READ_ONLY, MUTATING_KIND = "readOnly", "mutating"
WATCH, LONG_RUNNING = "watch", "longRunning"
LONG_RUNNING_SUBRESOURCES = frozenset(("log", "exec", "attach", "portforward", "proxy"))
#: kube-apiserver's defaults.
DEFAULT_MAX_INFLIGHT = 400
DEFAULT_MAX_MUTATING_INFLIGHT = 200
#: Open watches and long-running streams per worker (a gevent worker holds thousands).
DEFAULT_MAX_WATCHES = 2000
DEFAULT_MAX_LONG_RUNNING = 200


def is_long_running(req):
    """Whether a request may stay open indefinitely (watch, logs, exec, proxy)."""
    return request_kind(req) in (WATCH, LONG_RUNNING)


def request_kind(req):
    """Return the limit a request counts against: readOnly, mutating, watch or longRunning."""
    parts = req.path.rstrip("/").split("/")
    if (len(parts) >= 3 and parts[-1] in LONG_RUNNING_SUBRESOURCES
            and parts[-3] in ("pods", "services", "nodes")):
        return LONG_RUNNING
    if req.method in MUTATING:
        return MUTATING_KIND
    if req.method == "GET" and _param_true(req.get_param("watch")):
        return WATCH
    return READ_ONLY


def _param_true(value):
    return value is not None and value.lower() in ("true", "1", "yes", "on", "")


class InflightLimits:
    """Falcon middleware counting in-flight requests; 429 once a limit is reached.

    A limit of 0 means no limit, as kube-apiserver's flags do.
    """

    def __init__(self, max_inflight=DEFAULT_MAX_INFLIGHT,
                 max_mutating_inflight=DEFAULT_MAX_MUTATING_INFLIGHT,
                 max_watches=DEFAULT_MAX_WATCHES, max_long_running=DEFAULT_MAX_LONG_RUNNING,
                 body_timeout=bodies.BODY_READ_TIMEOUT, priority=None):
        self.priority = priority        # a priority.PriorityLevels, or None
        self.limits = {READ_ONLY: max_inflight, MUTATING_KIND: max_mutating_inflight,
                       WATCH: max_watches, LONG_RUNNING: max_long_running}
        self.current = dict.fromkeys(self.limits, 0)
        self.body_timeout = body_timeout
        self._lock = threading.Lock()

    def process_request(self, req, resp):
        kind = request_kind(req)
        if bodies.has_body(req):
            bodies.buffer_body(req, self.body_timeout)
        prioritized = self.priority is not None and kind in (READ_ONLY, MUTATING_KIND)
        if prioritized:
            # May wait in the level's queue; a 429 here leaves nothing to release.
            req.context.priority_level = self.priority.admit(req, resp)
        with self._lock:
            limit = self.limits[kind]
            if limit and not prioritized and self.current[kind] >= limit:
                raise errors.TooManyRequests("Too many requests, please try again later.",
                                             retry_after=1)
            self.current[kind] += 1
        # Marked only once counted: a refused request must not be released below.
        req.context.inflight_kind = kind

    def process_response(self, req, resp, resource, req_succeeded):
        level = req.context.get("priority_level")
        if level is not None:
            req.context.priority_level = None
            self.priority.release(level)
        kind = req.context.get("inflight_kind")
        if kind is None:
            return
        req.context.inflight_kind = None
        if resp.stream is not None and kind in (WATCH, LONG_RUNNING):
            resp.stream = ReleasingStream(resp.stream, lambda: self._release(kind))
        else:
            self._release(kind)

    def _release(self, kind):
        with self._lock:
            self.current[kind] -= 1

    def inflight(self):
        """Return {request_kind: requests in flight now}."""
        with self._lock:
            return dict(self.current)


class ReleasingStream:
    """A response iterable that calls ``release`` once, when the server closes it."""

    def __init__(self, stream, release):
        self._stream = stream
        self._iterator = iter(stream)
        self._release = release

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._iterator)

    def close(self):
        release, self._release = self._release, None
        try:
            close = getattr(self._stream, "close", None)
            if close is not None:
                close()
        finally:
            if release is not None:
                release()
