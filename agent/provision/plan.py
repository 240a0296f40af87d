"""Plan what one host of a bare-metal cluster runs: its files and its services (pure).

`steer cluster create` (cli/baremetal) and the Ansible collection (ansible/, through
its ``steersman.cluster.host_plan`` lookup) both call ``plan_host``, so the two paths
write the same files and start the same command lines. Nothing here touches a host,
a clock or a random source: the certificates, keys and secrets come in as bytes
(``credentials``, named as ``credentials_needed`` lists them) and the plan only places
them, 0600 under /etc/steersman/pki. agent/provision/services.py applies a plan.

A control host runs steersman-store (a Raft member, peers = every control host),
steersman-apiserver, steersman-scheduler and steersman-controller-manager; a worker
runs containerd (the host's own /usr/bin/containerd), steersman-agent (CRI) and
steersman-proxy (nftables). A host may be both.
"""

import dataclasses
import ipaddress
import json
import re
import shlex

from agent.provision import toml_writer
from agent.provision.containerd_config import (
    CNI_CONF_NAME,
    ContainerdPaths,
    containerd_document,
    ipam_dir_of,
    node_cgroup_parent,
)
from agent.provision.host_credentials import Credential, credentials_needed, joins_by_token

ETC_DIR = "/etc/steersman"
PKI_DIR = f"{ETC_DIR}/pki"
KUBECONFIG_DIR = f"{ETC_DIR}/kubeconfigs"
DATA_DIR = "/var/lib/steersman"
LOG_DIR = "/var/log/steersman"
RUN_DIR = "/run/steersman"
OPT_DIR = "/opt/steersman"
SUPERVISOR_DIR = f"{ETC_DIR}/supervisor"
SYSTEMD_DIR = "/etc/systemd/system"
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
#: The API server's admission plugins on a host (kube-apiserver's usual set, in its order).
ADMISSION_PLUGINS = ("LimitRanger,ServiceAccount,PodSecurity,DefaultStorageClass,"
                     "StorageObjectInUseProtection,PersistentVolumeClaimResize,ResourceQuota")
CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
CNI_CONF_DIR = "/etc/cni/net.d"
CONTAINERD_BINARY = "/usr/bin/containerd"
#: Written by the agent itself after a bootstrap-token join (its CSR approved).
AGENT_KUBECONFIG = f"{DATA_DIR}/agent/kubeconfig"

__all__ = ["ClusterSpec", "Credential", "FileSpec", "HostPlan", "HostSpec", "PlanError", "Ports",
           "ServiceSpec", "credentials_needed", "host_containerd_paths", "plan_host"]

CONTROL_SERVICES = ("steersman-store", "steersman-apiserver", "steersman-scheduler",
                    "steersman-controller-manager")
WORKER_SERVICES = ("containerd", "steersman-agent", "steersman-proxy")
_HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")


class PlanError(ValueError):
    """The cluster description cannot be planned (what is wrong and what to change)."""


@dataclasses.dataclass(frozen=True)
class Ports:
    """The ports a cluster's components listen on (the same on every host)."""

    store_client: int = 2379
    store_peer: int = 2380
    apiserver: int = 6443
    agent: int = 10250
    containerd_stream: int = 10010
    # HTTPS /metrics (and /healthz): Kubernetes' secure ports and etcd's metrics port.
    scheduler: int = 10259
    controller_manager: int = 10257
    store_metrics: int = 2381


