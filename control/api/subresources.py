"""The pods/binding and pods/log subresources.

A binding assigns a pod to a node, as the scheduler does: it sets spec.nodeName
once and marks the pod PodScheduled. A log request is proxied to the node agent
of the pod's node, at the path kubelet serves (/containerLogs/{ns}/{pod}/{container}),
and streamed back as it arrives, so ``kubectl logs -f`` follows the container.

The agent is reached with the kubelet client context (--kubelet-client-certificate,
--kubelet-client-key, --kubelet-certificate-authority) as kube-apiserver reaches
kubelet: over TLS at the node's InternalIP and daemon endpoint port, its serving
certificate verified against the CA for the node's name (a certificate naming
another node is refused), the API server presenting its own client certificate.
Only a text/plain 200 is streamed on; an agent's error body is never echoed beyond
one short line. Without the context no agent is dialled: pods/log answers 503 naming
the flags (never plain HTTP).
"""

import http.client
import re
import socket
import ssl
import urllib.parse

from control import errors
from control.objects import kinds, meta

BIND_RETRIES = 5
#: The only node address the agent is dialled at: an InternalIP needs no name
#: resolution, and a name the node reports would let it point the proxy elsewhere.
ADDRESS_TYPES = ("InternalIP",)
#: Longest agent error message passed on to the client, in characters.
AGENT_MESSAGE_CHARS = 200
#: Query parameters of a log request the agent understands, passed on as given.
LOG_PARAMS = ("follow", "previous", "timestamps", "tailLines", "sinceSeconds", "sinceTime",
              "limitBytes")
CONNECT_TIMEOUT = 5.0
#: Seconds to wait for a (non-follow) log response; following waits forever.
READ_TIMEOUT = 60.0
CHUNK = 64 * 1024


def _binding_conflict(name, message):
    return errors.Conflict(f'Operation cannot be fulfilled on pods/binding "{name}": {message}',
                           name=name, kind="pods/binding")


def bind(service, namespace, name, binding):
    """Assign pod ``name`` to the node a v1 Binding targets; return a Success Status."""
    target = binding.get("target") or {}
    binding_name = (binding.get("metadata") or {}).get("name")
    if name is None:
        name = binding_name
    elif binding_name != name:
        raise errors.BadRequest("name in URL does not match name in Binding object")
    if target.get("kind") not in (None, "", "Node"):
        raise errors.Invalid("Binding", name or "", [(
            "target.kind", "FieldValueNotSupported",
            f'Unsupported value: "{target["kind"]}": supported values: "Node"')])
    if not name or not target.get("name"):
        field = "metadata.name" if not name else "target.name"
        raise errors.Invalid("Binding", name or "", [(field, "FieldValueRequired",
                                                      "Required value")])
    wanted_uid = (binding.get("metadata") or {}).get("uid")
    for _ in range(BIND_RETRIES):
        pod = service.registry.get(kinds.PODS, namespace, name)
        pod_meta = pod["metadata"]
        if wanted_uid and wanted_uid != pod_meta.get("uid"):
            raise _binding_conflict(name, f"the UID in the binding ({wanted_uid}) does not "
                                          f"match the pod's ({pod_meta.get('uid')})")
        if pod_meta.get("deletionTimestamp"):
            raise _binding_conflict(name, f"pod {name} is being deleted, cannot be assigned "
                                          "to a host")
        spec = pod.setdefault("spec", {})
        if spec.get("nodeName"):
            raise _binding_conflict(name, f'pod {name} is already assigned to node '
                                          f'"{spec["nodeName"]}"')
        if spec.get("schedulingGates"):
            raise _binding_conflict(name, f"pod {name} has non-empty .spec.schedulingGates")
        spec["nodeName"] = target["name"]
        pod_meta.setdefault("annotations", {}).update(
            (binding.get("metadata") or {}).get("annotations") or {})
        if not pod_meta["annotations"]:
            del pod_meta["annotations"]
        _set_condition(pod.setdefault("status", {}), "PodScheduled", "True",
                       meta.timestamp(service.clock()))
        try:
            service.registry.update(kinds.PODS, pod)
            break
        except errors.Conflict:
            continue
    else:
        raise _binding_conflict(name, "the pod kept changing while it was bound; try again")
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "code": 201}


def _set_condition(status, kind, value, now):
    conditions = status.setdefault("conditions", [])
    for condition in conditions:
        if condition.get("type") == kind:
            if condition.get("status") != value:
                condition["lastTransitionTime"] = now
            condition["status"] = value
            return
    conditions.append({"type": kind, "status": value, "lastProbeTime": None,
                       "lastTransitionTime": now})


NO_KUBELET_CLIENT = ("the API server has no client certificate for the agents: start it with "
                     "--kubelet-client-certificate/--kubelet-client-key/"
                     "--kubelet-certificate-authority")


