"""A real `steer-proxy` in front of two HTTP backends the test runs itself.

The Service has no selector, so no controller is needed: the test writes its
Endpoints, as a user may. The API server allocates clusterIPs from 127.64.0.0/16
(loopback addresses bind without configuration on Linux), as `steer up` runs it.
"""

import http.client
import http.server
import os
import socket
import subprocess
import sys
import threading
import urllib.request

from cli.local_store import free_ports
from control.objects.kinds import ENDPOINTS, SERVICES
from tests.support import children
from tests.support.apiproc import ROOT, eventually

NODE_IP = "127.0.1.1"


SERVER_ARGS = ["--service-cluster-ip-range", "127.64.0.0/16"]


class Backend:
    """A keep-alive HTTP server on 127.0.0.x answering its own name."""

    def __init__(self, name, ip):
        self.name = name

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(handler):  # noqa: N805 - the handler's self
                body = name.encode()
                handler.send_response(200)
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)

            def log_message(handler, *args):  # noqa: N805
                pass

        self.httpd = http.server.ThreadingHTTPServer((ip, 0), Handler)
        self.httpd.daemon_threads = True
        self.ip, self.port = self.httpd.server_address[:2]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class ProxyProcess:
    def __init__(self, server, base_dir):
        self.metrics_port = free_ports(1)[0]
        self.log_path = os.path.join(str(base_dir), "proxy.log")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agent.proxy",
                 "--kubeconfig", server.kubeconfig_for("proxy", "system:kube-proxy"),
                 "--node-ips", NODE_IP, "--metrics-addr", f"127.0.0.1:{self.metrics_port}",
                 "--connect-timeout", "1", "--log-level", "DEBUG"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
                env={**os.environ, "PYTHONPATH": ROOT})

    def logs(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-20000:]

    def stop(self):
        children.stop(self.proc)


def get(ip, port, timeout=5):
    """One request on a new connection; the backend's name, or None if it failed."""
    conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        conn.request("GET", "/")
        return conn.getresponse().read().decode()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def endpoints(*backends):
    subsets = [{"addresses": [{"ip": b.ip}], "ports": [{"name": "http", "port": b.port}]}
               for b in backends]
    return {"metadata": {"name": "echo", "namespace": "default"}, "subsets": subsets}


def test_proxy_serves_cluster_ip_and_node_port(server, tmp_path):
    rest = server.rest_client()
    one, two = Backend("one", "127.0.0.2"), Backend("two", "127.0.0.3")
    proxy = ProxyProcess(server, tmp_path)
    try:
        svc = rest.create(SERVICES, "default", {
            "metadata": {"name": "echo"},
            "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80,
                                                    "targetPort": 8080}]}})
        ip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
        assert ip.startswith("127.64.")
        rest.create(ENDPOINTS, "default", endpoints(one, two))

        seen = set()
        eventually(lambda: seen.add(get(ip, 80)) or {"one", "two"} <= seen, timeout=60,
                   message="answers from both backends through the clusterIP", logs=proxy.logs)
        assert {get(ip, 80) for _ in range(6)} == {"one", "two"}     # round-robin
        assert {get(NODE_IP, node_port) for _ in range(6)} == {"one", "two"}

        # A long-lived connection, established before its backend leaves the Endpoints.
        long_lived = None
        for _ in range(10):
            conn = http.client.HTTPConnection(ip, 80, timeout=10)
            conn.request("GET", "/")
            if conn.getresponse().read() == b"one":
                long_lived = conn
                break
            conn.close()
        assert long_lived is not None
        current = rest.get(ENDPOINTS, "default", "echo")
        rest.update(ENDPOINTS, "default", {**endpoints(two), "metadata": current["metadata"]})
        eventually(lambda: all(get(ip, 80) == "two" for _ in range(6)), timeout=60,
                   message="new connections only to the remaining backend", logs=proxy.logs)
        long_lived.request("GET", "/")
        assert long_lived.getresponse().read() == b"one"

        metrics = urllib.request.urlopen(
            f"http://127.0.0.1:{proxy.metrics_port}/metrics", timeout=5).read().decode()
        assert "steer_proxy_connections_accepted_total" in metrics
        assert urllib.request.urlopen(f"http://127.0.0.1:{proxy.metrics_port}/healthz",
                                      timeout=5).status == 200

        # Deleting the Service closes its listeners; the established connection lives on.
        rest.delete(SERVICES, "default", "echo")

        def refused():
            try:
                socket.create_connection((ip, 80), timeout=2).close()
            except ConnectionRefusedError:
                return True
            return False
        eventually(refused, timeout=60, message="the listener closed", logs=proxy.logs)
        long_lived.request("GET", "/")
        assert long_lived.getresponse().read() == b"one"
        long_lived.close()
    finally:
        proxy.stop()
        one.stop()
        two.stop()