@dataclasses.dataclass(frozen=True)
class HostSpec:
    """One machine: its name (the Node's and the store member's), address, SSH target.

    ``bootstrap``: a worker that joins with a bootstrap token (`steer node join`): its
    agent gets its client and serving certificates by CSRs, none is issued for it.
    """

    name: str
    address: str
    target: str = ""
    bootstrap: bool = False


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
    """The cluster as the admin describes it; ``version`` selects /opt/steersman/<version>."""

    name: str
    version: str
    control: tuple = ()
    workers: tuple = ()
    pod_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/12"
    ports: Ports = Ports()
    sandbox_image: str = "registry.k8s.io/pause:3.9"
    registry_mirrors: tuple = ()        # ((registry host, URL), ...) for containerd
    apiserver_workers: int = 1
    extra_sans: tuple = ()              # more API server names or addresses
    store_token: str = ""               # the store's cluster id (default: the name)

    def __post_init__(self):
        for host in (*self.control, *self.workers):
            if not isinstance(host, HostSpec):
                raise PlanError(f"hosts must be HostSpec, got {host!r}")
            if not _HOST_NAME.match(host.name):
                raise PlanError(f"host name {host.name!r} must be lower-case letters, "
                                "digits, '-' and '.' (it names the Node and the store member)")
            try:
                ipaddress.ip_address(host.address)
            except ValueError:
                raise PlanError(f"host {host.name}: address {host.address!r} is not an IP "
                                "address (give the address the other hosts reach it at)") from None
        if len(self.control) not in (1, 3, 5):
            raise PlanError(f"{len(self.control)} control hosts: the store needs 1, 3 or 5 "
                            "members (3 or 5 keep quorum when one host fails)")
        for label, hosts in (("control", self.control), ("worker", self.workers)):
            names = [h.name for h in hosts]
            if len(set(names)) != len(names):
                raise PlanError(f"a {label} host name appears twice: {names}")
        by_name = {}
        for host in (*self.control, *self.workers):
            if by_name.setdefault(host.name, host.address) != host.address:
                raise PlanError(f"host {host.name} has two addresses")
        for cidr in (self.pod_cidr, self.service_cidr):
            ipaddress.ip_network(cidr, strict=True)

    @property
    def hosts(self):
        """Every host once, control hosts first."""
        seen = {}
        for host in (*self.control, *self.workers):
            seen.setdefault(host.name, host)
        return list(seen.values())

    def host(self, name):
        for host in self.hosts:
            if host.name == name:
                return host
        raise PlanError(f"no host named {name!r} in cluster {self.name}")

    def is_control(self, host):
        return any(h.name == host.name for h in self.control)

    def is_worker(self, host):
        return any(h.name == host.name for h in self.workers)

    def api_server_url(self, host):
        """The API server a host's components use: its own, else one spread by position."""
        if self.is_control(host):
            chosen = host
        else:
            index = [h.name for h in self.workers].index(host.name)
            chosen = self.control[index % len(self.control)]
        return f"https://{_url_host(chosen.address)}:{self.ports.apiserver}"

    @property
    def store_endpoints(self):
        return [f"{_url_host(h.address)}:{self.ports.store_client}" for h in self.control]


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """A file the host must hold: absolute path, exact bytes, mode; ``services`` read it."""

    path: str
    content: bytes
    mode: int = 0o600
    services: tuple = ()


@dataclasses.dataclass(frozen=True)
class ServiceSpec:
    """A long-running process: its name (unit/program), argv, environment, start order."""

    name: str
    argv: tuple
    env: tuple = ()             # ((KEY, VALUE), ...)
    after: tuple = ()           # services that must run first (same host)
    description: str = ""
    priority: int = 100         # supervisord start order (lower first)
    delegate: bool = False      # containerd: its shims outlive a restart

    @property
    def command_line(self):
        """argv as one line both systemd's ExecStart and supervisord's command= parse."""
        return shlex.join(self.argv)


@dataclasses.dataclass(frozen=True)
class HostPlan:
    """Everything one host runs: files (with their owners) and services in start order."""

    host: HostSpec
    version: str
    files: tuple = ()
    services: tuple = ()
    directories: tuple = ()     # ((path, mode), ...) made before any file is written

    def service(self, name):
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)


def plan_host(spec, host, credentials, render=None):
    """Return the HostPlan of ``host``: pki files from ``credentials``, configs, services.

    ``credentials`` maps each file name of ``credentials_needed(spec, host)`` to its
    bytes; a missing one is a PlanError naming it. ``render`` renders a template
    (default agent.provision.units.render); tests may pass their own.
    """
    if render is None:
        from agent.provision import units
        render = units.render
    if isinstance(host, str):
        host = spec.host(host)
    elif host.name not in {h.name for h in spec.hosts}:
        raise PlanError(f"host {host.name} is not in cluster {spec.name}")
    builder = _Builder(spec, host, render)
    builder.pki(credentials)
    if spec.is_control(host):
        builder.control()
    if spec.is_worker(host):
        builder.worker()
    builder.finish_pki()
    return HostPlan(host=host, version=spec.version, files=tuple(builder.files),
                    services=tuple(builder.services), directories=tuple(builder.directories))


