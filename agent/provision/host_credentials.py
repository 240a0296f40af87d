"""The credentials each host of a bare-metal cluster needs: names, CAs, subjects, SANs.

plan.py places them (files under /etc/steersman/pki); `steer cluster create`
(cli/baremetal/credentials.py) and the Ansible lookup issue them from this list, so
the two agree on every name. Pure: no files, no clock.
"""

import dataclasses
import ipaddress


@dataclasses.dataclass(frozen=True)
class Credential:
    """One credential a host needs; ``kind`` says who makes it, for `steer` and Ansible.

    kind "cert": a certificate + key ``<name>.crt``/``<name>.key`` issued by ``ca``
    ("cluster" or "store") for ``common_name``/``organizations`` with ``dns_names``
    and ``ip_addresses``, usage "server", "client" or "server+client"; "ca": the CA certificate
    ``<name>.crt``; "secret": random bytes (>= 32) in ``<name>``; "sa": the
    ServiceAccount key pair sa.key/sa.pub; "encryption": an EncryptionConfiguration;
    "ca-key": the CA's private key ``<name>.key`` (the controller manager's csrsigning
    signs the nodes' CSRs with it, as kubeadm's control-plane nodes hold ca.key);
    "bootstrap-token": a bootstrap token ``<id>.<secret>`` in ``<name>`` that `steer
    node join` made for this host (its agent asks for its own certificates with it).
    """

    name: str
    kind: str
    ca: str = "cluster"
    common_name: str = ""
    organizations: tuple = ()
    dns_names: tuple = ()
    ip_addresses: tuple = ()
    usage: str = ""

    @property
    def files(self):
        """The file names (under /etc/steersman/pki) this credential arrives as."""
        if self.kind == "cert":
            return (f"{self.name}.crt", f"{self.name}.key")
        if self.kind == "ca":
            return (f"{self.name}.crt",)
        if self.kind == "ca-key":
            return (f"{self.name}.key",)
        if self.kind == "sa":
            return ("sa.key", "sa.pub")
        return (self.name,)


def credentials_needed(spec, host):
    """The credentials ``plan_host(spec, host, ...)`` places on ``host``, in order."""
    needed = []
    if spec.is_control(host) or spec.is_worker(host):
        needed.append(Credential("ca", "ca"))
    if spec.is_control(host):
        sans = {"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                host.name, host.address, "127.0.0.1", _first_service_ip(spec),
                *spec.extra_sans}
        needed += [
            Credential("store-ca", "ca", ca="store"),
            # Serves the client port and both ends of the peer port (mutual TLS).
            Credential("store-server", "cert", "store", host.name,
                       dns_names=("localhost", host.name),
                       ip_addresses=tuple(sorted({host.address, "127.0.0.1"})),
                       usage="server+client"),
            Credential("apiserver", "cert", "cluster", "kube-apiserver",
                       dns_names=tuple(sorted(s for s in sans if not _is_ip(s))),
                       ip_addresses=tuple(sorted(s for s in sans if _is_ip(s))),
                       usage="server"),
            Credential("apiserver-etcd-client", "cert", "store", "kube-apiserver-etcd-client",
                       usage="client"),
            Credential("apiserver-kubelet-client", "cert", "cluster",
                       "kube-apiserver-kubelet-client", ("system:masters",), usage="client"),
            Credential("sa", "sa"),
            Credential("encryption-config.yaml", "encryption"),
            Credential("scheduler", "cert", "cluster", "system:kube-scheduler", usage="client"),
            Credential("controller-manager", "cert", "cluster",
                       "system:kube-controller-manager", usage="client"),
            # Their --secure-port (/metrics, /healthz) on the host's address.
            _serving("scheduler-serving", "kube-scheduler", host),
            _serving("controller-manager-serving", "kube-controller-manager", host),
            Credential("ca", "ca-key"),
        ]
    if spec.is_worker(host) and joins_by_token(host):
        # The node's own certificates come later, by CSR (agent/bootstrap.py).
        needed += [
            Credential("bootstrap-token", "bootstrap-token"),
            Credential("proxy", "cert", "cluster", "system:kube-proxy", usage="client"),
        ]
    elif spec.is_worker(host):
        node = f"system:node:{host.name}"
        needed += [
            Credential("node", "cert", "cluster", node, ("system:nodes",), usage="client"),
            Credential("node-serving", "cert", "cluster", node, dns_names=(host.name,),
                       ip_addresses=(host.address,), usage="server"),
            Credential("proxy", "cert", "cluster", "system:kube-proxy", usage="client"),
        ]
    return needed


def _serving(name, common_name, host):
    """A cluster-CA serving certificate for a control-plane component's secure port on ``host``."""
    return Credential(name, "cert", "cluster", common_name,
                      dns_names=tuple(sorted({"localhost", host.name,
                                              f"{common_name}.kube-system.svc"})),
                      ip_addresses=tuple(sorted({host.address, "127.0.0.1"})), usage="server")


def joins_by_token(host):
    """Whether ``host`` joins with a bootstrap token instead of admin-issued node certificates."""
    return bool(getattr(host, "bootstrap", False))


def _first_service_ip(spec):
    """The Service range's first address (the `kubernetes` Service's ClusterIP)."""
    return str(next(ipaddress.ip_network(spec.service_cidr).hosts()))


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
