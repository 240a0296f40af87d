"""Make the cluster CA and issue certificates from it (the admin's tool, as kubeadm's certs phase).

One CA signs everything: serving certificates (API server, agents, store members)
and client certificates (components, the admin), Kubernetes-shaped: a client
certificate's CN is the user and its O entries the groups. Keys are ECDSA P-256
(fast to make, small, accepted by kubectl, Python's ssl and Go's TLS). Every key
file is written 0600 inside a 0700 directory; certificates are 0644.
"""

import datetime
import ipaddress
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT, CA_KEY = "ca.crt", "ca.key"
CA_DAYS = 3650
LEAF_DAYS = 365
#: Re-issue a certificate once less than this share of its lifetime is left.
ROTATE_FRACTION = 1 / 3


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def write_private(path, data):
    """Write ``data`` to ``path`` readable by its owner only (0600 in a 0700 directory)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data if isinstance(data, bytes) else data.encode())
    os.chmod(path + ".tmp", 0o600)
    os.replace(path + ".tmp", path)


def _write_public(path, data):
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    with open(path + ".tmp", "wb") as handle:
        handle.write(data)
    os.chmod(path + ".tmp", 0o644)
    os.replace(path + ".tmp", path)


def _new_key():
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name, organizations=()):
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    return x509.Name(attributes + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass(frozen=True)
class Issued:
    """Where one issued certificate and its key were written."""

    cert: str
    key: str


class CertificateAuthority:
    """The cluster CA: a self-signed certificate and its key in one directory."""

    def __init__(self, directory, cert, key):
        self.directory, self.cert, self.key = directory, cert, key

    @property
    def cert_path(self):
        return os.path.join(self.directory, CA_CERT)

    @property
    def key_path(self):
        return os.path.join(self.directory, CA_KEY)

    def cert_pem(self):
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def create(cls, directory, common_name="steersman-ca", days=CA_DAYS, now=None):
        """Make a new CA in ``directory`` (ca.crt, ca.key 0600)."""
        now = now or utcnow()
        key = _new_key()
        subject = _name(common_name)
        cert = (x509.CertificateBuilder()
                .subject_name(subject).issuer_name(subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True,
                    content_commitment=False, key_encipherment=False, data_encipherment=False,
                    key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()))
        ca = cls(directory, cert, key)
        write_private(ca.key_path, _key_pem(key))
        _write_public(ca.cert_path, ca.cert_pem())
        return ca

    @classmethod
    def load(cls, directory):
        """Read the CA kept in ``directory``."""
        with open(os.path.join(directory, CA_CERT), "rb") as handle:
            cert = x509.load_pem_x509_certificate(handle.read())
        with open(os.path.join(directory, CA_KEY), "rb") as handle:
            key = serialization.load_pem_private_key(handle.read(), password=None)
        return cls(directory, cert, key)

    @classmethod
    def load_or_create(cls, directory, **kwargs):
        if os.path.exists(os.path.join(directory, CA_CERT)):
            return cls.load(directory)
        return cls.create(directory, **kwargs)

    def issue(self, directory, name, common_name, organizations=(), dns_names=(),
              ip_addresses=(), server=False, client=False, days=LEAF_DAYS, now=None):
        """Issue a certificate; write ``<name>.crt`` and ``<name>.key`` (0600) in ``directory``.

        ``server`` adds serverAuth and the subject alternative names (DNS names and IP
        addresses a client may dial); ``client`` adds clientAuth (CN user, O groups).
        """
        now = now or utcnow()
        key = _new_key()
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + \
                 ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        if not usages:
            raise ValueError("a certificate needs server=True, client=True or both")
        builder = (x509.CertificateBuilder()
                   .subject_name(_name(common_name, organizations))
                   .issuer_name(self.cert.subject)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   # Backdated for clocks a little behind; at most half a short lifetime.
                   .not_valid_before(now - min(datetime.timedelta(minutes=5),
                                               datetime.timedelta(days=days) / 2))
                   .not_valid_after(min(now + datetime.timedelta(days=days),
                                        self.cert.not_valid_after_utc))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(
                       digital_signature=True, key_encipherment=False, key_cert_sign=False,
                       crl_sign=False, content_commitment=False, data_encipherment=False,
                       key_agreement=False, encipher_only=False, decipher_only=False),
                       critical=True)
                   .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       self.key.public_key()), critical=False))
        names = [x509.DNSName(n) for n in dns_names] + \
                [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        issued = Issued(os.path.join(directory, f"{name}.crt"),
                        os.path.join(directory, f"{name}.key"))
        write_private(issued.key, _key_pem(key))
        _write_public(issued.cert, cert.public_bytes(serialization.Encoding.PEM))
        return issued


def ensure_key_pair(key_path, public_path):
    """Make an EC P-256 key pair once: ``key_path`` (PKCS#8, 0600) and ``public_path`` (0644).

    An existing private key is kept (and its public half rewritten if missing), so
    what it signed stays valid: the ServiceAccount signing key, as kubeadm's sa.key
    and sa.pub. Returns True if a new key was made.
    """
    if os.path.exists(key_path):
        with open(key_path, "rb") as handle:
            key = serialization.load_pem_private_key(handle.read(), password=None)
        os.chmod(key_path, 0o600)
        made = False
    else:
        key = _new_key()
        write_private(key_path, _key_pem(key))
        made = True
    if made or not os.path.exists(public_path):
        _write_public(public_path, key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return made


def needs_rotation(cert_path, now=None, fraction=ROTATE_FRACTION):
    """Return whether the certificate at ``cert_path`` is missing or near its expiry."""
    try:
        with open(cert_path, "rb") as handle:
            cert = x509.load_pem_x509_certificate(handle.read())
    except (OSError, ValueError):
        return True
    now = now or utcnow()
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    return cert.not_valid_after_utc - now < lifetime * fraction


def read_identity(cert_path):
    """Return (common name, organizations) of a certificate: the user and groups it names."""
    with open(cert_path, "rb") as handle:
        cert = x509.load_pem_x509_certificate(handle.read())
    cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return (cn[0] if cn else ""), orgs
