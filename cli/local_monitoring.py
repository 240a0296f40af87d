"""The monitoring addon `steer up --addons dns,monitoring` starts: Prometheus in the cluster.

Objects (created idempotently, as the DNS addon's):

    Namespace           monitoring
    ServiceAccount      monitoring/prometheus
    ClusterRole         system:steer-prometheus   get/list/watch nodes, pods, endpoints (what
                                                  the discovery sidecar lists); get nodes/proxy
                                                  (the agents' metrics through the API server)
                                                  and the non-resource URL /metrics
    ClusterRoleBinding  system:steer-prometheus   -> the ServiceAccount
    Secret              monitoring/prometheus-tls a certificate of the cluster CA (CN
                                                  system:steer-prometheus, O=system:monitoring)
                                                  for Prometheus's own TLS port and as its
                                                  client certificate towards the store
                                                  members' /metrics; store-ca.crt (the store
                                                  CA's certificate, which signs the members')
    ConfigMap           monitoring/prometheus-config  prometheus.yml, rules.yml, alerts.yml,
                                                  web.yml (cli/monitoring_config.py)
    Deployment          monitoring/prometheus     1 replica of steer.local/steer-prometheus:
                                                  <version> (cli/local_monitoring_image.py):
                                                  Prometheus + the discovery sidecar
    Service             monitoring/prometheus     9090/TCP "https"

Prometheus's port speaks TLS and asks every caller for a client certificate of the
cluster CA (web.yml). Before these, ``start`` opens the doors to the control plane's
metrics ports and writes kube-system/kube-scheduler, kube-controller-manager and
steer-store (Services without selectors + Endpoints; cli/component_metrics.py). ``STEER_MONITORING_INTERVAL`` (e.g. ``2s``; default 15s) sets the
scrape and rule interval; the NodeNotReady alert's ``for:`` is 4 intervals.
"""

import base64
import os

from cli import component_metrics, local_addons, local_monitoring_image, monitoring_config
from cli.pki import CertificateAuthority
from control.objects import kinds

NAMESPACE = "monitoring"
NAME = "prometheus"
ROLE = "system:steer-prometheus"
TLS_SECRET = "prometheus-tls"
CONFIG_MAP = "prometheus-config"
LABELS = {"app.kubernetes.io/name": "prometheus"}
COMMON_NAME = "system:steer-prometheus"
INTERVAL_ENV = "STEER_MONITORING_INTERVAL"


def interval_from_env(env=None):
    """(scrape interval, NodeNotReady's for:) from STEER_MONITORING_INTERVAL (ValueError)."""
    interval = (os.environ if env is None else env).get(INTERVAL_ENV) or \
        monitoring_config.DEFAULT_INTERVAL
    return interval, f"{4 * monitoring_config.seconds(interval)}s"


