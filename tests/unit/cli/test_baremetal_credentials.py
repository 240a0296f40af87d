"""The bare-metal cluster PKI (cli/baremetal/credentials.py): what each host gets, made once."""

import ipaddress
import os
import stat

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.provision import plan as planmod
from cli.baremetal import topology as topo
from cli.baremetal.credentials import ClusterCredentials


def spec_of(addresses=("192.0.2.1", "192.0.2.2", "192.0.2.3"), workers=("192.0.2.4",)):
    t = topo.build("t", "0.1.0", [f"root@{a}" for a in addresses],
                   [f"root@{a}" for a in workers], resolve=lambda n: n)
    return topo.to_spec(t)


def cert(data):
    return x509.load_pem_x509_certificate(data)


def names(certificate):
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (set(sans.get_values_for_type(x509.DNSName)),
            {str(a) for a in sans.get_values_for_type(x509.IPAddress)})


def test_every_host_gets_what_its_plan_needs_and_the_plan_accepts_it(tmp_path):
    spec = spec_of()
    creds = ClusterCredentials(tmp_path / "pki")
    for host in spec.hosts:
        files = creds.host_files(spec, host)
        plan = planmod.plan_host(spec, host, files)      # raises if one is missing
        assert plan.services


def test_identities_and_names(tmp_path):
    spec = spec_of()
    creds = ClusterCredentials(tmp_path / "pki")
    control = creds.host_files(spec, spec.host("192.0.2.1"))
    worker = creds.host_files(spec, spec.host("192.0.2.4"))
    node = cert(worker["node.crt"])
    assert node.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == \
        "system:node:192.0.2.4"
    assert node.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == \
        "system:nodes"
    api = cert(control["apiserver.crt"])
    dns, ips = names(api)
    assert {"localhost", "kubernetes.default.svc"} <= dns
    assert {"127.0.0.1", "192.0.2.1", "10.96.0.1"} <= ips
    usage = api.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage
    # The store's certificates come from the store CA, not the cluster CA.
    store_ca = cert(control["store-ca.crt"])
    assert cert(control["store-server.crt"]).issuer == store_ca.subject
    # The member certificate also dials its peers (the peer port is mutual TLS).
    member_usage = cert(control["store-server.crt"]).extensions.get_extension_for_class(
        x509.ExtendedKeyUsage).value
    assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(member_usage)
    assert cert(control["apiserver-etcd-client.crt"]).issuer == store_ca.subject
    assert api.issuer == cert(control["ca.crt"]).subject != store_ca.subject
    assert "store-server.key" not in worker and "sa.key" not in worker


def test_second_run_hands_out_the_same_bytes(tmp_path):
    spec = spec_of()
    first = {h.name: ClusterCredentials(tmp_path / "pki").host_files(spec, h) for h in spec.hosts}
    again = ClusterCredentials(tmp_path / "pki")
    second = {h.name: again.host_files(spec, h) for h in spec.hosts}
    assert first == second
    assert again.issued == []


def test_a_changed_address_reissues_only_what_names_it(tmp_path):
    creds = ClusterCredentials(tmp_path / "pki")
    spec = spec_of()
    before = creds.host_files(spec, spec.host("192.0.2.4"))
    moved = spec_of(workers=("192.0.2.9",))
    creds = ClusterCredentials(tmp_path / "pki")
    after = creds.host_files(moved, moved.host("192.0.2.9"))
    assert ipaddress.ip_address("192.0.2.9")
    assert names(cert(after["node-serving.crt"]))[1] == {"192.0.2.9"}
    assert before["ca.crt"] == after["ca.crt"]


def test_keys_are_private(tmp_path):
    creds = ClusterCredentials(tmp_path / "pki")
    spec = spec_of()
    creds.host_files(spec, spec.host("192.0.2.1"))
    for root, _dirs, files in os.walk(creds.dir):
        for name in files:
            mode = stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode)
            if name.endswith((".key", ".secret", ".yaml", ".params")) or "secrets" in root:
                assert mode == 0o600, name
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700, root


def test_metrics_serving_certificates_come_from_the_cluster_ca_for_the_host(tmp_path):
    spec = spec_of()
    creds = ClusterCredentials(tmp_path / "pki")
    control = creds.host_files(spec, spec.host("192.0.2.2"))
    cluster_ca = cert(control["ca.crt"])
    for name, common_name in (("scheduler-serving", "kube-scheduler"),
                              ("controller-manager-serving", "kube-controller-manager")):
        serving = cert(control[f"{name}.crt"])
        assert serving.issuer == cluster_ca.subject
        assert serving.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == \
            common_name
        assert "192.0.2.2" in names(serving)[1]
        usage = serving.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
        mode = stat.S_IMODE(os.stat(tmp_path / "pki" / "hosts" / "192.0.2.2" / f"{name}.key")
                            .st_mode)
        assert mode == 0o600
    worker = creds.host_files(spec, spec.host("192.0.2.4"))
    assert "scheduler-serving.key" not in worker
