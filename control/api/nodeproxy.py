"""GET /api/v1/nodes/{name}/proxy/{path}: the agent's read-only paths through the API server.

As kube-apiserver's nodes/proxy subresource, for callers that cannot reach an agent
themselves (a Prometheus in a pod: a local cluster's agents listen on this machine's
loopback) or that hold a ServiceAccount token rather than a client certificate. The
caller needs ``get`` on ``nodes/proxy`` (RBAC, checked by the authorization filter from
the URL like every resource request); the API server then asks the agent over the same
mutual TLS as pods/log (its kubelet client certificate; the agent's serving certificate
must name the node). Only GET of the agent's monitoring paths is passed on (PROXIED_PATHS):
logs, exec and port-forward keep their own subresources and their own RBAC.
"""

import http.client

import falcon

from control import errors
from control.api import subresources
from control.objects import kinds

#: Agent paths the proxy passes on (kubelet serves these to a nodes/proxy holder too).
PROXIED_PATHS = ("healthz", "metrics", "metrics/resource", "stats/summary")
CONNECT_TIMEOUT, READ_TIMEOUT = 2.0, 10.0
MAX_BODY_BYTES = 32 * 2**20


class NodeProxy:
    """Fetch one agent path for the caller."""

    def __init__(self, service, kubelet_tls):
        self.service, self.kubelet_tls = service, kubelet_tls

    def on_get(self, req, resp, name, path):
        if path not in PROXIED_PATHS:
            raise errors.NotFound(
                f'the proxy of node "{name}" serves only {", ".join(PROXIED_PATHS)}, not '
                f'"{path}": use pods/log, pods/exec or pods/portforward for the others')
        if self.kubelet_tls is None:
            raise errors.ServiceUnavailable(subresources.NO_KUBELET_CLIENT)
        node = self.service.get(kinds.NODES, None, name)
        try:
            host, port = subresources.agent_endpoint(node)
        except ValueError as exc:
            raise errors.ServiceUnavailable(f'node "{name}" {exc}') from None
        status, content_type, body = fetch(self.kubelet_tls, name, host, port, "/" + path,
                                           req.query_string)
        resp.status = falcon.code_to_http_status(status)
        resp.content_type = content_type
        resp.data = body


def fetch(kubelet_tls, node_name, host, port, path, query=""):
    """(status, content type, body) of GET path from the agent (503 when it cannot answer)."""
    conn = http.client.HTTPConnection(host, port, timeout=CONNECT_TIMEOUT)
    where = f'the agent of node "{node_name}"'
    try:
        conn.sock = subresources.dial_agent(kubelet_tls, host, port, node_name, CONNECT_TIMEOUT)
        conn.sock.settimeout(READ_TIMEOUT)
        conn.request("GET", path + (f"?{query}" if query else ""))
        response = conn.getresponse()
        body = response.read(MAX_BODY_BYTES + 1)
    except OSError as exc:
        raise errors.ServiceUnavailable(f"{where} did not answer: {exc}") from None
    finally:
        conn.close()
    if len(body) > MAX_BODY_BYTES:
        raise errors.ServiceUnavailable(f"{where} answered more than {MAX_BODY_BYTES} bytes")
    return response.status, response.getheader("Content-Type") or "text/plain", body


def add_routes(app, service, kubelet_tls):
    """Serve the proxy on ``app`` (a literal prefix: it wins over the generic routes)."""
    app.add_route("/api/v1/nodes/{name}/proxy/{path:path}", NodeProxy(service, kubelet_tls))
