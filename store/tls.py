"""Build the TLS contexts of the store's client port and wrap a client socket in TLS.

The client port speaks mutual TLS as etcd's does: a member presents its serving
certificate (its client address as an IP SAN) and, with client certificate
authentication on, accepts only clients whose certificate the store's own CA signed
(only API servers and admins hold one). Certificates come from files; the store
never issues them.

A ``StoreClient`` connection is read by one thread while other threads write to it.
An OpenSSL connection must not be used by two threads at once, so ``TlsSocket``
keeps the TLS state in memory (``ssl.MemoryBIO``) behind a lock and does the socket
I/O itself, outside that lock: a blocked read never holds up a write.
"""

import ssl
import threading

RECV_BYTES = 256 * 1024


def server_context(cert_file, key_file, trusted_ca_file=None, client_cert_auth=False):
    """Return the client port's server context; require a client certificate if asked."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    if client_cert_auth:
        if not trusted_ca_file:
            raise ValueError("client certificate authentication needs a trusted CA file")
        context.load_verify_locations(cafile=trusted_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(ca_file, cert_file=None, key_file=None):
    """Return a client context that trusts only ``ca_file`` and presents a certificate."""
    if not ca_file:
        raise ValueError("a TLS store client needs the store CA (ca_file) to verify members")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cafile=ca_file)
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context


def peer_name(cert):
    """Return the common name of a peer certificate as ``getpeercert()`` gives it."""
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return ""


class TlsSocket:
    """A connected TCP socket speaking TLS, safe for one reader and many writers.

    The handshake runs in the constructor under the socket's current timeout.
    ``recv`` returns b"" at the end of the stream; TLS failures raise ``ssl.SSLError``
    (an ``OSError``), e.g. when the member refuses the client's certificate.
    """

    def __init__(self, sock, context, server_hostname):
        self.sock = sock
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing,
                                     server_hostname=server_hostname)
        self._tls_lock = threading.Lock()     # guards the TLS state (OpenSSL's object)
        self._send_lock = threading.Lock()    # records reach the wire in the order made
        self._handshake()

    def _handshake(self):
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._send_pending()
                data = self.sock.recv(RECV_BYTES)
                if not data:
                    raise ConnectionError("the member closed the connection during the "
                                          "TLS handshake") from None
                self._incoming.write(data)
        self._send_pending()

    def _send_pending(self):
        with self._send_lock:
            with self._tls_lock:
                data = self._outgoing.read()
            if data:
                self.sock.sendall(data)

    def sendall(self, data):
        with self._send_lock:
            with self._tls_lock:
                self._tls.write(data)
                records = self._outgoing.read()
            self.sock.sendall(records)

    def recv(self, size):
        while True:
            with self._tls_lock:
                try:
                    data = self._tls.read(size)
                except ssl.SSLWantReadError:
                    data = None
                except ssl.SSLZeroReturnError:
                    data = b""
                pending = self._outgoing.pending
            if pending:
                self._send_pending()
            if data is not None:
                return data
            raw = self.sock.recv(RECV_BYTES)
            with self._tls_lock:
                if raw:
                    self._incoming.write(raw)
                else:
                    self._incoming.write_eof()

    def getpeercert(self):
        return self._tls.getpeercert()

    def settimeout(self, timeout):
        self.sock.settimeout(timeout)

    def shutdown(self, how):
        self.sock.shutdown(how)

    def close(self):
        self.sock.close()


def peer_contexts(cert_file, key_file, ca_file):
    """Return (server, client) contexts of the Raft peer port: mutual TLS, only ``ca_file``.

    Both sides present the member's certificate (it needs serverAuth and
    clientAuth) and refuse a peer whose certificate ``ca_file`` did not sign, or
    none, during the handshake: before a byte of Raft is read. The dialing side
    also checks that the certificate names the address it dialed.
    """
    if not (cert_file and key_file and ca_file):
        raise ValueError("the peer port needs a member certificate, its key and the "
                         "store CA (--peer-cert-file, --peer-key-file, "
                         "--peer-trusted-ca-file)")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for context in (server, client):
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert_file, key_file)
        context.load_verify_locations(cafile=ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return server, client
