"""End to end on a 3-node containers cluster: NodePorts, scale-down under load, DNS, node removal.

What test_containers.py (ClusterIP, hairpin, pod to pod, NetworkPolicy) and
test_cluster_dns.py (resolv.conf, Service names, NXDOMAIN, the search path) do not
cover of issue 12's list. The workload is `echo`: pods of the steer-dns image (it has
Python) running a line server that answers each line with the pod's hostname (its
name), on one TCP connection as long as the client keeps it; it ignores SIGTERM, so
a pod being deleted keeps answering during its grace period and only the proxy's
rules decide whether a new connection still reaches it. The tests run in file order
on one cluster; the last one removes a node.
"""

import json
import os
import re
import signal
import threading
import time

import pytest

from agent import netns
from cli import local_containers, local_dns_image, local_images, local_network
from control.client import ApiException
from control.objects import conditions, kinds
from tests.support.apiproc import eventually

from .conftest import running_cluster

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(local_containers.unavailable_reason() is not None,
                                 reason=f"no containers here: "
                                        f"{local_containers.unavailable_reason()}")]

NODES = ("node-1", "node-2", "node-3")
REPLICAS, SCALED = 4, 2
#: One reply line (the pod's hostname) per line received; SIGTERM ignored (see above).
ECHO_SERVER = """
import signal, socket, threading
signal.signal(signal.SIGTERM, signal.SIG_IGN)
name = socket.gethostname().encode() + b"\\n"
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", 8080)); server.listen(256)
def serve(conn):
    with conn:
        for _ in conn.makefile("rb"):
            conn.sendall(name)
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""
ECHO = {"app": "echo"}


def echo_objects():
    template = {"metadata": {"labels": ECHO}, "spec": {
        "terminationGracePeriodSeconds": 30,
        "containers": [{"name": "echo", "image": local_dns_image.DNS_IMAGE,
                        "command": ["python3", "-c", ECHO_SERVER],
                        "ports": [{"name": "echo", "containerPort": 8080}],
                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "echo"},
         "spec": {"replicas": REPLICAS, "selector": {"matchLabels": ECHO}, "template": template}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
         "spec": {"type": "NodePort", "selector": ECHO,
                  "ports": [{"name": "echo", "port": 80, "targetPort": "echo"}]}}]


def db_objects():
    """A headless governing Service and a StatefulSet of two busybox pods under it."""
    labels = {"app": "db"}
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
         "spec": {"clusterIP": "None", "selector": labels,
                  "ports": [{"name": "peer", "port": 7000}]}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
         "spec": {"serviceName": "db", "replicas": 2, "podManagementPolicy": "Parallel",
                  "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {
                      "terminationGracePeriodSeconds": 0,
                      "containers": [{"name": "c", "image": local_images.BUSYBOX_IMAGE,
                                      "command": ["sleep", "3600"]}]}}}}]


def busybox_pod():
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bb"},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
                "name": "c", "image": local_images.BUSYBOX_IMAGE, "command": ["sleep", "3600"]}]}}


def apply(cluster, *objects):
    cluster.steer("apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in objects))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory, nodes=3, runtime="cri") as c:
        # Everything the module needs, applied at once: the images pull in parallel.
        apply(c, *echo_objects(), *db_objects(), busybox_pod())
        yield c


@pytest.fixture(scope="module")
def echo(cluster):
    eventually(lambda: cluster.rolled_out("echo", replicas=REPLICAS), timeout=150,
               message="the echo Deployment to roll out", logs=cluster.logs)
    return cluster


def network(cluster):
    return local_network.LocalNetwork.from_record(cluster.local.state["network"])


def node_netns(cluster, node):
    return cluster.local.state["containerd"][node]["netns"]


def ask(sock):
    """Send one line on a kept connection; the name of the pod that answered."""
    sock.sendall(b"ping\n")
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(256)
        if not chunk:
            raise ConnectionError("the connection was closed")
        line += chunk
    return line.decode().strip()


def ask_once(netns_path, address):
    """A new connection from a namespace, one request; the pod's name or None."""
    try:
        with netns.connect(netns_path, address, timeout=3) as sock:
            sock.settimeout(3)
            return ask(sock)
    except OSError:
        return None


