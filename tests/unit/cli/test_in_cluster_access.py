"""What `steer up` gives pods to reach the API server and cluster DNS (no cluster started).

The API server certificate's in-cluster SANs (cli/local_pki.py), the addresses of
cli/local_containers.py, the DNS addon's objects (cli/local_addons.py) and the
steer-dns image's contents (cli/local_dns_image.py).
"""

import os
import shutil

import pytest
from cryptography import x509

from cli import local_addons, local_containers, local_dns_image
from cli.local_pki import IN_CLUSTER_NAMES, LocalCredentials
from control.objects import kinds

URL = "https://127.0.0.1:6443"


def sans(path):
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(ext.get_values_for_type(x509.DNSName)) | {
        str(a) for a in ext.get_values_for_type(x509.IPAddress)}


def test_the_api_certificate_names_the_in_cluster_addresses(tmp_path):
    extra = (*IN_CLUSTER_NAMES, "10.96.0.1", "172.31.250.254")
    creds = LocalCredentials(str(tmp_path)).ensure(URL, extra_hosts=extra)
    assert sans(creds.cert("apiserver")[0]) >= set(extra) | {"127.0.0.1", "localhost"}


def test_a_certificate_without_the_new_names_is_issued_again(tmp_path):
    creds = LocalCredentials(str(tmp_path)).ensure(URL)
    assert "kubernetes.default.svc" not in sans(creds.cert("apiserver")[0])
    again = LocalCredentials(str(tmp_path)).ensure(URL, extra_hosts=IN_CLUSTER_NAMES)
    assert "apiserver" in again.issued
    assert "kubernetes.default.svc" in sans(again.cert("apiserver")[0])
    kept = LocalCredentials(str(tmp_path)).ensure(URL, extra_hosts=IN_CLUSTER_NAMES)
    assert "apiserver" not in kept.issued


def test_the_cluster_addresses(tmp_path):
    nodes = ["node-1", "node-2"]
    assert local_containers.nth_address("10.96.0.0/12", 1) == "10.96.0.1"
    assert local_containers.nth_address("10.96.0.0/12", 10) == "10.96.0.10"
    assert local_containers.api_advertise(str(tmp_path), nodes) == ("172.31.250.254", 6443)
    assert local_containers.in_cluster_addresses(str(tmp_path), nodes, "10.96.0.0/12") == \
        ["10.96.0.1", "172.31.250.254"]
    assert local_containers.advertise_flags(None) == []
    assert local_containers.advertise_flags(("172.31.250.254", 6443)) == [
        "--advertise-address", "172.31.250.254", "--advertise-port", "6443"]


def test_the_dns_addon_objects():
    objects = local_addons.dns_objects("steer.local/steer-dns:1", "10.96.0.10")
    by_kind = {resource.kind: body for resource, _, body in objects}
    assert [r for r, _, _ in objects][0] is kinds.SERVICEACCOUNTS    # before its pods
    role = by_kind["ClusterRole"]
    assert role["metadata"]["name"] == "system:steer-dns"
    granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"]
               for r in rule["resources"] if set(rule["verbs"]) >= {"list", "watch"}}
    assert granted >= {("", "services"), ("", "pods"), ("discovery.k8s.io", "endpointslices")}
    assert by_kind["ClusterRoleBinding"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "steer-dns", "namespace": "kube-system"}]
    deployment = by_kind["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"] == {"k8s-app": "kube-dns"}
    assert pod["spec"]["serviceAccountName"] == "steer-dns"
    assert pod["spec"]["dnsPolicy"] == "Default"
    args = pod["spec"]["containers"][0]["args"]
    assert args[args.index("--upstream-resolv-conf") + 1] == ""   # nothing leaves the cluster
    svc = by_kind["Service"]
    assert (svc["metadata"]["namespace"], svc["metadata"]["name"]) == ("kube-system", "kube-dns")
    assert svc["spec"]["clusterIP"] == "10.96.0.10"
    assert svc["spec"]["selector"] == {"k8s-app": "kube-dns"}
    assert {(p["port"], p["protocol"]) for p in svc["spec"]["ports"]} == {
        (53, "UDP"), (53, "TCP"), (9153, "TCP")}


@pytest.mark.skipif(shutil.which("ldd") is None, reason="ldd (libc-bin) lists the libraries")
def test_the_dns_image_holds_python_its_libraries_and_the_server():
    files = local_dns_image.plan()
    prefix = f"usr/local/lib/{local_dns_image.PYVER}"
    assert f"usr/local/bin/{local_dns_image.PYVER}" in files
    assert f"{prefix}/site-packages/control/dns/server.py" in files
    assert f"{prefix}/site-packages/control/client/incluster.py" in files
    assert f"{prefix}/site-packages/dns/rdtypes/IN/SRV.py" in files     # imported by name
    assert f"{prefix}/os.py" in files and f"{prefix}/asyncio/base_events.py" in files
    assert any(p.endswith("/libc.so.6") for p in files)
    assert not any("/test/" in p or "tkinter" in p or "__pycache__" in p for p in files)
    config = local_dns_image.image_config(files).as_json()
    assert config["Entrypoint"] == ["/usr/local/bin/python3", "-m", "control.dns.server"]
    assert "PYTHONHOME=/usr/local" in config["Env"]
    # Every library directory is on the loader's path.
    path = next(e for e in config["Env"] if e.startswith("LD_LIBRARY_PATH="))
    for library in (p for p in files if p.endswith("libc.so.6")):
        assert "/" + os.path.dirname(library) in path.split("=", 1)[1].split(":")
