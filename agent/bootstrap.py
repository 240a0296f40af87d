"""Join a cluster with a bootstrap token: get the node's client certificate by a CSR (kubelet's TLS bootstrap).

    steer-agent --bootstrap-kubeconfig /etc/steersman/bootstrap.kubeconfig \\
                --kubeconfig /var/lib/steersman/agent.kubeconfig --node-name n3 ...

When --kubeconfig is missing, or names a client certificate that is gone or
expired, the agent reaches the API server with the bootstrap kubeconfig (a token
``<id>.<secret>`` of a kube-system Secret of type bootstrap.kubernetes.io/token:
the user system:bootstrap:<id> in group system:bootstrappers), sends a CSR for
``CN=system:node:<name>, O=system:nodes`` to the signer
kubernetes.io/kube-apiserver-client-kubelet, waits until the csrapproving
controller (or an admin) approves it and csrsigning signs it, keeps the pair in
``<cert dir>/kubelet-client-current.pem`` (0600) and writes --kubeconfig (0600)
with the bootstrap kubeconfig's server and CA and that file as its credentials.
From then on the agent is system:node:<name> and renews its certificate itself
(agent/certrotation.py). The token is read from the bootstrap kubeconfig, never
from the command line.
"""

import base64
import datetime
import json
import logging
import os

from agent import certrotation
from control.client import RestClient
from control.client import kubeconfig as kubeconfigs
from control.objects import certificates, x509certs

log = logging.getLogger(__name__)


def usable_client_certificate(kubeconfig_path, cert_dir, now):
    """Return whether the agent already holds a client certificate valid at ``now``."""
    pem = certrotation.PemStore(cert_dir, certrotation.CLIENT_PREFIX).load()
    if pem is None:
        try:
            config = kubeconfigs.load(kubeconfig_path)
        except kubeconfigs.KubeconfigError:
            return False
        if config.token:
            return True
        try:
            with open(config.cert_file or "", "rb") as handle:
                pem = handle.read()
        except OSError:
            return False
    try:
        not_before, not_after = x509certs.lifetime_of(pem)
    except ValueError:
        return False
    return not_before <= now < not_after


def write_kubeconfig(path, server, ca_file, ca_data, credentials_pem):
    """Write the node's kubeconfig (JSON, 0600): the cluster, and the current PEM for both halves."""
    cluster = {"server": server}
    if ca_data:
        cluster["certificate-authority-data"] = base64.b64encode(ca_data.encode()).decode()
    elif ca_file:
        cluster["certificate-authority"] = os.path.abspath(ca_file)
    user = {"client-certificate": credentials_pem, "client-key": credentials_pem}
    document = {"apiVersion": "v1", "kind": "Config", "current-context": "default",
                "clusters": [{"name": "default", "cluster": cluster}],
                "users": [{"name": "default", "user": user}],
                "contexts": [{"name": "default",
                              "context": {"cluster": "default", "user": "default"}}]}
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle, indent=2)
    os.replace(path + ".tmp", path)


def bootstrap(kubeconfig_path, bootstrap_kubeconfig_path, cert_dir, node_name, now=None,
              timeout=certrotation.WAIT_FOR_CERTIFICATE, stop=None, rest=None):
    """Make sure --kubeconfig holds a valid client certificate; return True if one was requested.

    ``rest`` replaces the client built from the bootstrap kubeconfig (tests).
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if usable_client_certificate(kubeconfig_path, cert_dir, now):
        return False
    try:
        config = kubeconfigs.load(bootstrap_kubeconfig_path)
    except kubeconfigs.KubeconfigError as exc:
        raise SystemExit(f"steer-agent: --bootstrap-kubeconfig: {exc}") from None
    rest = rest or RestClient.from_config(config, timeout=30)
    log.info("node=%s msg=requesting a client certificate with the bootstrap credentials",
             node_name)
    key = x509certs.new_key()
    try:
        cert = certrotation.request_certificate(
            rest, key, certificates.KUBELET_CLIENT, certrotation.CLIENT_USAGES,
            f"system:node:{node_name}", (certrotation.NODES_GROUP,), timeout=timeout,
            stop=stop)
    except certrotation.CertificateRequestError as exc:
        raise SystemExit(f"steer-agent: bootstrap: {exc}") from None
    path = certrotation.PemStore(cert_dir, certrotation.CLIENT_PREFIX).save(
        cert, x509certs.key_pem(key))
    write_kubeconfig(kubeconfig_path, config.server, config.ca_file, config.ca_data, path)
    log.info("node=%s kubeconfig=%s msg=client certificate issued; bootstrap done", node_name,
             kubeconfig_path)
    return True
