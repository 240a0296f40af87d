"""Server-sent event streams: a watch of pods, and a pod's log with follow.

The browser's EventSource keeps one stream open per page; each is a long-running
subrequest (a watch, or pods/log?follow=true) as the user, so the API server's
watch and long-running limits count it, and RBAC decides it as for kubectl.
"""

import json

import falcon

from control.ui import kinds

#: A watch ends after this long; EventSource reconnects by itself.
WATCH_SECONDS = 300
TAIL_LINES = 500


def sse(event=None, data=""):
    """Encode one server-sent event (each line of ``data`` a data: field)."""
    head = f"event: {event}\n" if event else ""
    body = "".join(f"data: {line}\n" for line in str(data).split("\n"))
    return (head + body + "\n").encode("utf-8")


def lines_of(chunks):
    """Yield whole lines (bytes, no newline) from a stream of chunks."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *whole, pending = pending.split(b"\n")
        yield from whole
    if pending:
        yield pending


def _refuse(resp, code, chunks):
    message = b"".join(chunks)[:2000].decode("utf-8", "replace")
    try:
        message = json.loads(message).get("message", message)
    except (ValueError, AttributeError):
        pass
    resp.status = falcon.code_to_http_status(code)
    resp.content_type = "text/plain; charset=utf-8"
    resp.text = message


def _stream(resp, events):
    resp.content_type = "text/event-stream"
    resp.set_header("X-Accel-Buffering", "no")
    resp.stream = events


class PodWatch:
    """Send `change` when a pod matching the selector is added, modified or deleted."""

    def on_get(self, req, resp, ns):
        api = req.context.api
        selector = req.get_param("selector") or None
        listed = api.get(kinds.path("pods", ns), labelSelector=selector, limit=1)
        if not listed.ok:
            resp.status = falcon.code_to_http_status(listed.code)
            resp.text = listed.message
            return
        version = (listed.body.get("metadata") or {}).get("resourceVersion", "")
        code, chunks = api.stream("GET", kinds.path("pods", ns), query={
            "watch": "true", "labelSelector": selector or "", "resourceVersion": version,
            "timeoutSeconds": str(WATCH_SECONDS)})
        if code != 200:
            return _refuse(resp, code, chunks)

        def events():
            yield sse("ready", version)
            try:
                for line in lines_of(chunks):
                    if not line.strip():
                        continue
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    name = ((event.get("object") or {}).get("metadata") or {}).get("name", "")
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        yield sse("change", f"{event['type']} {name}")
                    elif event.get("type") == "ERROR":
                        yield sse("end", "the watch ended; reload the page")
                        return
            finally:
                chunks.close()
        _stream(resp, events())


class LogFollow:
    """Send each line of a container's log as it is written; `end` when it stops."""

    def on_get(self, req, resp, ns, name):
        query = {"follow": "true", "tailLines": str(TAIL_LINES)}
        if req.get_param("container"):
            query["container"] = req.get_param("container")
        code, chunks = req.context.api.stream("GET", kinds.path("pods", ns, name, "log"),
                                              query=query, accept="text/plain")
        if code != 200:
            return _refuse(resp, code, chunks)

        def events():
            yield sse("ready", "")
            try:
                for line in lines_of(chunks):
                    yield sse("line", line.decode("utf-8", "replace").rstrip("\r"))
                yield sse("end", "the log stream ended")
            finally:
                chunks.close()
        _stream(resp, events())


def add_routes(app, templates):
    app.add_route("/ui/live/pods/{ns}", PodWatch())
    app.add_route("/ui/live/logs/{ns}/{name}", LogFollow())
