"""Sign approved CertificateSigningRequests with the cluster CA: Kubernetes' csrsigning controller.

The CA comes from --cluster-signing-cert-file and --cluster-signing-key-file (the
key 0600, or the controller refuses to start); both are read again when either
file changes, so a CA rotated on disk is used without a restart. Three signers
are served, each with the rules Kubernetes' signers check before signing:

- kubernetes.io/kube-apiserver-client-kubelet: CN ``system:node:<name>``, O exactly
  ``system:nodes``, no subject alternative names; usages "client auth" with
  "digital signature" and/or "key encipherment" only.
- kubernetes.io/kubelet-serving: the same subject, at least one DNS or IP name and
  no other kind; usages "server auth" with "digital signature"/"key encipherment".
- kubernetes.io/kube-apiserver-client: any subject; "client auth", never
  "server auth".

A request the signer refuses gets the condition Failed (reason
SignerValidationFailure) and no certificate. The certificate lives for
min(spec.expirationSeconds, --cluster-signing-duration), never past the CA.
"""

import base64
import copy
import datetime
import logging
import os
import stat
import threading

from control.client import NotFound
from control.controllers.controller import Controller, split_key
from control.objects import certificates, kinds, meta, x509certs

log = logging.getLogger(__name__)

DEFAULT_DURATION = 365 * 24 * 3600.0
NODE_PREFIX, NODES_GROUP = "system:node:", "system:nodes"
CLIENT_USAGES = {"digital signature", "key encipherment", "client auth"}
SERVING_USAGES = {"digital signature", "key encipherment", "server auth"}
SIGNED = (certificates.KUBELET_CLIENT, certificates.KUBELET_SERVING,
          certificates.KUBE_APISERVER_CLIENT)


class SigningKeyError(ValueError):
    """The CA files are missing, unreadable, or the key is open to others."""


def _node_subject(cn, orgs):
    if not cn.startswith(NODE_PREFIX) or len(cn) == len(NODE_PREFIX):
        return f'the common name must be "{NODE_PREFIX}<node name>", not {cn!r}'
    if orgs != [NODES_GROUP]:
        return f'the organization must be exactly ["{NODES_GROUP}"], not {orgs}'
    return None


def signer_problem(signer, request, usages):
    """Return why ``signer`` will not sign the parsed ``request`` for ``usages``, or None."""
    cn, orgs, dns, ips, other = x509certs.request_names(request)
    usages = set(usages or ())
    if signer == certificates.KUBELET_CLIENT:
        problem = _node_subject(cn, orgs)
        if problem:
            return problem
        if dns or ips or other:
            return "a kubelet client certificate may not name DNS, IP, email or URI SANs"
        if "client auth" not in usages or not usages <= CLIENT_USAGES:
            return f"usages must be client auth with digital signature or key encipherment, " \
                   f"not {sorted(usages)}"
        return None
    if signer == certificates.KUBELET_SERVING:
        problem = _node_subject(cn, orgs)
        if problem:
            return problem
        if other or not (dns or ips):
            return "a kubelet serving certificate needs DNS or IP SANs and no other kind"
        if "server auth" not in usages or not usages <= SERVING_USAGES:
            return f"usages must be server auth with digital signature or key encipherment, " \
                   f"not {sorted(usages)}"
        return None
    if signer == certificates.KUBE_APISERVER_CLIENT:
        if "client auth" not in usages or "server auth" in usages:
            return f"usages must include client auth and not server auth, not {sorted(usages)}"
        if "system:masters" in orgs:
            return "the system:masters group is never signed"
        return None
    return f"signer {signer!r} is not served here"


