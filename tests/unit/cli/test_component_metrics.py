"""The control plane's metrics ports on a local cluster: flags, door plan, kube-system objects."""

import os
import stat

from cli import component_metrics
from cli.local_pki import LocalCredentials
from control.objects import kinds

RECORD = {"scheduler": "127.0.0.1:40001", "controller-manager": "127.0.0.1:40002",
          "store": {"s2": "127.0.0.1:40012", "s1": "127.0.0.1:40011"}}
GATEWAY = "172.31.250.254"


def test_each_port_gets_a_door_at_the_kubernetes_port_on_the_gateway():
    assert component_metrics.door_plan(RECORD, GATEWAY) == [
        ("scheduler", "", 10259, "127.0.0.1:40001"),
        ("controller-manager", "", 10257, "127.0.0.1:40002"),
        ("store", "s1", 2381, "127.0.0.1:40011"),
        ("store", "s2", 2382, "127.0.0.1:40012")]
    assert component_metrics.door_plan({}, GATEWAY) == []


def test_services_without_selectors_and_endpoints_at_the_doors():
    objects = component_metrics.kube_system_objects(
        component_metrics.door_plan(RECORD, GATEWAY), GATEWAY)
    by_kind = {}
    for resource, namespace, body in objects:
        assert namespace == "kube-system" and body["kind"] == resource.kind
        by_kind.setdefault(resource, {})[body["metadata"]["name"]] = body
    services, endpoints = by_kind[kinds.SERVICES], by_kind[kinds.ENDPOINTS]
    assert set(services) == set(endpoints) == {"kube-scheduler", "kube-controller-manager",
                                               "steer-store"}
    for service in services.values():
        assert "selector" not in service["spec"]          # the Endpoints are ours to write
        assert service["metadata"]["annotations"]["prometheus.io/scheme"] == "https"
    store = endpoints["steer-store"]["subsets"]
    assert [(s["addresses"][0]["hostname"], s["ports"][0]["port"]) for s in store] == \
        [("s1", 2381), ("s2", 2382)]
    assert endpoints["kube-scheduler"]["subsets"] == [
        {"addresses": [{"ip": GATEWAY}],
         "ports": [{"name": "https-metrics", "port": 10259, "protocol": "TCP"}]}]


def test_secure_ports_get_serving_certificates_of_the_cluster_ca(tmp_path):
    creds = LocalCredentials(tmp_path).ensure("https://127.0.0.1:6443")
    flags = component_metrics.secure_port_flags(creds, "scheduler", 40001)
    assert flags[:2] == ["--secure-port", "40001"]
    cert, key = creds.cert("scheduler-serving")
    assert flags[flags.index("--tls-cert-file") + 1] == cert
    assert flags[flags.index("--client-ca-file") + 1] == creds.ca_file
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    from cryptography import x509
    with open(cert, "rb") as f:
        names = x509.load_pem_x509_certificate(f.read()).extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
    assert "kube-scheduler.kube-system.svc" in names.get_values_for_type(x509.DNSName)


def test_the_cluster_ca_exists_before_the_other_credentials(tmp_path):
    directory = str(tmp_path / "pki")
    ca_file = component_metrics.cluster_ca_file(directory)
    assert os.path.exists(ca_file)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    # The credentials made later reuse it.
    with open(ca_file, "rb") as f:
        before = f.read()
    LocalCredentials(tmp_path).ensure("https://127.0.0.1:6443")
    with open(ca_file, "rb") as f:
        assert f.read() == before
    assert component_metrics.store_metrics_flags("m.crt", "m.key", ca_file) == [
        "--metrics-cert-file", "m.crt", "--metrics-key-file", "m.key",
        "--metrics-client-ca-file", ca_file]
