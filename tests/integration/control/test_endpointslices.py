"""EndpointSlices end to end: real store, API server, controller manager, scheduler, hollow nodes.

The controller manager runs ``deployment,replicaset,endpointslice-controller``; the
hollow nodes (all in zone-a) make bound pods Ready with an IP from their podCIDR.
The slices of a Service must follow its Deployment's pods as it scales, and go
with the Service.
"""

import os
import subprocess
import sys

import pytest
from kubernetes import client as k8s  # a test dependency (setup.cfg's [test] extra)
from kubernetes import config

from control.controllers import pods as podutil
from control.objects import kinds
from tests.support.apiproc import ROOT, eventually
from tests.support.controlplane import ControlPlane, create_namespace

TIMEOUT = 60
ZONE = "zone-a"
SERVICE_LABEL = "kubernetes.io/service-name"


@pytest.fixture(scope="module")
def cluster(server, tmp_path_factory):
    with ControlPlane(server, tmp_path_factory.mktemp("endpointslices"),
                      "deployment,replicaset,endpointslice-controller",
                      nodes=["n1", "n2"], renew_interval=1.0, ready_after=0.2,
                      labels={"topology.kubernetes.io/zone": ZONE}) as plane:
        yield plane.logs


def deployment(name, replicas):
    container = {"name": "c", "image": "busybox:1",
                 "ports": [{"name": "http", "containerPort": 8080}]}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [container]}}}}


def service(name):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name},
                     "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}}


def slices_of(rest, ns, name):
    return rest.list(kinds.ENDPOINTSLICES, ns, label_selector=f"{SERVICE_LABEL}={name}")["items"]


def ready_pod_ips(rest, ns):
    return sorted(p["status"]["podIP"] for p in rest.list(kinds.PODS, ns)["items"]
                  if podutil.is_active(p) and podutil.is_ready(p) and p["status"].get("podIP"))


def ready_endpoint_ips(slices):
    return sorted(a for s in slices for e in s["endpoints"] if e["conditions"]["ready"]
                  for a in e["addresses"])


def follows(rest, ns, name, replicas):
    """The Service's slices list exactly its ``replicas`` ready pods (and nothing else)."""
    ips = ready_pod_ips(rest, ns)
    if len(ips) != replicas:
        return False
    slices = slices_of(rest, ns, name)
    everything = sorted(a for s in slices for e in s["endpoints"] for a in e["addresses"])
    return slices if ready_endpoint_ips(slices) == ips == everything else False


