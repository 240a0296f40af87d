"""The DNS server as a process, watching a real API server: names follow the objects.

Services and Endpoints are written by hand (selectorless Services), so no
controller is needed; the server runs `python -m control.dns.server` with the
admin's kubeconfig, on port 0 of 127.0.0.1 (the ports come from its log line).
"""

import os
import re
import subprocess
import sys
import urllib.request

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype as rdt
import pytest

from control.client import NotFound
from control.objects import kinds
from tests.support import children
from tests.support.apiproc import ROOT, eventually
from tests.support.controlplane import ControlPlane, create_namespace
from tests.support.dns import rows

NS = "dns-it"
ZONE = "cluster.test"


def fqdn(name):
    return f"{name}.{NS}.svc.{ZONE}"


class DnsProcess:
    """`python -m control.dns.server` against ``server``; stopped by pid."""

    def __init__(self, server, base_dir):
        self.log_path = os.path.join(str(base_dir), "dns.log")
        self.argv = [sys.executable, "-m", "control.dns.server",
                     "--kubeconfig", server.kubeconfig, "--listen", "127.0.0.1:0",
                     "--metrics-addr", "127.0.0.1:0", "--cluster-domain", ZONE,
                     "--upstream-resolv-conf", "", "--ttl", "5", "--log-level", "DEBUG"]
        self.proc = None
        self.port = self.health = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=ROOT,
                                         env={**os.environ, "PYTHONPATH": ROOT})
        found = eventually(self._serving_line, timeout=30, message="the DNS server to listen",
                           logs=self.logs)
        self.port, self.health = int(found.group(1)), found.group(2)
        return self

    def _serving_line(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"the DNS server exited:\n{self.logs()}")
        return re.search(r"listen=127\.0\.0\.1:(\d+) metrics=(\S+) .*msg=serving", self.logs())

    def ready(self):
        try:
            return urllib.request.urlopen(f"http://{self.health}/readyz", timeout=2).status == 200
        except OSError:
            return False

    def ask(self, name, qtype=rdt.A, tcp=False):
        query = dns.message.make_query(name, qtype)
        send = dns.query.tcp if tcp else dns.query.udp
        return send(query, "127.0.0.1", timeout=5, port=self.port)

    def stop(self):
        """SIGTERM, then SIGKILL if it has not exited within 15 s."""
        children.stop(self.proc)

    def logs(self):
        if not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, errors="replace") as f:
            return f.read()[-12000:]


def service(name, cluster_ip=None, ports=(("http", 80),)):
    spec = {"ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": spec}


def endpoints(name, addresses, ports=(("http", 8080),)):
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": NS},
            "subsets": [{"addresses": addresses,
                         "ports": [{"name": n, "port": p, "protocol": "TCP"}
                                   for n, p in ports]}]}


@pytest.fixture(scope="module")
def cluster(server, rest, tmp_path_factory):
    create_namespace(rest, NS)
    rest.create(kinds.SERVICES, NS, service("web"))
    rest.create(kinds.SERVICES, NS, service("db", "None", [("pg", 5432)]))
    rest.create(kinds.ENDPOINTS, NS, endpoints("db", [
        {"ip": "10.244.1.5", "hostname": "db-0"}, {"ip": "10.244.2.6", "hostname": "db-1"}],
        [("pg", 5432)]))
    process = DnsProcess(server, tmp_path_factory.mktemp("dns"))
    try:
        process.start()
        eventually(process.ready, timeout=30, message="/readyz", logs=process.logs)
        yield process
    finally:
        process.stop()
    assert process.proc.returncode == 0, f"the DNS server did not stop cleanly:\n{process.logs()}"


def answers(process, name, qtype=rdt.A):
    return rows(process.ask(name, qtype).answer)


def test_services_and_headless_endpoints_resolve(cluster, rest):
    web_ip = rest.get(kinds.SERVICES, NS, "web")["spec"]["clusterIP"]
    assert answers(cluster, fqdn("web")) == [f"A {web_ip}"]
    assert rows(cluster.ask(fqdn("web"), tcp=True).answer) == [f"A {web_ip}"]
    assert answers(cluster, fqdn("db")) == ["A 10.244.1.5", "A 10.244.2.6"]
    assert answers(cluster, "db-1." + fqdn("db")) == ["A 10.244.2.6"]
    assert answers(cluster, "_pg._tcp." + fqdn("db"), rdt.SRV) == [
        f"SRV 0 50 5432 db-0.{fqdn('db')}.", f"SRV 0 50 5432 db-1.{fqdn('db')}."]
    assert answers(cluster, "_http._tcp." + fqdn("web"), rdt.SRV) == [
        f"SRV 0 100 80 {fqdn('web')}."]


