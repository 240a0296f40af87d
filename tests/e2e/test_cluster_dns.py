"""End to end on containers: pods reach the API server and resolve names through cluster DNS.

`steer up --runtime cri` writes default/kubernetes (10.96.0.1:443 -> the API door on
the LAN gateway, 172.31.250.254:6443) and deploys the DNS addon (kube-system/steer-dns
behind kube-dns at 10.96.0.10). Pods get the cluster's resolv.conf and the Service
variables; a pod with the steer-dns image (it has Python) calls the API with its
ServiceAccount token. One cluster for the module.
"""

import json

import pytest

from cli import local_addons, local_containers, local_dns_image, local_images
from control.objects import conditions, kinds
from tests.support.apiproc import eventually

from .conftest import running_cluster

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(local_containers.unavailable_reason() is not None,
                                 reason=f"no containers here: "
                                        f"{local_containers.unavailable_reason()}")]

TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
#: GET the Services of default with the pod's token (or none); prints the status code.
API_CALL = f"""
import ssl, sys, urllib.error, urllib.request
headers = {{}}
if sys.argv[1] == "token":
    headers["Authorization"] = "Bearer " + open("{TOKEN_DIR}/token").read().strip()
context = ssl.create_default_context(cafile="{TOKEN_DIR}/ca.crt")
url = "https://10.96.0.1:443/api/v1/namespaces/default/services"
try:
    print(urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                 context=context, timeout=5).status)
except urllib.error.HTTPError as exc:
    print(exc.code)
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory, nodes=2, runtime="cri") as c:
        yield c


@pytest.fixture(scope="module")
def dns_ready(cluster):
    def ready():
        pods = cluster.rest.list(kinds.PODS, "kube-system",
                                 label_selector="k8s-app=kube-dns")["items"]
        return len([p for p in pods if conditions.is_ready(p)]) == local_addons.REPLICAS
    eventually(ready, timeout=120, message="the two steer-dns pods to be ready",
               logs=cluster.logs)
    return cluster


def apply(cluster, *objects):
    cluster.steer("apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in objects))


def sleeper(name, image, command, service_account=None):
    spec = {"containers": [{"name": "c", "image": image, "command": command}],
            "terminationGracePeriodSeconds": 0}
    if service_account:
        spec["serviceAccountName"] = service_account
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def running(cluster, name):
    eventually(lambda: conditions.is_ready(cluster.pod(name)), timeout=90,
               message=f"pod {name} to be ready", logs=cluster.logs)


@pytest.fixture(scope="module")
def busybox(dns_ready):
    apply(dns_ready, sleeper("bb", local_images.BUSYBOX_IMAGE, ["sleep", "3600"]),
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "name": "http"}]}})
    running(dns_ready, "bb")
    return dns_ready


def exec_in(cluster, pod, *argv):
    return cluster.steer("exec", pod, "--", *argv, check=False)


def test_the_kubernetes_service_leads_to_the_api_door(cluster):
    svc = cluster.rest.get(kinds.SERVICES, "default", "kubernetes")
    assert svc["spec"]["clusterIP"] == "10.96.0.1"
    assert svc["spec"]["ports"][0]["port"] == 443
    endpoints = cluster.rest.get(kinds.ENDPOINTS, "default", "kubernetes")
    assert endpoints["subsets"][0]["addresses"] == [{"ip": "172.31.250.254"}]
    assert endpoints["subsets"][0]["ports"][0]["port"] == local_containers.API_DOOR_PORT
    assert "running" in cluster.steer("status").stdout.split("api-door", 1)[1].splitlines()[0]


def test_kube_dns_has_the_tenth_address_and_kubernetes_labels(dns_ready):
    svc = dns_ready.rest.get(kinds.SERVICES, "kube-system", "kube-dns")
    assert svc["spec"]["clusterIP"] == "10.96.0.10"
    assert svc["metadata"]["labels"]["k8s-app"] == "kube-dns"
    assert {(p["port"], p["protocol"]) for p in svc["spec"]["ports"]} >= {(53, "UDP"),
                                                                          (53, "TCP")}
    deployment = dns_ready.rest.get(kinds.DEPLOYMENTS, "kube-system", "steer-dns")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == \
        local_dns_image.DNS_IMAGE


def test_a_pod_gets_the_cluster_resolv_conf_and_the_service_variables(busybox):
    resolv = exec_in(busybox, "bb", "cat", "/etc/resolv.conf").stdout
    assert "nameserver 10.96.0.10" in resolv
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert "options ndots:5" in resolv
    env = exec_in(busybox, "bb", "env").stdout.splitlines()
    assert "KUBERNETES_SERVICE_HOST=10.96.0.1" in env
    assert "KUBERNETES_SERVICE_PORT=443" in env
    assert "KUBERNETES_PORT_443_TCP=tcp://10.96.0.1:443" in env


def test_nslookup_resolves_kubernetes_and_a_service_to_their_cluster_ips(busybox):
    web_ip = busybox.service_cluster_ip("web")
    for name, address in (("kubernetes.default.svc.cluster.local", "10.96.0.1"),
                          ("web.default.svc.cluster.local", web_ip)):
        def answered(name=name, address=address):
            out = exec_in(busybox, "bb", "nslookup", name).stdout
            return f"Address: {address}" in out
        eventually(answered, timeout=30, message=f"nslookup {name} to give {address}")
    missing = exec_in(busybox, "bb", "nslookup", "nothing.default.svc.cluster.local")
    assert "NXDOMAIN" in missing.stdout + missing.stderr


def test_short_names_resolve_through_the_search_path(busybox):
    # busybox's nslookup skips the search path; its wget resolves as libc does.
    web_ip = busybox.service_cluster_ip("web")
    for name, shown in (("kubernetes.default", "(10.96.0.1:443)"), ("web", f"({web_ip}:80)")):
        port = 443 if name.startswith("kubernetes") else 80
        # "Connecting to NAME:PORT (IP:PORT)" comes first, whatever the answer.
        out = exec_in(busybox, "bb", "sh", "-c",
                      f"timeout 5 wget -O /dev/null http://{name}:{port}/ 2>&1")
        assert shown in out.stdout, out.stdout


def test_a_pod_calls_the_api_with_its_token_and_not_without(dns_ready):
    rbac = "rbac.authorization.k8s.io"
    apply(dns_ready,
          {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}},
          {"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": {"name": "read-services"},
           "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["list"]}]},
          {"apiVersion": f"{rbac}/v1", "kind": "RoleBinding",
           "metadata": {"name": "reader-reads-services"},
           "roleRef": {"apiGroup": rbac, "kind": "Role", "name": "read-services"},
           "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "default"}]})
    apply(dns_ready, sleeper("py", local_dns_image.DNS_IMAGE,
                             ["python3", "-c", "import time; time.sleep(3600)"], "reader"))
    running(dns_ready, "py")
    with_token = exec_in(dns_ready, "py", "python3", "-c", API_CALL, "token")
    assert with_token.stdout.strip() == "200", with_token.stdout + with_token.stderr
    without = exec_in(dns_ready, "py", "python3", "-c", API_CALL, "anonymous")
    assert without.stdout.strip() in ("401", "403"), without.stdout + without.stderr
