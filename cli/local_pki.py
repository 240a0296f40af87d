"""Every credential of a local cluster: the cluster CA, certificates, and one kubeconfig each.

`steer up` calls ``LocalCredentials(home).ensure(...)`` before it starts anything
(and again before a restart): the CA in ``$STEER_HOME/pki`` is made once and then
reused; a certificate is (re-)issued only when it is missing or near its expiry
(``pki.needs_rotation``). The identities are Kubernetes' (kubeadm's):

    apiserver                  serving: 127.0.0.1, localhost, the bind address and the
                               in-cluster names (IN_CLUSTER_NAMES, the `kubernetes`
                               ClusterIP, the advertise address); re-issued when one lacks
    apiserver-kubelet-client   CN=kube-apiserver-kubelet-client O=system:masters
    admin                      CN=admin O=system:masters
    scheduler                  CN=system:kube-scheduler
    controller-manager         CN=system:kube-controller-manager
    proxy                      CN=system:kube-proxy
    scheduler-serving          the scheduler's --secure-port: CN=kube-scheduler, SANs
                               127.0.0.1, localhost, kube-scheduler.kube-system.svc
    controller-manager-serving the same for the controller manager (kube-controller-manager)
    nodes/<node>               CN=system:node:<node> O=system:nodes (the agent's client)
    nodes/<node>-serving       CN=system:node:<node>, SANs <node> and the node IP

and the ServiceAccount token key pair ``sa.key`` (0600) / ``sa.pub``, EC P-256, made
once per cluster and kept (tokens it signed stay valid across `steer up`s): the API
server signs with the first and verifies with the second.

Each component gets ``kubeconfigs/<name>.kubeconfig`` (JSON, 0600) naming its files
(an agent ``kubeconfigs/agent-<node>.kubeconfig``),
so no key or token is ever on a command line. The admin's kubeconfig embeds the
CA, certificate and key (``-data``), as kubeadm's admin.conf does, so it can be
copied anywhere. The store has its own CA (cli/local_store.py).
"""

import base64
import ipaddress
import json
import os
import ssl

import yaml

from cli import pki

#: Client identities of the control plane: name -> (common name, groups).
CLIENTS = {
    "admin": ("admin", ("system:masters",)),
    "scheduler": ("system:kube-scheduler", ()),
    "controller-manager": ("system:kube-controller-manager", ()),
    "proxy": ("system:kube-proxy", ()),
    "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", ("system:masters",)),
}
#: The names pods reach the API server by (the `kubernetes` Service's, as kubeadm's SANs).
IN_CLUSTER_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                    "kubernetes.default.svc.cluster.local")
#: Serving certificates of the components' secure ports (/metrics): name -> common name.
#: Prometheus dials them through doors, so it checks the name <cn>.kube-system.svc.
SECURE_PORTS = {"scheduler": "kube-scheduler", "controller-manager": "kube-controller-manager"}
#: The clients that talk to the API server with a kubeconfig of their own.
KUBECONFIG_CLIENTS = ("scheduler", "controller-manager", "proxy")


