"""The agent's certificate renewal: the jittered schedule, the files, a renewal end to end.

A fake API (``SigningRest``) signs every CSR at once with a test CA, so the
manager's logic runs without a server; the clock is injected.
"""

import base64
import datetime
import os
import random
import ssl
import stat
import threading

import pytest

from agent import bootstrap, certrotation
from cli.pki import CertificateAuthority
from control.client import NotFound
from control.objects import certificates, x509certs

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


class Clock:
    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now


class SigningRest:
    """Create CSRs; sign (or deny) them at once with ``ca`` for ``lifetime``."""

    def __init__(self, ca, clock, lifetime=datetime.timedelta(hours=1), deny=False):
        self.ca, self.clock, self.lifetime, self.deny = ca, clock, lifetime, deny
        self.csrs = {}

    def create(self, resource, namespace, body):
        name = f"csr-{len(self.csrs)}"
        obj = {**body, "metadata": {"name": name}}
        request = x509certs.parse_request(certificates.request_pem(obj))
        if self.deny:
            obj["status"] = {"conditions": [{"type": "Denied", "status": "True",
                                             "reason": "NotYours", "message": "no"}]}
        else:
            pem = x509certs.sign_request(request, self.ca.cert, self.ca.key, body["spec"]["usages"],
                                         self.clock(), self.lifetime)
            obj["status"] = {"certificate": base64.b64encode(pem).decode()}
        self.csrs[name] = obj
        return obj

    def get(self, resource, namespace, name):
        if name not in self.csrs:
            raise NotFound(404, "NotFound", name)
        return self.csrs[name]


@pytest.fixture
def ca(tmp_path):
    return CertificateAuthority.create(str(tmp_path / "ca"), now=T0)


def issued_pem(ca, tmp_path, start, lifetime_days):
    issued = ca.issue(str(tmp_path), "first", "system:node:n1", ["system:nodes"], client=True,
                      days=lifetime_days, now=start)
    with open(issued.cert, "rb") as handle:
        return handle.read()


def test_the_deadline_falls_between_70_and_90_percent_of_the_lifetime():
    start, end = T0, T0 + datetime.timedelta(days=100)
    deadlines = [certrotation.rotation_deadline(start, end, random.Random(seed))
                 for seed in range(200)]
    assert all(start + datetime.timedelta(days=70) <= d <= start + datetime.timedelta(days=90)
               for d in deadlines)
    assert len(set(deadlines)) > 100        # jittered: a fleet does not renew at once


def test_a_manager_is_due_only_after_its_deadline(ca, tmp_path):
    clock = Clock()
    pem = issued_pem(ca, tmp_path, T0, 10)
    manager = certrotation.CertificateManager(
        None, certrotation.PemStore(str(tmp_path / "pki"), "kubelet-client"), "s", (),
        subject=None, on_rotate=None, initial_pem=pem, clock=clock, rng=random.Random(1))
    not_before, _ = x509certs.lifetime_of(pem)
    assert not manager.due()
    clock.now = not_before + datetime.timedelta(days=6.9)
    assert not manager.due()
    clock.now = not_before + datetime.timedelta(days=9.01)
    assert manager.due() and manager.seconds_until_due() == 0


def test_rotation_writes_one_private_file_and_reloads(ca, tmp_path):
    clock = Clock()
    rest = SigningRest(ca, clock)
    loaded = []
    store = certrotation.PemStore(str(tmp_path / "pki"), "kubelet-server")
    manager = certrotation.CertificateManager(
        rest, store, certificates.KUBELET_SERVING, certrotation.SERVING_USAGES,
        subject=lambda: ("system:node:n1", ("system:nodes",), ["n1"], ["127.0.1.1"]),
        on_rotate=loaded.append, clock=clock, rng=random.Random(2))
    assert manager.due()                    # nothing yet: request one now
    path = manager.rotate()
    assert loaded == [path] and os.path.islink(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.dir).st_mode) == 0o700
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(path)           # certificate and key together, matching
    first_serial = x509certs.load_certificate(store.load()).serial_number
    spec = rest.csrs["csr-0"]["spec"]
    assert spec["signerName"] == certificates.KUBELET_SERVING
    clock.now = manager.deadline
    assert manager.due()
    manager.rotate()
    assert x509certs.load_certificate(store.load()).serial_number != first_serial
    assert not manager.due() and manager.rotations == 2
    for _ in range(4):
        manager.rotate()
    assert len(os.listdir(store.dir)) <= certrotation.KEEP_OLD_FILES + 2


