"""The agent's side of exec, attach and port-forward: from the API server to containerd.

The API server replays a client's upgrade request at kubelet's paths
(/exec/{ns}/{pod}/{container}?command=..&input=1&output=1&error=1&tty=1,
/attach/{ns}/{pod}/{container}?.., /portForward/{ns}/{pod}[?port=N..]). The agent
finds the running container (or the pod's sandbox), asks CRI for a streaming URL
(Exec, Attach, PortForward: a one-time token on containerd's streaming server, which
listens on 127.0.0.1 inside the node's network namespace), replays the upgrade there
(agent/netns.py connects from inside that namespace), passes containerd's answer back
and, after a 101, copies bytes both ways (control/client/upgrade.py). containerd
speaks SPDY and WebSocket v1-v4 itself: the agent never looks inside the stream.

A stream with no byte either way for ``idle_timeout`` seconds is closed, as kubelet's
--streaming-connection-idle-timeout does (default 4 hours).
"""

import logging
import urllib.parse

from agent import netns
from control.client import upgrade

log = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT = 4 * 3600.0
#: Seconds containerd has to answer the upgrade (it answers at once when alive).
UPGRADE_TIMEOUT = 30.0
CONNECT_TIMEOUT = 5.0
#: kubelet's query flags of exec and attach, and the CRI option each sets.
_OPTIONS = (("input", "stdin"), ("output", "stdout"), ("error", "stderr"), ("tty", "tty"))


