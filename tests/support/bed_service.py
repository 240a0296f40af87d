"""A workload on simulated bare-metal hosts (tests/support/hosts.py): images, the hello
Deployment and Service, and a client counting requests through the Service.

Shared by the bare-metal e2e modules, so the create test and the upgrade from the
previous release serve (and measure) the same way.
"""

import contextlib
import os
import threading
import time

import yaml

REGISTRY_PORT = 5000
SERVICE_RANGE = "10.96.0.0/12"
HELLO_MANIFEST = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "examples", "hello.yaml")


@contextlib.contextmanager
def lan_registry(bed, directory):
    """A registry on the LAN's bridge address holding the pause and hello images; yields
    its address (what ``--registry-mirror steer.local=http://ADDRESS`` names)."""
    from cli import local_images
    from cli.registry import Registry, push
    from tests.support.hosts import BRIDGE_ADDRESS
    address = f"{BRIDGE_ADDRESS}:{REGISTRY_PORT}"
    reg = Registry(str(directory), address, netns=bed.lan_netns)
    reg.start(timeout=30)
    try:
        for build in (local_images.build_pause, local_images.build_hello):
            archive = build()
            push(archive, address, archive.name.split("/", 1)[1], netns=bed.lan_netns)
        yield address
    finally:
        reg.stop()


def image_flags(registry):
    """`steer cluster create` flags that take every image from ``registry``."""
    from cli import local_images
    return ["--sandbox-image", local_images.PAUSE_IMAGE,
            "--registry-mirror", f"steer.local=http://{registry}"]


def on_host(bed, host, command):
    """Run ``command`` on ``host`` over SSH; (exit status, stdout text)."""
    from agent.provision import ssh
    conn = ssh.connect(host.target, known_hosts=str(bed.known_hosts),
                       key_filename=str(bed.admin_key), sock=bed.sock(host.address))
    with conn:
        result = conn.run(command, check=False, timeout=30)
    return result.exit_status, result.stdout.decode(errors="replace")


def route_service_range(bed, host):
    """Give ``host`` a route for the Service range towards the LAN bridge.

    A host process reaches a ClusterIP only if some route covers it (a real host's
    default route); the bed's hosts have none. The bridge leads nowhere else.
    """
    from tests.support.hosts import BRIDGE_ADDRESS
    on_host(bed, host, f"ip route replace {SERVICE_RANGE} via {BRIDGE_ADDRESS}")


def hello_objects(replicas=2, service_type=None):
    """The hello Deployment and Service of examples/hello.yaml, as dicts."""
    with open(HELLO_MANIFEST) as f:
        deployment, service = list(yaml.safe_load_all(f))
    deployment["spec"]["replicas"] = replicas
    if service_type:
        service["spec"]["type"] = service_type
    return deployment, service


class RequestLoop:
    """One request every ``interval`` s through ``url`` with curl on ``host``, over one
    SSH connection, until stopped; ``results`` (True: answered hello), ``sent`` (the
    monotonic time each was sent) and ``failures`` ((time, curl exit status)) count them."""

    def __init__(self, bed, host, url, interval=0.2):
        self.bed, self.host, self.url, self.interval = bed, host, url, interval
        self.results, self.sent, self.failures = [], [], []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        from agent.provision import ssh
        conn = ssh.connect(self.host.target, known_hosts=str(self.bed.known_hosts),
                           key_filename=str(self.bed.admin_key),
                           sock=self.bed.sock(self.host.address))
        with conn:
            while not self._done.is_set():
                at = time.monotonic()
                result = conn.run(f"curl -s -m 2 {self.url}", check=False, timeout=10)
                self.results.append(result.exit_status == 0 and b"hello from" in result.stdout)
                self.sent.append(at)
                if not self.results[-1]:
                    self.failures.append((at, result.exit_status))
                self._done.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join(30)

    def between(self, start, end):
        """How many requests were sent between monotonic times ``start`` and ``end``."""
        return sum(1 for at in self.sent if start <= at <= end)

    def report(self, lines=(), began=0.0, what="during the upgrade"):
        """Print each failure (with the two output ``lines`` before it) and the counts."""
        for at, status in self.failures:
            before = [line for t, line in lines if t <= at - began][-2:]
            print(f"request failed (curl exit {status}) {at - began:.1f}s in, after: {before}")
        print(f"requests through the Service {what}: {len(self.results)}, "
              f"failed: {self.results.count(False)}")


def steer_lines(home, *args, cwd, timeout=900):
    """Run `steer` from the tree ``cwd``, each output line stamped with seconds since its
    start: (exit status, output, [(seconds, line)], monotonic start)."""
    import subprocess
    import sys
    env = {**os.environ, "STEER_HOME": home, "PYTHONUNBUFFERED": "1", "PYTHONPATH": cwd}
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = [(time.monotonic() - started, line.rstrip("\n")) for line in proc.stdout]
    proc.wait(timeout)
    return proc.returncode, "\n".join(line for _, line in lines), lines, started
