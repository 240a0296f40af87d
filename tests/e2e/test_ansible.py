"""End to end: `ansible-playbook steersman.cluster.site` onto simulated bare hosts.

3 control hosts (h1 also a worker) + 1 more worker, each its own network, mount and
PID namespace running sshd (tests/support/hosts.py). OpenSSH reaches them through
``tests.support.ssh_relay`` as its ProxyCommand (the LAN has no address in the root
namespace); host keys are checked against the bed's known_hosts. The run must bring
every node to Ready, and a second run must report changed=0 on every host.
"""

import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from cli.baremetal.credentials import ClusterCredentials

pytestmark = [pytest.mark.baremetal, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MISSING = [tool for tool in ("sshd", "supervisord", "containerd", "ssh")
           if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}")]
if not (BIN / "ansible-playbook").exists():
    MISSING.append("ansible-core (pip install -e '.[test]')")
if os.geteuid() != 0:
    MISSING.append("root (network namespaces)")
if MISSING:
    pytestmark.append(pytest.mark.skip(reason=f"needs {', '.join(MISSING)}"))

TIMINGS = {}


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    from tests.support.hosts import host_bed
    with host_bed(4, tmp_path_factory.mktemp("hosts")) as bed:
        yield bed


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("ansible")


@pytest.fixture(scope="module")
def registry(bed, tmp_path_factory):
    """A registry on the LAN's bridge address with the pause and hello images (nothing
    may come from the internet)."""
    from cli import local_images
    from cli.registry import Registry, push
    from tests.support.hosts import BRIDGE_ADDRESS
    address = f"{BRIDGE_ADDRESS}:5000"
    reg = Registry(str(tmp_path_factory.mktemp("registry")), address, netns=bed.lan_netns)
    reg.start(timeout=30)
    try:
        for build in (local_images.build_pause, local_images.build_hello):
            archive = build()
            push(archive, address, archive.name.split("/", 1)[1], netns=bed.lan_netns)
        yield address
    finally:
        reg.stop()


@pytest.fixture(scope="module")
def inventory(bed, workdir, registry):
    from agent.provision.wheelhouse import build_wheelhouse
    from cli import local_images
    wheelhouse, _ = build_wheelhouse(ROOT)
    relay = f"{sys.executable} -m tests.support.ssh_relay {bed.lan_netns_path} %h %p"
    ssh_args = (f"-o UserKnownHostsFile={bed.known_hosts} -o StrictHostKeyChecking=yes "
                f"-o ProxyCommand='{relay}'")
    hosts = {h.name: {"ansible_host": h.address} for h in bed.hosts}
    document = {"all": {
        "vars": {
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(bed.admin_key),
            "ansible_ssh_common_args": ssh_args,
            "ansible_python_interpreter": "/usr/bin/python3",
            "steersman_cluster_name": "ans",
            "steersman_version": "0.1.0",
            "steersman_wheelhouse": str(wheelhouse),
            "steersman_pki_dir": str(workdir / "pki"),
            # Hosts here share /etc/sysctl.d with this machine: keep it per host.
            "steersman_sysctl_file": "/etc/steersman/sysctl.conf",
            "steersman_install_packages": False,
            "steersman_sandbox_image": local_images.PAUSE_IMAGE,
            "steersman_registry_mirrors": {"steer.local": f"http://{registry}"},
        },
        "children": {
            "steersman_control": {"hosts": {n: hosts[n] for n in ("h1", "h2", "h3")}},
            "steersman_workers": {"hosts": {n: hosts[n] for n in ("h1", "h4")}},
        }}}
    path = workdir / "inventory.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def ansible_env(workdir):
    tree = workdir / "collections"
    link = tree / "ansible_collections" / "steersman" / "cluster"
    if not link.exists():
        link.parent.mkdir(parents=True)
        link.symlink_to(ROOT / "ansible")
    return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tree), ANSIBLE_HOME=str(workdir / "home"),
                ANSIBLE_NOCOLOR="1", ANSIBLE_PIPELINING="1", ANSIBLE_FORKS="5",
                ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=10s",
                ANSIBLE_RETRY_FILES_ENABLED="0", PYTHONPATH=str(ROOT),
                PATH=f"{BIN}:{os.environ.get('PATH', '')}")