class PodLogs:
    """Open a pod's container log on its node agent, as a stream of bytes."""

    def __init__(self, service, kubelet_tls=None):
        self.service = service
        self.kubelet_tls = kubelet_tls      # ssl.SSLContext, see kubelet_client_context

    def open(self, namespace, name, params):
        """Return an iterator of log bytes; ``params`` are the request's query parameters."""
        pod = self.service.get(kinds.PODS, namespace, name)
        container = container_for(pod, params.get("container"))
        node_name = pod.get("spec", {}).get("nodeName")
        if not node_name:
            raise errors.BadRequest(f"pod {name} is not scheduled to a node yet")
        host, port = self._agent_address(node_name)
        query = urllib.parse.urlencode({k: params[k] for k in LOG_PARAMS
                                        if params.get(k) not in (None, "", "false")})
        path = "/containerLogs/" + "/".join(urllib.parse.quote(part, safe="") for part in
                                            (namespace, name, container))
        return self._stream(host, port, path + ("?" + query if query else ""),
                            follow=params.get("follow") == "true", node_name=node_name,
                            limit=_limit_bytes(params.get("limitBytes")))

    def _agent_address(self, node_name):
        return agent_address(self.service, node_name)

    def _stream(self, host, port, path, follow, node_name, limit=None):
        if self.kubelet_tls is None:
            raise errors.ServiceUnavailable(NO_KUBELET_CLIENT)
        conn = http.client.HTTPConnection(host, port, timeout=CONNECT_TIMEOUT)
        conn.sock = dial_agent(self.kubelet_tls, host, port, node_name)
        try:
            conn.sock.settimeout(None if follow else READ_TIMEOUT)
            conn.request("GET", path)
            response = conn.getresponse()
        except OSError as exc:
            conn.close()
            raise errors.ServiceUnavailable(f"the node agent at {host}:{port} cannot be "
                                            f"reached: {exc}") from None
        if response.status != 200:
            text = _short_message(response.read(1024))
            conn.close()
            raise _agent_error(response.status, text or f"the node agent at {host}:{port} "
                                                        f"answered {response.status}")
        content_type = (response.getheader("Content-Type") or "").split(";")[0].strip()
        if content_type.lower() != "text/plain":
            conn.close()
            error = errors.ApiError(f"the node agent at {host}:{port} answered with "
                                    f"{content_type or 'no content type'}, not text/plain")
            error.code = 502
            raise error
        return _chunks(conn, response, limit)


def agent_address(service, node_name):
    """Return (InternalIP, port) of the agent of node ``node_name`` (503 if it has none)."""
    try:
        node = service.get(kinds.NODES, None, node_name)
    except errors.NotFound:
        raise errors.ServiceUnavailable(f'node "{node_name}" of the pod does not exist, so '
                                        "its agent cannot be reached") from None
    try:
        return agent_endpoint(node)
    except ValueError as exc:
        raise errors.ServiceUnavailable(f'node "{node_name}" {exc}') from None


def agent_endpoint(node):
    """(host, port) a Node reports for its agent; ValueError saying what is missing."""
    status = node.get("status") or {}
    by_type = {}
    for address in status.get("addresses") or []:
        by_type.setdefault(address.get("type"), address.get("address"))
    host = next((by_type[t] for t in ADDRESS_TYPES if by_type.get(t)), None)
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    if not host or not port:
        raise ValueError("reports no agent endpoint (an InternalIP in status.addresses and "
                         "status.daemonEndpoints.kubeletEndpoint.Port): its agent has not "
                         "registered yet")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ValueError("reports an invalid agent port")
    return host, port


def dial_agent(kubelet_tls, host, port, node_name, timeout=CONNECT_TIMEOUT, keepalive=False):
    """A mutual-TLS socket to the agent at host:port that proved it is ``node_name``.

    Its serving certificate must name the node (a Node object may claim any address).
    503 with what went wrong otherwise. ``keepalive`` for streams that idle for hours.
    """
    where = f"the node agent at {host}:{port}"
    try:
        raw = socket.create_connection((host, port), timeout)
    except OSError as exc:
        raise errors.ServiceUnavailable(f"{where} cannot be reached: {exc}") from None
    if keepalive:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    try:
        return kubelet_tls.wrap_socket(raw, server_hostname=node_name)
    except ssl.SSLCertVerificationError as exc:
        raw.close()
        raise errors.ServiceUnavailable(
            f'{where} is not node "{node_name}": its serving certificate failed '
            f"verification ({exc.verify_message})") from None
    except OSError as exc:
        raw.close()
        raise errors.ServiceUnavailable(f"{where} cannot be reached: {exc}") from None


def _limit_bytes(value):
    try:
        limit = int(value)
    except (TypeError, ValueError):
        return None
    return limit if limit > 0 else None


def _short_message(body):
    """One printable line of at most AGENT_MESSAGE_CHARS from an agent's error body."""
    lines = body.decode("utf-8", "replace").strip().splitlines()
    text = re.sub(r"[^\x20-\x7e]", "?", lines[0] if lines else "")
    return text[:AGENT_MESSAGE_CHARS]


def _chunks(conn, response, limit=None):
    """Yield the agent's response as it arrives, at most ``limit`` bytes; then close."""
    left = limit
    try:
        while left is None or left > 0:
            data = response.read1(CHUNK if left is None else min(CHUNK, left))
            if not data:
                return
            if left is not None:
                left -= len(data)
            yield data
    except OSError:
        return      # the agent went away mid-stream: end the log as kubelet would
    finally:
        conn.close()


def kubelet_client_context(ca_file, cert_file=None, key_file=None):
    """Return the TLS context the API server reaches agents with (kube-apiserver's flags)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cafile=ca_file)
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context


def _agent_error(code, message):
    for cls in (errors.BadRequest, errors.Unauthorized, errors.Forbidden, errors.NotFound):
        if cls.code == code:
            return cls(message)
    error = errors.ApiError(message)
    error.code = code if 400 <= code < 600 else 500
    return error


def container_for(pod, container):
    """Return the container a log request means, as kube-apiserver picks it."""
    spec = pod.get("spec", {})
    names = [c.get("name") for key in ("initContainers", "containers", "ephemeralContainers")
             for c in spec.get(key) or []]
    name = pod["metadata"]["name"]
    if container:
        if container not in names:
            raise errors.BadRequest(f"container {container} is not valid for pod {name}")
        return container
    regular = spec.get("containers") or []
    if len(regular) == 1:
        return regular[0]["name"]
    if not regular:
        raise errors.BadRequest(f"pod {name} does not have a container")
    raise errors.BadRequest(f"a container name must be specified for pod {name}, choose one "
                            f"of: [{' '.join(names)}]")
