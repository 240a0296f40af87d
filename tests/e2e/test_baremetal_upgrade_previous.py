"""End to end: a cluster made by the previous store protocol's release, upgraded to this one.

Which release is "previous": the newest commit (an ancestor of HEAD) whose store
speaks another peer protocol than the working tree's — the parent of the newest
commit that changed it (store/version.py, or before that file existed,
store/peer_transport.py's arrival). Its tree comes out of git (``git archive REV``),
its wheelhouse is built offline like this checkout's, and ITS `steer cluster create`
makes the cluster on three simulated hosts (control + worker each), which runs the
hello Deployment (2 replicas, images from a registry on the hosts' LAN) behind a
Service. Then this checkout's `steer cluster upgrade` must pick the all-members-together
mode while a client on one host sends a request through the Service's ClusterIP every
0.2 s: none may fail (the API is down while the store members restart, the data
plane is not), the objects written before are still there, the API serves and every
node is Ready.
``STEER_UPGRADE_FROM=REV`` picks another revision. Without git history (a shallow
clone) the test is skipped, saying so.
"""

import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from cli.baremetal import peer_protocol
from store import version as store_version
from tests.support import bed_service
from tests.support.apiproc import eventually

pytestmark = [pytest.mark.baremetal, pytest.mark.timeout(1200)]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MISSING = [tool for tool in ("sshd", "supervisord", "containerd", "git", "docker-registry",
                                "skopeo")
           if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}")]
if os.geteuid() != 0:
    MISSING.append("root (network namespaces)")
if MISSING:
    pytestmark.append(pytest.mark.skip(reason=f"needs {', '.join(MISSING)}"))

NEW_VERSION = "0.1.0-upgraded"
OBJECTS = 20
TIMINGS = {}


def git(*args, check=True):
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                          check=check)


def protocol_at(rev):
    """The store peer protocol of the tree at ``rev``."""
    shown = git("show", f"{rev}:store/version.py", check=False)
    has_transport = git("cat-file", "-e", f"{rev}:store/peer_transport.py",
                        check=False).returncode == 0
    return peer_protocol.from_sources(shown.stdout if shown.returncode == 0 else None,
                                      has_transport).protocol


def previous_release():
    """(rev, why): the revision to create the cluster from, or (None, why not)."""
    if git("rev-parse", "--git-dir", check=False).returncode != 0:
        return None, "not a git checkout"
    if os.environ.get("STEER_UPGRADE_FROM"):
        rev = os.environ["STEER_UPGRADE_FROM"]
        return git("rev-parse", rev).stdout.strip(), "STEER_UPGRADE_FROM"
    if git("rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        return None, "a shallow clone has no history to find the previous release in"
    current = store_version.PEER_PROTOCOL
    changes = git("log", "--format=%H", "HEAD", "--", "store/version.py",
                  "store/peer_transport.py").stdout.split()
    for commit in changes:
        parent = git("rev-parse", "--verify", "--quiet", f"{commit}^", check=False)
        if parent.returncode != 0:
            continue
        parent_rev = parent.stdout.strip()
        if protocol_at(parent_rev) != current:
            return parent_rev, (f"the parent of {commit[:10]}, the newest commit changing "
                                f"the store peer protocol (to {current})")
    return None, f"no commit in the history speaks another store peer protocol than {current}"


def steer(home, *args, cwd=ROOT, timeout=900):
    env = {**os.environ, "STEER_HOME": home, "PYTHONUNBUFFERED": "1", "PYTHONPATH": cwd}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


@pytest.fixture(scope="module")
def old_tree(tmp_path_factory):
    rev, why = previous_release()
    if rev is None:
        pytest.skip(f"no previous release to upgrade from: {why}")
    print(f"previous release: {rev[:10]} ({why})")
    tree = tmp_path_factory.mktemp("previous-release")
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return str(tree), rev


@pytest.fixture(scope="module")
def old_wheels(old_tree):
    """The previous release's wheelhouse, built offline into a cache of its own (keyed by
    the tree's hash like the checkout's, so a re-run reuses it; builds of the checkout
    never prune it)."""
    from agent.provision.wheelhouse import build_wheelhouse, default_cache_dir
    started = time.monotonic()
    directory, _ = build_wheelhouse(old_tree[0],
                                    cache_dir=default_cache_dir().parent / "previous-releases")
    TIMINGS["old wheelhouse"] = time.monotonic() - started
    return str(directory)


@pytest.fixture(scope="module")
def wheels():
    from agent.provision.wheelhouse import build_wheelhouse
    directory, _ = build_wheelhouse(ROOT)
    return str(directory)


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    from tests.support.hosts import host_bed
    with host_bed(3, tmp_path_factory.mktemp("hosts")) as bed:
        yield bed


@pytest.fixture(scope="module")
def registry(bed, tmp_path_factory):
    started = time.monotonic()
    with bed_service.lan_registry(bed, tmp_path_factory.mktemp("registry")) as address:
        TIMINGS["registry with the images"] = time.monotonic() - started
        yield address


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return str(tmp_path_factory.mktemp("steer-home"))


def ssh_flags(bed):
    return ["--known-hosts", str(bed.known_hosts), "-i", str(bed.admin_key),
            "--via-netns", bed.lan_netns_path]


@pytest.fixture(scope="module")
def old_cluster(bed, home, registry, old_tree, old_wheels):
    code, out, seconds = steer(
        home, "cluster", "create", "--name", "prev", "--wheelhouse", old_wheels,
        "--ssh", ",".join(h.target for h in bed.hosts), *ssh_flags(bed),
        *bed_service.image_flags(registry), cwd=old_tree[0])
    print(out)
    assert code == 0, out
    TIMINGS["create with the previous release"] = seconds
    return out


def core_api(bed, home):
    kubernetes = pytest.importorskip("kubernetes")
    port = bed.door(bed.hosts[0].address, 6443)
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=os.path.join(home, "clusters", "prev", "kubeconfig"),
        client_configuration=config)
    config.host = f"https://127.0.0.1:{port}"
    return kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(config))


