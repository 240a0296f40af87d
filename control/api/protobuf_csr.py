"""Read the protobuf CertificateSigningRequest that ``kubectl certificate approve|deny`` PUTs.

kubectl's typed client sends the whole object to ``.../certificatesigningrequests/
{name}/approval``; the generic codec (control/api/protobuf/) reads it like any
other body, and the approval subresource (control/api/strategies/csr.py) takes
only the name, resourceVersion and status conditions from it.
"""

from control import errors
from control.api.auth import protobuf
from control.api.protobuf import negotiation

KIND = "CertificateSigningRequest"
APPROVAL_SUFFIX = "/approval"
PATH_PREFIX = "/apis/certificates.k8s.io/v1/certificatesigningrequests/"


def is_approval(method, path):
    """Whether a request is a PUT of a CSR's approval."""
    return method == "PUT" and path.startswith(PATH_PREFIX) and path.endswith(APPROVAL_SUFFIX)


def decode_csr(raw):
    """Return the JSON object of a protobuf CertificateSigningRequest (400/415 otherwise)."""
    body = negotiation.decode_request(raw)
    if body.get("kind") != KIND:
        raise errors.UnsupportedMediaType(
            f"a protobuf body here must be a {KIND}, not {body.get('kind') or 'this'}")
    return body


__all__ = ["KIND", "decode_csr", "is_approval", "protobuf"]
