"""Delegated authentication/authorization of a component's secure port, with fakes and real TLS."""

import argparse
import http.client
import socket
import ssl

import pytest

from cli.pki import CertificateAuthority
from control.client import errors
from control.client.delegated_auth import (
    DelegatingAuthenticator,
    DelegatingAuthorizer,
    User,
    user_from_certificate,
)
from control.client.secure_serving import SecureServer, server_context, start_secure_serving


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class FakeApi:
    """Answers TokenReviews from ``tokens`` {token: (user, groups)}, SARs from ``allowed``."""

    def __init__(self, tokens=None, allowed=()):
        self.tokens, self.allowed = dict(tokens or {}), set(allowed)
        self.requests = []
        self.down = False

    def request(self, method, path, body=None, **_):
        self.requests.append((method, path, body))
        if self.down:
            raise errors.ConnectionFailed("API server unreachable")
        if path.endswith("/tokenreviews"):
            found = self.tokens.get(body["spec"]["token"])
            if found is None:
                return {"status": {"authenticated": False, "error": "invalid token"}}
            return {"status": {"authenticated": True,
                               "user": {"username": found[0], "groups": list(found[1])}}}
        spec = body["spec"]
        allowed = (spec["user"], spec["nonResourceAttributes"]["path"]) in self.allowed
        return {"status": {"allowed": allowed,
                           **({} if allowed else {"reason": "RBAC: no rule"})}}


def test_a_certificate_subject_names_user_and_groups():
    cert = {"subject": ((("organizationName", "system:monitoring"),),
                        (("organizationName", "ops"),), (("commonName", "prom"),))}
    user = user_from_certificate(cert)
    assert (user.name, user.groups) == ("prom", ("system:monitoring", "ops"))
    assert user_from_certificate(None) is None
    assert user_from_certificate({"subject": ()}) is None


def test_tokens_are_reviewed_once_per_ttl_and_failures_are_not_cached():
    clock = FakeClock()
    api = FakeApi(tokens={"good": ("system:serviceaccount:monitoring:prometheus", ["sa"])})
    authn = DelegatingAuthenticator(api, clock=clock, ttl=10)
    user, _ = authn.authenticate(None, "Bearer good")
    assert user.name == "system:serviceaccount:monitoring:prometheus"
    assert authn.authenticate(None, "Bearer good")[0].name == user.name
    assert authn.reviews == 1                          # the second came from the cache
    assert authn.authenticate(None, "Bearer bad") == (None, "invalid bearer token")
    assert authn.authenticate(None, "Bearer bad")[0] is None
    assert authn.reviews == 2                          # denials are cached too
    clock.now += 11
    authn.authenticate(None, "Bearer good")
    assert authn.reviews == 3                          # expired: asked again
    api.down = True
    assert authn.authenticate(None, "Bearer other") == (None, "review failed")
    api.down = False
    api.tokens["other"] = ("late", [])
    assert authn.authenticate(None, "Bearer other")[0].name == "late"
    # No credentials at all, or another scheme: no review is sent.
    assert authn.authenticate(None, None)[0] is None
    assert authn.authenticate(None, "Basic YWRtaW46YWRtaW4=")[0] is None
    assert authn.reviews == 5


def test_a_certificate_wins_over_a_token_without_a_review():
    authn = DelegatingAuthenticator(FakeApi())
    cert = {"subject": ((("commonName", "system:kube-scheduler"),),)}
    assert authn.authenticate(cert, "Bearer whatever")[0].name == "system:kube-scheduler"
    assert authn.reviews == 0


def test_access_reviews_are_cached_and_healthz_is_always_allowed():
    clock = FakeClock()
    api = FakeApi(allowed={("prom", "/metrics")})
    authz = DelegatingAuthorizer(api, clock=clock, authorized_ttl=10, unauthorized_ttl=5)
    assert authz.authorize(User("prom"), "/metrics") == (True, "")
    assert authz.authorize(User("prom"), "/metrics") == (True, "")
    assert authz.authorize(User("eve"), "/metrics") == (False, "RBAC: no rule")
    assert authz.reviews == 2
    assert authz.authorize(User("eve"), "/healthz") == (True, "")
    assert authz.reviews == 2
    sar = api.requests[0][2]["spec"]
    assert sar["nonResourceAttributes"] == {"path": "/metrics", "verb": "get"}
    clock.now += 6                                      # the denial expired, the grant not
    authz.authorize(User("eve"), "/metrics")
    authz.authorize(User("prom"), "/metrics")
    assert authz.reviews == 3


def test_the_cache_stays_bounded_under_a_flood_of_tokens():
    authn = DelegatingAuthenticator(FakeApi())
    authn.cache.size = 50
    for n in range(500):
        authn.authenticate(None, f"Bearer junk-{n}")
    assert len(authn.cache._entries) <= 50


class FakeRoutesServer:
    """SecureServer.decide without a socket."""

    def __init__(self, api):
        self.server = SecureServer.__new__(SecureServer)
        import threading
        self.server._lock = threading.Lock()
        self.server.authenticator = DelegatingAuthenticator(api)
        self.server.authorizer = DelegatingAuthorizer(api)
        self.server.routes = {"/healthz": lambda: "ok", "/metrics": lambda: "m 1\n"}