def bin_path(version, program):
    """Where a release's entry point lives: the unit names the version, so an upgrade
    changes the unit and restarts exactly what runs it."""
    return f"{OPT_DIR}/{version}/venv/bin/{program}"


class _Builder:
    def __init__(self, spec, host, render):
        self.spec, self.host, self.render = spec, host, render
        self.files, self.services = [], []
        self.directories = [(ETC_DIR, 0o755), (PKI_DIR, 0o700), (KUBECONFIG_DIR, 0o700),
                            (DATA_DIR, 0o700), (LOG_DIR, 0o750), (RUN_DIR, 0o700)]
        self.owners = {}        # pki file name -> services that read it

    def pki_path(self, name):
        return f"{PKI_DIR}/{name}"

    def pki(self, credentials):
        missing = [f for c in credentials_needed(self.spec, self.host) for f in c.files
                   if f not in credentials]
        if missing:
            raise PlanError(f"host {self.host.name}: credentials missing: "
                            f"{', '.join(missing)} (issue them with the cluster CA first)")
        self._pki_names = [f for c in credentials_needed(self.spec, self.host)
                           for f in c.files]
        self._credentials = credentials

    def finish_pki(self):
        """Place every credential 0600 in pki/, owned by the services that read it."""
        pki_files = [FileSpec(self.pki_path(name), bytes(self._credentials[name]), 0o600,
                              tuple(sorted(self.owners.get(name, ()))))
                     for name in self._pki_names]
        self.files[:0] = pki_files

    def add(self, path, content, mode, *services):
        if isinstance(content, str):
            content = content.encode()
        self.files.append(FileSpec(path, content, mode, tuple(services)))

    def kubeconfig(self, user, cert, service):
        path = f"{KUBECONFIG_DIR}/{user}.kubeconfig"
        self.add(path, self.render("kubeconfig.yaml.j2", cluster_name=self.spec.name,
                                   server=self.spec.api_server_url(self.host),
                                   ca_file=self.pki_path("ca.crt"), user=user,
                                   cert_file=self.pki_path(f"{cert}.crt"),
                                   key_file=self.pki_path(f"{cert}.key")), 0o600, service)
        self.use_pki(service, "ca.crt", f"{cert}.crt", f"{cert}.key")
        return path

    def use_pki(self, service, *names):
        for name in names:
            self.owners.setdefault(name, set()).add(service)

    def service(self, name, program, *args, after=(), description="", priority=100):
        argv = (bin_path(self.spec.version, program), *args)
        self.services.append(ServiceSpec(name, argv, after=tuple(after),
                                         description=description, priority=priority))

    # -- control host ---------------------------------------------------------------
    def control(self):
        spec, host, ports = self.spec, self.host, self.spec.ports
        peers = ",".join(f"{h.name}={_url_host(h.address)}:{ports.store_peer}"
                         for h in spec.control)
        self.directories.append((f"{DATA_DIR}/store", 0o700))
        self.service("steersman-store", "steer-store", "--name", host.name,
                     "--data-dir", f"{DATA_DIR}/store",
                     "--peer-addr", f"{_url_host(host.address)}:{ports.store_peer}",
                     "--client-addr", f"{_url_host(host.address)}:{ports.store_client}",
                     "--initial-cluster", peers,
                     "--cluster-token", spec.store_token or spec.name,
                     "--cert-file", self.pki_path("store-server.crt"),
                     "--key-file", self.pki_path("store-server.key"),
                     "--trusted-ca-file", self.pki_path("store-ca.crt"), "--client-cert-auth",
                     # /metrics over TLS: only cluster-CA clients in O=system:monitoring
                     # (a scraper's certificate), never the store CA's.
                     "--metrics-addr", f"{_url_host(host.address)}:{ports.store_metrics}",
                     "--metrics-cert-file", self.pki_path("store-server.crt"),
                     "--metrics-key-file", self.pki_path("store-server.key"),
                     "--metrics-client-ca-file", self.pki_path("ca.crt"),
                     description="Steersman store member (Raft)", priority=10)
        # The member certificate serves clients and both ends of the peer port
        # (mutual TLS between members, by the store CA: store/node_main.py peer_tls).
        self.use_pki("steersman-store", "store-server.crt",
                     "store-server.key", "store-ca.crt", "ca.crt")
        p = self.pki_path
        self.service(
            "steersman-apiserver", "steer-apiserver",
            "--bind", f"{_url_host(host.address)}:{ports.apiserver}",
            "--store-endpoints", ",".join(spec.store_endpoints),
            "--workers", str(spec.apiserver_workers),
            "--tls-cert-file", p("apiserver.crt"), "--tls-private-key-file", p("apiserver.key"),
            "--client-ca-file", p("ca.crt"),
            "--store-cafile", p("store-ca.crt"), "--store-certfile", p("apiserver-etcd-client.crt"),
            "--store-keyfile", p("apiserver-etcd-client.key"),
            "--kubelet-client-certificate", p("apiserver-kubelet-client.crt"),
            "--kubelet-client-key", p("apiserver-kubelet-client.key"),
            "--kubelet-certificate-authority", p("ca.crt"),
            "--encryption-provider-config", p("encryption-config.yaml"),
            "--service-account-signing-key-file", p("sa.key"),
            "--service-account-key-file", p("sa.pub"),
            "--enable-admission-plugins", ADMISSION_PLUGINS,
            "--service-cluster-ip-range", spec.service_cidr,
            after=("steersman-store",), description="Steersman API server", priority=20)
        self.use_pki("steersman-apiserver", "apiserver.crt", "apiserver.key", "ca.crt",
                     "store-ca.crt", "apiserver-etcd-client.crt", "apiserver-etcd-client.key",
                     "apiserver-kubelet-client.crt", "apiserver-kubelet-client.key",
                     "encryption-config.yaml", "sa.key", "sa.pub")
        for name, program, port, extra in (
                ("scheduler", "steer-scheduler", ports.scheduler, ()),
                ("controller-manager", "steer-controller-manager", ports.controller_manager,
                 ("--root-ca-file", p("ca.crt"), "--cluster-cidr", spec.pod_cidr))):
            unit = f"steersman-{name}"
            kubeconfig = self.kubeconfig(name, name, unit)
            if name == "controller-manager":   # csrsigning: the nodes' CSRs (node join)
                extra += ("--cluster-signing-cert-file", p("ca.crt"),
                          "--cluster-signing-key-file", p("ca.key"))
            self.service(unit, program, "--kubeconfig", kubeconfig,
                         "--identity", f"{host.name}-{name}", *extra,
                         *self.secure_port(unit, name, port),
                         after=("steersman-apiserver",), description=f"Steersman {name}",
                         priority=30)
        self.use_pki("steersman-controller-manager", "ca.crt", "ca.key")

    def secure_port(self, unit, name, port):
        """HTTPS /healthz and /metrics on the host's address (control/client/secure_serving.py):
        the ``<name>-serving`` certificate of the cluster CA; callers by cluster-CA client
        certificate or token, authorized by the API server (delegated)."""
        p = self.pki_path
        self.use_pki(unit, f"{name}-serving.crt", f"{name}-serving.key", "ca.crt")
        return ("--secure-port", str(port), "--bind-address", self.host.address,
                "--tls-cert-file", p(f"{name}-serving.crt"),
                "--tls-private-key-file", p(f"{name}-serving.key"), "--client-ca-file", p("ca.crt"))

    # -- worker host ----------------------------------------------------------------
    def worker(self):
        spec, host, ports = self.spec, self.host, self.spec.ports
        paths = host_containerd_paths(host.name, ports.containerd_stream)
        self.add(CONTAINERD_CONFIG, toml_writer.dumps(containerd_document(
            paths, sandbox_image=spec.sandbox_image, runc="/usr/sbin/runc")), 0o600,
            "containerd")
        for registry, url in spec.registry_mirrors:
            document = {"server": url, "host": {url: {"capabilities": ["pull", "resolve"]}}}
            self.add(f"{paths.certs_dir}/{registry}/hosts.toml", toml_writer.dumps(document),
                     0o600, "containerd")
        self.directories += [(CNI_CONF_DIR, 0o755), (f"{DATA_DIR}/agent", 0o700)]
        self.services.append(ServiceSpec(
            "containerd", (CONTAINERD_BINARY, "--config", CONTAINERD_CONFIG),
            env=(("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),),
            description="containerd for Steersman's agent", priority=10, delegate=True))
        p = self.pki_path
        self.service("steersman-agent", "steer-agent", *self.agent_credentials(),
                     "--client-ca-file", p("ca.crt"),
                     "--node-name", host.name, "--node-ip", host.address,
                     "--port", str(ports.agent), "--data-dir", f"{DATA_DIR}/agent",
                     "--runtime", "cri", "--container-runtime-endpoint", paths.endpoint,
                     "--cni-conf-dir", CNI_CONF_DIR, "--cluster-cidr", spec.pod_cidr,
                     "--cgroup-root", paths.cgroup_parent,
                     # The host's own namespace (pid 1's): the agent keeps the routes to
                     # the other hosts' pods there (agent/network/routes.py, host-gw).
                     "--node-netns", "/proc/1/ns/net",
                     after=("containerd",), description="Steersman node agent", priority=20)
        self.use_pki("steersman-agent", "ca.crt")
        kubeconfig = self.kubeconfig("proxy", "proxy", "steersman-proxy")
        self.service("steersman-proxy", "steer-proxy", "--mode", "nftables",
                     "--kubeconfig", kubeconfig, "--node-name", host.name,
                     "--cluster-cidr", spec.pod_cidr,
                     "--service-cluster-ip-range", spec.service_cidr,
                     description="Steersman service proxy (nftables)", priority=30)


    def agent_credentials(self):
        """The agent's credential flags: admin-issued node certificates, or a bootstrap token.

        With a token (kubelet's TLS bootstrap) the agent writes its own kubeconfig under
        its data dir once its CSR is approved, and asks for its serving certificate too.
        """
        p = self.pki_path
        if not joins_by_token(self.host):
            self.use_pki("steersman-agent", "node-serving.crt", "node-serving.key")
            return ("--kubeconfig", self.kubeconfig("agent", "node", "steersman-agent"),
                    "--tls-cert-file", p("node-serving.crt"),
                    "--tls-private-key-file", p("node-serving.key"))
        path = f"{KUBECONFIG_DIR}/bootstrap.kubeconfig"
        self.add(path, json.dumps(bootstrap_kubeconfig(
            self.spec.name, self.spec.api_server_url(self.host), p("ca.crt"),
            p("bootstrap-token")), indent=2) + "\n", 0o600, "steersman-agent")
        self.use_pki("steersman-agent", "bootstrap-token")
        return ("--bootstrap-kubeconfig", path, "--kubeconfig", AGENT_KUBECONFIG)


def bootstrap_kubeconfig(cluster_name, server, ca_file, token_file):
    """A kubeconfig whose user is the bootstrap token in ``token_file`` (no secret inside)."""
    return {"apiVersion": "v1", "kind": "Config", "current-context": cluster_name,
            "clusters": [{"name": cluster_name,
                          "cluster": {"server": server, "certificate-authority": ca_file}}],
            "users": [{"name": "bootstrap", "user": {"tokenFile": token_file}}],
            "contexts": [{"name": cluster_name,
                          "context": {"cluster": cluster_name, "user": "bootstrap"}}]}


def host_containerd_paths(node_name, stream_port):
    """containerd's paths on a host: the distribution's own locations, not a node dir."""
    return ContainerdPaths(
        node_dir="/var/lib/containerd", node_name=node_name, config=CONTAINERD_CONFIG,
        socket=CONTAINERD_SOCKET, root="/var/lib/containerd", state="/run/containerd",
        runc_root="/run/containerd/runc", cni_conf_dir=CNI_CONF_DIR,
        cni_conf=f"{CNI_CONF_DIR}/{CNI_CONF_NAME}", cni_bin_dir="/usr/lib/cni",
        ipam_dir=ipam_dir_of(CNI_CONF_DIR), certs_dir="/etc/containerd/certs.d",
        log_path=f"{LOG_DIR}/containerd.log", network_name=f"steer-{node_name}",
        stream_port=stream_port, cgroup_parent=node_cgroup_parent(node_name))


def _url_host(address):
    return f"[{address}]" if ":" in address else address
