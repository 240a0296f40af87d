"""Load a kubeconfig into a ``ClientConfig``: where the API server is and how to prove who we are.

The fields are kubectl's: a context names a cluster (``server``,
``certificate-authority`` or ``-data``, ``insecure-skip-tls-verify``) and a user
(``client-certificate``/``client-key`` or their ``-data``, ``token`` or
``tokenFile``). Relative paths are relative to the kubeconfig's own directory, as
kubectl reads them. ``ssl`` loads a CA from memory but a certificate chain only
from files, so ``-data`` certificates and keys are written to a private temporary
directory (0700, files 0600) that is removed when the process exits.

This package uses the standard library only: a kubeconfig in JSON (which is YAML)
always loads; one in YAML's block style needs PyYAML, found at run time (every
Steersman install has it; `steer up` writes its components' kubeconfigs as JSON).
"""

import atexit
import base64
import binascii
import importlib
import json
import os
import shutil
import ssl
import tempfile
from dataclasses import dataclass


class KubeconfigError(ValueError):
    """The kubeconfig is missing, unreadable, or lacks what a client needs."""


@dataclass(frozen=True)
class ClientConfig:
    """What a client needs to reach one API server: URL, trust, and credentials."""

    server: str
    ca_file: str = None
    ca_data: str = None             # PEM text, as certificate-authority-data decodes
    cert_file: str = None
    key_file: str = None
    token: str = None
    insecure_skip_tls_verify: bool = False
    namespace: str = None

    def ssl_context(self):
        """An SSLContext trusting the configured CA and presenting the client certificate.

        None for a plain http:// server. Without a configured CA the system's trust
        store is used, as kubectl does.
        """
        if not self.server.startswith("https://"):
            return None
        return client_ssl_context(self.ca_file, self.cert_file, self.key_file,
                                  ca_data=self.ca_data,
                                  insecure=self.insecure_skip_tls_verify)


def client_ssl_context(ca_file=None, cert_file=None, key_file=None, ca_data=None,
                       insecure=False):
    """Build a TLS client context: verify the server against the CA, present our certificate."""
    if insecure:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=ca_file, cadata=ca_data)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context


def load(path, context=None):
    """Read the kubeconfig at ``path``; return the ``ClientConfig`` of its current (or named) context."""
    try:
        with open(path) as handle:
            document = parse(handle.read(), path)
    except OSError as exc:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise KubeconfigError(f"kubeconfig {path} holds no Config")
    return from_dict(document, os.path.dirname(os.path.abspath(path)), context, source=path)


def parse(text, source="kubeconfig"):
    """Decode a kubeconfig's text: JSON, else YAML (with PyYAML, when it is installed)."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        raise KubeconfigError(f"{source} is not JSON, and PyYAML (to read YAML) "
                              "is not installed") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"{source} is not YAML: {exc}") from exc


def from_dict(document, base_dir, context=None, source="kubeconfig"):
    """Build a ``ClientConfig`` from a parsed kubeconfig; paths are relative to ``base_dir``."""
    name = context or document.get("current-context")
    if not name:
        raise KubeconfigError(f"{source}: no current-context and none named")
    ctx = _named(document.get("contexts"), name, "context")
    if ctx is None:
        raise KubeconfigError(f"{source}: context {name!r} does not exist")
    cluster = _named(document.get("clusters"), ctx.get("cluster"), "cluster") or {}
    user = _named(document.get("users"), ctx.get("user"), "user") or {}
    server = str(cluster.get("server") or "").rstrip("/")
    if not server:
        raise KubeconfigError(f"{source}: context {name!r} has no cluster server")

    def path_of(field):
        value = cluster.get(field) if field == "certificate-authority" else user.get(field)
        return os.path.normpath(os.path.join(base_dir, os.path.expanduser(value))) if value else None

    ca_data = cluster.get("certificate-authority-data")
    cert_file, key_file = path_of("client-certificate"), path_of("client-key")
    if user.get("client-certificate-data"):
        cert_file = _private_file("client.crt", _decode(user["client-certificate-data"], source))
    if user.get("client-key-data"):
        key_file = _private_file("client.key", _decode(user["client-key-data"], source))
    if bool(cert_file) != bool(key_file):
        raise KubeconfigError(f"{source}: user {ctx.get('user')!r} has a client certificate "
                              "without its key, or a key without its certificate")
    token = user.get("token") or None
    if not token and user.get("tokenFile"):
        token_path = os.path.join(base_dir, os.path.expanduser(user["tokenFile"]))
        try:
            with open(token_path) as handle:
                token = handle.read().strip() or None
        except OSError as exc:
            raise KubeconfigError(f"{source}: cannot read tokenFile: {exc}") from exc
    return ClientConfig(
        server=server,
        ca_file=None if ca_data else path_of("certificate-authority"),
        ca_data=_decode(ca_data, source).decode("ascii") if ca_data else None,
        cert_file=cert_file, key_file=key_file, token=token,
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify")),
        namespace=ctx.get("namespace") or None)


def _named(entries, name, field):
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry.get(field) or {}
    return None


def _decode(value, source):
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise KubeconfigError(f"{source}: a -data field is not base64: {exc}") from exc


_private_dir = None


def _private_file(name, data):
    """Write ``data`` to a new 0600 file in this process's private directory; return its path."""
    global _private_dir
    if _private_dir is None:
        _private_dir = tempfile.mkdtemp(prefix="steer-kubeconfig-")     # mode 0700
        atexit.register(shutil.rmtree, _private_dir, True)
    fd, path = tempfile.mkstemp(prefix="", suffix="-" + name, dir=_private_dir)   # mode 0600
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path