def test_missing_names_and_names_outside(cluster):
    assert cluster.ask(fqdn("missing")).rcode() == dns.rcode.NXDOMAIN
    assert cluster.ask("db-9." + fqdn("db")).rcode() == dns.rcode.NXDOMAIN
    assert cluster.ask("example.com").rcode() == dns.rcode.SERVFAIL     # no upstream


def test_names_follow_changes(cluster, rest):
    def resolves(name, expected):
        return lambda: answers(cluster, name) == expected

    created = rest.create(kinds.SERVICES, NS, service("late"))
    late_ip = created["spec"]["clusterIP"]
    eventually(resolves(fqdn("late"), [f"A {late_ip}"]), message="a new Service",
               logs=cluster.logs)
    rest.update(kinds.ENDPOINTS, NS, {**rest.get(kinds.ENDPOINTS, NS, "db"), **endpoints(
        "db", [{"ip": "10.244.1.5", "hostname": "db-0"}, {"ip": "10.244.3.7"}],
        [("pg", 5432)])})
    eventually(resolves(fqdn("db"), ["A 10.244.1.5", "A 10.244.3.7"]),
               message="changed Endpoints", logs=cluster.logs)
    assert answers(cluster, "10-244-3-7." + fqdn("db")) == ["A 10.244.3.7"]
    rest.delete(kinds.SERVICES, NS, "late")
    eventually(lambda: cluster.ask(fqdn("late")).rcode() == dns.rcode.NXDOMAIN,
               message="a deleted Service", logs=cluster.logs)


def test_endpoint_slices_win_when_served(cluster, rest):
    try:
        served = rest.request("GET", "/apis/discovery.k8s.io/v1")
    except NotFound:
        served = None
    if not served or "endpoint_slices=True" not in cluster.logs():
        pytest.skip("this API server does not serve discovery.k8s.io/v1 EndpointSlices")
    rest.create(kinds.SERVICES, NS, service("sliced", "None"))
    rest.create(kinds.ENDPOINTSLICES, NS, {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "sliced-a", "namespace": NS,
                     "labels": {"kubernetes.io/service-name": "sliced"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.7.1"], "conditions": {"ready": True},
                       "hostname": "s-0"},
                      {"addresses": ["10.244.7.2"], "conditions": {"ready": False}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})
    eventually(lambda: answers(cluster, fqdn("sliced")) == ["A 10.244.7.1"],
               message="a headless Service from its EndpointSlice", logs=cluster.logs)
    assert answers(cluster, "s-0." + fqdn("sliced")) == ["A 10.244.7.1"]


def test_a_statefulset_pod_by_its_hostname_through_the_slice_controller(cluster, server, rest,
                                                                        tmp_path):
    """Service → Pod (hostname, subdomain) → EndpointSlice controller → DNS, all real."""
    if "endpoint_slices=True" not in cluster.logs():
        pytest.skip("this API server does not serve discovery.k8s.io/v1 EndpointSlices")
    governing = service("governing", "None", [("web", 80)])
    governing["spec"]["selector"] = {"app": "sts"}
    rest.create(kinds.SERVICES, NS, governing)
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "sts-0", "namespace": NS, "labels": {"app": "sts"}},
           "spec": {"hostname": "sts-0", "subdomain": "governing",
                    "containers": [{"name": "c", "image": "steer.local/busybox:1.35",
                                    "ports": [{"containerPort": 80}]}]}}
    created = rest.create(kinds.PODS, NS, pod)
    created["status"] = {"phase": "Running", "podIP": "10.244.8.1",
                         "podIPs": [{"ip": "10.244.8.1"}],
                         "conditions": [{"type": "Ready", "status": "True"}]}
    rest.update_status(kinds.PODS, NS, created)
    with ControlPlane(server, tmp_path, controllers="endpointslice-controller",
                      scheduler=False) as plane:
        eventually(lambda: answers(cluster, "sts-0." + fqdn("governing")) == ["A 10.244.8.1"],
                   message="the pod's name under its governing Service",
                   logs=lambda: cluster.logs() + plane.logs())
    assert answers(cluster, "_web._tcp." + fqdn("governing"), rdt.SRV) == [
        f"SRV 0 100 80 sts-0.{fqdn('governing')}."]
