"""End to end: `steer cluster create` onto simulated bare hosts (tests/support/hosts.py).

One bed per module: 3 control hosts + 2 workers, each its own network, mount and PID
namespace running sshd, on a LAN reachable only from inside its namespace (the CLI's
``--via-netns``). Images come from a registry in that LAN namespace (Debian's
docker-registry, the local cluster's addon), since nothing may leave the machine.
The official Python client reaches the first API server through a door.
"""

import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from cli import local_images
from tests.support import bed_service
from tests.support.apiproc import eventually
from tests.support.bed_service import on_host
from tests.support.hosts_ledger import Ledger

pytestmark = [pytest.mark.baremetal, pytest.mark.timeout(1200)]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MISSING = [tool for tool in ("sshd", "supervisord", "containerd", "docker-registry", "skopeo")
           if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}")]
if os.geteuid() != 0:
    MISSING.append("root (network namespaces)")
if MISSING:
    pytestmark.append(pytest.mark.skip(reason=f"needs {', '.join(MISSING)}"))

TIMINGS = {}
STATE = {}      # what one test hands the next (the tests run in file order on one bed)


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    from tests.support.hosts import host_bed
    with host_bed(5, tmp_path_factory.mktemp("hosts")) as bed:
        yield bed


@pytest.fixture(scope="module")
def registry(bed, tmp_path_factory):
    """A registry on the LAN's bridge address holding the pause and hello images."""
    with bed_service.lan_registry(bed, tmp_path_factory.mktemp("registry")) as address:
        yield address


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return str(tmp_path_factory.mktemp("steer-home"))


def steer(home, *args, timeout=900):
    env = {**os.environ, "STEER_HOME": home, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def wheels():
    """One build for every create here: other work on the checkout must not change it."""
    from agent.provision.wheelhouse import build_wheelhouse
    directory, _ = build_wheelhouse(ROOT)
    return str(directory)


def steer_timed(home, *args, timeout=900):
    """``steer`` with each output line stamped with seconds since its start."""
    return bed_service.steer_lines(home, *args, cwd=ROOT, timeout=timeout)


def create_args(bed, registry, hosts, wheels, name="bm"):
    control, workers = hosts[:3], hosts[3:]
    return ["cluster", "create", "--name", name, "--wheelhouse", wheels,
            "--ssh", ",".join(h.target for h in control),
            "--workers", ",".join(h.target for h in workers),
            "--known-hosts", str(bed.known_hosts), "-i", str(bed.admin_key),
            "--via-netns", bed.lan_netns_path, *bed_service.image_flags(registry)]


@pytest.fixture(scope="module")
def cluster(bed, registry, home, wheels):
    started = time.monotonic()
    code, out = steer(home, *create_args(bed, registry, bed.hosts[:5], wheels))
    TIMINGS["create"] = time.monotonic() - started
    print(out)
    assert code == 0, out
    return out


@pytest.fixture(scope="module")
def api(bed, home, cluster):
    """The official client, through a door to the first control host's API server."""
    kubernetes = pytest.importorskip("kubernetes")
    port = bed.door(bed.hosts[0].address, 6443)
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=os.path.join(home, "clusters", "bm", "kubeconfig"),
        client_configuration=config)
    config.host = f"https://127.0.0.1:{port}"
    return kubernetes.client.ApiClient(config)


def test_wrong_host_key_fails_with_the_fingerprint_and_installs_nothing(bed, home,
                                                                       tmp_path):
    stranger = bed.add_host()
    other = bed.hosts[0]
    # known_hosts says the stranger's address has another host's key: a changed key.
    lying = tmp_path / "known_hosts"
    lying.write_text(f"{stranger.address} {other.host_key_pub}\n")
    args = ["cluster", "create", "--name", "wrongkey", "--ssh", stranger.target,
            "--known-hosts", str(lying), "-i", str(bed.admin_key),
            "--via-netns", bed.lan_netns_path]
    code, out = steer(home, *args, timeout=120)
    assert code != 0
    assert "SHA256:" in out and stranger.address in out, out
    assert "connect" in out
    for inside in ("/opt/steersman", "/etc/steersman", "/var/lib/steersman"):
        assert os.listdir(stranger.path(inside)) == [], inside


