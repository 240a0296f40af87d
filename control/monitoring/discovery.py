"""List the cluster's scrape targets through the API and write them for Prometheus's file_sd.

Debian's Prometheus (2.42.0+ds) is built without kubernetes_sd_configs (its client-go is
not packaged; ``promtool check config`` says "field kubernetes_sd_configs not found"), so
this sidecar of the Prometheus pod does that discovery: every ``--interval`` seconds it
lists, with the pod's ServiceAccount token (control/client/incluster.py),

    Endpoints default/kubernetes  -> apiserver.json       the API servers' https port
    Nodes                         -> nodes.json,          each agent's /metrics and
                                     nodes-resource.json  /metrics/resource through the API
                                                          server's nodes/proxy (the address is
                                                          the API server's, as this pod reaches
                                                          it: KUBERNETES_SERVICE_HOST/PORT)
    Pods (all namespaces)         -> pods.json            Running pods annotated
                                                          prometheus.io/scrape: "true", at
                                                          prometheus.io/port (path, scheme)
    Endpoints kube-system/        -> scheduler.json,      the control plane's metrics ports
      kube-scheduler,                controller-manager.   (doors written by `steer up`,
      kube-controller-manager,       json, store.json     cli/component_metrics.py); a
      steer-store                                         missing Service is no target

and writes each file (file_sd's JSON list of {"targets", "labels"}) atomically when it
changed, as Prometheus re-reads a file on change. A failed list keeps the last file.
"""

import argparse
import json
import logging
import os
import threading

from control.client import RestClient, incluster
from control.objects import kinds

log = logging.getLogger("steer.monitoring.discovery")

ANNOTATION = "prometheus.io/"


def apiserver_groups(endpoints):
    """Target groups of default/kubernetes' Endpoints (port "https")."""
    targets = []
    for subset in endpoints.get("subsets") or ():
        ports = [p["port"] for p in subset.get("ports") or () if p.get("name") == "https"]
        targets += [f"{a['ip']}:{port}" for a in subset.get("addresses") or () for port in ports]
    return [{"targets": sorted(targets), "labels": {"service": "kubernetes"}}] if targets else []


def node_groups(nodes, api_address, agent_path):
    """One group per Node: ``agent_path`` of its agent through the API server's nodes/proxy."""
    groups = []
    for node in nodes:
        name = node["metadata"]["name"]
        groups.append({"targets": [api_address],
                       "labels": {"node": name, "instance": name,
                                  "__metrics_path__": f"/api/v1/nodes/{name}/proxy{agent_path}"}})
    return sorted(groups, key=lambda g: g["labels"]["node"])


def pod_groups(pods):
    """One group per Running pod annotated prometheus.io/scrape: "true" with a valid port."""
    groups = []
    for pod in pods:
        meta, status = pod["metadata"], pod.get("status") or {}
        notes = {k[len(ANNOTATION):]: v for k, v in (meta.get("annotations") or {}).items()
                 if k.startswith(ANNOTATION)}
        port = notes.get("port", "")
        if notes.get("scrape") != "true" or status.get("phase") != "Running" or \
                not status.get("podIP") or not port.isdigit() or not 0 < int(port) < 65536:
            continue
        labels = {"namespace": meta["namespace"], "pod": meta["name"],
                  "node": (pod.get("spec") or {}).get("nodeName", "")}
        path = notes.get("path", "")
        if path.startswith("/"):
            labels["__metrics_path__"] = path
        if notes.get("scheme") in ("http", "https"):
            labels["__scheme__"] = notes["scheme"]
        groups.append({"targets": [f"{status['podIP']}:{int(port)}"], "labels": labels})
    return sorted(groups, key=lambda g: (g["labels"]["namespace"], g["labels"]["pod"]))


#: file name -> the kube-system Endpoints listing that component's metrics doors.
COMPONENTS = {"scheduler.json": "kube-scheduler",
              "controller-manager.json": "kube-controller-manager",
              "store.json": "steer-store"}


def component_groups(endpoints, service):
    """One group per address:port of a control-plane Service's Endpoints (None: no Service)."""
    groups = []
    for subset in (endpoints or {}).get("subsets") or ():
        for address in subset.get("addresses") or ():
            for port in subset.get("ports") or ():
                labels = {"service": service}
                if address.get("hostname"):
                    labels["member"] = address["hostname"]
                groups.append({"targets": [f"{address['ip']}:{port['port']}"],
                               "labels": labels})
    return sorted(groups, key=lambda g: g["targets"])


def discover(rest, api_address):
    """{file name: target groups} read from the API now (API errors raise)."""
    kubernetes = rest.get(kinds.ENDPOINTS, "default", "kubernetes")
    nodes = rest.list(kinds.NODES)["items"]
    found = {
        "apiserver.json": apiserver_groups(kubernetes),
        "nodes.json": node_groups(nodes, api_address, "/metrics"),
        "nodes-resource.json": node_groups(nodes, api_address, "/metrics/resource"),
        "pods.json": pod_groups(rest.list(kinds.PODS)["items"]),
    }
    control_plane = {e["metadata"]["name"]: e
                     for e in rest.list(kinds.ENDPOINTS, "kube-system")["items"]}
    for name, service in COMPONENTS.items():
        found[name] = component_groups(control_plane.get(service), service)
    return found


def write_if_changed(directory, name, groups):
    """Write ``groups`` to ``directory/name`` atomically unless it holds them already."""
    path = os.path.join(directory, name)
    text = json.dumps(groups, indent=1, sort_keys=True) + "\n"
    try:
        with open(path) as f:
            if f.read() == text:
                return False
    except OSError:
        pass
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return True


def run(rest, api_address, directory, interval, stop):
    """Discover and write every ``interval`` seconds until ``stop`` (an Event) is set."""
    while not stop.is_set():
        try:
            for name, groups in discover(rest, api_address).items():
                if write_if_changed(directory, name, groups):
                    log.info("file=%s targets=%d msg=targets changed", name,
                             sum(len(g["targets"]) for g in groups))
        except Exception as exc:    # noqa: BLE001 - keep the last files, try again
            log.warning("msg=cannot list scrape targets, keeping the last ones error=%s", exc)
        stop.wait(interval)


def main(argv=None):
    p = argparse.ArgumentParser(prog="steer-prometheus-discovery",
                                description=__doc__.split("\n")[0])
    p.add_argument("--output-dir", required=True, help="where the file_sd JSON files go")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between lists")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        rest = RestClient.from_config(incluster.load())
    except incluster.InClusterError as exc:
        raise SystemExit(f"error: {exc}") from None
    os.makedirs(args.output_dir, exist_ok=True)
    run(rest, api_address(os.environ), args.output_dir, args.interval, threading.Event())


def api_address(env):
    """host:port this pod reaches the API server at (client-go's in-cluster variables)."""
    host, port = env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


if __name__ == "__main__":
    main()