def monitoring_objects(image, tls, interval=monitoring_config.DEFAULT_INTERVAL,
                       node_down_for=None):
    """[(resource, namespace, body)] in creation order; ``tls``: {ca.crt, tls.crt, tls.key}."""
    read = ["get", "list", "watch"]
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": ROLE},
            "rules": [{"apiGroups": [""], "resources": ["nodes", "pods", "endpoints"],
                       "verbs": read},
                      {"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]},
                      {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": ROLE},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": ROLE},
               "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]}
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
              "metadata": {"name": TLS_SECRET, "namespace": NAMESPACE},
              "data": {k: base64.b64encode(v).decode() for k, v in sorted(tls.items())}}
    config = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": CONFIG_MAP, "namespace": NAMESPACE},
              "data": monitoring_config.files(interval, node_down_for)}
    return [(kinds.NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": NAMESPACE}}),
            (kinds.SERVICEACCOUNTS, NAMESPACE, {"apiVersion": "v1", "kind": "ServiceAccount",
                                                "metadata": {"name": NAME,
                                                             "namespace": NAMESPACE}}),
            (kinds.CLUSTERROLES, None, role), (kinds.CLUSTERROLEBINDINGS, None, binding),
            (kinds.SECRETS, NAMESPACE, secret), (kinds.CONFIGMAPS, NAMESPACE, config),
            (kinds.DEPLOYMENTS, NAMESPACE, deployment(image, interval)),
            (kinds.SERVICES, NAMESPACE, service())]


def deployment(image, interval):
    cfg = monitoring_config
    port = cfg.WEB_PORT
    locked = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    prometheus = {
        "name": "prometheus", "image": image, "imagePullPolicy": "IfNotPresent",
        "command": ["/usr/bin/prometheus", f"--config.file={cfg.CONFIG_DIR}/prometheus.yml",
                    f"--web.config.file={cfg.CONFIG_DIR}/web.yml",
                    f"--web.listen-address=0.0.0.0:{port}", "--storage.tsdb.path=/prometheus",
                    "--storage.tsdb.retention.time=1d"],
        "ports": [{"name": "https", "containerPort": port, "protocol": "TCP"}],
        # The port asks for a client certificate: a TCP check is what a probe can do.
        "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 2},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                      "limits": {"memory": "1Gi"}},
        "securityContext": locked,
        "volumeMounts": [{"name": "config", "mountPath": cfg.CONFIG_DIR, "readOnly": True},
                         {"name": "tls", "mountPath": cfg.TLS_DIR, "readOnly": True},
                         {"name": "targets", "mountPath": cfg.TARGETS_DIR, "readOnly": True},
                         {"name": "data", "mountPath": "/prometheus"}]}
    discovery = {
        "name": "discovery", "image": image, "imagePullPolicy": "IfNotPresent",
        "command": ["/usr/local/bin/python3", "-m", "control.monitoring.discovery",
                    "--output-dir", cfg.TARGETS_DIR,
                    "--interval", str(min(cfg.seconds(interval), 5))],
        "resources": {"requests": {"cpu": "20m", "memory": "40Mi"},
                      "limits": {"memory": "200Mi"}},
        "securityContext": locked,
        "volumeMounts": [{"name": "targets", "mountPath": cfg.TARGETS_DIR}]}
    volumes = [{"name": "config", "configMap": {"name": CONFIG_MAP}},
               {"name": "tls", "secret": {"secretName": TLS_SECRET, "defaultMode": 0o400}},
               {"name": "targets", "emptyDir": {}}, {"name": "data", "emptyDir": {}}]
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS)},
            "spec": {"replicas": 1, "strategy": {"type": "Recreate"},
                     "selector": {"matchLabels": dict(LABELS)},
                     "template": {"metadata": {"labels": dict(LABELS)},
                                  "spec": {"serviceAccountName": NAME,
                                           "containers": [prometheus, discovery],
                                           "volumes": volumes}}}}


def service():
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS)},
            "spec": {"selector": dict(LABELS),
                     "ports": [{"name": "https", "port": monitoring_config.WEB_PORT,
                                "targetPort": monitoring_config.WEB_PORT, "protocol": "TCP"}]}}


def issue_certificate(creds, store_ca_file=None):
    """{ca.crt, tls.crt, tls.key[, store-ca.crt]} bytes: Prometheus's certificate and trust.

    The certificate (kept under <home>/pki/monitoring) serves Prometheus's port and is
    its client certificate: O=system:monitoring lets it read the store members' /metrics.
    """
    directory = os.path.join(creds.dir, "monitoring")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    ca = CertificateAuthority.load_or_create(creds.dir)
    svc = monitoring_config.SERVICE_DNS
    issued = ca.issue(directory, "prometheus", COMMON_NAME,
                      (component_metrics.MONITORING_GROUP,),
                      dns_names=["localhost", NAME, f"{NAME}.{NAMESPACE}", svc,
                                 f"{svc}.cluster.local"],
                      ip_addresses=["127.0.0.1"], server=True, client=True)
    out = {}
    files = [("ca.crt", creds.ca_file), ("tls.crt", issued.cert), ("tls.key", issued.key)]
    if store_ca_file:
        files.append((monitoring_config.STORE_CA, store_ca_file))
    for key, path in files:
        with open(path, "rb") as f:
            out[key] = f.read()
    return out