def test_a_host_without_a_kernel_feature_fails_the_checks_and_nothing_is_installed(
        bed, home):
    lacking = bed.add_host(readonly_paths=("/proc/sys/net/ipv4/ip_forward",))
    code, out = steer(home, "cluster", "create", "--name", "nofeature", "--ssh", lacking.target,
                      *ssh_flags(bed), timeout=120)
    assert code != 0
    assert "ip_forward" in out and lacking.address in out and "fix:" in out, out
    assert "nothing was installed" in out
    for inside in ("/opt/steersman", "/etc/steersman", "/var/lib/steersman"):
        assert os.listdir(lacking.path(inside)) == [], inside
    STATE["lacking"] = lacking


def test_a_create_failing_after_the_install_removes_what_it_installed(bed, home, wheels):
    bare = bed.hosts[5]         # the host the wrong-key test left bare
    # A wait no cluster can meet: the first one (store quorum) fails, after the
    # release is installed and the store member started.
    code, out = steer(home, "cluster", "create", "--name", "undone", "--ssh", bare.target,
                      "--wheelhouse", wheels, "--timeout", "0.01", *ssh_flags(bed),
                      timeout=300)
    assert code != 0
    assert "wait for the store member" in out and "fix:" in out, out
    assert f"{bare.address}: removed" in out, out
    for inside in ("/opt/steersman", "/etc/steersman", "/var/lib/steersman", "/var/log/steersman"):
        assert os.listdir(bare.path(inside)) == [], inside
    _, left = on_host(bed, bare, "ps -eo args=")
    assert "steersman" not in left and "supervisord" not in left, left


def test_create_brings_every_node_ready(cluster, api):
    from kubernetes import client as k8s
    assert "nothing changed" not in cluster
    nodes = k8s.CoreV1Api(api).list_node().items
    names = sorted(n.metadata.name for n in nodes)
    assert len(names) == 5, names
    for node in nodes:
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert ready and ready[0].status == "True", node.metadata.name
    print(f"bare hosts -> 5 nodes Ready: {TIMINGS['create']:.1f}s")


def test_control_components_serve_metrics_over_tls_on_the_host_address(bed, cluster):
    """The scheduler's and controller manager's secure ports and the store's metrics port."""
    pki = "/etc/steersman/pki"
    admin = f"--cert {pki}/apiserver-kubelet-client.crt --key {pki}/apiserver-kubelet-client.key"
    for host in bed.hosts[:3]:
        # /healthz is open; /metrics answers a system:masters client certificate (the
        # SubjectAccessReview allows it); the store's port wants O=system:monitoring: 403.
        command = " ; echo ; ".join([
            f"curl -s -m 5 --cacert {pki}/ca.crt https://{host.address}:10259/healthz",
            f"curl -s -m 5 --cacert {pki}/ca.crt {admin} "
            f"https://{host.address}:10257/metrics | grep -c '^# TYPE'",
            f"curl -s -m 5 -o /dev/null -w 'store=%{{http_code}}' --cacert {pki}/store-ca.crt "
            f"{admin} https://{host.address}:2381/metrics"])

        seen = []

        def serving(host=host, command=command, seen=seen):
            seen[:] = on_host(bed, host, command)[1].split()
            return (len(seen) == 3 and seen[0] == "ok" and seen[1].isdigit()
                    and int(seen[1]) > 0 and seen[2] == "store=403")
        try:
            eventually(serving, timeout=60, message=f"the metrics ports of {host.name}")
        except AssertionError:
            raise AssertionError(f"{host.name}: healthz, metric families, store: {seen}") from None


