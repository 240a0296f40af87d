"""Reach the API server from inside a pod, as client-go's InClusterConfig does.

The agent gives every container KUBERNETES_SERVICE_HOST and _PORT (the
``default/kubernetes`` Service) and projects the pod's ServiceAccount token, the
cluster CA and the namespace into /var/run/secrets/kubernetes.io/serviceaccount/.
A projected token expires (an hour) and the agent rewrites the file before it
does, so the token is re-read from the file, at most once a minute, as client-go
does: ``FileToken`` stands where a token string goes.
"""

import os
import threading
import time

from control.client.kubeconfig import ClientConfig

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
#: Seconds a token read from the file is used before the file is read again.
TOKEN_REFRESH = 60.0


class InClusterError(Exception):
    """Not inside a pod (no service variables or no mounted token); says what is missing."""


class FileToken:
    """A bearer token kept in a file that is rewritten: reads it again every ``refresh`` s.

    Used as a string (``f"Bearer {token}"``, ``bool(token)``), so a RestClient takes
    it where it takes a token.
    """

    def __init__(self, path, refresh=TOKEN_REFRESH, clock=time.monotonic):
        self.path, self.refresh, self.clock = path, refresh, clock
        self._value, self._read_at = "", None
        self._lock = threading.Lock()

    def value(self):
        with self._lock:
            now = self.clock()
            if self._read_at is None or now - self._read_at >= self.refresh:
                try:
                    with open(self.path) as f:
                        self._value = f.read().strip()
                    self._read_at = now
                except OSError:
                    if self._read_at is None:
                        raise
                    # Rewritten under us (rename): keep the last token a little longer.
            return self._value

    def __str__(self):
        return self.value()

    def __format__(self, spec):
        return format(self.value(), spec)

    def __bool__(self):
        return bool(self.value())


def available(env=None, directory=SERVICE_ACCOUNT_DIR):
    """True when this process runs in a pod with API credentials."""
    env = os.environ if env is None else env
    return bool(env.get("KUBERNETES_SERVICE_HOST")) and os.path.exists(
        os.path.join(directory, "token"))


def load(env=None, directory=SERVICE_ACCOUNT_DIR, clock=time.monotonic):
    """Return the ClientConfig of the pod's own API access, or InClusterError."""
    env = os.environ if env is None else env
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise InClusterError("not in a pod: KUBERNETES_SERVICE_HOST and "
                             "KUBERNETES_SERVICE_PORT are not set (pass --kubeconfig)")
    token_path, ca_path = os.path.join(directory, "token"), os.path.join(directory, "ca.crt")
    for path, what in ((token_path, "ServiceAccount token"), (ca_path, "cluster CA")):
        if not os.path.isfile(path):
            raise InClusterError(f"no {what} at {path}: is automountServiceAccountToken "
                                 "off for this pod?")
    namespace = None
    try:
        with open(os.path.join(directory, "namespace")) as f:
            namespace = f.read().strip() or None
    except OSError:
        pass
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return ClientConfig(server=f"https://{host}:{port}", ca_file=ca_path,
                        token=FileToken(token_path, clock=clock), namespace=namespace)
