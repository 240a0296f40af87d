"""The request timeout of kube-apiserver (``--request-timeout``, default 60 s).

A request that is not long-running (watches, logs, exec, attach, port-forward and
proxies are: limits.is_long_running) and has not been answered within the timeout
is answered 504 with a Status of reason Timeout, and the worker goes on serving.
A client's ``?timeout=`` (a duration: ``30s``, ``1m30s``, ``500ms``) shortens it,
never lengthens it; a malformed one is a 400.

The server's gevent workers run each connection in a greenlet: a gevent Timeout
armed before authentication raises ``errors.Timeout`` inside the request at its
next wait (a store call, a body read, a priority queue), falcon turns that into
the 504 Status, and every middleware's process_response still runs (in-flight
slots are released, the auth context reset). As kube-apiserver's timeout filter,
it covers authentication, authorization and queueing as well as the handler. Work that never waits cannot be interrupted this way; it is
bounded by the store's own timeout and the bodies' read deadline. Under the
gthread worker class there is no greenlet to interrupt and the timeout is not
enforced (the server logs so at start).
"""

import logging
import re

from control import errors
from control.api import limits

log = logging.getLogger("steer.apiserver")
DEFAULT_REQUEST_TIMEOUT = 60.0
MESSAGE = "Timeout: request did not complete within the allotted timeout"
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


class RequestTimedOut(errors.Timeout):
    """The 504 of a request past its timeout (a class: made only when a timer fires)."""

    def __init__(self, message=MESSAGE):
        super().__init__(message)


def parse_duration(text):
    """Return the seconds of a Go duration ("30s", "1m30s", "500ms"); ValueError if malformed."""
    text = text.strip()
    if text == "0":
        return 0.0
    position, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ValueError(f"invalid duration {text[:40]!r}: want a number with a unit, "
                         "e.g. 30s or 1m")
    return total


def _gevent_timeout():
    """Return gevent's Timeout class when this process runs under gevent, else None."""
    try:
        from gevent import Timeout, monkey
    except ImportError:
        return None
    return Timeout if monkey.is_module_patched("socket") else None


class RequestTimeout:
    """Falcon middleware answering 504 for a request that outlives its timeout.

    Put it before authentication (its process_request arms the timer) and
    ``disarm`` last in the list: its process_response, the first to run after the
    responder, disarms the timer before any other response processing. ``timer_class`` is gevent's Timeout (found at start: None when
    the worker is not gevent, and the timeout is then not enforced); tests inject it.
    """

    def __init__(self, seconds=DEFAULT_REQUEST_TIMEOUT, timer_class=...):
        self.seconds = seconds
        self.timer_class = _gevent_timeout() if timer_class is ... else timer_class
        self.disarm = _Disarm()
        if seconds and self.timer_class is None:
            log.info("event=request_timeout_not_enforced reason=%r",
                     "not a gevent worker: no greenlet to interrupt")

    @property
    def enforced(self):
        return bool(self.seconds) and self.timer_class is not None

    def seconds_for(self, req):
        """Return this request's timeout in seconds (None: not limited); 400 if malformed."""
        if limits.is_long_running(req):
            return None
        seconds = self.seconds or None
        asked = req.get_param("timeout")
        if asked:
            try:
                wanted = parse_duration(asked)
            except ValueError as exc:
                raise errors.BadRequest(f"invalid timeout specified in the request URL: "
                                        f"{exc}") from None
            if wanted > 0:
                seconds = wanted if seconds is None else min(seconds, wanted)
        return seconds

    def process_request(self, req, resp):
        seconds = self.seconds_for(req)
        if seconds is None or self.timer_class is None:
            return
        timer = self.timer_class(seconds, RequestTimedOut)
        timer.start()
        req.context.request_timer = timer

    def process_response(self, req, resp, resource, req_succeeded):
        self.disarm.process_response(req, resp, resource, req_succeeded)


class _Disarm:
    """The last middleware: cancel the request's timer once the responder is done."""

    def process_response(self, req, resp, resource, req_succeeded):
        timer = req.context.get("request_timer")
        if timer is not None:
            req.context.request_timer = None
            timer.close()