def test_slices_follow_a_deployments_pods(server, cluster):
    rest = server.rest_client(timeout=10)
    ns = create_namespace(rest, "slices-follow")
    rest.create(kinds.SERVICES, ns, service("web"))
    rest.create(kinds.DEPLOYMENTS, ns, deployment("web", 3))
    slices = eventually(lambda: follows(rest, ns, "web", 3), TIMEOUT, "3 endpoints", cluster)
    assert len(slices) == 1
    endpoint_slice = slices[0]
    assert endpoint_slice["metadata"]["name"].startswith("web-")
    assert endpoint_slice["addressType"] == "IPv4"
    assert endpoint_slice["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
    assert endpoint_slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == \
        "endpointslice-controller.k8s.io"
    owner = endpoint_slice["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Service", "web", True)
    for endpoint in endpoint_slice["endpoints"]:
        assert endpoint["zone"] == ZONE and endpoint["nodeName"] in ("n1", "n2")
        assert endpoint["targetRef"]["kind"] == "Pod"
        assert endpoint["conditions"] == {"ready": True, "serving": True, "terminating": False}

    rest.patch(kinds.DEPLOYMENTS, ns, "web", {"spec": {"replicas": 5}})
    eventually(lambda: follows(rest, ns, "web", 5), TIMEOUT, "5 endpoints", cluster)
    rest.patch(kinds.DEPLOYMENTS, ns, "web", {"spec": {"replicas": 1}})
    slices = eventually(lambda: follows(rest, ns, "web", 1), TIMEOUT, "1 endpoint", cluster)
    # Scaled in place: still the one slice the Service started with.
    assert [s["metadata"]["name"] for s in slices] == [endpoint_slice["metadata"]["name"]]

    rest.delete(kinds.SERVICES, ns, "web")
    eventually(lambda: not slices_of(rest, ns, "web"), TIMEOUT, "slices deleted", cluster)


def test_service_without_pods_has_a_placeholder_and_no_selector_has_none(server, cluster):
    rest = server.rest_client(timeout=10)
    ns = create_namespace(rest, "slices-empty")
    rest.create(kinds.SERVICES, ns, service("lonely"))
    placeholder = eventually(lambda: slices_of(rest, ns, "lonely"), TIMEOUT, "a placeholder",
                             cluster)
    assert [(s["endpoints"], s["ports"]) for s in placeholder] == [([], [])]
    bare = service("manual")
    del bare["spec"]["selector"]
    rest.create(kinds.SERVICES, ns, bare)
    rest.patch(kinds.SERVICES, ns, "lonely", [{"op": "remove", "path": "/spec/selector"}],
               patch_type="json")
    eventually(lambda: not slices_of(rest, ns, "lonely"), TIMEOUT, "slices removed", cluster)
    assert slices_of(rest, ns, "manual") == []


@pytest.mark.kubectl
def test_kubectl_get_endpointslices(server, cluster):
    rest = server.rest_client(timeout=10)
    ns = create_namespace(rest, "slices-kubectl")
    rest.create(kinds.SERVICES, ns, service("web"))
    rest.create(kinds.DEPLOYMENTS, ns, deployment("web", 2))
    eventually(lambda: follows(rest, ns, "web", 2), TIMEOUT, "2 endpoints", cluster)
    lines = server.kubectl("get", "endpointslices", "-n", ns).stdout.splitlines()
    assert lines[0].split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    name, address_type, ports, endpoints = lines[1].split()[:4]
    assert name.startswith("web-") and (address_type, ports) == ("IPv4", "8080")
    assert sorted(endpoints.split(",")) == ready_pod_ips(rest, ns)
    shown = server.kubectl("get", "endpointslices.discovery.k8s.io", "-n", ns, "-o",
                           "jsonpath={.items[0].endpoints[0].conditions.ready}").stdout
    assert shown == "true"
    described = server.kubectl("describe", "endpointslices", "-n", ns).stdout
    lines = [line.split() for line in described.splitlines()]
    assert ["AddressType:", "IPv4"] in lines and ["web", "8080", "TCP"] in lines
    assert ["Zone:", ZONE] in lines


def test_python_client_and_steer_read_slices(server, cluster):
    rest = server.rest_client(timeout=10)
    ns = create_namespace(rest, "slices-clients")
    rest.create(kinds.SERVICES, ns, service("web"))
    rest.create(kinds.DEPLOYMENTS, ns, deployment("web", 2))
    eventually(lambda: follows(rest, ns, "web", 2), TIMEOUT, "2 endpoints", cluster)
    discovery = k8s.DiscoveryV1Api(config.new_client_from_config(config_file=server.kubeconfig))
    listed = discovery.list_namespaced_endpoint_slice(
        ns, label_selector=f"{SERVICE_LABEL}=web").items
    assert [s.address_type for s in listed] == ["IPv4"]
    assert sorted(e.addresses[0] for e in listed[0].endpoints) == ready_pod_ips(rest, ns)
    assert all(e.conditions.ready and e.zone == ZONE for e in listed[0].endpoints)
    steer = subprocess.run(
        [sys.executable, "-m", "cli.main", "get", "endpointslices", "-n", ns],
        capture_output=True, text=True, cwd=ROOT, timeout=90,
        env={**os.environ, "STEER_SERVER": "", "KUBECONFIG": server.kubeconfig,
             "STEER_HOME": str(server.base_dir), "PYTHONPATH": ROOT})
    assert steer.returncode == 0, steer.stderr
    lines = steer.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert lines[1].split()[1:3] == ["IPv4", "8080"]