def check_key_file(path):
    """Refuse a signing key that others may read (it must be 0600 or stricter)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise SigningKeyError(f"cannot read --cluster-signing-key-file {path}: {exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(f"--cluster-signing-key-file {path} is readable by others "
                              f"(mode {stat.S_IMODE(mode):o}): chmod 600 it")


class SigningCA:
    """The CA certificate and key from their files, read again when either changes."""

    def __init__(self, cert_file, key_file):
        self.cert_file, self.key_file = cert_file, key_file
        self._lock = threading.Lock()
        self._stamp, self._loaded = None, None
        self.load()

    def _files_stamp(self):
        return tuple((s.st_mtime_ns, s.st_size, s.st_ino)
                     for s in (os.stat(self.cert_file), os.stat(self.key_file)))

    def load(self):
        """Return (certificate, key), re-read if the files changed since the last read."""
        with self._lock:
            try:
                stamp = self._files_stamp()
            except OSError as exc:
                if self._loaded is not None:
                    return self._loaded     # mid-rotation: keep the last good pair
                raise SigningKeyError(f"cannot read the signing CA: {exc}") from None
            if stamp != self._stamp:
                check_key_file(self.key_file)
                with open(self.cert_file, "rb") as handle:
                    cert = x509certs.load_certificate(handle.read())
                with open(self.key_file, "rb") as handle:
                    key = x509certs.load_key(handle.read())
                self._loaded, self._stamp = (cert, key), stamp
                log.info("event=signing_ca_loaded cert=%s not_after=%s", self.cert_file,
                         cert.not_valid_after_utc.isoformat())
            return self._loaded


def certificate_lifetime(csr, max_seconds):
    """min(spec.expirationSeconds, --cluster-signing-duration) as a timedelta."""
    requested = (csr.get("spec") or {}).get("expirationSeconds")
    seconds = max_seconds if requested is None else min(float(requested), max_seconds)
    return datetime.timedelta(seconds=seconds)


class CSRSigningController(Controller):
    """Issue certificates for approved requests of the signers served here."""

    def __init__(self, rest, csr_informer, ca, duration=DEFAULT_DURATION, queue=None,
                 clock=meta.utcnow):
        super().__init__("csrsigning", [csr_informer], queue)
        self.rest, self.store, self.ca = rest, csr_informer.store, ca
        self.duration, self.clock = duration, clock
        csr_informer.add_handler(self._maybe_enqueue, lambda old, new: self._maybe_enqueue(new))

    def _maybe_enqueue(self, csr):
        if self._wanted(csr):
            self.enqueue(csr)

    @staticmethod
    def _wanted(csr):
        return (csr.get("spec") or {}).get("signerName") in SIGNED and \
            certificates.is_approved(csr) and not certificates.is_finished(csr)

    def sync(self, key):
        _, name = split_key(key)
        cached = self.store.get(key)
        if cached is None or not self._wanted(cached):
            return
        csr = copy.deepcopy(cached)     # never mutate the cache
        spec = csr["spec"]
        try:
            request = x509certs.parse_request(certificates.request_pem(csr))
            problem = signer_problem(spec["signerName"], request, spec.get("usages"))
        except x509certs.RequestError as exc:
            problem = str(exc)
        status = csr.setdefault("status", {})
        now = self.clock()
        if problem:
            log.info("event=csr_failed name=%s signer=%s reason=%r", name, spec["signerName"],
                     problem)
            status.setdefault("conditions", []).append(certificates.new_condition(
                certificates.FAILED, "SignerValidationFailure", problem, meta.timestamp(now)))
        else:
            ca_cert, ca_key = self.ca.load()
            pem = x509certs.sign_request(request, ca_cert, ca_key, spec.get("usages") or (),
                                         now, certificate_lifetime(csr, self.duration))
            status["certificate"] = base64.b64encode(pem).decode("ascii")
            log.info("event=csr_signed name=%s signer=%s requestor=%s", name,
                     spec["signerName"], spec.get("username", ""))
        try:
            self.rest.update(kinds.CERTIFICATESIGNINGREQUESTS, None, csr, subresource="status")
        except NotFound:
            pass

