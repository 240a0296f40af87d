"""The cluster addons `steer up` creates on a containers cluster: cluster DNS.

As kubeadm installs CoreDNS, `steer up` creates in kube-system:

    ServiceAccount      steer-dns
    ClusterRole         system:steer-dns   list/watch services, endpoints, endpointslices,
                                           pods, namespaces (what control/dns watches)
    ClusterRoleBinding  system:steer-dns   -> the ServiceAccount
    Deployment          steer-dns          2 replicas of steer.local/steer-dns:<version>
                                           (cli/local_dns_image.py), labels k8s-app=kube-dns
    Service             kube-dns           the 10th address of the service range
                                           (10.96.0.10), 53/UDP, 53/TCP, 9153/TCP (metrics)

The server inside reaches the API server with its projected ServiceAccount token
through KUBERNETES_SERVICE_HOST (control/client/incluster.py), so it needs no
kubeconfig. It forwards no name out of the cluster (``--upstream-resolv-conf ""``):
a local cluster has no resolver to reach, so other names get SERVFAIL at once.
Objects that exist already are left as they are (a restarted cluster keeps them).
"""

import argparse
import importlib
import ipaddress
import os
from dataclasses import dataclass

from control.client import AlreadyExists, RestClient
from control.client.kubeconfig import ClientConfig
from control.objects import kinds

#: Addons `steer up --addons` starts, by name -> "module:function" of its starter, which
#: is called as ``function(ctx: AddonContext)`` and creates its objects idempotently.
#: DNS is started by `steer up` itself (it needs the service range), hence None.
STARTERS = {"dns": None, "monitoring": "cli.local_monitoring:start",
            "storage": "cli.local_storage:start", "ingress": "cli.local_ingress:start"}
KNOWN = STARTERS.keys()
DEFAULT = ("dns", "storage")


@dataclass(frozen=True)
class AddonContext:
    """What an addon's starter gets: the API server, the admin's credentials, `up`'s flags."""

    url: str
    creds: object          # cli.local_pki.LocalCredentials
    args: object           # the parsed `steer up` arguments
    containers: bool       # True on a containers (CRI) cluster, False on the process runtime
    say: object            # say(text): progress output


