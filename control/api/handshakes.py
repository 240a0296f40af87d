"""Log a client that fails or abandons its TLS handshake as one line, not a traceback.

Under the gevent worker every connection is a greenlet; when a client hangs up in
the middle of the handshake (a port scanner, a client that gave up, a probe that
only checks the port) the exception escapes that greenlet and gevent's hub prints
a full traceback to the error log, as if the server had failed. kube-apiserver
logs such a client as one line ("TLS handshake error from ..."): so do we. Every
other error still reaches gevent's own handler.
"""

import logging
import ssl

log = logging.getLogger("steer.apiserver")

#: Errors a client causes in the handshake; anything else is the server's and is printed.
CLIENT_HANDSHAKE_ERRORS = (ssl.SSLError, ConnectionResetError, BrokenPipeError, TimeoutError)
_HANDSHAKE_FRAMES = ("do_handshake", "wrap_socket")


def is_client_handshake_error(error_type, traceback):
    """Whether the error is a client's failure inside the server's TLS handshake."""
    if error_type is None or not issubclass(error_type, CLIENT_HANDSHAKE_ERRORS):
        return False
    while traceback is not None:
        if traceback.tb_frame.f_code.co_name in _HANDSHAKE_FRAMES:
            return True
        traceback = traceback.tb_next
    return False


def quiet_handshake_errors(hub):
    """Make ``hub`` (gevent's) log client handshake failures as one line each."""
    original = hub.handle_error

    def handle_error(context, error_type, value, traceback):
        if is_client_handshake_error(error_type, traceback):
            log.info("event=tls_handshake_failed error=%r", str(value)[:200])
            return None
        return original(context, error_type, value, traceback)

    hub.handle_error = handle_error


def install_for_gevent_worker():
    """In a gevent worker, quiet its hub; elsewhere (gthread) do nothing."""
    try:
        import gevent
    except ImportError:          # the gthread worker runs without gevent
        return
    quiet_handshake_errors(gevent.get_hub())
