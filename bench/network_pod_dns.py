"""Benchmark cluster DNS from inside a pod: queries/s and latency through kube-dns and direct.

Run (root): ``.venv/bin/python -m bench.network --dns-in-pod`` (after the other
figures) or ``--only-dns-in-pod``. It runs `steer up --nodes 2 --runtime cri` in a
temporary STEER_HOME, waits for the steer-dns addon, starts a pod of the steer-dns
image (it has Python and dnspython) and, inside it, bench.network's UDP load
generator (N threads, each with its own connected socket, for a fixed time) against
the kube-dns ClusterIP 10.96.0.10 and, for comparison, straight at one DNS pod's IP.
Through the ClusterIP each thread's socket is one conntrack flow, so the threads
spread over the two DNS pods; straight at a pod all of them hit that one.
`steer down --purge` runs in ``finally``, whatever failed.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cli import local_addons, local_dns_image  # noqa: E402
from control.client import RestClient, kubeconfig  # noqa: E402
from control.objects import conditions, kinds  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KUBE_DNS_IP = "10.96.0.10"
CLIENT_POD = "dns-bench"
#: Names the load asks for at random: two Services that every cluster has.
NAMES = ["kubernetes.default.svc.cluster.local", "kube-dns.kube-system.svc.cluster.local"]
#: Run in the pod: bench.network's client in this same interpreter (the image holds only
#: the modules the DNS server needs), then only the summary goes back over exec.
SUMMARIZE = """
import io, json, sys
script, sys.argv = sys.argv[1], ["client", *sys.argv[2:]]
captured, real = io.StringIO(), sys.stdout
sys.stdout = captured
try:
    exec(compile(script, "dns-client", "exec"), {"__name__": "__main__"})
except SystemExit:
    pass
finally:
    sys.stdout = real
out = json.loads(captured.getvalue().strip().splitlines()[-1])
lat = sorted(out.pop("latencies", []))
pick = lambda f: lat[min(len(lat) - 1, int(len(lat) * f))] if lat else None
out.update(p50=pick(0.5), p99=pick(0.99), max=lat[-1] if lat else None)
print(json.dumps(out))
"""


class Cluster:
    """`steer` in a private STEER_HOME."""

    def __init__(self, home):
        self.home = home
        self.env = {**os.environ, "STEER_HOME": home, "PYTHONPATH": ROOT}
        self.rest = None

    def steer(self, *args, timeout=300, check=True):
        result = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT,
                                env=self.env, capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise RuntimeError(f"steer {' '.join(args[:2])} failed ({result.returncode}):\n"
                               f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
        return result

    def up(self, nodes):
        self.steer("up", "--nodes", str(nodes), "--runtime", "cri", timeout=600)
        config = kubeconfig.load(os.path.join(self.home, "kubeconfig"))
        self.rest = RestClient.from_config(config, timeout=10)

    def down(self):
        if self.rest is not None:
            self.rest.close()
        self.steer("down", "--purge", "--timeout", "5", check=False, timeout=300)


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)
    return value


def dns_pod_ips(rest):
    pods = rest.list(kinds.PODS, "kube-system", label_selector="k8s-app=kube-dns")["items"]
    ready = [p["status"]["podIP"] for p in pods if conditions.is_ready(p)]
    return len(ready) == local_addons.REPLICAS and ready


def client_pod():
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": CLIENT_POD},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
                "name": "load", "image": local_dns_image.DNS_IMAGE,
                "command": ["python3", "-c", "import time; time.sleep(86400)"]}]}}


def run_load(cluster, client_script, server, concurrency, seconds):
    """The summary of one load run inside the client pod (dict; "error" if it failed)."""
    result = cluster.steer("exec", CLIENT_POD, "--", "python3", "-c", SUMMARIZE,
                           client_script, server, "53", json.dumps(NAMES), str(concurrency),
                           str(seconds), NAMES[0], timeout=seconds + 180)
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(client_script, nodes=2, seconds=5.0, concurrencies=(1, 16)):
    """Bring a cluster up, load its DNS from a pod; {(target, concurrency): summary}."""
    home = tempfile.mkdtemp(prefix="steer-bench-pod-dns-")
    cluster = Cluster(home)
    try:
        print(f"pod DNS: steer up --nodes {nodes} --runtime cri (STEER_HOME={home})",
              flush=True)
        started = time.monotonic()
        cluster.up(nodes)
        cluster.rest.create(kinds.PODS, "default", client_pod())
        pod_ips = wait_for(lambda: dns_pod_ips(cluster.rest), 300, "the DNS pods to be ready")
        wait_for(lambda: conditions.is_ready(cluster.rest.get(kinds.PODS, "default",
                                                               CLIENT_POD)),
                 300, "the client pod to be ready")
        print(f"pod DNS: cluster ready in {time.monotonic() - started:.0f} s", flush=True)
        results = {}
        for label, server in (("kube-dns ClusterIP", KUBE_DNS_IP),
                              (f"one DNS pod ({pod_ips[0]})", pod_ips[0])):
            for concurrency in concurrencies:
                out = run_load(cluster, client_script, server, concurrency, seconds)
                if "error" in out:
                    raise RuntimeError(f"pod DNS client against {server}: {out['error']}")
                results[(label, concurrency)] = out
        return results
    finally:
        cluster.down()


def report(results, seconds):
    print(f"\n== DNS from inside a pod (steer-dns image, dnspython UDP client, "
          f"{seconds:g} s per run; A queries for {', '.join(NAMES)}) ==")
    rows = [("target", "clients", "queries/s", "p50", "p99", "max", "errors")]
    for (label, concurrency), out in results.items():
        qps = out["count"] / out["elapsed"] if out["elapsed"] else float("nan")
        rows.append((label, str(concurrency), f"{qps:,.0f}", f"{out['p50'] * 1e3:.2f} ms",
                     f"{out['p99'] * 1e3:.2f} ms", f"{out['max'] * 1e3:.1f} ms",
                     str(out["errors"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