class LocalCredentials:
    """The files under ``<home>/pki``; ``ensure`` makes whatever is missing or expiring."""

    def __init__(self, home, now=None, lifetime=None):
        self.dir = os.path.join(os.path.abspath(home), "pki")
        # Seconds a new leaf certificate lives (None: pki.LEAF_DAYS); `steer up
        # --cert-lifetime 60s` makes them short to see them renewed while running.
        self.lifetime = lifetime
        self.nodes_dir = os.path.join(self.dir, "nodes")
        self.kubeconfigs_dir = os.path.join(self.dir, "kubeconfigs")
        self.now = now          # a fixed "now" for tests; None: the clock
        self.issued = []        # names (re-)issued by the last ensure(), for the user

    @property
    def ca_file(self):
        return os.path.join(self.dir, pki.CA_CERT)

    def cert(self, name):
        """(certificate, key) paths of a credential: "apiserver", "admin", "nodes/node-1", ..."""
        base = os.path.join(self.dir, name)
        return base + ".crt", base + ".key"

    def kubeconfig(self, name):
        return os.path.join(self.kubeconfigs_dir, f"{name}.kubeconfig")

    @property
    def service_account_key(self):
        """The private key ServiceAccount tokens are signed with (0600)."""
        return os.path.join(self.dir, "sa.key")

    @property
    def service_account_public_key(self):
        """Its public half, which verifies them."""
        return os.path.join(self.dir, "sa.pub")

    # -- issuing ------------------------------------------------------------------------
    def ensure(self, server_url, nodes=(), bind_host="127.0.0.1", extra_hosts=()):
        """Make the CA and every certificate and component kubeconfig; return self.

        ``nodes`` is [(node name, node IP)]: each gets a client and a serving certificate.
        ``extra_hosts`` (names, addresses) go into the API server's certificate too.
        """
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        os.chmod(self.dir, 0o700)
        ca = pki.CertificateAuthority.load_or_create(self.dir, now=self.now)
        self.issued = []
        pki.ensure_key_pair(self.service_account_key, self.service_account_public_key)
        hosts = {"127.0.0.1", "localhost", bind_host, *extra_hosts}
        if _lacks_hosts(self.cert("apiserver")[0], hosts):
            _remove(self.cert("apiserver")[0])
        self._issue(ca, "apiserver", "kube-apiserver", server=True,
                    dns_names=sorted(h for h in hosts if not _is_ip(h)),
                    ip_addresses=sorted(h for h in hosts if _is_ip(h)))
        for name, (common_name, groups) in CLIENTS.items():
            self._issue(ca, name, common_name, groups, client=True)
        for name, common_name in SECURE_PORTS.items():
            self._issue(ca, f"{name}-serving", common_name, server=True,
                        dns_names=["localhost", f"{common_name}.kube-system.svc"],
                        ip_addresses=["127.0.0.1"])
        for node, ip in nodes:
            self._issue(ca, f"nodes/{node}", f"system:node:{node}", ("system:nodes",),
                        client=True)
            self._issue(ca, f"nodes/{node}-serving", f"system:node:{node}", server=True,
                        dns_names=[node], ip_addresses=[ip])
        for name in KUBECONFIG_CLIENTS:
            self._write_kubeconfig(name, server_url, *self.cert(name))
        for node, _ in nodes:
            self._write_kubeconfig(f"agent-{node}", server_url, *self.cert(f"nodes/{node}"))
        return self

    def agent_kubeconfig(self, node):
        return self.kubeconfig(f"agent-{node}")

    def _issue(self, ca, name, common_name, organizations=(), **kwargs):
        cert_path, _ = self.cert(name)
        if not pki.needs_rotation(cert_path, now=self.now):
            return
        days = pki.LEAF_DAYS if not self.lifetime else self.lifetime / 86400
        ca.issue(os.path.dirname(cert_path), os.path.basename(name), common_name,
                 organizations, now=self.now, days=days, **kwargs)
        self.issued.append(name)

    def _write_kubeconfig(self, name, server_url, cert_file, key_file):
        document = kubeconfig_document(server_url, name, {"certificate-authority": self.ca_file},
                                       {"client-certificate": cert_file, "client-key": key_file})
        pki.write_private(self.kubeconfig(name), json.dumps(document, indent=2) + "\n")

    # -- the admin ----------------------------------------------------------------------
    def write_admin_kubeconfig(self, path, server_url):
        """Write the admin's kubeconfig (0600) with the CA, certificate and key embedded."""
        cert_file, key_file = self.cert("admin")
        document = kubeconfig_document(
            server_url, "steersman", {"certificate-authority-data": _b64(self.ca_file)},
            {"client-certificate-data": _b64(cert_file), "client-key-data": _b64(key_file)},
            namespace="default")
        pki.write_private(path, yaml.safe_dump(document, sort_keys=False))

    def admin_context(self):
        """A client SSLContext: trust the cluster CA, present the admin's certificate."""
        context = ssl.create_default_context(cafile=self.ca_file)
        context.load_cert_chain(*self.cert("admin"))
        return context


def kubeconfig_document(server_url, user, cluster_fields, user_fields, namespace=None):
    """A one-context kubeconfig: cluster "steersman", user ``user``."""
    context = {"cluster": "steersman", "user": user,
               **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "steersman",
                          "cluster": {"server": server_url, **cluster_fields}}],
            "users": [{"name": user, "user": user_fields}],
            "contexts": [{"name": "steersman", "context": context}],
            "current-context": "steersman"}


def _b64(path):
    with open(path, "rb") as handle:
        return base64.b64encode(handle.read()).decode("ascii")


def _lacks_hosts(cert_path, hosts):
    """True if the certificate at ``cert_path`` exists and misses one of ``hosts`` in its SANs."""
    from cryptography import x509
    try:
        with open(cert_path, "rb") as handle:
            cert = x509.load_pem_x509_certificate(handle.read())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    have = set(sans.get_values_for_type(x509.DNSName)) | {
        str(a) for a in sans.get_values_for_type(x509.IPAddress)}
    return not set(hosts) <= have


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _is_ip(host):
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
