"""The cluster CA (cli/pki.py): what it issues, where, with which modes, and when to renew."""

import datetime
import ipaddress
import os
import stat

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from cli import pki


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def load(path):
    with open(path, "rb") as handle:
        return x509.load_pem_x509_certificate(handle.read())


@pytest.fixture
def ca(tmp_path):
    return pki.CertificateAuthority.create(str(tmp_path / "ca"))


def test_ca_is_a_ca_and_its_key_is_private(ca):
    cert = load(ca.cert_path)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.subject == cert.issuer
    assert mode(ca.key_path) == 0o600 and mode(ca.cert_path) == 0o644
    assert mode(ca.directory) == 0o700


def test_load_and_load_or_create_reuse_the_ca(ca):
    again = pki.CertificateAuthority.load_or_create(ca.directory)
    assert again.cert == ca.cert
    assert pki.CertificateAuthority.load(ca.directory).cert_pem() == ca.cert_pem()


def test_load_or_create_makes_one_when_missing(tmp_path):
    made = pki.CertificateAuthority.load_or_create(str(tmp_path / "new"), common_name="x-ca")
    assert os.path.exists(made.cert_path) and os.path.exists(made.key_path)
    assert pki.read_identity(made.cert_path) == ("x-ca", [])


def test_serving_certificate_names_and_usage(ca, tmp_path):
    issued = ca.issue(str(tmp_path / "certs"), "apiserver", "kube-apiserver",
                      dns_names=["localhost", "node-1"], ip_addresses=["127.0.0.1", "::1"],
                      server=True)
    cert = load(issued.cert)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost", "node-1"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"),
                                                        ipaddress.ip_address("::1")]
    usages = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert usages == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.issuer == ca.cert.subject
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_client_certificate_carries_user_and_groups(ca, tmp_path):
    issued = ca.issue(str(tmp_path / "certs"), "node", "system:node:n1",
                      organizations=["system:nodes", "extra"], client=True)
    assert pki.read_identity(issued.cert) == ("system:node:n1", ["system:nodes", "extra"])
    usages = list(load(issued.cert).extensions.get_extension_for_class(
        x509.ExtendedKeyUsage).value)
    assert usages == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(x509.ExtensionNotFound):
        load(issued.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_keys_are_0600_in_a_0700_directory(ca, tmp_path):
    issued = ca.issue(str(tmp_path / "certs"), "admin", "admin", client=True)
    assert mode(issued.key) == 0o600
    assert mode(issued.cert) == 0o644
    assert mode(os.path.dirname(issued.key)) == 0o700
    assert issued == pki.Issued(str(tmp_path / "certs" / "admin.crt"),
                                str(tmp_path / "certs" / "admin.key"))


def test_a_certificate_needs_a_usage(ca, tmp_path):
    with pytest.raises(ValueError, match="server=True, client=True"):
        ca.issue(str(tmp_path), "none", "nobody")


def test_leaf_never_outlives_its_ca(tmp_path):
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    short = pki.CertificateAuthority.create(str(tmp_path / "ca"), days=10, now=now)
    issued = short.issue(str(tmp_path), "x", "x", client=True, days=365, now=now)
    assert load(issued.cert).not_valid_after_utc == short.cert.not_valid_after_utc


def test_write_private_replaces_and_tightens(tmp_path):
    path = tmp_path / "dir" / "secret"
    os.makedirs(path.parent, mode=0o755)
    os.chmod(path.parent, 0o755)
    pki.write_private(str(path), "one")
    pki.write_private(str(path), b"two")
    assert path.read_bytes() == b"two"
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert not os.path.exists(str(path) + ".tmp")


def test_needs_rotation_with_a_fake_now(ca, tmp_path):
    start = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    issued = ca.issue(str(tmp_path), "leaf", "leaf", client=True, days=90, now=start)
    assert not pki.needs_rotation(issued.cert, now=start)
    assert not pki.needs_rotation(issued.cert, now=start + datetime.timedelta(days=59))
    # Less than a third of its 90 days (plus the 5 minutes of back-dating) is left.
    assert pki.needs_rotation(issued.cert, now=start + datetime.timedelta(days=61))
    assert pki.needs_rotation(issued.cert, now=start + datetime.timedelta(days=91))


def test_needs_rotation_when_missing_or_garbled(tmp_path):
    assert pki.needs_rotation(str(tmp_path / "missing.crt"))
    garbled = tmp_path / "garbled.crt"
    garbled.write_text("not a certificate")
    assert pki.needs_rotation(str(garbled))