def test_a_deployment_and_service_answer_from_every_host(bed, api):
    from kubernetes import client as k8s

    deployment, service = bed_service.hello_objects(replicas=2, service_type="NodePort")
    k8s.AppsV1Api(api).create_namespaced_deployment("default", deployment)
    created = k8s.CoreV1Api(api).create_namespaced_service("default", service)
    ip, node_port = created.spec.cluster_ip, created.spec.ports[0].node_port

    def available():
        dep = k8s.AppsV1Api(api).read_namespaced_deployment("hello", "default")
        return ((dep.status and dep.status.available_replicas) or 0) == 2
    eventually(available, timeout=240, message="the hello Deployment to be available")
    for host in bed.hosts[:5]:
        bed_service.route_service_range(bed, host)

        def answers(host=host):
            code, out = on_host(bed, host, f"curl -s -m 3 http://{ip}/")
            code2, out2 = on_host(bed, host, f"curl -s -m 3 http://{host.address}:{node_port}/")
            return code == 0 and "hello from" in out and code2 == 0 and "hello from" in out2
        eventually(answers, timeout=60, message=f"the hello Service from {host.name}")


def test_second_create_changes_nothing(bed, registry, home, cluster, wheels):
    started = time.monotonic()
    code, out = steer(home, *create_args(bed, registry, bed.hosts[:5], wheels))
    TIMINGS["again"] = time.monotonic() - started
    assert code == 0, out
    for host in bed.hosts[:5]:
        assert re.search(rf"^{re.escape(host.name)}: unchanged$|^{re.escape(host.address)}: "
                         "unchanged$", out, re.M), out
    assert "nothing changed" in out
    print(f"second create: {TIMINGS['again']:.1f}s")


def ssh_flags(bed):
    return ["--known-hosts", str(bed.known_hosts), "-i", str(bed.admin_key),
            "--via-netns", bed.lan_netns_path]


