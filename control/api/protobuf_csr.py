"""Read the protobuf CertificateSigningRequest that ``kubectl certificate approve|deny`` PUTs.

kubectl's typed client sends the whole object to ``.../certificatesigningrequests/
{name}/approval`` as ``application/vnd.kubernetes.protobuf``. The approval
subresource takes only the name, resourceVersion and the status conditions from
the body (control/api/strategies/csr.py keeps everything else as stored), so only
those are read; the API server answers in JSON, which kubectl accepts. Field
numbers are those of k8s.io/api/certificates/v1 and apimachinery's ObjectMeta.
"""

import base64

from control import errors
from control.api.auth import protobuf

OBJECT_META = {1: ("name", "string"), 5: ("uid", "string"), 6: ("resourceVersion", "string")}
CONDITION = {1: ("type", "string"), 2: ("reason", "string"), 3: ("message", "string"),
             6: ("status", "string")}
KIND = "CertificateSigningRequest"
APPROVAL_SUFFIX = "/approval"
PATH_PREFIX = "/apis/certificates.k8s.io/v1/certificatesigningrequests/"


def is_approval(method, path):
    """Whether a request is a PUT of a CSR's approval (the one protobuf body read here)."""
    return method == "PUT" and path.startswith(PATH_PREFIX) and path.endswith(APPROVAL_SUFFIX)


def _status(data):
    status = {"conditions": []}
    for number, wire, value in protobuf._fields(data):
        if wire != 2:
            continue
        if number == 1:
            status["conditions"].append(protobuf.decode_message(value, CONDITION))
        elif number == 2:
            status["certificate"] = base64.b64encode(bytes(value)).decode("ascii")
    return status


def decode_csr(raw):
    """Return the JSON object (metadata and status) of a protobuf CertificateSigningRequest."""
    try:
        if not raw.startswith(protobuf.MAGIC):
            raise ValueError("no k8s protobuf magic")
        unknown = protobuf.decode_message(raw[len(protobuf.MAGIC):], protobuf.UNKNOWN)
        type_meta = unknown.get("typeMeta", {})
        if type_meta.get("kind") != KIND:
            raise errors.UnsupportedMediaType(
                f"a protobuf body here must be a {KIND}, not {type_meta.get('kind') or 'this'}")
        body = {"apiVersion": type_meta.get("apiVersion", ""), "kind": KIND, "metadata": {}}
        for number, wire, value in protobuf._fields(unknown.get("raw", b"")):
            if wire != 2:
                continue
            if number == 1:
                body["metadata"] = protobuf.decode_message(value, OBJECT_META)
            elif number == 3:
                body["status"] = _status(value)
        return body
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.BadRequest(f"the protobuf body cannot be read: {exc}") from None
