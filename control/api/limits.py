"""The in-flight request limits of kube-apiserver (--max-requests-inflight and
--max-mutating-requests-inflight), per worker process.

A request over its limit is refused at once with 429 TooManyRequests and
``Retry-After: 1``, so clients back off instead of piling onto a saturated server.
Long-running requests (watches, logs, exec, proxies) are exempt, as in
kube-apiserver: they hold a connection for minutes and would starve everything.
"""

import threading

from control import errors

MUTATING = frozenset(("POST", "PUT", "PATCH", "DELETE"))
READ_ONLY, MUTATING_KIND = "readOnly", "mutating"
LONG_RUNNING_SUBRESOURCES = frozenset(("log", "exec", "attach", "portforward", "proxy"))
#: kube-apiserver's defaults.
DEFAULT_MAX_INFLIGHT = 400
DEFAULT_MAX_MUTATING_INFLIGHT = 200


def is_long_running(req):
    """Whether a request may stay open indefinitely (watch, logs, exec, proxy)."""
    if req.get_param_as_bool("watch"):
        return True
    parts = req.path.rstrip("/").split("/")
    return (len(parts) >= 3 and parts[-1] in LONG_RUNNING_SUBRESOURCES
            and parts[-3] in ("pods", "services", "nodes"))


def request_kind(req):
    return MUTATING_KIND if req.method in MUTATING else READ_ONLY


class InflightLimits:
    """Falcon middleware counting in-flight requests; 429 once a limit is reached.

    A limit of 0 means no limit, as kube-apiserver's flags do.
    """

    def __init__(self, max_inflight=DEFAULT_MAX_INFLIGHT,
                 max_mutating_inflight=DEFAULT_MAX_MUTATING_INFLIGHT):
        self.limits = {READ_ONLY: max_inflight, MUTATING_KIND: max_mutating_inflight}
        self.current = {READ_ONLY: 0, MUTATING_KIND: 0}
        self._lock = threading.Lock()

    def process_request(self, req, resp):
        if is_long_running(req):
            return
        kind = request_kind(req)
        with self._lock:
            limit = self.limits[kind]
            if limit and self.current[kind] >= limit:
                raise errors.TooManyRequests("Too many requests, please try again later.",
                                             retry_after=1)
            self.current[kind] += 1
        # Marked only once counted: a refused request must not be released below.
        req.context.inflight_kind = kind

    def process_response(self, req, resp, resource, req_succeeded):
        kind = req.context.get("inflight_kind")
        if kind is None:
            return
        req.context.inflight_kind = None
        with self._lock:
            self.current[kind] -= 1

    def inflight(self):
        """Return {request_kind: requests in flight now}."""
        with self._lock:
            return dict(self.current)
