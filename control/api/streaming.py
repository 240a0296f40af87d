"""pods/exec, pods/attach and pods/portforward: an authorized upgrade proxy to the node agent.

A client (kubectl, the Python client) asks to switch protocols: SPDY/3.1 over POST, or
WebSocket over GET. The API server checks the pod and container, reaches the agent of
the pod's node over mutual TLS (subresources.kubelet_client_context), replays the
upgrade at kubelet's path (/exec/{ns}/{pod}/{container}?command=..&input=1..,
/attach/.., /portForward/{ns}/{pod}) and hands the agent's answer back. After a 101
it copies bytes both ways (control/client/upgrade.py) until either side closes; the
request holds its longRunning in-flight slot (limits.py) for as long as that lasts.

Protocols. containerd's streaming server speaks SPDY and the WebSocket channel
protocols v1-v4, not v5. kubectl 1.32 offers only ``v5.channel.k8s.io`` for exec and
attach, and ``SPDY/3.1+portforward.k8s.io`` for port-forward, over WebSocket first;
a non-101 answer makes it fall back to SPDY (client-go: UpgradeFailureError). Such a
WebSocket request is therefore refused here with 400 before any agent is dialled,
and kubectl goes on over SPDY, which works end to end (stdin close included). A
WebSocket client offering v4 (the official Python client's ``stream()``) is passed
through as it is.

Authorization. The middleware has checked the request's verb (create for POST, get
for GET). A WebSocket upgrade is a GET but runs commands as a POST does, so it must
also be allowed ``create`` (Kubernetes' AuthorizePodWebsocketUpgradeCreatePermission,
default since 1.35; Steersman checks it always).

Taking over the connection. The responder writes the 101 and the spliced bytes itself
on gunicorn's socket (``environ["gunicorn.socket"]``); ``hijackable`` then makes the
worker close the connection without writing a response (gunicorn's own StopIteration
signal, in both the gevent and the gthread workers).
"""

import dataclasses
import logging
import urllib.parse

import falcon

from control import errors
from control.api import subresources
from control.api.auth import context
from control.client import upgrade
from control.objects import kinds

log = logging.getLogger("steer.apiserver.streaming")

SUBRESOURCES = ("exec", "attach", "portforward")
#: kubelet's path for each subresource.
AGENT_PATHS = {"exec": "exec", "attach": "attach", "portforward": "portForward"}
#: WebSocket subprotocols containerd's streaming server accepts (no v5).
EXEC_WEBSOCKET_PROTOCOLS = frozenset({"channel.k8s.io", "base64.channel.k8s.io",
                                      "v4.channel.k8s.io", "v4.base64.channel.k8s.io"})
PORTFORWARD_WEBSOCKET_PROTOCOLS = frozenset({"v4.channel.k8s.io", "v4.base64.channel.k8s.io"})
#: Set in the WSGI environ once the connection belongs to the stream.
HIJACKED = "steer.hijacked"
#: Seconds the agent (and containerd behind it) has to answer the upgrade.
UPGRADE_TIMEOUT = 30.0
#: Most arguments of one command, and total bytes of them.
MAX_COMMAND_ARGS, MAX_COMMAND_BYTES = 1024, 64 * 1024
_OPTION_PARAMS = (("stdin", "input"), ("stdout", "output"), ("stderr", "error"), ("tty", "tty"))


@dataclasses.dataclass(frozen=True)
class Target:
    """Where a stream goes: the node agent's address and the path on it."""

    node_name: str
    host: str
    port: int
    path: str


def _values(params, name):
    """Every value of a query parameter (falcon gives a str, or a list when repeated)."""
    value = params.get(name)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _flag(params, name, default=False):
    values = _values(params, name)
    if not values:
        return default
    return values[-1].lower() in ("true", "1", "yes", "")


def exec_query(sub, params):
    """Return kubelet's query for exec or attach: command=..., input/output/error/tty=1."""
    options = {"stdin": _flag(params, "stdin"), "stdout": _flag(params, "stdout", True),
               "stderr": _flag(params, "stderr", True), "tty": _flag(params, "tty")}
    if options["tty"]:
        options["stderr"] = False       # a terminal merges stderr into stdout
    if not (options["stdin"] or options["stdout"] or options["stderr"]):
        raise errors.BadRequest("you must specify at least 1 of stdin, stdout, stderr")
    query = []
    if sub == "exec":
        command = _values(params, "command")
        if not command:
            raise errors.BadRequest("you must specify at least one command for the container")
        if len(command) > MAX_COMMAND_ARGS or sum(map(len, command)) > MAX_COMMAND_BYTES:
            raise errors.BadRequest(f"the command is too long: at most {MAX_COMMAND_ARGS} "
                                    f"arguments and {MAX_COMMAND_BYTES} bytes")
        query += [("command", arg) for arg in command]
    query += [(kubelet, "1") for option, kubelet in _OPTION_PARAMS if options[option]]
    return query


def portforward_query(params):
    """Return kubelet's query for port-forward: port=N per requested port (WebSocket only)."""
    query = []
    for value in _values(params, "ports"):
        for port in value.split(","):
            port = port.strip()
            if not (port.isdigit() and 0 < int(port) < 65536):
                raise errors.BadRequest(f"invalid port {port[:20]!r}: want 1-65535")
            query.append(("port", port))
    return query


