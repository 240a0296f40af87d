"""The certificates.k8s.io/v1 CertificateSigningRequest kind: its rules and its conditions.

Validation follows Kubernetes' (pkg/apis/certificates/validation): the name is a
path segment; spec.request is one PEM CERTIFICATE REQUEST that parses and whose
signature verifies; spec.signerName is ``<domain>/<path>``; spec.usages is given,
known and without duplicates; spec.expirationSeconds is at least 600; conditions
have a type, appear once each, Approved and Denied exclude each other and are
"True"; status.certificate holds only CERTIFICATE PEM blocks and, once set, never
changes. Who asked (spec.username, groups, uid, extra) is the server's to write.
"""

import base64
import binascii
import re

from control.objects import conditions, x509certs

GROUP = "certificates.k8s.io"
KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"
KUBELET_CLIENT = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
LEGACY_UNKNOWN = "kubernetes.io/legacy-unknown"
APPROVED, DENIED, FAILED = "Approved", "Denied", "Failed"
APPROVAL_CONDITIONS = (APPROVED, DENIED)
MIN_EXPIRATION_SECONDS = 600
MAX_SIGNER_NAME = 571
REQUESTER_FIELDS = ("username", "uid", "groups", "extra")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SIGNER_PATH = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
                          r"(/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)*$")
PEM_CERTIFICATE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.S)


def _invalid(path, value, message):
    return (path, "FieldValueInvalid", f"Invalid value: {value!r}: {message}")


def decode_bytes(value):
    """Return the bytes of a ``byte`` field (base64 in JSON), or None if it is not base64."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def request_pem(csr):
    """Return the PEM bytes of spec.request (b"" when missing or not base64)."""
    return decode_bytes((csr.get("spec") or {}).get("request")) or b""


def name_problems(name):
    """A CSR's name is a path segment, as ValidateCertificateRequestName checks."""
    if not name:
        return [("metadata.name", "FieldValueRequired",
                 "Required value: name or generateName is required")]
    if name in (".", "..") or "/" in name or "%" in name:
        return [_invalid("metadata.name", name, 'may not be "." or ".." and may not contain '
                         '"/" or "%"')]
    return []


def signer_name_problems(signer):
    """Return problems of spec.signerName: ``<DNS subdomain>/<path>``, 571 characters at most."""
    path = "spec.signerName"
    if not signer:
        return [(path, "FieldValueRequired", "Required value")]
    if not isinstance(signer, str):
        return [_invalid(path, signer, "must be a string")]
    if len(signer) > MAX_SIGNER_NAME:
        return [(path, "FieldValueTooLong",
                 f"Too long: may not be more than {MAX_SIGNER_NAME} bytes")]
    domain, slash, rest = signer.partition("/")
    if not slash or not domain or not rest:
        return [_invalid(path, signer, "must be a fully qualified domain and path of the form "
                         "'example.com/signer-name'")]
    problems = []
    if len(domain) > 253 or not _DNS_SUBDOMAIN.match(domain) or "." not in domain:
        problems.append(_invalid(path, signer, "the domain part must be a fully qualified "
                                 "DNS subdomain (lowercase letters, digits, '-' and '.')"))
    if not _SIGNER_PATH.match(rest):
        problems.append(_invalid(path, signer, "the path part must be made of letters, "
                                 "digits, '-', '_' and '.', separated by '/'"))
    return problems


def _spec_problems(spec):
    problems = []
    raw = spec.get("request")
    pem = decode_bytes(raw)
    if not raw:
        problems.append(("spec.request", "FieldValueRequired", "Required value"))
    elif pem is None:
        problems.append(_invalid("spec.request", "<bytes>", "must be base64-encoded PEM"))
    else:
        try:
            x509certs.parse_request(pem)
        except x509certs.RequestError as exc:
            problems.append(_invalid("spec.request", "<bytes>", str(exc)))
    problems += signer_name_problems(spec.get("signerName"))
    usages = spec.get("usages")
    if not usages:
        problems.append(("spec.usages", "FieldValueRequired", "Required value: usages must "
                         "be provided"))
    else:
        seen = set()
        for i, usage in enumerate(usages if isinstance(usages, list) else [usages]):
            if usage not in x509certs.KNOWN_USAGES:
                problems.append((f"spec.usages[{i}]", "FieldValueNotSupported",
                                 f"Unsupported value: {usage!r}: supported values: "
                                 + ", ".join(f'"{u}"' for u in sorted(x509certs.KNOWN_USAGES))))
            elif usage in seen:
                problems.append((f"spec.usages[{i}]", "FieldValueDuplicate",
                                 f"Duplicate value: {usage!r}"))
            seen.add(usage)
    expiration = spec.get("expirationSeconds")
    if expiration is not None and (not isinstance(expiration, int) or isinstance(
            expiration, bool) or expiration < MIN_EXPIRATION_SECONDS):
        problems.append(_invalid("spec.expirationSeconds", expiration,
                                 f"may not specify a duration less than "
                                 f"{MIN_EXPIRATION_SECONDS} seconds (10 minutes)"))
    return problems


