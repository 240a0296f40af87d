"""Wire the agent's certificate managers (agent/certrotation.py) from its flags.

The client manager renews the certificate of --kubeconfig and loads each new one
into the REST client's SSLContext (new connections present it). The serving
manager renews the agent port's certificate and loads it into the port's
SSLContext (new handshakes present it). A pair renewed earlier and kept in
--cert-dir is newer than the files the flags name, so it is loaded first.
"""

import datetime
import logging

from agent import certrotation
from control.client import kubeconfig as kubeconfigs
from control.objects import certificates, x509certs

log = logging.getLogger(__name__)


def _valid_now(pem):
    """Whether ``pem`` holds a certificate valid now (an old renewal may have expired)."""
    try:
        not_before, not_after = x509certs.lifetime_of(pem)
    except ValueError:
        return False
    return not_before <= datetime.datetime.now(datetime.timezone.utc) < not_after


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except (OSError, TypeError):
        return None


def _client_manager(args, rest):
    if not args.rotate_certificates or rest.ssl_context is None or not args.kubeconfig:
        return None
    try:
        config = kubeconfigs.load(args.kubeconfig)
    except kubeconfigs.KubeconfigError:
        return None
    if not config.cert_file:
        return None         # a token: nothing to renew
    store = certrotation.PemStore(args.cert_dir, certrotation.CLIENT_PREFIX)
    context = rest.ssl_context
    if store.load() is not None and _valid_now(store.load()):
        context.load_cert_chain(store.current_path)
    name = args.node_name
    return certrotation.CertificateManager(
        rest, store, certificates.KUBELET_CLIENT, certrotation.CLIENT_USAGES,
        subject=lambda: (f"system:node:{name}", (certrotation.NODES_GROUP,), (), ()),
        on_rotate=lambda path: _use_client_certificate(rest, path),
        initial_pem=_read(config.cert_file))


def _use_client_certificate(rest, path):
    """Present the renewed certificate: load it, and reconnect every thread with it."""
    rest.ssl_context.load_cert_chain(path)
    rest.certificates_changed()


def _serving_manager(args, rest, ssl_context, node_ip):
    if ssl_context is None or not args.rotate_server_certificates:
        return None
    store = certrotation.PemStore(args.cert_dir, certrotation.SERVING_PREFIX)
    if store.load() is not None and (_valid_now(store.load()) or not args.tls_cert_file):
        ssl_context.load_cert_chain(store.current_path)
    name = args.node_name
    return certrotation.CertificateManager(
        rest, store, certificates.KUBELET_SERVING, certrotation.SERVING_USAGES,
        subject=lambda: (f"system:node:{name}", (certrotation.NODES_GROUP,), [name], [node_ip]),
        on_rotate=ssl_context.load_cert_chain, initial_pem=_read(args.tls_cert_file))


def managers(args, rest, ssl_context, node_ip):
    """Return (client manager or None, serving manager or None) for the agent's flags."""
    return _client_manager(args, rest), _serving_manager(args, rest, ssl_context, node_ip)


def first_serving_certificate(manager, stop):
    """Request the first serving certificate (the Node is registered); False if stopped."""
    delay = certrotation.RETRY_FIRST
    while not stop.is_set():
        try:
            manager.rotate(stop)
            return True
        except (certrotation.CertificateRequestError, OSError, ValueError) as exc:
            log.warning("event=serving_certificate_pending retry_in=%gs error=%s", delay, exc)
        except Exception as exc:        # noqa: BLE001 - an API error: retried the same way
            log.warning("event=serving_certificate_pending retry_in=%gs error=%s", delay, exc)
        stop.wait(delay)
        delay = min(delay * 2, certrotation.RETRY_MAX)
    return False
