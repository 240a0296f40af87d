"""Liveness, readiness and startup probes: when to run them, what their results mean.

``ProbeState`` is pure bookkeeping with Kubernetes' defaults (periodSeconds 10,
timeoutSeconds 1, successThreshold 1, failureThreshold 3, initialDelaySeconds 0):
a probe is due ``initialDelaySeconds`` after the container started, then every
period; its result flips only after ``successThreshold`` consecutive successes or
``failureThreshold`` consecutive failures. As in kubelet, readiness starts as
failure, liveness as success, startup as unknown; liveness and readiness wait
until the startup probe (if any) has succeeded.

``Prober`` runs one check (exec through the runtime, httpGet, tcpSocket). Pod IPs
of the cri runtime exist only in the node's network namespace (the runtime's
``netns_path``), so TCP and HTTP probes open their sockets there (agent/netns.py).
"""

import http.client
import ssl

from agent import netns

DEFAULTS = {"periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1,
            "failureThreshold": 3, "initialDelaySeconds": 0}
KINDS = ("startup", "liveness", "readiness")


class ProbeState:
    """The schedule and the consecutive counts of one probe of one container attempt."""

    def __init__(self, kind, probe, started_at):
        self.kind, self.probe = kind, probe
        value = {k: probe.get(k) if probe.get(k) is not None else v for k, v in DEFAULTS.items()}
        self.period = max(1, value["periodSeconds"])
        self.timeout = max(1, value["timeoutSeconds"])
        self.success_threshold = max(1, value["successThreshold"])
        self.failure_threshold = max(1, value["failureThreshold"])
        self.next_due = started_at + max(0, value["initialDelaySeconds"])
        self.successes = self.failures = 0
        self.result = {"readiness": False, "liveness": True, "startup": None}[kind]
        self.message = ""

    def due(self, now):
        return now >= self.next_due

    def record(self, ok, now, message=""):
        """Count one outcome at ``now``; return True when the result changed."""
        self.next_due = now + self.period
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            new = True if self.successes >= self.success_threshold else self.result
        else:
            self.failures, self.successes = self.failures + 1, 0
            new = False if self.failures >= self.failure_threshold else self.result
            self.message = message
        changed, self.result = new != self.result, new
        return changed


def port_of(port, container):
    """Resolve a probe's port (a number or a containerPort name)."""
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for item in container.get("ports") or ():
        if item.get("name") == port:
            return int(item["containerPort"])
    raise ValueError(f"port {port!r} is not a number nor a named port of {container.get('name')}")


def _connection_class(https, netns_path):
    """An HTTP(S)Connection class whose socket is opened in ``netns_path``."""
    base = http.client.HTTPSConnection if https else http.client.HTTPConnection

    class Connection(base):
        def connect(self):
            self.sock = netns.connect(netns_path, (self.host, self.port), self.timeout)
            if https:
                self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)
    return Connection


class Prober:
    """Run probe checks; ``runtime`` runs exec probes inside the container's context."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.netns_path = getattr(runtime, "netns_path", None)

    def run(self, state, record, container, pod_ip):
        """Return (ok, message) for one run of the probe ``state`` against ``record``."""
        probe = state.probe
        try:
            if "exec" in probe:
                command = (probe["exec"] or {}).get("command") or []
                code, output = self.runtime.exec(record.container_id, command, state.timeout)
                return code == 0, f"exec {command} exited {code}: {output.strip()[:200]}"
            if "httpGet" in probe:
                return self._http(probe["httpGet"], container, pod_ip, state.timeout,
                                  self.netns_path)
            if "tcpSocket" in probe:
                spec = probe["tcpSocket"]
                port = port_of(spec.get("port"), container)
                with netns.connect(self.netns_path, (spec.get("host") or pod_ip, port),
                                   state.timeout):
                    return True, ""
            return True, "no handler"
        except (OSError, ValueError, http.client.HTTPException) as exc:
            return False, str(exc) or type(exc).__name__

    @staticmethod
    def _http(spec, container, pod_ip, timeout, netns_path=None):
        port = port_of(spec.get("port"), container)
        host = spec.get("host") or pod_ip
        https = spec.get("scheme") == "HTTPS"
        if https:
            # As kubelet: an HTTPS probe does not verify the container's certificate.
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            conn = _connection_class(True, netns_path)(host, port, timeout=timeout,
                                                       context=context)
        else:
            conn = _connection_class(False, netns_path)(host, port, timeout=timeout)
        try:
            headers = {h["name"]: h.get("value", "") for h in spec.get("httpHeaders") or ()}
            headers.setdefault("User-Agent", "kube-probe/1.32")
            conn.request("GET", spec.get("path") or "/", headers=headers)
            response = conn.getresponse()
            response.read(10240)
            ok = 200 <= response.status < 400
            return ok, "" if ok else f"HTTP probe failed with statuscode: {response.status}"
        finally:
            conn.close()