def test_run_renews_at_the_deadline_and_retries_a_denial(ca, tmp_path):
    clock = Clock()
    rest = SigningRest(ca, clock, deny=True)
    store = certrotation.PemStore(str(tmp_path / "pki"), "kubelet-client")
    stop = threading.Event()
    rotated = []

    def on_rotate(path):
        rotated.append(path)
        stop.set()

    manager = certrotation.CertificateManager(
        rest, store, certificates.KUBELET_CLIENT, certrotation.CLIENT_USAGES,
        subject=lambda: ("system:node:n1", ("system:nodes",), (), ()), on_rotate=on_rotate,
        initial_pem=issued_pem(ca, tmp_path, T0, 1), clock=clock)
    with pytest.raises(certrotation.CertificateRequestError, match="denied: NotYours"):
        manager.rotate()
    clock.now = T0 + datetime.timedelta(days=2)
    rest.deny = False
    manager.run(stop)
    assert rotated and store.load() is not None


def test_bootstrap_writes_the_kubeconfig_with_the_issued_certificate(ca, tmp_path):
    clock = Clock(datetime.datetime.now(datetime.timezone.utc))
    boot = tmp_path / "bootstrap.kubeconfig"
    boot.write_text('{"apiVersion": "v1", "kind": "Config", "current-context": "b",'
                    '"clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1",'
                    f'"certificate-authority": "{ca.cert_path}"}}}}],'
                    '"users": [{"name": "u", "user": {"token": "abcdef.0123456789abcdef"}}],'
                    '"contexts": [{"name": "b", "context": {"cluster": "c", "user": "u"}}]}')
    target = str(tmp_path / "node" / "agent.kubeconfig")
    cert_dir = str(tmp_path / "node" / "pki")
    rest = SigningRest(ca, clock)
    assert bootstrap.bootstrap(target, str(boot), cert_dir, "n3", rest=rest)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    from control.client import kubeconfig
    config = kubeconfig.load(target)
    assert config.server == "https://127.0.0.1:1" and config.token is None
    assert config.cert_file == config.key_file == os.path.join(cert_dir,
                                                               "kubelet-client-current.pem")
    subject = x509certs.load_certificate(open(config.cert_file, "rb").read()).subject
    assert subject.rfc4514_string() == "CN=system:node:n3,O=system:nodes"
    # Holding a valid certificate now, a second start asks for nothing.
    assert not bootstrap.bootstrap(target, str(boot), cert_dir, "n3", rest=rest)
    assert len(rest.csrs) == 1


def test_a_denied_bootstrap_says_so_and_writes_nothing(ca, tmp_path):
    boot = tmp_path / "bootstrap.kubeconfig"
    boot.write_text('{"apiVersion": "v1", "kind": "Config", "current-context": "b",'
                    '"clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],'
                    '"users": [{"name": "u", "user": {"token": "abcdef.0123456789abcdef"}}],'
                    '"contexts": [{"name": "b", "context": {"cluster": "c", "user": "u"}}]}')
    target = tmp_path / "node" / "agent.kubeconfig"
    rest = SigningRest(ca, Clock(), deny=True)
    with pytest.raises(SystemExit, match="denied: NotYours"):
        bootstrap.bootstrap(str(target), str(boot), str(tmp_path / "pki"), "n4", rest=rest)
    assert not target.exists()


def test_an_agent_port_never_started_stops_at_once(tmp_path):
    from agent.server import AgentServer
    server = AgentServer("127.0.0.1", 0, find=None)
    server.stop()       # no serve_forever ran: shutdown() would wait for ever
