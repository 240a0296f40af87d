"""End to end: `steer up --addons dns,ingress` on a 2-node containers cluster.

Two apps (the hello image, "one" and "two" as their greeting) behind one Ingress
by host and by path, TLS terminated with a Secret (a certificate made here, the
SNI host checked), and an endpoint change (scale 2 -> 3, then a rolling restart)
while a client loops through the Ingress with no failed request. The client is
in the cluster's LAN namespace and speaks to the nodes' LAN addresses on ports 80
and 443 (the DaemonSet's hostPorts): nothing in this machine's namespace.
"""

import base64
import json
import os
import ssl
import threading
import time

import pytest
import yaml

from agent import netns
from cli import local_containers, local_images, local_ingress, local_ingress_image, local_network
from control.client import RestClient, kubeconfig
from control.objects import kinds
from tests.support.apiproc import eventually
from tests.unit.control.ingress_objects import self_signed

from .conftest import SHORT_TIMINGS, E2ECluster

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(local_containers.unavailable_reason() is not None,
                                 reason=f"no containers here: "
                                        f"{local_containers.unavailable_reason()}"),
              pytest.mark.skipif(local_ingress_image.unavailable_reason() is not None,
                                 reason=f"no ingress image: "
                                        f"{local_ingress_image.unavailable_reason()}")]

INGRESSES = kinds.lookup("networking.k8s.io", "v1", "ingresses")
SECURE_HOST = "secure.example.test"


class IngressCluster(E2ECluster):
    """E2ECluster whose `steer up` also starts the ingress addon."""

    def up(self):
        self.steer("up", "--nodes", str(self.nodes), "--runtime", self.runtime,
                   "--node-ip-prefix", self.node_prefix, "--addons", "dns,ingress",
                   *SHORT_TIMINGS, timeout=300)
        with open(os.path.join(self.home, "config")) as f:
            self.url = yaml.safe_load(f)["apiServer"]
        self.rest = RestClient.from_config(kubeconfig.load(self.kubeconfig), timeout=10)
        return self


def app(name):
    labels = {"app": name}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
         "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels}, "spec": {
                 "terminationGracePeriodSeconds": 10,
                 "containers": [{"name": "hello", "image": local_images.HELLO_IMAGE,
                                 "env": [{"name": "GREETING", "value": name},
                                         {"name": "DRAIN_SECONDS", "value": "2"}],
                                 "ports": [{"name": "http", "containerPort": 8080}],
                                 "readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                                                    "periodSeconds": 1}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
         "spec": {"selector": labels, "ports": [{"name": "http", "port": 80,
                                                 "targetPort": "http"}]}}]


def path(path_text, path_type, service, port=None):
    return {"path": path_text, "pathType": path_type,
            "backend": {"service": {"name": service, "port": port or {"number": 80}}}}


def ingress():
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "hello"},
            "spec": {"ingressClassName": "steer",
                     "tls": [{"hosts": [SECURE_HOST], "secretName": "secure-tls"}],
                     "rules": [
                         {"host": "one.example.test", "http": {"paths": [
                             path("/", "Prefix", "one")]}},
                         {"host": "two.example.test", "http": {"paths": [
                             path("/", "Prefix", "two", {"name": "http"})]}},
                         {"host": "both.example.test", "http": {"paths": [
                             path("/index.html", "Exact", "two"), path("/", "Prefix", "one")]}},
                         {"host": SECURE_HOST, "http": {"paths": [
                             path("/", "Prefix", "two")]}}]}}


def tls_secret(cert, key):
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "secure-tls"},
            "data": {"tls.crt": base64.b64encode(cert).decode(),
                     "tls.key": base64.b64encode(key).decode()}}


@pytest.fixture(scope="module")
def certificate():
    return self_signed(SECURE_HOST)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, certificate):
    c = IngressCluster(tmp_path_factory.mktemp("steer-home"), nodes=2, runtime="cri")
    started = time.monotonic()
    try:
        c.up()
        c.steer("apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in (
            *app("one"), *app("two"), tls_secret(*certificate), ingress())))
        yield c
    finally:
        c.stop()
        print(f"\ningress e2e module: {time.monotonic() - started:.0f} s with the cluster")


@pytest.fixture(scope="module")
def lan(cluster):
    net = local_network.LocalNetwork.from_record(cluster.local.state["network"])
    return os.path.join(local_network.NETNS_DIR, net.lan_netns), [n.address for n in net.nodes]


def http_get(lan_path, address, host, target="/", port=80, tls_context=None, timeout=5):
    """One request from the LAN namespace: (status, body text)."""
    sock = netns.connect(lan_path, (address, port), timeout=timeout)
    try:
        if tls_context is not None:
            sock = tls_context.wrap_socket(sock, server_hostname=host)
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                     .encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body.decode(errors="replace").strip()


def routed(lan, host, target="/", **kwargs):
    lan_path, addresses = lan
    return [http_get(lan_path, a, host, target, **kwargs) for a in addresses]


