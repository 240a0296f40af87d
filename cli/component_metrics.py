"""The control plane's metrics ports on a local cluster: flags, doors and kube-system Services.

`steer up` runs the scheduler and controller manager with a --secure-port (HTTPS,
serving certificates ``<name>-serving`` of the cluster CA, cli/local_pki.py,
delegated authentication and authorization) and every store member's
--metrics-addr over TLS (its member certificate; only clients of the CLUSTER CA in
group system:monitoring may read). All listen on this machine's loopback, which no
pod reaches; the monitoring addon (cli/local_monitoring.py) therefore opens a door
(agent/netns_door.py) for each in the LAN namespace, on the gateway at the port
Kubernetes uses, and writes Services without selectors plus Endpoints in
kube-system pointing at the doors, annotated for scraping:

    kube-scheduler            <gateway>:10259   https, delegated auth (ServiceAccount token)
    kube-controller-manager   <gateway>:10257   https, delegated auth (ServiceAccount token)
    steer-store               <gateway>:2381+i  https, client certificate (system:monitoring)

The addresses are recorded in cluster.json as ``componentMetrics``.
"""

import os

from cli import pki
from cli.local_cluster import python_module

#: The ports the doors listen on in the LAN namespace (Kubernetes' and etcd's ports).
DOOR_PORTS = {"scheduler": 10259, "controller-manager": 10257}
STORE_DOOR_BASE = 2381
#: kube-system Service per component (the names kube-prometheus scrapes).
SERVICES = {"scheduler": "kube-scheduler", "controller-manager": "kube-controller-manager",
            "store": "steer-store"}
MONITORING_GROUP = "system:monitoring"


def cluster_ca_file(creds_dir):
    """Make the cluster CA now if missing (the store starts before the other credentials)."""
    os.makedirs(creds_dir, mode=0o700, exist_ok=True)
    os.chmod(creds_dir, 0o700)
    pki.CertificateAuthority.load_or_create(creds_dir)
    return os.path.join(creds_dir, pki.CA_CERT)


def store_metrics_flags(member_cert, member_key, cluster_ca):
    """A store member's metrics TLS: its member certificate; clients of the cluster CA."""
    return ["--metrics-cert-file", member_cert, "--metrics-key-file", member_key,
            "--metrics-client-ca-file", cluster_ca]


def secure_port_flags(creds, name, port):
    """--secure-port and its TLS files for the scheduler or controller manager ``name``."""
    cert, key = creds.cert(f"{name}-serving")
    return ["--secure-port", str(port), "--tls-cert-file", cert, "--tls-private-key-file", key,
            "--client-ca-file", creds.ca_file]


def door_plan(record, gateway):
    """[(component, member or "", gateway port, loopback address)] for ``componentMetrics``."""
    plan = [(name, "", DOOR_PORTS[name], record[name]) for name in DOOR_PORTS if record.get(name)]
    for i, (member, address) in enumerate(sorted((record.get("store") or {}).items())):
        plan.append(("store", member, STORE_DOOR_BASE + i, address))
    return plan


def open_doors(cluster, lan_netns_path, gateway):
    """Start one door per metrics port (idempotent: a running door is left alone)."""
    record = cluster.state.get("componentMetrics") or {}
    plan = door_plan(record, gateway)
    for component, member, port, address in plan:
        name = f"metrics-door-{member or component}"
        if cluster.is_running(name):
            continue
        cluster.start(name, python_module(
            "agent.netns_door", "--listen-netns", lan_netns_path,
            "--listen", f"{gateway}:{port}", "--to", address), "addon")
    cluster.save()
    return plan


def kube_system_objects(plan, gateway):
    """Services without selectors and their Endpoints, annotated for Prometheus (discovery.py)."""
    from control.objects import kinds
    by_service = {}
    for component, member, port, _ in plan:
        by_service.setdefault(SERVICES[component], []).append((member, port))
    objects = []
    for service, ports in sorted(by_service.items()):
        meta = {"name": service, "namespace": "kube-system",
                "labels": {"app.kubernetes.io/name": service,
                           "app.kubernetes.io/part-of": "steersman-control-plane"},
                "annotations": {"prometheus.io/scrape": "true", "prometheus.io/scheme": "https",
                                "prometheus.io/path": "/metrics"}}
        objects.append((kinds.SERVICES, "kube-system", {
            "apiVersion": "v1", "kind": "Service", "metadata": dict(meta),
            "spec": {"ports": [{"name": "https-metrics", "port": ports[0][1],
                                "targetPort": ports[0][1], "protocol": "TCP"}]}}))
        # One subset per door: the store's members share the gateway, not the port.
        subsets = [{"addresses": [{"ip": gateway, **({"hostname": member} if member else {})}],
                    "ports": [{"name": "https-metrics", "port": port, "protocol": "TCP"}]}
                   for member, port in ports]
        objects.append((kinds.ENDPOINTS, "kube-system", {
            "apiVersion": "v1", "kind": "Endpoints", "metadata": dict(meta),
            "subsets": subsets}))
    return objects
