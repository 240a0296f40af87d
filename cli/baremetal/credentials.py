"""Make a bare-metal cluster's CAs and issue every host's certificates (kubeadm's certs phase).

Everything lives under ``~/.steer/clusters/<name>/pki`` (0700, keys 0600) on the
admin's machine; hosts get copies of only what they need. What a host needs is
decided by the plan (agent/provision/plan.py ``credentials_needed``: names, CAs,
subjects, SANs, usages), the same list the Ansible roles read, and this module makes
it: two CAs, as kubeadm keeps etcd's apart -- the cluster CA signs the API servers,
components, agents and the admin; the store CA signs store members and the store's
clients (the API servers and the admin), so no agent certificate can reach the store
-- plus the ServiceAccount key pair and the encryption configuration, each made
once per cluster. A store member's certificate serves its clients and both ends of
the peer port (mutual TLS between members, by the store CA).

A certificate is issued once and kept; it is issued again only when missing, near
its expiry (``pki.needs_rotation``) or when what it must say changed (a host's new
address, say) -- recorded beside it in ``<name>.params``. Hence a second `steer
cluster create` hands every host the same bytes and changes nothing.
"""

import json
import os
import secrets

from agent.provision import plan as planmod
from cli import encryption_config, pki


class ClusterCredentials:
    """The PKI of one bare-metal cluster, kept in ``directory``."""

    def __init__(self, directory, now=None, token=secrets.token_bytes):
        self.dir = os.path.abspath(directory)
        self.store_dir = os.path.join(self.dir, "store")
        self.hosts_dir = os.path.join(self.dir, "hosts")
        self.now = now
        self._token = token
        self.issued = []
        self._cas = {}

    # -- paths --------------------------------------------------------------------------
    @property
    def ca_file(self):
        return os.path.join(self.dir, pki.CA_CERT)

    @property
    def store_ca_file(self):
        return os.path.join(self.store_dir, pki.CA_CERT)

    def admin_cert(self):
        return os.path.join(self.dir, "admin.crt"), os.path.join(self.dir, "admin.key")

    def store_admin_tls(self):
        """StoreClient keywords for the admin (the store CA's client certificate)."""
        return {"ca_file": self.store_ca_file,
                "cert_file": os.path.join(self.store_dir, "admin.crt"),
                "key_file": os.path.join(self.store_dir, "admin.key")}

    def _host_dir(self, host):
        return os.path.join(self.hosts_dir, host)

    def bootstrap_token_path(self, host):
        """Where the bootstrap token `steer node join` made for ``host`` is kept (0600)."""
        return os.path.join(self._host_dir(host), "bootstrap-token")

    def save_bootstrap_token(self, host, token):
        """Keep ``token`` for ``host``: its plan places it (the same bytes on every re-run)."""
        os.makedirs(self._host_dir(host), mode=0o700, exist_ok=True)
        pki.write_private(self.bootstrap_token_path(host), token + "\n")

    # -- issuing ------------------------------------------------------------------------
    def ensure_cas(self):
        """Make the two CAs and the admin's two client certificates; return self."""
        for directory in (self.dir, self.hosts_dir):
            os.makedirs(directory, mode=0o700, exist_ok=True)
            os.chmod(directory, 0o700)
        self._cas = {
            "cluster": pki.CertificateAuthority.load_or_create(self.dir, now=self.now),
            "store": pki.CertificateAuthority.load_or_create(
                self.store_dir, common_name="steersman-store-ca", now=self.now)}
        self._issue(self._cas["cluster"], self.dir, "admin", "admin", ("system:masters",),
                    client=True)
        self._issue(self._cas["store"], self.store_dir, "admin", "admin", ("system:masters",),
                    client=True)
        return self

    def host_files(self, spec, host):
        """{file name: bytes} of every credential ``host`` needs, made if missing."""
        if not self._cas:
            self.ensure_cas()
        files = {}
        for needed in planmod.credentials_needed(spec, host):
            files.update(self._make(needed, host))
        return files

    def _make(self, needed, host):
        if needed.kind == "ca":
            return {needed.files[0]: _read(self._cas[needed.ca].cert_path)}
        if needed.kind == "ca-key":
            return {needed.files[0]: _read(self._cas[needed.ca].key_path)}
        if needed.kind == "bootstrap-token":
            path = self.bootstrap_token_path(host.name)
            if not os.path.exists(path):
                raise ValueError(f"host {host.name} joins with a bootstrap token but none was "
                                 f"made for it ({path} is missing): run `steer node join` again")
            return {needed.name: _read(path)}
        if needed.kind == "secret":
            path = os.path.join(self.dir, "secrets", needed.name)
            if not os.path.exists(path):
                pki.write_private(path, self._token(32).hex() + "\n")
            return {needed.name: _read(path)}
        if needed.kind == "sa":
            key, pub = os.path.join(self.dir, "sa.key"), os.path.join(self.dir, "sa.pub")
            pki.ensure_key_pair(key, pub)
            return {"sa.key": _read(key), "sa.pub": _read(pub)}
        if needed.kind == "encryption":
            return {needed.name: _read(encryption_config.ensure(self.dir))}
        if needed.kind != "cert":
            raise ValueError(f"the plan asks for a credential of unknown kind {needed.kind!r}")
        directory = self._host_dir(host.name)
        self._issue(self._cas[needed.ca], directory, needed.name, needed.common_name,
                    needed.organizations, dns_names=needed.dns_names,
                    ip_addresses=needed.ip_addresses,
                    server="server" in needed.usage.split("+"),
                    client="client" in needed.usage.split("+"))
        base = os.path.join(directory, needed.name)
        return {f"{needed.name}.crt": _read(base + ".crt"),
                f"{needed.name}.key": _read(base + ".key")}

    def _issue(self, ca, directory, file_name, common_name, groups=(), dns_names=(),
               ip_addresses=(), **usage):
        params = {"cn": common_name, "o": list(groups), "dns": sorted(dns_names),
                  "ip": sorted(ip_addresses), "ca": ca.cert_pem().decode(), **usage}
        cert_path = os.path.join(directory, f"{file_name}.crt")
        params_path = os.path.join(directory, f"{file_name}.params")
        if not pki.needs_rotation(cert_path, now=self.now) and _read_json(params_path) == params:
            return
        ca.issue(directory, file_name, common_name, groups, dns_names=sorted(dns_names),
                 ip_addresses=sorted(ip_addresses), now=self.now, **usage)
        pki.write_private(params_path, json.dumps(params, sort_keys=True))
        self.issued.append(os.path.relpath(cert_path, self.dir))


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def _read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None