def ready_nodes(core):
    return sorted(n.metadata.name for n in core.list_node().items
                  if [c.status for c in n.status.conditions or () if c.type == "Ready"]
                  == ["True"])


def serve_hello(bed, core):
    """The hello Deployment (2 replicas) and its Service on the old cluster; its ClusterIP
    once every host answers through it."""
    from kubernetes import client as k8s
    deployment, service = bed_service.hello_objects(replicas=2)
    k8s.AppsV1Api(core.api_client).create_namespaced_deployment("default", deployment)
    ip = core.create_namespaced_service("default", service).spec.cluster_ip

    def available():
        dep = k8s.AppsV1Api(core.api_client).read_namespaced_deployment("hello", "default")
        return ((dep.status and dep.status.available_replicas) or 0) == 2
    eventually(available, timeout=240, message="the hello Deployment to be available")
    for host in bed.hosts:
        bed_service.route_service_range(bed, host)
        eventually(lambda host=host: "hello from" in bed_service.on_host(
            bed, host, f"curl -s -m 3 http://{ip}/")[1], timeout=60,
            message=f"the hello Service from {host.name}")
    return ip


def test_upgrade_across_the_store_protocol_change_keeps_objects_and_serving(
        bed, home, old_cluster, wheels):
    from kubernetes import client as k8s
    core = core_api(bed, home)
    eventually(lambda: len(ready_nodes(core)) == 3, timeout=180,
               message="three Ready nodes on the previous release")
    started = time.monotonic()
    ip = serve_hello(bed, core)
    TIMINGS["hello served"] = time.monotonic() - started
    for index in range(OBJECTS):
        core.create_namespaced_config_map("default", k8s.V1ConfigMap(
            metadata=k8s.V1ObjectMeta(name=f"before-{index}"), data={"index": str(index)}))
    rolling = steer(home, "cluster", "upgrade", "--name", "prev", "--version", NEW_VERSION,
                    "--wheelhouse", wheels, "--mode", "rolling", *ssh_flags(bed))
    assert rolling[0] != 0 and "a rolling upgrade is impossible" in rolling[1], rolling[1]
    assert "--mode together" in rolling[1]

    with bed_service.RequestLoop(bed, bed.hosts[-1], f"http://{ip}/") as requests:
        code, out, lines, began = bed_service.steer_lines(
            home, "cluster", "upgrade", "--name", "prev", "--version", NEW_VERSION,
            "--wheelhouse", wheels, *ssh_flags(bed), cwd=ROOT)
    TIMINGS["upgrade (together)"] = time.monotonic() - began
    print(out)
    requests.report(lines, began)
    assert code == 0, out
    assert re.search(r"store peer protocol: running \d, new "
                     rf"{store_version.PEER_PROTOCOL}: together upgrade", out), out
    assert len(re.findall(rf"^\S+: {re.escape(NEW_VERSION)}:", out, re.M)) == 3, out

    core = core_api(bed, home)
    kept = {cm.metadata.name: cm.data["index"]
            for cm in core.list_namespaced_config_map("default").items
            if cm.metadata.name.startswith("before-")}
    assert kept == {f"before-{i}": str(i) for i in range(OBJECTS)}
    core.create_namespaced_config_map("default", k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name="after"), data={"ok": "yes"}))
    assert core.read_namespaced_config_map("after", "default").data == {"ok": "yes"}
    eventually(lambda: len(ready_nodes(core)) == 3, timeout=180,
               message="three Ready nodes on the new release")
    # The client did send while the API was down (no store member running).
    stopped = next(t for t, line in lines if line.startswith("together: stopping"))
    quorum = next(t for t, line in lines if line.startswith("store: ") and "leader" in line)
    while_down = requests.between(began + stopped, began + quorum)
    print(f"requests while the store members were down ({quorum - stopped:.1f}s): "
          f"{while_down}")
    assert while_down > 0
    assert requests.results and requests.results.count(False) == 0, requests.failures
    print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in TIMINGS.items()))
