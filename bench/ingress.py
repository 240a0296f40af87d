"""Benchmark the Ingress addon: requests/s and p99 through nginx against straight to a pod.

Run (root): ``make bench-ingress`` or ``.venv/bin/python -m bench.ingress`` (``--help``).
It runs `steer up --nodes 2 --runtime cri --addons dns,ingress` in a temporary
STEER_HOME, deploys ONE pod of the hello image (busybox httpd) behind a Service and
an Ingress (host bench.example.test), then loads it from node-1's network namespace
with one client program (Python threads, a new TCP connection per request, as
busybox httpd closes each one) at the same concurrency, in alternating rounds:

    direct    GET / straight to the pod's IP, port 8080
    ingress   GET / with Host bench.example.test to node-1's address, port 80 (the
              DaemonSet's hostPort: nginx, which proxies to the same pod)

Both paths end at the same single pod, so the ratio is what the extra hop costs.
Figures are printed beside the issue's goal (>= 0.8x direct); nothing is asserted.
`steer down --purge` runs in ``finally``, whatever failed.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.network_pod_dns import Cluster, wait_for  # noqa: E402
from cli import local_images, local_network  # noqa: E402
from cli.local_cluster import LocalCluster  # noqa: E402
from control.client import RestClient, kubeconfig  # noqa: E402
from control.objects import conditions, kinds  # noqa: E402

HOST = "bench.example.test"
INGRESSES = kinds.lookup("networking.k8s.io", "v1", "ingresses")
#: The load generator, run inside a node namespace (nsenter): prints one JSON summary.
CLIENT = r"""
import json, socket, sys, threading, time
address, port, host, threads, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], \
    int(sys.argv[4]), float(sys.argv[5])
request = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
latencies, errors, lock = [], [0], threading.Lock()
end = time.monotonic() + seconds
def run():
    mine, failed = [], 0
    while time.monotonic() < end:
        started = time.monotonic()
        try:
            with socket.create_connection((address, port), timeout=5) as s:
                s.sendall(request)
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            ok = data.startswith(b"HTTP/1.") and data.split(b" ", 2)[1] == b"200"
        except OSError:
            ok = False
        if ok:
            mine.append(time.monotonic() - started)
        else:
            failed += 1
    with lock:
        latencies.extend(mine)
        errors[0] += failed
workers = [threading.Thread(target=run) for _ in range(threads)]
started = time.monotonic()
for w in workers: w.start()
for w in workers: w.join()
elapsed = time.monotonic() - started
latencies.sort()
p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else None
print(json.dumps({"requests": len(latencies), "errors": errors[0], "seconds": elapsed,
                  "rps": len(latencies) / elapsed, "p50": p(0.50), "p99": p(0.99)}))
"""


def app_objects(image):
    labels = {"app": "bench"}
    backend = {"service": {"name": "bench", "port": {"number": 80}}}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bench"},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels}, "spec": {"containers": [{
                 "name": "hello", "image": image, "ports": [{"containerPort": 8080}],
                 "readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                                    "periodSeconds": 1}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bench"},
         "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "bench"},
         "spec": {"rules": [{"host": HOST, "http": {"paths": [
             {"path": "/", "pathType": "Prefix", "backend": backend}]}}]}}]


def load(netns_name, address, port, host, concurrency, seconds):
    argv = local_network.exec_argv(netns_name, [sys.executable, "-c", CLIENT, address,
                                                str(port), host, str(concurrency),
                                                str(seconds)])
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60,
                         stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise RuntimeError(f"the load client failed: {out.stderr[-1000:]}")
    return json.loads(out.stdout)


def measure(concurrency, seconds, rounds):
    home = tempfile.mkdtemp(prefix="steer-bench-ingress-")
    cluster = Cluster(home)
    try:
        print(f"steer up --nodes 2 --runtime cri --addons dns,ingress (STEER_HOME={home})",
              flush=True)
        cluster.steer("up", "--nodes", "2", "--runtime", "cri", "--addons", "dns,ingress",
                      timeout=600)
        cluster.rest = RestClient.from_config(
            kubeconfig.load(os.path.join(home, "kubeconfig")), timeout=10)
        for resource, obj in zip((kinds.DEPLOYMENTS, kinds.SERVICES, INGRESSES),
                                 app_objects(local_images.HELLO_IMAGE)):
            cluster.rest.create(resource, "default", obj)
        pod = wait_for(lambda: next((p for p in cluster.rest.list(
            kinds.PODS, "default", label_selector="app=bench")["items"]
            if conditions.is_ready(p)), None), 180, "the bench pod to be ready")
        net = local_network.LocalNetwork.from_record(LocalCluster(home).state["network"])
        node = net.nodes[0]
        wait_for(lambda: load(node.netns, node.address, 80, HOST, 1, 1.0)["requests"] > 0,
                 180, "the Ingress to answer on node-1")
        pod_ip = pod["status"]["podIP"]
        results = {"direct": [], "ingress": []}
        for _ in range(rounds):
            results["direct"].append(load(node.netns, pod_ip, 8080, HOST, concurrency,
                                          seconds))
            results["ingress"].append(load(node.netns, node.address, 80, HOST, concurrency,
                                           seconds))
        return results
    finally:
        cluster.down()
        shutil.rmtree(home, ignore_errors=True)


def report(results, concurrency, seconds):
    def total(kind):
        runs = results[kind]
        requests = sum(r["requests"] for r in runs)
        elapsed = sum(r["seconds"] for r in runs)
        p99 = max(r["p99"] or 0 for r in runs)
        return requests / elapsed, p99, sum(r["errors"] for r in runs)
    direct, ingress = total("direct"), total("ingress")
    print(f"\nconcurrency {concurrency}, {len(results['direct'])} rounds of {seconds:.0f} s "
          "each path, alternating; a new connection per request")
    for name, (rps, p99, errors) in (("direct to the pod IP", direct),
                                     ("through the Ingress", ingress)):
        print(f"  {name:22} {rps:8.0f} requests/s   p99 {p99 * 1000:7.1f} ms   "
              f"errors {errors}")
    print(f"  ratio ingress/direct   {ingress[0] / direct[0]:.2f}x requests/s "
          "(goal >= 0.8x)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--seconds", type=float, default=10.0, help="per round and path")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    started = time.monotonic()
    results = measure(args.concurrency, args.seconds, args.rounds)
    report(results, args.concurrency, args.seconds)
    print(f"({time.monotonic() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