def api_status_with_token(bed, home, token):
    """The status the first API server answers a bearer ``token`` with."""
    import ssl
    import urllib.error
    import urllib.request
    context = ssl.create_default_context(
        cafile=os.path.join(home, "clusters", "bm", "pki", "ca.crt"))
    port = bed.door(bed.hosts[0].address, 6443)
    request = urllib.request.Request(f"https://127.0.0.1:{port}/api/v1/namespaces",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_node_join_then_remove(bed, home, api, wheels):
    from kubernetes import client as k8s
    newcomer = bed.hosts[5]         # the host the wrong-key test left bare
    started = time.monotonic()
    code, out = steer(home, "node", "join", newcomer.target, "--name", "bm",
                      "--wheelhouse", wheels, *ssh_flags(bed))
    TIMINGS["join"] = time.monotonic() - started
    assert code == 0, out
    node = k8s.CoreV1Api(api).read_node(newcomer.address)
    assert [c.status for c in node.status.conditions if c.type == "Ready"] == ["True"]
    print(f"node join (bootstrap token, bare -> Ready): {TIMINGS['join']:.1f}s")
    # No node certificate was issued on the admin side: the node asked by CSRs,
    # with the token, and the controller manager approved and signed them.
    pki = os.path.join(home, "clusters", "bm", "pki")
    assert not os.path.exists(os.path.join(pki, "hosts", newcomer.address, "node.crt"))
    with open(os.path.join(pki, "hosts", newcomer.address, "bootstrap-token")) as handle:
        token = handle.read().strip()
    token_id = token.partition(".")[0]
    assert f"bootstrap token bootstrap-token-{token_id} deleted" in out, out
    csrs = k8s.CertificatesV1Api(api).list_certificate_signing_request().items
    approved = {(c.spec.username, c.spec.signer_name) for c in csrs
                if any(x.type == "Approved" for x in (c.status.conditions or ()))
                and c.status.certificate}
    assert (f"system:bootstrap:{token_id}",
            "kubernetes.io/kube-apiserver-client-kubelet") in approved, approved
    assert (f"system:node:{newcomer.address}", "kubernetes.io/kubelet-serving") in approved
    # The token is spent: its Secret is gone and the API server refuses it.
    secrets = k8s.CoreV1Api(api).list_namespaced_secret("kube-system").items
    assert f"bootstrap-token-{token_id}" not in [x.metadata.name for x in secrets]
    assert api_status_with_token(bed, home, token) == 401
    _, kubeconfig = on_host(bed, newcomer, "cat /var/lib/steersman/agent/kubeconfig")
    assert "kubelet-client-current.pem" in kubeconfig and token not in kubeconfig

    code, out = steer(home, "node", "remove", newcomer.address, "--name", "bm", *ssh_flags(bed))
    assert code == 0, out
    names = [n.metadata.name for n in k8s.CoreV1Api(api).list_node().items]
    assert newcomer.address not in names
    assert os.listdir(newcomer.path("/opt/steersman")) == []
    _, left = on_host(bed, newcomer, "ps -eo args=")
    assert "steersman" not in left and "containerd" not in left, left


SUPERVISORCTL = "supervisorctl -c /etc/steersman/supervisor/supervisord.conf"


def service_pid(bed, host, name):
    """The pid supervisord runs ``name`` as on ``host`` (0: not running)."""
    _, out = on_host(bed, host, f"{SUPERVISORCTL} pid {name}")
    return int(out.strip()) if out.strip().isdigit() else 0


def store_status(home, reach, host):
    from cli.baremetal.credentials import ClusterCredentials
    from store.client import StoreClient
    tls = ClusterCredentials(os.path.join(home, "clusters", "bm", "pki")).store_admin_tls()
    with StoreClient([reach.endpoint(host.address, 2379)], timeout=3.0, **tls) as client:
        return client.status()


def kill_store_and_see_it_restarted(bed, home, reach, host, say):
    """kill -9 the store member on ``host``; supervisord restarts it; it rejoins a quorum."""
    before = service_pid(bed, host, "steersman-store")
    assert before > 0, f"no store running on {host.name}"
    code, _ = on_host(bed, host, f"kill -9 {before}")
    assert code == 0
    say(f"kill -9 store on {host.name} (pid {before})")
    after = eventually(lambda: (lambda pid: pid if pid not in (0, before) else None)(
        service_pid(bed, host, "steersman-store")), timeout=60,
        message=f"supervisord to restart the store on {host.name}")
    eventually(lambda: "RUNNING" in on_host(
        bed, host, f"{SUPERVISORCTL} status steersman-store")[1], timeout=60,
        message=f"supervisord to report the store on {host.name} RUNNING (past startsecs)")

    def rejoined():
        try:
            return bool(store_status(home, reach, host).get("leader_peer"))
        except Exception:       # noqa: BLE001 - not answering yet
            return False
    eventually(rejoined, timeout=90, message=f"the store on {host.name} to rejoin a quorum")
    say(f"store on {host.name} restarted by supervisord (pid {after}) and back in the quorum")


def test_fault_sequence_loses_no_acknowledged_write_and_replace_swaps_a_dead_host(
        bed, home, api, wheels):
    """kill -9 a store member, then the leader's, then a whole control host; replace it."""
    from kubernetes import client as k8s

    from cli.baremetal.reach import Reach
    control = [bed.hosts[0], bed.hosts[1], bed.hosts[2]]
    dead, fresh = bed.hosts[2], bed.add_host()
    STATE["new_control"] = fresh
    ledger = Ledger(bed, home, control).start()
    with Reach(bed.lan_netns_path) as reach:
        try:
            leader_peer = store_status(home, reach, control[0])["leader_peer"]
            leader = next(h for h in control if leader_peer.startswith(h.address + ":"))
            follower = next(h for h in control if h is not leader)
            kill_store_and_see_it_restarted(bed, home, reach, follower, print)
            leader_peer = store_status(home, reach, control[0])["leader_peer"]
            leader = next(h for h in control if leader_peer.startswith(h.address + ":"))
            kill_store_and_see_it_restarted(bed, home, reach, leader, print)
            bed.kill_host(dead)         # every process of the host: its power is gone
            print(f"host {dead.name} killed (all its processes)")
            started = time.monotonic()
            code, out = steer(home, "store", "member", "replace", dead.address,
                              "--with", fresh.target, "--cluster", "bm",
                              "--wheelhouse", wheels, *ssh_flags(bed))
            TIMINGS["replace"] = time.monotonic() - started
            assert code == 0, out
            ledger.hosts = [bed.hosts[0], bed.hosts[1], fresh]
            count = len(ledger.acknowledged)
            eventually(lambda: len(ledger.acknowledged) >= count + 10, timeout=60,
                       message="writes acknowledged after the replace")
        finally:
            ledger.stop()
    assert f"member {dead.address} removed" in out and f"member {fresh.address} added" in out
    core = k8s.CoreV1Api(api)
    names = sorted(n.metadata.name for n in core.list_node().items)
    assert dead.address not in names and fresh.address in names, names
    present = {c.metadata.name for c in core.list_namespaced_config_map(
        "default", label_selector="ledger=1").items}
    lost = [name for name in ledger.acknowledged if name not in present]
    landed_anyway = [name for name, _ in ledger.failed if name in present]
    print(f"fault ledger: {len(ledger.acknowledged)} writes acknowledged, {len(lost)} lost, "
          f"{len(ledger.failed)} failed ({len(landed_anyway)} of those landed anyway): "
          f"{sorted({str(o) for _, o in ledger.failed})[:5]}")
    print(f"store member replace: {TIMINGS['replace']:.1f}s")
    assert not lost, lost
    assert len(ledger.acknowledged) > 50
    for name in ("ledger-1", ledger.acknowledged[-1]):
        if name in ledger.acknowledged:
            assert core.read_namespaced_config_map(name, "default").data == {
                "n": name.split("-")[1]}


def test_upgrade_one_host_at_a_time_with_the_service_serving(bed, home, api, wheels):
    from kubernetes import client as k8s
    core = k8s.CoreV1Api(api)
    nodes = {n.metadata.name for n in core.list_node().items}

    def settled():      # no endpoint left on the host the replace test killed
        pods = core.list_namespaced_pod("default", label_selector="app=hello").items
        running = [p for p in pods if p.status and p.status.phase == "Running"]
        return len(running) == 2 and all(p.spec.node_name in nodes for p in pods)
    eventually(settled, timeout=240, message="the hello pods on live nodes")
    ip = core.read_namespaced_service("hello", "default").spec.cluster_ip
    # One request every 0.2 s from a worker, through the Service.
    started = time.monotonic()
    with bed_service.RequestLoop(bed, bed.hosts[3], f"http://{ip}/") as requests:
        code, out, lines, began = steer_timed(
            home, "cluster", "upgrade", "--name", "bm", "--version", "0.1.0-next",
            "--wheelhouse", wheels, *ssh_flags(bed))
    requests.report(lines, began)   # where in the upgrade each failed request fell
    TIMINGS["upgrade"] = time.monotonic() - started
    assert code == 0, out
    assert requests.results
    STATE["upgrade_requests"] = requests.results
    order = re.findall(r"^(\S+): 0\.1\.0-next:", out, re.M)
    control = [h.address for h in (bed.hosts[0], bed.hosts[1], STATE["new_control"])]
    assert order[:3] == control and sorted(order[3:]) == [bed.hosts[3].address,
                                                          bed.hosts[4].address], out
    for address in control:
        host = next(h for h in bed.hosts if h.address == address)
        _, current = on_host(bed, host, "readlink /opt/steersman/current")
        assert current.strip().endswith("0.1.0-next"), current
    nodes = k8s.CoreV1Api(api).list_node().items
    assert all([c.status for c in n.status.conditions if c.type == "Ready"] == ["True"]
               for n in nodes)
    print(f"upgrade of 5 hosts: {TIMINGS['upgrade']:.1f}s")


def test_no_request_failed_during_the_upgrade():
    results = STATE.get("upgrade_requests")
    if results is None:
        pytest.skip("the upgrade test did not run")
    assert results.count(False) == 0


def test_backup(bed, home, api):
    from kubernetes import client as k8s
    k8s.CoreV1Api(api).create_namespaced_config_map(
        "default", {"metadata": {"name": "precious"}, "data": {"kept": "yes"}})
    backup = os.path.join(home, "bm.snapshot")
    code, out = steer(home, "cluster", "backup", "--name", "bm", "--file", backup,
                      *ssh_flags(bed))
    assert code == 0, out
    assert os.stat(backup).st_mode & 0o777 == 0o600
    TIMINGS["backup_file"] = backup


def test_status_then_destroy_leaves_the_hosts_bare(bed, home, cluster):
    ssh_args = ssh_flags(bed)
    code, out = steer(home, "cluster", "status", "--name", "bm", *ssh_args, timeout=120)
    assert code == 0, out
    assert out.count("RUNNING") == 3 * 7 + 2 * 3, out
    code, out = steer(home, "cluster", "destroy", "--name", "bm", "-y", *ssh_args, timeout=300)
    assert code == 0, out
    for host in [h for h in bed.hosts if h.proc is not None]:
        for inside in ("/opt/steersman", "/etc/steersman", "/var/lib/steersman"):
            assert os.listdir(host.path(inside)) == [], (host.name, inside)
        _, left = on_host(bed, host, "ps -eo pid=,args=")
        assert not [line for line in left.splitlines()
                    if "steersman" in line or "containerd" in line or "supervisord" in line], left


def test_restore_onto_hosts_with_new_addresses_brings_objects_and_pods_back(
        bed, home, registry, wheels):
    kubernetes = pytest.importorskip("kubernetes")
    old = {h.address for h in (bed.hosts[0], bed.hosts[1], STATE["new_control"],
                               bed.hosts[3], bed.hosts[4])}
    # Fresh hosts: none of the backed-up cluster's addresses (the old ones stay down).
    for host in [h for h in bed.hosts if h.address in old and h.proc is not None]:
        bed.kill_host(host)
    fresh = [bed.add_host() for _ in range(5)]
    assert not old & {h.address for h in fresh}
    control, workers = fresh[:3], fresh[3:]
    started = time.monotonic()
    code, out = steer(home, "cluster", "restore", "--name", "bm",
                      "--from", TIMINGS["backup_file"], "--wheelhouse", wheels,
                      "--ssh", ",".join(h.target for h in control),
                      "--workers", ",".join(h.target for h in workers), *ssh_flags(bed),
                      "--sandbox-image", local_images.PAUSE_IMAGE,
                      "--registry-mirror", f"steer.local=http://{registry}")
    TIMINGS["restore"] = time.monotonic() - started
    assert code == 0, out
    assert "store data restored" in out
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=os.path.join(home, "clusters", "bm", "kubeconfig"),
        client_configuration=config)
    config.host = f"https://127.0.0.1:{bed.door(control[0].address, 6443)}"
    core = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(config))
    assert core.read_namespaced_config_map("precious", "default").data == {"kept": "yes"}

    for address in old:
        assert f"node/{address} deleted" in out, out
    nodes = {n.metadata.name for n in core.list_node().items}
    assert nodes == {h.address for h in fresh}, nodes

    def pods_back():        # on the new nodes: the restored ones were bound to the old
        pods = core.list_namespaced_pod("default", label_selector="app=hello").items
        return len([p for p in pods if p.status and p.status.phase == "Running"
                    and p.spec.node_name in nodes]) == 2
    eventually(pods_back, timeout=300, message="the hello pods running on the new hosts")
    TIMINGS["restore_pods"] = time.monotonic() - started
    print(f"restore onto 5 bare hosts with new addresses: {TIMINGS['restore']:.1f}s "
          f"(pods running again {TIMINGS['restore_pods']:.1f}s after the start)")
    code, out = steer(home, "cluster", "destroy", "--name", "bm", "-y", *ssh_flags(bed))
    assert code == 0, out