def test_the_node_port_reaches_pods_on_every_node_from_every_node_address(echo):
    pods = echo.ready_pods("app=echo")
    assert {p["spec"]["nodeName"] for p in pods} == set(NODES), \
        "the scheduler should spread 4 replicas over the 3 nodes"
    names = {p["metadata"]["name"] for p in pods}
    node_port = echo.rest.get(kinds.SERVICES, "default", "echo")["spec"]["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767
    net = network(echo)
    for source in NODES:
        for target in net.nodes:
            seen = set()

            def every_pod_answered(source=source, target=target, seen=seen):
                seen.add(ask_once(node_netns(echo, source), (target.address, node_port)))
                return names <= seen
            eventually(every_pod_answered, timeout=30, logs=echo.logs,
                       message=f"every echo pod to answer on {target.address}:{node_port} "
                               f"({target.name}) from {source}")


def ready_names(slice_):
    return {ep["targetRef"]["name"] for ep in slice_.get("endpoints") or []
            if (ep.get("conditions") or {}).get("ready") is not False and ep.get("targetRef")}


class Recorder:
    """Threads that load the Service while the Deployment scales; what each one saw."""

    def __init__(self, cluster, kept, prober_netns, cluster_ip):
        self.cluster, self.kept = cluster, kept
        self.prober_netns, self.address = prober_netns, (cluster_ip, 80)
        self.stopping = threading.Event()
        self.kept_log = {name: [] for name in kept}     # name -> [(t, ok)]
        self.probes = []                                # [(t, name or None)]
        self.slices = []                                # [(t, ready names)]
        self.watch = None
        self.threads = [threading.Thread(target=self._keep, args=(n,), daemon=True)
                        for n in kept]
        self.threads += [threading.Thread(target=self._probe, daemon=True),
                         threading.Thread(target=self._watch_slices, daemon=True)]

    def _keep(self, name):
        sock = self.kept[name]
        while not self.stopping.is_set():
            try:
                ok = ask(sock) == name
            except OSError:
                ok = False
            self.kept_log[name].append((time.monotonic(), ok))
            if not ok:
                return
            self.stopping.wait(0.02)

    def _probe(self):
        while not self.stopping.is_set():
            started = time.monotonic()
            self.probes.append((started, ask_once(self.prober_netns, self.address)))

    def _watch_slices(self):
        rest = self.cluster.rest
        listed = rest.list(kinds.ENDPOINTSLICES, "default",
                           label_selector="kubernetes.io/service-name=echo")
        self.slices.append((time.monotonic(),
                            set().union(*(ready_names(s) for s in listed["items"]))))
        current = {s["metadata"]["name"]: s for s in listed["items"]}
        self.watch = rest.watch(kinds.ENDPOINTSLICES, "default",
                                resource_version=listed["metadata"]["resourceVersion"],
                                label_selector="kubernetes.io/service-name=echo")
        try:
            for kind, obj in self.watch:
                if kind == "DELETED":
                    current.pop(obj["metadata"]["name"], None)
                elif kind in ("ADDED", "MODIFIED"):
                    current[obj["metadata"]["name"]] = obj
                else:
                    continue
                self.slices.append((time.monotonic(),
                                    set().union(*(ready_names(s) for s in current.values()))))
        except Exception:   # noqa: BLE001 - the watch closed at the end of the test
            pass

    def start(self):
        for thread in self.threads:
            thread.start()
        eventually(lambda: self.slices and len(self.probes) > 10, timeout=30,
                   message="the load threads to start")

    def stop(self):
        self.stopping.set()
        if self.watch is not None:
            self.watch.close()
        for thread in self.threads:
            thread.join(10)


def scale(cluster, name, replicas):
    for _ in range(10):
        deployment = cluster.deployment(name)
        deployment["spec"]["replicas"] = replicas
        try:
            return cluster.rest.update(kinds.DEPLOYMENTS, "default", deployment)
        except ApiException as exc:
            if exc.status != 409:
                raise
    raise AssertionError(f"deployment/{name} kept changing under scale")


def kept_connection_per_pod(cluster, netns_path, address, names):
    """{pod name: a connection through the ClusterIP that landed on it}, one per pod."""
    kept = {}

    def one_per_pod():
        sock = netns.connect(netns_path, address, timeout=3)
        sock.settimeout(5)
        name = ask(sock)
        if name in kept:
            sock.close()
        else:
            kept[name] = sock
        return set(kept) == names
    eventually(one_per_pod, timeout=60, message="a kept connection to every echo pod")
    return kept


def test_scale_down_keeps_connections_to_survivors_and_new_ones_follow_the_slice(echo):
    names = {p["metadata"]["name"] for p in echo.ready_pods("app=echo")}
    assert len(names) == REPLICAS
    cluster_ip = echo.service_cluster_ip("echo")
    kept = kept_connection_per_pod(echo, node_netns(echo, "node-2"), (cluster_ip, 80), names)
    recorder = Recorder(echo, kept, node_netns(echo, "node-1"), cluster_ip)
    try:
        recorder.start()
        scale(echo, "echo", SCALED)
        eventually(lambda: len(recorder.slices[-1][1]) == SCALED, timeout=60, logs=echo.logs,
                   message=f"the echo slice to list {SCALED} ready endpoints")
        changed_at = next(t for t, ready in recorder.slices if len(ready) == SCALED)
        survivors = recorder.slices[-1][1]
        gone = names - survivors
        # Load on for 3 s more after the slice changed.
        eventually(lambda: recorder.probes[-1][0] > changed_at + 3, timeout=30,
                   message="3 s of probes after the slice change")
    finally:
        recorder.stop()
        for sock in kept.values():
            sock.close()
    for name in survivors:
        log = recorder.kept_log[name]
        assert log and all(ok for _, ok in log), f"a request failed on the kept connection to {name}"
        assert any(t > changed_at + 1 for t, _ in log), f"too few requests to {name} after the change"
    to_gone = [t for t, name in recorder.probes if name in gone]
    last_to_gone = max(to_gone, default=float("-inf"))
    clean_from = min(t for t, _ in recorder.probes if t > last_to_gone)
    after = [name for t, name in recorder.probes if t >= clean_from]
    followed = max(0.0, clean_from - changed_at)
    failed = sum(1 for _, name in recorder.probes if name is None)
    print(f"\nscale {REPLICAS}->{SCALED}: new connections avoided the gone pods "
          f"{followed * 1000:.0f} ms after the EndpointSlice change ({len(recorder.probes)} "
          f"probes, {failed} failed; {len(after)} clean ones after)")
    assert followed < 10, f"new connections reached removed pods {followed:.1f} s after the change"
    assert set(after) <= survivors and len(after) >= 10


def nslookup(cluster, *args):
    result = cluster.steer("exec", "bb", "--", "nslookup", *args, check=False)
    return result.stdout + result.stderr


def addresses_in(output):
    """The answer's addresses (the lines after the "Name:"; not the server's own)."""
    answer = output.split("Name:", 1)[1] if "Name:" in output else ""
    return set(re.findall(r"Address:\s*(\d+\.\d+\.\d+\.\d+)", answer))


@pytest.fixture(scope="module")
def dns_client(cluster):
    eventually(lambda: conditions.is_ready(cluster.pod("bb")), timeout=120,
               message="pod bb to be ready", logs=cluster.logs)
    return cluster


@pytest.fixture(scope="module")
def db(dns_client):
    def ready_ips():
        pods = [p for p in dns_client.pods("app=db") if conditions.is_ready(p)]
        return len(pods) == 2 and {p["metadata"]["name"]: p["status"]["podIP"] for p in pods}
    return eventually(ready_ips, timeout=120, message="the db StatefulSet's 2 pods to be ready",
                      logs=dns_client.logs)


def test_a_headless_service_resolves_to_every_ready_pod_ip(dns_client, db):
    want = set(db.values())
    eventually(lambda: addresses_in(nslookup(dns_client, "db.default.svc.cluster.local")) == want,
               timeout=30, message=f"db.default.svc.cluster.local to give {sorted(want)}")


def test_a_stateful_set_pod_resolves_under_its_governing_service(dns_client, db):
    for name, ip in db.items():
        full = f"{name}.db.default.svc.cluster.local"
        eventually(lambda full=full, ip=ip: addresses_in(nslookup(dns_client, full)) == {ip},
                   timeout=30, message=f"{full} to give {ip}")


def test_a_pod_a_record_resolves_to_its_address(dns_client, db):
    ip = db["db-0"]
    name = f"{ip.replace('.', '-')}.default.pod.cluster.local"
    assert addresses_in(nslookup(dns_client, name)) == {ip}


def test_srv_names_the_port_of_a_named_service_port(echo, dns_client):
    out = nslookup(dns_client, "-type=srv", "_echo._tcp.echo.default.svc.cluster.local")
    assert re.search(r"service = \d+ \d+ 80 echo\.default\.svc\.cluster\.local", out), out
    missing = nslookup(dns_client, "-type=srv", "_nothing._tcp.echo.default.svc.cluster.local")
    assert "NXDOMAIN" in missing, missing


def routes_of(cluster, node):
    return cluster.steer("node-shell", node, "--", "ip", "-4", "route").stdout


def test_a_removed_node_takes_its_pod_route_off_the_other_nodes(cluster):
    cidr = cluster.rest.get(kinds.NODES, None, "node-3")["spec"]["podCIDR"]
    address = network(cluster).node("node-3").address
    for node in ("node-1", "node-2"):
        assert f"{cidr} via {address}" in routes_of(cluster, node)
    # Frozen, not killed: the supervisor would restart a killed agent, and a running
    # agent registers its Node again.
    agent = cluster.pid("node-3")
    os.kill(agent, signal.SIGSTOP)
    try:
        cluster.steer("delete", "node", "node-3")

        def routes_gone():
            return all(cidr not in routes_of(cluster, node) for node in ("node-1", "node-2"))
        eventually(routes_gone, timeout=30, logs=cluster.logs,
                   message=f"the route to {cidr} to leave node-1 and node-2")
    finally:
        os.kill(agent, signal.SIGCONT)
