"""Pick up renewed certificates in a running API server, without a restart.

Gunicorn's own answer to new certificate files is a HUP, which replaces every
worker: each open watch and exec stream would end. Instead the ``ssl_context``
server hook (gunicorn >= 21) gives each worker one serving context, and its SNI
callback, which OpenSSL calls in every handshake (a client that sends no server
name included), re-reads the certificate files of every registered context when
they changed, at most once a ``interval``: the serving certificate and the
client certificates the server presents to agents. New handshakes then use the
new pair; open connections keep theirs. A pair caught half-written (certificate
and key not matching) is skipped and read again on a later handshake.
"""

import logging
import os
import ssl
import threading
import time

log = logging.getLogger(__name__)

CHECK_INTERVAL = 1.0


def _stamp(paths):
    return tuple((s.st_mtime_ns, s.st_size, s.st_ino) for s in map(os.stat, paths))


class CertificateFiles:
    """SSLContexts and the certificate files each was loaded from; reloaded on change."""

    def __init__(self, clock=time.monotonic, interval=CHECK_INTERVAL):
        self.clock, self.interval = clock, interval
        self._entries = []          # [context, cert_file, key_file, stamp]
        self._lock = threading.Lock()
        self._checked = None

    def add(self, context, cert_file, key_file):
        """Watch ``cert_file``/``key_file`` for ``context``; return the context."""
        try:
            stamp = _stamp((cert_file, key_file))
        except OSError:
            stamp = None
        with self._lock:
            self._entries.append([context, cert_file, key_file, stamp])
        return context

    def refresh(self, force=False):
        """Reload every pair whose files changed; return how many were reloaded."""
        now = self.clock()
        with self._lock:
            if not force and self._checked is not None and now - self._checked < self.interval:
                return 0
            self._checked = now
            reloaded = 0
            for entry in self._entries:
                context, cert_file, key_file, stamp = entry
                try:
                    current = _stamp((cert_file, key_file))
                    if current == stamp:
                        continue
                    context.load_cert_chain(cert_file, key_file)
                except (OSError, ssl.SSLError) as exc:
                    log.warning("event=certificate_reload_failed cert=%s error=%s",
                                cert_file, exc)
                    continue
                entry[3] = current
                reloaded += 1
                log.info("event=certificate_reloaded cert=%s", cert_file)
            return reloaded

    def on_handshake(self, ssl_socket, server_name, context):
        """An SNI callback: refresh (throttled) before the handshake goes on."""
        self.refresh()
        return None


#: The worker process's watched certificates (one gunicorn worker per process).
FILES = CertificateFiles()
_server = {"pid": None, "context": None}


def gunicorn_ssl_context(config, default_ssl_context_factory):
    """Gunicorn's ``ssl_context`` hook: one reloading serving context per worker process."""
    if _server["pid"] != os.getpid():
        context = default_ssl_context_factory()
        FILES.add(context, config.certfile, config.keyfile)
        context.sni_callback = FILES.on_handshake
        _server.update(pid=os.getpid(), context=context)
    return _server["context"]