def test_decisions_of_the_secure_port():
    api = FakeApi(tokens={"ok": ("prom", []), "nope": ("eve", [])},
                  allowed={("prom", "/metrics")})
    decide = FakeRoutesServer(api).server.decide
    assert decide("/metrics", None, None)[0] == 401
    assert decide("/metrics", None, "Bearer ok") == (200, "m 1\n")
    status, body = decide("/metrics", None, "Bearer nope")
    assert status == 403 and 'user "eve" cannot get path "/metrics"' in body
    assert decide("/healthz", None, None) == (200, "ok")
    assert decide("/nothing", None, "Bearer ok")[0] == 404
    assert decide("/" + "a" * 10000, None, "Bearer ok")[0] == 414


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    base = tmp_path_factory.mktemp("secure-port")
    cluster = CertificateAuthority.create(str(base / "ca"))
    other = CertificateAuthority.create(str(base / "other"))
    serving = cluster.issue(str(base / "pki"), "serving", "kube-scheduler",
                            ip_addresses=["127.0.0.1"], server=True)
    monitor = cluster.issue(str(base / "pki"), "monitor", "prom", ["system:monitoring"],
                            client=True)
    stranger = other.issue(str(base / "pki"), "stranger", "prom", ["system:monitoring"],
                           client=True)
    return cluster, serving, monitor, stranger


@pytest.fixture
def served(pki):
    cluster, serving, _, _ = pki
    api = FakeApi(tokens={"ok": ("sa", [])}, allowed={("prom", "/metrics"), ("sa", "/metrics")})
    args = argparse.Namespace(secure_port=0, bind_address="127.0.0.1",
                              tls_cert_file=serving.cert, tls_private_key_file=serving.key,
                              client_ca_file=cluster.cert_path)
    server = SecureServer("127.0.0.1", 0, server_context(serving.cert, serving.key,
                                                          cluster.cert_path),
                          DelegatingAuthenticator(api), DelegatingAuthorizer(api),
                          {"/healthz": lambda: "ok", "/metrics": lambda: "up 1\n"}).start()
    try:
        yield server, args
    finally:
        server.stop()


def _get(port, ca, path="/metrics", cert=None, token=None):
    context = ssl.create_default_context(cafile=ca)
    if cert:
        context.load_cert_chain(cert.cert, cert.key)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_over_tls_a_cluster_ca_certificate_or_a_token_is_let_in(pki, served):
    cluster, _, monitor, stranger = pki
    server, _ = served
    assert _get(server.port, cluster.cert_path, cert=monitor) == (200, "up 1\n")
    assert _get(server.port, cluster.cert_path, token="ok") == (200, "up 1\n")
    assert _get(server.port, cluster.cert_path)[0] == 401
    assert _get(server.port, cluster.cert_path, "/healthz") == (200, "ok")
    # Another CA's certificate does not get past the handshake.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _get(server.port, cluster.cert_path, cert=stranger)
    assert _get(server.port, cluster.cert_path, token="ok")[0] == 200


def test_a_silent_caller_and_a_huge_request_line_do_not_stop_the_port(pki, served):
    cluster, _, _, _ = pki
    server, _ = served
    silent = socket.create_connection(("127.0.0.1", server.port))
    try:
        context = ssl.create_default_context(cafile=cluster.cert_path)
        raw = context.wrap_socket(socket.create_connection(("127.0.0.1", server.port)),
                                  server_hostname="127.0.0.1")
        raw.sendall(b"GET /" + b"x" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b" 414 " in raw.recv(4096)
        raw.close()
        assert _get(server.port, cluster.cert_path, token="ok")[0] == 200
    finally:
        silent.close()


def test_start_secure_serving_needs_a_certificate(pki):
    args = argparse.Namespace(secure_port=10259, bind_address="127.0.0.1", tls_cert_file=None,
                              tls_private_key_file=None, client_ca_file=None)
    with pytest.raises(SystemExit, match="--tls-cert-file"):
        start_secure_serving(args, FakeApi())
    args.secure_port = 0
    assert start_secure_serving(args, FakeApi()) is None


def test_a_renewed_serving_certificate_reaches_new_connections(tmp_path):
    ca = CertificateAuthority.create(str(tmp_path / "ca"))
    first = ca.issue(str(tmp_path), "serving", "kube-scheduler", ip_addresses=["127.0.0.1"],
                     server=True)
    context = server_context(first.cert, first.key, ca.cert_path)
    server = SecureServer("127.0.0.1", 0, context, DelegatingAuthenticator(FakeApi()),
                          DelegatingAuthorizer(FakeApi()), {"/healthz": lambda: "ok"}).start()

    def served_certificate():
        client = ssl.create_default_context(cafile=ca.cert_path)
        with client.wrap_socket(socket.create_connection(("127.0.0.1", server.port), 10),
                                server_hostname="127.0.0.1") as tls:
            return tls.getpeercert(binary_form=True)
    try:
        before = served_certificate()
        ca.issue(str(tmp_path), "serving", "kube-scheduler", ip_addresses=["127.0.0.1"],
                 server=True)                                  # renewed in place
        context.sni_callback.checked = float("-inf")           # past the 1 s throttle
        served_certificate()            # this handshake notices the change (old pair still)
        assert served_certificate() != before
    finally:
        server.stop()
