"""A loopback HTTPS server for client tests: certificates from cli/pki.py, peers reported.

It answers every GET with ``{"user": <client certificate CN or "">, "auth": <Authorization>}``
and a ``?watch=true`` GET with two watch events, so a test sees what identity the
client presented over a real TLS handshake.
"""

import http.server
import json
import ssl
import threading

from cli.pki import CertificateAuthority


def make_pki(directory):
    """A CA with a serving certificate for 127.0.0.1/localhost and an admin client certificate."""
    ca = CertificateAuthority.create(str(directory / "ca"))
    serving = ca.issue(str(directory / "pki"), "apiserver", "kube-apiserver",
                       dns_names=["localhost"], ip_addresses=["127.0.0.1"], server=True)
    admin = ca.issue(str(directory / "pki"), "admin", "admin",
                     organizations=["system:masters"], client=True)
    return ca, serving, admin


class TlsStub:
    """A threaded HTTPS server that verifies client certificates when they are presented."""

    def __init__(self, ca, serving):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                peer = self.connection.getpeercert() or {}
                user = ""
                for rdn in peer.get("subject", ()):
                    for key, value in rdn:
                        if key == "commonName":
                            user = value
                if "watch=true" in self.path:
                    events = [{"type": "ADDED", "object": {"metadata": {"name": n}}}
                              for n in ("a", "b")]
                    data = b"".join(json.dumps(e).encode() + b"\n" for e in events)
                    self.close_connection = True
                else:
                    data = json.dumps({"user": user,
                                       "auth": self.headers.get("Authorization")}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(serving.cert, serving.key)
        context.load_verify_locations(ca.cert_path)
        context.verify_mode = ssl.CERT_OPTIONAL
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