class StreamRefused(Exception):
    """The request cannot be served: ``code`` and a one-line message for the API server."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def parse(method, parts, query):
    """Check a streaming request's path parts and query; return (kind, names, options).

    ``parts`` are the unquoted path segments, ``query`` a dict of value lists. Raises
    StreamRefused (404 for an unknown path, 400 for bad options).
    """
    if method not in ("GET", "POST"):
        raise StreamRefused(405, f"{method} is not allowed here")
    kind = parts[0] if parts else ""
    if kind == "portForward" and len(parts) == 3:
        ports = []
        for value in query.get("port", []):
            if not (value.isdigit() and 0 < int(value) < 65536):
                raise StreamRefused(400, f"invalid port {value[:20]!r}: want 1-65535")
            ports.append(int(value))
        return kind, tuple(parts[1:]), {"ports": ports}
    if kind not in ("exec", "attach") or len(parts) != 4:
        raise StreamRefused(404, "404 page not found")
    options = {cri: query.get(flag, ["0"])[-1] in ("1", "true") for flag, cri in _OPTIONS}
    if options["tty"]:
        options["stderr"] = False
    if not (options["stdin"] or options["stdout"] or options["stderr"]):
        raise StreamRefused(400, "you must specify at least 1 of stdin, stdout, stderr")
    if kind == "exec":
        options["cmd"] = query.get("command", [])
        if not options["cmd"]:
            raise StreamRefused(400, "you must specify at least one command for the container")
    return kind, tuple(parts[1:]), options


class StreamServer:
    """Serve exec, attach and port-forward upgrades on the agent's HTTP port.

    ``find(namespace, pod, container)`` returns the running attempt's Record (its
    ``container_id``, ``sandbox_id``); with container None, any attempt that has the
    pod's sandbox. It raises LookupError (404) or ValueError (400) with the message.
    ``client`` is the CriClient; ``netns_path`` the namespace containerd listens in.
    """

    def __init__(self, find, client, netns_path=None, idle_timeout=DEFAULT_IDLE_TIMEOUT,
                 upgrade_timeout=UPGRADE_TIMEOUT, connect=netns.connect):
        self.find, self.client, self.netns_path = find, client, netns_path
        self.idle_timeout = idle_timeout or None
        self.upgrade_timeout = upgrade_timeout
        self._connect = connect

    def stream_url(self, kind, names, options):
        """Ask CRI for the streaming URL of a parsed request (StreamRefused if it cannot)."""
        namespace, pod = names[0], names[1]
        container = names[2] if len(names) > 2 else None
        try:
            record = self.find(namespace, pod, container)
        except LookupError as exc:
            raise StreamRefused(404, str(exc)) from None
        except ValueError as exc:
            raise StreamRefused(400, str(exc)) from None
        flags = {k: options[k] for k in ("stdin", "stdout", "stderr", "tty") if k in options}
        try:
            if kind == "exec":
                return self.client.exec(record.container_id, options["cmd"], **flags)
            if kind == "attach":
                return self.client.attach(record.container_id, **flags)
            if not record.sandbox_id:
                raise StreamRefused(400, f'pod "{pod}" has no sandbox to forward ports into')
            return self.client.port_forward(record.sandbox_id, options["ports"])
        except StreamRefused:
            raise
        except Exception as exc:       # CriError: the runtime refused (not running, gone)
            details = getattr(exc, "details", None) or str(exc)
            raise StreamRefused(500, f"the container runtime refused to {kind}: "
                                     f"{details}") from None

    def serve(self, req, parts, query):
        """Serve one upgrade request on ``req`` (an http.server handler); close it after."""
        req.close_connection = True
        try:
            kind, names, options = parse(req.command, parts, query)
            url = urllib.parse.urlsplit(self.stream_url(kind, names, options))
            if url.scheme != "http" or not url.hostname or not url.port:
                raise StreamRefused(500, f"the container runtime gave an unusable streaming "
                                         f"URL ({url.scheme}://...): configure its stream "
                                         "server on plain HTTP at 127.0.0.1")
            upstream = self._open(url)
        except StreamRefused as exc:
            return _refuse(req, exc.code, str(exc))
        try:
            head = self._upgrade(upstream, url, req)
            if head.status != 101:
                body = upgrade.read_body(upstream, head, 1024)
                text = body.decode("utf-8", "replace").strip().splitlines()
                return _refuse(req, head.status if 400 <= head.status < 600 else 502,
                               (text[0] if text else "") or
                               f"the container runtime answered {head.status} to the upgrade")
            req.connection.sendall(head.switch_bytes() + head.rest)
            ended = upgrade.splice(req.connection, upstream, idle_timeout=self.idle_timeout)
            log.info("event=stream_ended kind=%s pod=%s why=%s", kind, "/".join(names[:2]),
                     ended)
        except StreamRefused as exc:
            return _refuse(req, exc.code, str(exc))
        finally:
            upstream.close()

    def _open(self, url):
        try:
            return self._connect(self.netns_path, (url.hostname, url.port), CONNECT_TIMEOUT)
        except OSError as exc:
            raise StreamRefused(503, f"the container runtime's stream server at "
                                     f"{url.hostname}:{url.port} cannot be reached: {exc}") \
                from None

    def _upgrade(self, upstream, url, req):
        headers = upgrade.upgrade_headers(lambda name: req.headers.get_all(name) or [])
        target = url.path + ("?" + url.query if url.query else "")
        try:
            upstream.settimeout(self.upgrade_timeout)
            upstream.sendall(upgrade.request_bytes(req.command, target, url.netloc, headers))
            return upgrade.read_response_head(upstream, self.upgrade_timeout)
        except ValueError as exc:
            raise StreamRefused(400, str(exc)) from None
        except (OSError, upgrade.UpgradeError) as exc:
            raise StreamRefused(502, f"the container runtime's stream server failed the "
                                     f"upgrade: {exc}") from None


def _refuse(req, code, message):
    """Answer a plain-text error (the API server turns it into a Status)."""
    body = (message.replace("\r", " ").replace("\n", " ")[:500] + "\n").encode()
    try:
        req.send_response(code)
        req.send_header("Content-Type", "text/plain; charset=utf-8")
        req.send_header("Content-Length", str(len(body)))
        req.send_header("Connection", "close")
        req.end_headers()
        req.wfile.write(body)
    except OSError:
        pass        # the API server went away
