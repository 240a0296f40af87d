"""Renew the agent's client and serving certificates through CertificateSigningRequests.

As kubelet's certificate manager: a certificate is renewed once a random point
between 70 % and 90 % of its lifetime has passed (the jitter keeps a fleet from
renewing at once). Renewing makes a new key, sends a CSR (signer
kube-apiserver-client-kubelet for the client, kubelet-serving for the port) and
waits for the controller manager to approve and sign it. The certificate and key
are kept together in one PEM file, 0600, in the agent's certificate directory
(0700), written whole under a new name and then pointed at by the symlink
``<prefix>-current.pem`` (replaced atomically), so a reader never sees a new
certificate with an old key. The running agent uses a new pair without a
restart: ``on_rotate`` loads it into the SSLContext that new TLS connections and
handshakes are made from. A failed renewal is retried with backoff while the old
certificate still serves.
"""

import base64
import datetime
import logging
import os
import random
import threading
import time

from control.client import ApiException, NotFound
from control.objects import certificates, kinds, x509certs

log = logging.getLogger(__name__)

CLIENT_PREFIX, SERVING_PREFIX = "kubelet-client", "kubelet-server"
CLIENT_USAGES = ("digital signature", "client auth")
SERVING_USAGES = ("digital signature", "server auth")
NODES_GROUP = "system:nodes"
JITTER = (0.7, 0.9)
RETRY_FIRST, RETRY_MAX = 1.0, 300.0
POLL = 0.5
#: How long a CSR may wait for approval and signing before it is given up on.
WAIT_FOR_CERTIFICATE = 900.0
KEEP_OLD_FILES = 2


class CertificateRequestError(RuntimeError):
    """The CSR was denied, failed, or not signed in time."""


def rotation_deadline(not_before, not_after, rng):
    """Return when to renew: notBefore + 70..90 % of the lifetime (kubelet's jitter)."""
    return not_before + (not_after - not_before) * rng.uniform(*JITTER)


def split_pem(pem):
    """Return (certificate PEM, key PEM) of a combined file's bytes."""
    cert = pem[:pem.index(b"-----END CERTIFICATE-----") + len(b"-----END CERTIFICATE-----")]
    start = pem.index(b"-----BEGIN PRIVATE KEY-----")
    return cert + b"\n", pem[start:]


class PemStore:
    """``<dir>/<prefix>-current.pem``: a symlink to the newest ``<prefix>-<time>.pem``."""

    def __init__(self, directory, prefix, clock=time.time):
        self.dir, self.prefix, self.clock = directory, prefix, clock

    @property
    def current_path(self):
        return os.path.join(self.dir, f"{self.prefix}-current.pem")

    def load(self):
        """Return the current PEM bytes (certificate then key), or None if there is none."""
        try:
            with open(self.current_path, "rb") as handle:
                return handle.read()
        except OSError:
            return None

    def save(self, cert_pem, key_pem):
        """Write a new pair (0600) and make it current; return the current path."""
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        os.chmod(self.dir, 0o700)
        stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(self.clock()))
        name = f"{self.prefix}-{stamp}-{os.getpid()}-{random.randrange(1 << 30):08x}.pem"
        path = os.path.join(self.dir, name)
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(cert_pem.rstrip(b"\n") + b"\n" + key_pem)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(path + ".tmp", path)
        link = self.current_path + ".tmp"
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(name, link)
        os.replace(link, self.current_path)
        self._prune(keep=name)
        return self.current_path

    def _prune(self, keep):
        old = sorted(f for f in os.listdir(self.dir)
                     if f.startswith(self.prefix + "-") and f.endswith(".pem")
                     and f != keep and not f.endswith("-current.pem"))
        for name in old[:-KEEP_OLD_FILES] if len(old) > KEEP_OLD_FILES else []:
            os.unlink(os.path.join(self.dir, name))