def parse_addons(text):
    """``--addons a,b`` -> a tuple of known names (argparse type: a clear error otherwise)."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if names == ("none",):
        return ()
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown addon(s) {', '.join(unknown)}: choose from {', '.join(sorted(KNOWN))}")
    return names


def start_others(ctx, names):
    """Start every requested addon other than DNS, in the order given."""
    for name in names:
        target = STARTERS.get(name)
        if target is not None:
            module, _, function = target.partition(":")
            getattr(importlib.import_module(module), function)(ctx)


def admin_client(url, creds):
    """A RestClient for ``url`` as the cluster admin (creds: LocalCredentials)."""
    cert, key = creds.cert("admin")
    return RestClient.from_config(ClientConfig(server=url, ca_file=creds.ca_file,
                                               cert_file=cert, key_file=key))


def push_image(creds, build, what, say):
    """Build an addon's image with ``build()`` and push it to the cluster's registry.

    The nodes pull it from there; returns the image's name.
    """
    from cli import local_cluster, local_containers, local_network
    from cli.registry import push
    cluster = local_cluster.LocalCluster(os.path.dirname(creds.dir))
    net = local_network.LocalNetwork.from_record(cluster.state["network"])
    archive = build()
    push(archive, f"{net.gateway}:{local_containers.REGISTRY_PORT}",
         archive.name.split("/", 1)[1], netns=net.lan_netns)
    say(f"{what}: pushed {archive.name} to the cluster's registry")
    return archive.name


NAMESPACE = "kube-system"
NAME = "steer-dns"
ROLE = "system:steer-dns"
SERVICE = "kube-dns"
LABELS = {"k8s-app": "kube-dns"}
METRICS_PORT = 9153
REPLICAS = 2


def dns_objects(image, cluster_ip, cluster_domain="cluster.local", replicas=REPLICAS):
    """[(resource, namespace, body)] of the DNS addon, in the order they are created."""
    read = ["get", "list", "watch"]
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": ROLE},
            "rules": [{"apiGroups": [""], "verbs": read,
                       "resources": ["services", "endpoints", "pods", "namespaces"]},
                      {"apiGroups": ["discovery.k8s.io"], "verbs": read,
                       "resources": ["endpointslices"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": ROLE},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": ROLE},
               "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]}
    account = {"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": NAME, "namespace": NAMESPACE}}
    return [(kinds.SERVICEACCOUNTS, NAMESPACE, account), (kinds.CLUSTERROLES, None, role),
            (kinds.CLUSTERROLEBINDINGS, None, binding),
            (kinds.DEPLOYMENTS, NAMESPACE, deployment(image, cluster_domain, replicas)),
            (kinds.SERVICES, NAMESPACE, service(cluster_ip))]


def deployment(image, cluster_domain, replicas):
    probe = {"httpGet": {"path": "/readyz", "port": METRICS_PORT}, "periodSeconds": 2,
             "failureThreshold": 3}
    container = {
        "name": "dns", "image": image, "imagePullPolicy": "IfNotPresent",
        "args": ["--listen", "0.0.0.0:53", "--cluster-domain", cluster_domain,
                 "--upstream-resolv-conf", "", "--metrics-addr", f"0.0.0.0:{METRICS_PORT}"],
        "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                  {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                  {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "readinessProbe": probe,
        "livenessProbe": dict(probe, httpGet={"path": "/healthz", "port": METRICS_PORT},
                              periodSeconds=10, failureThreshold=5, initialDelaySeconds=10),
        "resources": {"requests": {"cpu": "100m", "memory": "70Mi"},
                      "limits": {"memory": "170Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}},
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS)},
            "spec": {"replicas": replicas, "selector": {"matchLabels": dict(LABELS)},
                     "template": {"metadata": {"labels": dict(LABELS),
                                               # The monitoring addon scrapes its metrics.
                                               "annotations": {
                                                   "prometheus.io/scrape": "true",
                                                   "prometheus.io/port": str(METRICS_PORT)}},
                                  "spec": {"serviceAccountName": NAME,
                                           # Its own resolvers are the node's, never itself.
                                           "dnsPolicy": "Default",
                                           "containers": [container]}}}}


def service(cluster_ip):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": NAMESPACE,
                         "labels": {**LABELS, "kubernetes.io/cluster-service": "true",
                                    "kubernetes.io/name": "steer-dns"}},
            "spec": {"selector": dict(LABELS), "clusterIP": cluster_ip,
                     "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                               {"name": "dns-tcp", "port": 53, "protocol": "TCP",
                                "targetPort": 53},
                               {"name": "metrics", "port": METRICS_PORT, "protocol": "TCP",
                                "targetPort": METRICS_PORT}]}}


def deploy(rest, objects):
    """Create each object; return the names created (those already there are kept)."""
    created = []
    for resource, namespace, body in objects:
        try:
            rest.create(resource, namespace, body)
            created.append(f"{resource.plural}/{body['metadata']['name']}")
        except AlreadyExists:
            pass
    return created


def start_dns(url, creds, service_cidr, image, say, cluster_domain="cluster.local"):
    """Create the DNS addon on the cluster at ``url`` as its admin (creds: LocalCredentials)."""
    rest = admin_client(url, creds)
    cluster_ip = str(ipaddress.ip_network(service_cidr, strict=False).network_address + 10)
    created = deploy(rest, dns_objects(image, cluster_ip, cluster_domain))
    say(f"cluster DNS: {NAMESPACE}/{NAME} ({REPLICAS} replicas of {image}) behind "
        f"{NAMESPACE}/{SERVICE} at {cluster_ip}" + ("" if created else " (already there)"))
    return cluster_ip