def playbook(inventory, workdir, *args, name="site", timeout=1200):
    started = time.monotonic()
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory),
                           f"steersman.cluster.{name}", *args], cwd=workdir,
                          env=ansible_env(workdir), capture_output=True, text=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


def recap(output):
    """{host: changed count} from the PLAY RECAP."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(
        r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", output, re.MULTILINE)}


@pytest.fixture(scope="module")
def installed(inventory, workdir):
    code, out, seconds = playbook(inventory, workdir)
    TIMINGS["site.yml from bare hosts"] = seconds
    print(f"site.yml from bare hosts: {seconds:.1f}s")
    print(out[-20000:])
    assert code == 0, out[-20000:]
    return out


def api_get(bed, workdir, path):
    """GET ``path`` from h1's API server (through a door) as the admin."""
    creds = ClusterCredentials(str(workdir / "pki")).ensure_cas()
    context = ssl.create_default_context(cafile=creds.ca_file)
    context.load_cert_chain(*creds.admin_cert())
    context.check_hostname = False
    port = getattr(bed, "_ansible_door", None) or bed.door(bed.hosts[0].address, 6443)
    bed._ansible_door = port
    with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=context,
                                timeout=5) as response:
        return json.loads(response.read())


def test_site_yml_brings_every_node_to_ready(bed, workdir, installed):
    deadline = time.monotonic() + 180
    ready = set()
    while time.monotonic() < deadline:
        try:
            nodes = api_get(bed, workdir, "/api/v1/nodes")["items"]
        except OSError:
            nodes = []
        ready = {n["metadata"]["name"] for n in nodes
                 if any(c["type"] == "Ready" and c["status"] == "True"
                        for c in n.get("status", {}).get("conditions", []))}
        if ready == {"h1", "h4"}:
            break
        time.sleep(1)
    assert ready == {"h1", "h4"}