def request_certificate(rest, key, signer, usages, common_name, organizations=(), dns_names=(),
                        ip_addresses=(), expiration_seconds=None, timeout=WAIT_FOR_CERTIFICATE,
                        sleep=time.sleep, monotonic=time.monotonic, stop=None):
    """Create a CSR for ``key`` and wait until it is signed; return the certificate PEM."""
    request = x509certs.make_request(key, common_name, organizations, dns_names, ip_addresses)
    spec = {"request": base64.b64encode(request).decode("ascii"), "signerName": signer,
            "usages": list(usages)}
    if expiration_seconds:
        spec["expirationSeconds"] = int(expiration_seconds)
    created = rest.create(kinds.CERTIFICATESIGNINGREQUESTS, None, {
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"generateName": "csr-"}, "spec": spec})
    name = created["metadata"]["name"]
    log.info("event=csr_created name=%s signer=%s cn=%s", name, signer, common_name)
    deadline = monotonic() + timeout
    while True:
        try:
            csr = rest.get(kinds.CERTIFICATESIGNINGREQUESTS, None, name)
        except NotFound:
            raise CertificateRequestError(f"CSR {name} was deleted before it was signed") from None
        status = csr.get("status") or {}
        for kind in (certificates.DENIED, certificates.FAILED):
            if certificates.has_condition(status, kind):
                found = certificates.condition(status, kind)
                raise CertificateRequestError(
                    f"CSR {name} was {kind.lower()}: {found.get('reason', '')} "
                    f"{found.get('message', '')}".rstrip())
        if status.get("certificate"):
            pem = certificates.decode_bytes(status["certificate"]) or b""
            if not x509certs.certificate_matches_key(pem, key):
                raise CertificateRequestError(f"CSR {name} was issued for another key")
            log.info("event=csr_issued name=%s", name)
            return pem
        if monotonic() > deadline:
            raise CertificateRequestError(
                f"CSR {name} was not approved and signed within {timeout:g}s: approve it "
                f"with `kubectl certificate approve {name}`, or check that the controller "
                "manager runs csrsigning with --cluster-signing-cert-file/-key-file")
        if stop is not None and stop.wait(POLL):
            raise CertificateRequestError("stopped while waiting for the certificate")
        if stop is None:
            sleep(POLL)


class CertificateManager:
    """Keep one certificate fresh: renew it at its jittered deadline, forever.

    ``subject()`` returns (common name, organizations, DNS names, IP addresses) for a
    new request; ``on_rotate(path)`` is called with the current PEM's path after each
    renewal (and never with a half-written one).
    """

    def __init__(self, rest, store, signer, usages, subject, on_rotate, initial_pem=None,
                 clock=None, rng=None, expiration_seconds=None, request=request_certificate):
        self.rest, self.store, self.signer, self.usages = rest, store, signer, tuple(usages)
        self.subject, self.on_rotate = subject, on_rotate
        self.clock = clock or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self.rng = rng or random.Random()
        self.expiration_seconds = expiration_seconds
        self._request = request
        self.pem = store.load() or initial_pem
        self.deadline = None
        self.rotations = 0
        self._reschedule()

    def _reschedule(self):
        if not self.pem:
            self.deadline = self.clock()       # none yet: request one now
            return
        not_before, not_after = x509certs.lifetime_of(self.pem)
        self.deadline = rotation_deadline(not_before, not_after, self.rng)
        log.info("event=certificate_rotation_scheduled signer=%s not_after=%s renew_at=%s",
                 self.signer, not_after.isoformat(), self.deadline.isoformat())

    def seconds_until_due(self):
        return max(0.0, (self.deadline - self.clock()).total_seconds())

    def due(self):
        return self.clock() >= self.deadline

    def rotate(self, stop=None):
        """Request, store and load a new certificate now; return the current PEM path."""
        key = x509certs.new_key()
        common_name, organizations, dns_names, ips = self.subject()
        cert = self._request(self.rest, key, self.signer, self.usages, common_name,
                             organizations, dns_names, ips,
                             expiration_seconds=self.expiration_seconds, stop=stop)
        path = self.store.save(cert, x509certs.key_pem(key))
        self.pem = self.store.load()
        self.on_rotate(path)
        self.rotations += 1
        self._reschedule()
        return path

    def run(self, stop):
        """Renew at each deadline until ``stop`` (an Event) is set; retry failures with backoff."""
        retry = RETRY_FIRST
        while not stop.is_set():
            if not self.due():
                stop.wait(min(self.seconds_until_due(), 60.0))
                continue
            try:
                self.rotate(stop)
                retry = RETRY_FIRST
            except (ApiException, OSError, CertificateRequestError, ValueError) as exc:
                if stop.is_set():
                    return
                log.warning("event=certificate_rotation_failed signer=%s retry_in=%gs error=%s",
                            self.signer, retry, exc)
                stop.wait(retry)
                retry = min(retry * 2, RETRY_MAX)

    def start(self, stop):
        thread = threading.Thread(target=self.run, args=(stop,), daemon=True,
                                  name=f"cert-rotation-{self.store.prefix}")
        thread.start()
        return thread