def open_control_plane_doors(creds, rest, say):
    """Doors to the scheduler's, controller manager's and store's metrics; their Services.

    Returns the store CA's certificate file (None when the cluster records no store).
    """
    from cli import local_cluster, local_network
    cluster = local_cluster.LocalCluster(os.path.dirname(creds.dir))
    net = local_network.LocalNetwork.from_record(cluster.state["network"])
    plan = component_metrics.open_doors(
        cluster, os.path.join(local_network.NETNS_DIR, net.lan_netns), net.gateway)
    local_addons.deploy(rest, component_metrics.kube_system_objects(plan, net.gateway))
    say(f"monitoring: {len(plan)} control-plane metrics ports behind doors on {net.gateway} "
        "(kube-system/kube-scheduler, kube-controller-manager, steer-store)")
    store_dir = (cluster.state.get("store") or {}).get("dir")
    return os.path.join(store_dir, "pki", "ca.crt") if store_dir else None


def push_image(creds, say):
    """Build steer-prometheus and push it to the cluster's registry (nodes pull it from there)."""
    from cli import local_addons
    return local_addons.push_image(creds, local_monitoring_image.build_prometheus,
                                   "monitoring", say)


def start(ctx):
    """The `monitoring` addon's starter (cli/local_addons.STARTERS)."""
    from cli.cluster_cmd import Failure
    if not ctx.containers:
        raise Failure("the monitoring addon runs Prometheus in a pod: it needs a containers "
                      "cluster (steer up --runtime cri)")
    reason = local_monitoring_image.unavailable_reason()
    if reason:
        raise Failure(f"monitoring: {reason}")
    try:
        interval, node_down_for = interval_from_env()
    except ValueError as exc:
        raise Failure(f"{INTERVAL_ENV}: {exc}") from None
    image = push_image(ctx.creds, ctx.say)
    rest = local_addons.admin_client(ctx.url, ctx.creds)
    store_ca = open_control_plane_doors(ctx.creds, rest, ctx.say)
    created = local_addons.deploy(rest, monitoring_objects(
        image, issue_certificate(ctx.creds, store_ca), interval, node_down_for))
    ctx.say(f"monitoring: {NAMESPACE}/{NAME} ({image}, every {interval}) behind "
            f"{NAMESPACE}/{NAME}:{monitoring_config.WEB_PORT} (TLS, client certificates of "
            "the cluster CA)" + ("" if created else " (already there)"))


MANIFEST_HEADER = """\
# The monitoring addon's objects as `steer up --addons dns,monitoring` creates them
# (rendered by `python -m cli.local_monitoring examples/monitoring`; do not edit).
# Not included: the Secret monitoring/prometheus-tls (ca.crt, tls.crt, tls.key: a
# certificate of the cluster CA in group system:monitoring for Prometheus's TLS port and
# the store's /metrics; store-ca.crt), which `steer up` issues, nor the kube-system
# Services/Endpoints of the control plane's metrics doors (cli/component_metrics.py).
# The image steer.local/steer-prometheus:<version> is built by cli/local_monitoring_image.py.
"""


def manifest_text(image=local_monitoring_image.PROMETHEUS_IMAGE):
    """examples/monitoring/monitoring.yaml: every object but the TLS Secret, as YAML documents."""
    import yaml
    bodies = [body for resource, _, body in monitoring_objects(image, {})
              if resource is not kinds.SECRETS]
    return MANIFEST_HEADER + "---\n" + "---\n".join(
        yaml.safe_dump(body, sort_keys=False, width=100) for body in bodies)


if __name__ == "__main__":
    import sys
    with open(os.path.join(sys.argv[1] if len(sys.argv) > 1 else "examples/monitoring",
                           "monitoring.yaml"), "w") as f:
        f.write(manifest_text())
