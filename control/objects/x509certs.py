"""Make keys and certificate requests, and sign requests with a CA: X.509 without I/O.

Shared by the certificate-signing controller (control/controllers/csrsigning.py),
the agent's rotation and bootstrap (agent/certrotation.py, agent/bootstrap.py) and
whoever else must turn a PEM request into a certificate: DESIGN §2 lets only cli/
and the signing controller issue certificates, and this module (pure functions over
bytes, with ``now`` passed in) is where both may reach the same code without
crossing the import rules. Keys are ECDSA P-256, as cli/pki.py makes them.
"""

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Kubernetes' key usages (certificates.k8s.io/v1 KeyUsage) -> what they set.
KEY_USAGE_BITS = {
    "digital signature": "digital_signature", "content commitment": "content_commitment",
    "key encipherment": "key_encipherment", "key agreement": "key_agreement",
    "data encipherment": "data_encipherment", "cert sign": "key_cert_sign",
    "crl sign": "crl_sign", "encipher only": "encipher_only", "decipher only": "decipher_only",
    "signing": "digital_signature",
}
EXTENDED_USAGES = {
    "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "any": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
}
OTHER_USAGES = ("s/mime", "ipsec end system", "ipsec tunnel", "ipsec user",
                "microsoft sgc", "netscape sgc")
#: Every usage a CertificateSigningRequest may ask for, as Kubernetes lists them.
KNOWN_USAGES = frozenset(KEY_USAGE_BITS) | frozenset(EXTENDED_USAGES) | frozenset(OTHER_USAGES)
#: How far back a signed certificate's notBefore is set, for clocks a little behind
#: (as Kubernetes' signer: at most half a short lifetime, so renewal at 70-90 % of it
#: still comes after the issue).
BACKDATE = datetime.timedelta(minutes=5)


def backdate(lifetime):
    """Return how far before now a certificate living ``lifetime`` starts."""
    return min(BACKDATE, lifetime / 2)


class RequestError(ValueError):
    """A PEM certificate request that is not one, or does not verify."""


def new_key():
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key):
    """Return ``key`` as unencrypted PKCS#8 PEM."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_key(pem):
    return serialization.load_pem_private_key(pem, password=None)


def subject(common_name, organizations=()):
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    return x509.Name(attributes + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_request(key, common_name, organizations=(), dns_names=(), ip_addresses=()):
    """Return a PEM CERTIFICATE REQUEST for ``key`` (CN user, O groups, SANs if any)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        subject(common_name, organizations))
    names = [x509.DNSName(n) for n in dns_names] + \
            [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def parse_request(pem):
    """Return the x509.CertificateSigningRequest in ``pem``; RequestError if it is not one.

    As Kubernetes: exactly a PEM block labelled CERTIFICATE REQUEST whose signature
    (proof that the requester holds the key) verifies.
    """
    if not isinstance(pem, bytes):
        raise RequestError("the request is not PEM bytes")
    if b"-----BEGIN CERTIFICATE REQUEST-----" not in pem:
        raise RequestError("PEM block type must be CERTIFICATE REQUEST")
    try:
        request = x509.load_pem_x509_csr(pem)
    except ValueError as exc:
        raise RequestError(f"cannot parse the certificate request: {exc}") from None
    try:
        valid = request.is_signature_valid
    except Exception as exc:       # noqa: BLE001 - an unsupported key type is a bad request
        raise RequestError(f"cannot verify the request's signature: {exc}") from None
    if not valid:
        raise RequestError("the request's signature does not verify")
    return request


def request_names(request):
    """Return (CN, [O], [DNS SANs], [IP SANs as text], has other SANs) of a parsed request."""
    cn = [a.value for a in request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [a.value for a in request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    try:
        sans = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return (cn[0] if cn else ""), orgs, [], [], False
    dns = sans.get_values_for_type(x509.DNSName)
    ips = [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    others = len(list(sans)) - len(dns) - len(ips)
    return (cn[0] if cn else ""), orgs, dns, ips, others > 0


def sign_request(request, ca_cert, ca_key, usages, now, lifetime):
    """Issue a certificate for a parsed ``request``; return it as PEM.

    Subject and SANs are the request's; key usages come from ``usages`` (a CSR's
    spec.usages); valid from ``now`` less ``backdate`` until ``now + lifetime``,
    never past the CA's own expiry, as Kubernetes' local signer issues.
    """
    bits = {name: False for name in set(KEY_USAGE_BITS.values())}
    for usage in usages:
        if usage in KEY_USAGE_BITS:
            bits[KEY_USAGE_BITS[usage]] = True
    extended = [EXTENDED_USAGES[u] for u in usages if u in EXTENDED_USAGES]
    not_after = min(now + lifetime, ca_cert.not_valid_after_utc)
    builder = (x509.CertificateBuilder()
               .subject_name(request.subject).issuer_name(ca_cert.subject)
               .public_key(request.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - backdate(lifetime)).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(**bits), critical=True)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False))
    if extended:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
    try:
        sans = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        builder = builder.add_extension(sans, critical=False)
    except x509.ExtensionNotFound:
        pass
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def load_certificate(pem):
    """Return the first certificate in ``pem`` (ValueError if none)."""
    return x509.load_pem_x509_certificate(pem)


def lifetime_of(pem):
    """Return (notBefore, notAfter) of the first certificate in ``pem``, UTC-aware."""
    cert = load_certificate(pem)
    return cert.not_valid_before_utc, cert.not_valid_after_utc


def certificate_matches_key(cert_pem, key):
    """Return whether the certificate in ``cert_pem`` is for ``key``'s public half."""
    cert = load_certificate(cert_pem)
    form = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.public_key().public_bytes(*form) == key.public_key().public_bytes(*form)