def _condition_problems(items):
    problems, seen = [], {}
    for i, condition in enumerate(items or ()):
        path = f"status.conditions[{i}]"
        if not isinstance(condition, dict):
            problems.append(_invalid(path, condition, "must be an object"))
            continue
        kind = condition.get("type")
        if not kind:
            problems.append((f"{path}.type", "FieldValueRequired", "Required value"))
            continue
        if kind in seen:
            problems.append((f"{path}.type", "FieldValueDuplicate", f"Duplicate value: {kind!r}"))
        seen[kind] = i
        status = condition.get("status")
        allowed = ("True",) if kind in APPROVAL_CONDITIONS else ("True", "False", "Unknown")
        if status not in allowed:
            problems.append((f"{path}.status", "FieldValueNotSupported",
                             f"Unsupported value: {status!r}: supported values: "
                             + ", ".join(f'"{s}"' for s in allowed)))
    if APPROVED in seen and DENIED in seen:
        problems.append(_invalid(f"status.conditions[{seen[DENIED]}].type", DENIED,
                                 "Approved and Denied conditions are mutually exclusive"))
    return problems


def _certificate_problems(status):
    raw = status.get("certificate")
    if not raw:
        return []
    pem = decode_bytes(raw)
    if pem is None:
        return [_invalid("status.certificate", "<certificate data>", "must be base64")]
    blocks = PEM_CERTIFICATE.findall(pem)
    if not blocks:
        return [_invalid("status.certificate", "<certificate data>",
                         "must contain at least one CERTIFICATE PEM block")]
    for label, _ in blocks:
        if label != b"CERTIFICATE":
            return [_invalid("status.certificate", "<certificate data>",
                             f"only CERTIFICATE PEM blocks are allowed, found {label.decode()!r}")]
    try:
        x509certs.load_certificate(pem)
    except ValueError as exc:
        return [_invalid("status.certificate", "<certificate data>", str(exc))]
    if not has_condition(status, APPROVED) or has_condition(status, DENIED) \
            or has_condition(status, FAILED):
        return [("status.certificate", "FieldValueForbidden", "Forbidden: a certificate may "
                 "only be set on an Approved request that is neither Denied nor Failed")]
    return []


def validate(csr):
    """Return the (field, reason, message) problems of a whole CertificateSigningRequest."""
    status = csr.get("status") or {}
    return (name_problems((csr.get("metadata") or {}).get("name", ""))
            + _spec_problems(csr.get("spec") or {})
            + _condition_problems(status.get("conditions"))
            + _certificate_problems(status))


def update_problems(old, new):
    """Return problems of a change: approval conditions stay, an issued certificate stays."""
    problems = []
    old_status, new_status = old.get("status") or {}, new.get("status") or {}
    for kind in APPROVAL_CONDITIONS:
        before = condition(old_status, kind)
        if before is not None and condition(new_status, kind) is None:
            problems.append(("status.conditions", "FieldValueForbidden",
                             f"Forbidden: updates may not remove a condition of type {kind!r}"))
    if old_status.get("certificate") and new_status.get("certificate") != \
            old_status.get("certificate"):
        problems.append(("status.certificate", "FieldValueInvalid",
                         "Invalid value: \"<certificate data>\": field is immutable: updates "
                         "may not modify existing certificate content"))
    return problems


# -- conditions --------------------------------------------------------------------------
def condition(status, kind):
    """The CSR status's condition of this type, or None (control/objects/conditions.py)."""
    return conditions.find({"status": status}, kind)


def has_condition(status, kind):
    return conditions.is_true({"status": status}, kind)


def is_approved(csr):
    status = csr.get("status") or {}
    return has_condition(status, APPROVED) and not has_condition(status, DENIED)


def is_finished(csr):
    """Denied, Failed, or issued: nothing more is to be done with it."""
    status = csr.get("status") or {}
    return bool(status.get("certificate")) or has_condition(status, DENIED) \
        or has_condition(status, FAILED)


def new_condition(kind, reason, message, now):
    """Return a condition of ``kind`` (status True) set at ``now`` (RFC 3339 text)."""
    return {"type": kind, "status": "True", "reason": reason, "message": message,
            "lastUpdateTime": now, "lastTransitionTime": now}


def display_status(csr):
    """Return what `kubectl get csr` shows: Pending, Approved, Denied, then ,Failed ,Issued."""
    status = csr.get("status") or {}
    kinds = {c.get("type") for c in status.get("conditions") or () if isinstance(c, dict)}
    text = DENIED if DENIED in kinds else APPROVED if APPROVED in kinds else "Pending"
    if FAILED in kinds:
        text += ",Failed"
    if status.get("certificate"):
        text += ",Issued"
    return text