def api_send(bed, workdir, method, path, body):
    """Send ``body`` (JSON) to h1's API server as the admin; the decoded answer."""
    creds = ClusterCredentials(str(workdir / "pki")).ensure_cas()
    context = ssl.create_default_context(cafile=creds.ca_file)
    context.load_cert_chain(*creds.admin_cert())
    context.check_hostname = False
    port = getattr(bed, "_ansible_door", None) or bed.door(bed.hosts[0].address, 6443)
    bed._ansible_door = port
    request = urllib.request.Request(f"https://127.0.0.1:{port}{path}", method=method,
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        return json.loads(response.read())


def on_host(bed, host, command):
    from agent.provision import ssh
    conn = ssh.connect(host.target, known_hosts=str(bed.known_hosts),
                       key_filename=str(bed.admin_key), sock=bed.sock(host.address))
    with conn:
        result = conn.run(command, check=False, timeout=30)
    return result.exit_status, result.stdout.decode(errors="replace")


def test_a_deployment_and_service_answer_from_every_host(bed, workdir, installed):
    """The cluster site.yml built runs a workload: every host reaches it through each
    node's NodePort, and the nodes through its ClusterIP too."""
    from tests.support.apiproc import eventually
    from tests.support.hosts import BRIDGE_ADDRESS
    with open(ROOT / "examples" / "hello.yaml") as f:
        deployment, service = list(yaml.safe_load_all(f))
    deployment["spec"]["replicas"] = 2
    service["spec"]["type"] = "NodePort"
    started = time.monotonic()
    api_send(bed, workdir, "POST", "/apis/apps/v1/namespaces/default/deployments", deployment)
    created = api_send(bed, workdir, "POST", "/api/v1/namespaces/default/services", service)
    ip, node_port = created["spec"]["clusterIP"], created["spec"]["ports"][0]["nodePort"]

    def available():
        dep = api_get(bed, workdir, "/apis/apps/v1/namespaces/default/deployments/hello")
        return (dep.get("status") or {}).get("availableReplicas") == 2
    eventually(available, timeout=240, message="the hello Deployment to be available")
    nodes = [h for h in bed.hosts if h.name in ("h1", "h4")]
    for host in bed.hosts:
        urls = [f"http://{node.address}:{node_port}/" for node in nodes]
        if host in nodes:   # a route for the Service range (the bed's hosts have none)
            on_host(bed, host, f"ip route replace 10.96.0.0/12 via {BRIDGE_ADDRESS}")
            urls.append(f"http://{ip}/")
        for url in urls:
            def answers(host=host, url=url):
                code, out = on_host(bed, host, f"curl -s -m 3 {url}")
                return code == 0 and "hello from" in out
            eventually(answers, timeout=60, message=f"{url} from {host.name}")
    TIMINGS["workload available and answering"] = time.monotonic() - started


def test_a_second_run_changes_nothing(inventory, workdir, installed):
    code, out, seconds = playbook(inventory, workdir)
    TIMINGS["site.yml on an up-to-date cluster"] = seconds
    print(f"site.yml on an up-to-date cluster: {seconds:.1f}s")
    assert code == 0, out[-20000:]
    changed = recap(out)
    assert changed and all(v == 0 for v in changed.values()), out[-20000:]


def test_check_mode_predicts_no_change(inventory, workdir, installed):
    code, out, _ = playbook(inventory, workdir, "--check", "--diff")
    assert code == 0, out[-20000:]
    assert all(v == 0 for v in recap(out).values()), out[-20000:]


def test_raising_the_version_upgrades_one_control_host_at_a_time(bed, workdir, inventory,
                                                                 installed):
    code, out, seconds = playbook(inventory, workdir, "-e", "steersman_version=0.1.1")
    TIMINGS["upgrade (4 hosts, version raised)"] = seconds
    assert code == 0, out[-20000:]
    # serial: 1 -- each control host is its own batch, and each store member waited
    # for the store's quorum after its restart before the next host began.
    waits = re.findall(r"TASK \[steersman\.cluster\.store : Wait until every member", out)
    assert len(waits) == 3, out[-20000:]
    for host in bed.hosts:
        for conf in (host.path("/etc/steersman")
                     / "supervisor" / "conf.d").glob("steersman-*.conf"):
            assert "/opt/steersman/0.1.1/venv/bin/" in conf.read_text(), conf
    test_site_yml_brings_every_node_to_ready(bed, workdir, installed)


def test_backup_fetches_a_private_snapshot(bed, workdir, inventory, installed):
    backups = workdir / "backups"
    code, out, _ = playbook(inventory, workdir, "-e", f"steersman_backup_dir={backups}",
                            name="backup")
    assert code == 0, out[-20000:]
    snapshots = list(backups.glob("ans-*.snap"))
    assert len(snapshots) == 1 and snapshots[0].stat().st_size > 0, out[-5000:]
    assert snapshots[0].stat().st_mode & 0o777 == 0o600


def test_reset_stops_everything_and_empties_the_hosts(bed, workdir, inventory, installed):
    code, out, _ = playbook(inventory, workdir, name="reset")
    assert code == 0, out[-20000:]
    for host in bed.hosts:
        commands = []
        for pid in host.pids():
            try:
                commands.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" "))
            except OSError:
                continue
        leftovers = [c for c in commands if re.search(rb"steer-|containerd|supervisord", c)]
        assert not leftovers, (host.name, leftovers)
        for top in ("/etc/steersman", "/var/lib/steersman", "/opt/steersman"):
            assert not any(host.path(top).iterdir()), (host.name, top)


def test_timings_are_reported():
    print("\n".join(f"{k}: {v:.1f}s" for k, v in TIMINGS.items()))
