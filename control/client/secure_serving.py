"""Serve a component's /healthz and /metrics over HTTPS, with delegated auth (--secure-port).

kube-scheduler and kube-controller-manager serve these on their secure ports
(10259 and 10257): TLS with a serving certificate, callers authenticated by a
client certificate of the cluster CA or a bearer token (TokenReview), and
authorized by a SubjectAccessReview (see delegated_auth.py); /healthz is open.
Here the port is off (0) unless given: `steer up` passes one with a certificate
it issues from the cluster CA.

The TLS handshake runs on the connection's own thread, under a timeout, so a
caller that connects and says nothing holds up no one else.
"""

import http.server
import logging
import os
import ssl
import threading
import time

from control.client import metrics
from control.client.delegated_auth import DelegatingAuthenticator, DelegatingAuthorizer

log = logging.getLogger(__name__)

#: Seconds a caller has for the handshake and each read (slow requests are dropped).
REQUEST_TIMEOUT = 10.0
#: Longest request path answered; longer ones get 414 (http.server caps the line at 64 KiB).
MAX_PATH = 4096


def add_secure_serving_flags(parser, kubernetes_port):
    """Add --secure-port, --bind-address, --tls-cert-file, --tls-private-key-file, --client-ca-file."""
    add = parser.add_argument
    add("--secure-port", type=int, default=0, metavar="PORT",
        help=f"serve HTTPS /healthz and /metrics with delegated authentication and "
             f"authorization on this port (0: off, the default here; Kubernetes uses "
             f"{kubernetes_port})")
    add("--bind-address", default="127.0.0.1", help="address of --secure-port")
    add("--tls-cert-file", metavar="FILE", help="serving certificate of --secure-port (PEM)")
    add("--tls-private-key-file", metavar="FILE", help="its private key (PEM, mode 0600)")
    add("--client-ca-file", metavar="FILE",
        help="CA whose client certificates authenticate callers (the cluster CA); without "
             "it only bearer tokens do")


def server_context(cert_file, key_file, client_ca_file=None):
    """TLS server context: our certificate; client certificates optional, checked against the CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    _ReloadOnChange(context, cert_file, key_file)
    if client_ca_file:
        context.load_verify_locations(cafile=client_ca_file)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


class _Handler(http.server.BaseHTTPRequestHandler):
    timeout = REQUEST_TIMEOUT
    server_version = "steer-component"
    protocol_version = "HTTP/1.1"

    def handle(self):
        try:
            self.connection.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake with %s failed: %s", self.client_address[0], exc)
            return
        super().handle()

    def do_GET(self):
        self.server.secure.answer(self)

    def log_message(self, fmt, *args):
        log.debug("%s %s", self.client_address[0], fmt % args)


class SecureServer:
    """HTTPS routes {path: () -> text} behind delegated authentication and authorization."""

    def __init__(self, host, port, context, authenticator, authorizer, routes):
        self.authenticator, self.authorizer, self.routes = authenticator, authorizer, routes
        self._lock = threading.Lock()      # the caches are not thread-safe on their own
        self.httpd = http.server.ThreadingHTTPServer((host, port), _Handler,
                                                     bind_and_activate=False)
        self.httpd.daemon_threads = True
        self.httpd.allow_reuse_address = True
        self.httpd.server_bind()
        self.httpd.server_activate()
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True,
                                                do_handshake_on_connect=False)
        self.httpd.secure = self
        self.port = self.httpd.server_address[1]
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="secure-port",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def decide(self, path, peercert, authorization):
        """Return (status, body) for a GET of ``path`` by this caller."""
        if len(path) > MAX_PATH:
            return 414, f"path longer than {MAX_PATH} bytes\n"
        path = path.split("?", 1)[0]
        if path not in self.routes:
            return 404, f"no {path[:100]!r} here: try {', '.join(sorted(self.routes))}\n"
        if self.authorizer.always_allowed(path):
            return 200, self.routes[path]()
        with self._lock:
            user, reason = self.authenticator.authenticate(peercert, authorization)
            if user is None:
                return 401, f"Unauthorized: {reason}\n"
            allowed, reason = self.authorizer.authorize(user, path, "get")
        if not allowed:
            return 403, (f'Forbidden: user "{user.name}" cannot get path "{path}": '
                         f"{reason}\n")
        return 200, self.routes[path]()

    def answer(self, handler):
        try:
            peercert = handler.connection.getpeercert()
        except (ValueError, AttributeError):
            peercert = None
        status, body = self.decide(handler.path, peercert, handler.headers.get("Authorization"))
        data = body.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


def start_secure_serving(args, rest, registry=None, clock=None):
    """Start the secure port the flags ask for (None when --secure-port is 0), or exit."""
    if not args.secure_port:
        return None
    if not (args.tls_cert_file and args.tls_private_key_file):
        raise SystemExit("error: --secure-port needs --tls-cert-file and "
                         "--tls-private-key-file (a serving certificate of the cluster CA)")
    registry = registry or metrics.REGISTRY
    metrics.register_process_metrics(registry)
    try:
        context = server_context(args.tls_cert_file, args.tls_private_key_file,
                                 args.client_ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit(f"error: cannot load the secure port's TLS files: {exc}") from None
    extra = {} if clock is None else {"clock": clock}
    try:
        server = SecureServer(args.bind_address, args.secure_port, context,
                              DelegatingAuthenticator(rest, **extra),
                              DelegatingAuthorizer(rest, **extra),
                              {"/healthz": lambda: "ok", "/metrics": registry.render})
    except OSError as exc:
        raise SystemExit(f"error: cannot listen on {args.bind_address}:{args.secure_port}: "
                         f"{exc}") from None
    log.info("serving /healthz and /metrics on https://%s:%d", args.bind_address, server.port)
    return server.start()


class _ReloadOnChange:
    """Load a renewed certificate pair into a server context, for new handshakes.

    Installed as the SNI callback, which OpenSSL calls in every handshake (SNI or not);
    it looks at the files at most once a second, so `steer up`'s renewals reach new
    connections without a restart (the handshake that notices still has the old pair:
    OpenSSL copied it into the connection). A half-written pair is tried again later.
    """

    def __init__(self, context, cert_file, key_file, clock=time.monotonic):
        self.context, self.files, self.clock = context, (cert_file, key_file), clock
        self.stamp, self.checked = self._stamp(), clock()
        context.sni_callback = self

    def _stamp(self):
        try:
            return tuple((s.st_mtime_ns, s.st_size, s.st_ino) for s in map(os.stat, self.files))
        except OSError:
            return None

    def __call__(self, ssl_socket, server_name, context):
        now = self.clock()
        if now - self.checked < 1.0:
            return None
        self.checked = now
        stamp = self._stamp()
        if stamp != self.stamp:
            try:
                self.context.load_cert_chain(*self.files)
                self.stamp = stamp
            except (OSError, ssl.SSLError):
                pass
        return None