def check_websocket_protocols(sub, offered):
    """Refuse (400) a WebSocket upgrade whose subprotocols containerd cannot speak."""
    protocols = [p.strip() for p in (offered or "").split(",") if p.strip()]
    supported = PORTFORWARD_WEBSOCKET_PROTOCOLS if sub == "portforward" \
        else EXEC_WEBSOCKET_PROTOCOLS
    if protocols and not supported.intersection(protocols):
        raise errors.BadRequest(
            f"none of the requested WebSocket subprotocols {protocols} is supported for "
            f"pods/{sub}; supported: {sorted(supported)}, or SPDY/3.1 (kubectl falls back "
            "to it)")


class PodStreams:
    """Prepare and proxy the streaming subresources of pods."""

    def __init__(self, service, kubelet_tls=None, upgrade_timeout=UPGRADE_TIMEOUT):
        self.service = service
        self.kubelet_tls = kubelet_tls
        self.upgrade_timeout = upgrade_timeout

    def target(self, sub, namespace, name, params):
        """Check the pod and options; return the Target of the stream (4xx/503 if none)."""
        pod = self.service.get(kinds.PODS, namespace, name)
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        node_name = spec.get("nodeName")
        if not node_name:
            raise errors.BadRequest(f"pod {name} does not have a host assigned")
        parts = [namespace, name]
        if sub == "portforward":
            query = portforward_query(params)
        else:
            phase = status.get("phase")
            if phase in ("Succeeded", "Failed"):
                doing = "exec into" if sub == "exec" else "attach to"
                raise errors.BadRequest(f"cannot {doing} a container in a completed pod; "
                                        f"current phase is {phase}")
            parts.append(subresources.container_for(pod, _last(params, "container")))
            query = exec_query(sub, params)
        host, port = subresources.agent_address(self.service, node_name)
        path = "/" + AGENT_PATHS[sub] + "/" + "/".join(
            urllib.parse.quote(part, safe="") for part in parts)
        if query:
            path += "?" + urllib.parse.urlencode(query)
        return Target(node_name, host, port, path)

    def serve(self, req, resp, sub, namespace, name):
        """Proxy one upgrade request; on success the connection is the stream's."""
        if not upgrade.is_upgrade(req.get_header("Connection"), req.get_header("Upgrade")):
            raise errors.BadRequest("Upgrade request required")
        client = req.env.get("gunicorn.socket")
        if client is None or req.env.get("HTTP_VERSION") == "2":
            raise errors.BadRequest("switching protocols needs an HTTP/1.1 connection")
        _authorize_create(req)
        if (req.get_header("Upgrade") or "").strip().lower() == "websocket":
            check_websocket_protocols(sub, req.get_header("Sec-WebSocket-Protocol"))
        target = self.target(sub, namespace, name, req.params)
        headers = upgrade.upgrade_headers(lambda header: [req.get_header(header) or ""])
        upstream = self._connect(target)
        try:
            head = self._request(upstream, target, req.method, headers)
            if head.status != 101:
                text = subresources._short_message(upgrade.read_body(upstream, head, 1024))
                raise subresources._agent_error(
                    head.status, text or f"the node agent of {target.node_name} answered "
                                         f"{head.status} to the upgrade")
            req.env[HIJACKED] = True
            resp.status = falcon.HTTP_101
            client.sendall(head.switch_bytes() + head.rest)
            ended = upgrade.splice(client, upstream)
            log.info("event=stream_ended sub=%s namespace=%s pod=%s node=%s why=%s", sub,
                     namespace, name, target.node_name, ended)
        finally:
            upstream.close()

    def _connect(self, target):
        if self.kubelet_tls is None:
            raise errors.ServiceUnavailable(subresources.NO_KUBELET_CLIENT)
        # A stream may idle for hours: keepalives notice an agent whose machine vanished.
        return subresources.dial_agent(self.kubelet_tls, target.host, target.port,
                                       target.node_name, keepalive=True)

    def _request(self, upstream, target, method, headers):
        where = f"the node agent at {target.host}:{target.port}"
        try:
            upstream.settimeout(self.upgrade_timeout)
            upstream.sendall(upgrade.request_bytes(method, target.path,
                                                   f"{target.host}:{target.port}", headers))
            return upgrade.read_response_head(upstream, self.upgrade_timeout)
        except ValueError as exc:
            raise errors.BadRequest(str(exc)) from None
        except (OSError, upgrade.UpgradeError) as exc:
            raise errors.ServiceUnavailable(f"{where} failed the upgrade: {exc}") from None


def _last(params, name):
    values = _values(params, name)
    return values[-1] if values else None


def _authorize_create(req):
    """A WebSocket upgrade (GET) must also be allowed ``create``, as a SPDY POST is."""
    if req.method == "POST":
        return
    auth = context.current.get()
    info = req.context.get("request_info")
    if auth is None or info is None:
        return      # authorization is off for this request (no middleware, or tests)
    auth.authorizer.check(auth.user, dataclasses.replace(info, verb="create"))


def hijackable(app):
    """Wrap the WSGI app: after a stream took the connection over, write no response.

    Raising StopIteration out of the app is how gunicorn's workers (gevent and gthread)
    are told to close a connection without writing to it any more.
    """
    def wsgi(environ, start_response):
        result = app(environ, start_response)
        if environ.get(HIJACKED):
            close = getattr(result, "close", None)
            if close is not None:
                close()
            raise StopIteration("the connection was upgraded and its stream has ended")
        return result
    return wsgi