def test_the_addon_runs_on_every_node_and_the_ingress_gets_their_addresses(cluster, lan):
    eventually(lambda: cluster.rolled_out("one", replicas=2) and
               cluster.rolled_out("two", replicas=2), timeout=150, logs=cluster.logs,
               message="the two apps to roll out")

    def status_addresses():
        found = cluster.rest.get(INGRESSES, "default", "hello").get("status") or {}
        return sorted(i.get("ip") for i in (found.get("loadBalancer") or {}).get("ingress")
                      or [])
    eventually(lambda: status_addresses() == sorted(lan[1]), timeout=150, logs=cluster.logs,
               message=f"the Ingress's status to name the nodes {lan[1]}")
    assert cluster.rest.get(kinds.lookup("networking.k8s.io", "v1", "ingressclasses"), None,
                            "steer")["spec"]["controller"] == local_ingress.CONTROLLER_NAME


def test_two_apps_by_host_and_by_path(cluster, lan):
    def answers(host, target="/"):
        return [(status, body.split(" from ")[0]) for status, body in
                routed(lan, host, target)]
    eventually(lambda: answers("one.example.test") == [(200, "one")] * 2, timeout=60,
               logs=cluster.logs, message="one.example.test to reach app one on both nodes")
    assert answers("two.example.test") == [(200, "two")] * 2
    assert answers("both.example.test", "/index.html") == [(200, "two")] * 2
    assert answers("both.example.test", "/") == [(200, "one")] * 2
    # No rule and no default backend: nginx's 404.
    assert [s for s, _ in routed(lan, "nobody.example.test")] == [404, 404]


def test_tls_is_terminated_with_the_secret_for_its_sni_host(cluster, lan, certificate,
                                                            tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_bytes(certificate[0])
    context = ssl.create_default_context(cafile=str(ca))
    for status, body in routed(lan, SECURE_HOST, port=443, tls_context=context):
        assert status == 200 and body.startswith("two from ")
    # Another name has no certificate: the handshake is refused.
    with pytest.raises(ssl.SSLError):
        routed(lan, "one.example.test", port=443, tls_context=context)


class Looper:
    """A client looping GET / through the Ingress (one.example.test); every answer kept."""

    def __init__(self, lan):
        self.lan_path, self.address = lan[0], lan[1][0]
        self.results = []                       # (monotonic time, status or error, body)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self.stopping.is_set():
            now = time.monotonic()
            try:
                status, body = http_get(self.lan_path, self.address, "one.example.test")
            except OSError as exc:
                status, body = repr(exc), ""
            self.results.append((now, status, body))
            self.stopping.wait(0.02)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(10)

    def failures(self):
        return [r for r in self.results if r[1] != 200]

    def first_seen(self, pod_name):
        return next((t for t, s, body in self.results if body.endswith(f" {pod_name}")), None)


def ready_in_slices(cluster, service):
    slices = cluster.rest.list(kinds.ENDPOINTSLICES, "default",
                               label_selector=f"kubernetes.io/service-name={service}")["items"]
    return {ep["targetRef"]["name"] for s in slices for ep in s.get("endpoints") or []
            if (ep.get("conditions") or {}).get("ready") and ep.get("targetRef")}


def test_endpoint_changes_are_followed_with_no_failed_request(cluster, lan):
    deployments = kinds.DEPLOYMENTS
    with Looper(lan) as looper:
        eventually(lambda: len(looper.results) > 10, timeout=30, message="the client to loop")
        before = ready_in_slices(cluster, "one")
        cluster.rest.patch(deployments, "default", "one", {"spec": {"replicas": 3}})
        eventually(lambda: len(ready_in_slices(cluster, "one")) == 3, timeout=90,
                   logs=cluster.logs, message="a third pod of app one to be ready")
        ready_at = time.monotonic()
        [new_pod] = ready_in_slices(cluster, "one") - before
        eventually(lambda: looper.first_seen(new_pod) is not None, timeout=30,
                   logs=cluster.logs, message=f"the Ingress to send requests to {new_pod}")
        followed = looper.first_seen(new_pod) - ready_at
        restarted = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        cluster.rest.patch(deployments, "default", "one", {"spec": {"template": {"metadata": {
            "annotations": {"kubectl.kubernetes.io/restartedAt": restarted}}}}})
        old = ready_in_slices(cluster, "one")
        eventually(lambda: cluster.rolled_out("one", replicas=3) and
                   not (ready_in_slices(cluster, "one") & old), timeout=150,
                   logs=cluster.logs, message="the rolling restart of app one")
        replaced = ready_in_slices(cluster, "one")
        eventually(lambda: all(looper.first_seen(p) for p in replaced), timeout=30,
                   logs=cluster.logs, message="the Ingress to reach every new pod")
    print(f"\nendpoint change followed {max(followed, 0):.2f} s after the slice said ready; "
          f"{len(looper.results)} requests, {len(looper.failures())} failed")
    assert looper.failures() == [], looper.failures()[:10]
