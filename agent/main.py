"""``steer-agent``: the node agent (kubelet) of one machine.

    steer-agent --kubeconfig /etc/steer/agent.kubeconfig --node-name n1 --runtime process

Registers the Node, renews its Lease, runs the pods bound to it through the
chosen runtime, reports their status and serves their logs on --port. Stopping
the agent (SIGTERM) leaves containers running: the next agent re-adopts them.
Its client and serving certificates are renewed by CSRs while it runs
(agent/certrotation.py); with --bootstrap-kubeconfig it first gets a client
certificate with a bootstrap token (agent/bootstrap.py).
"""

import argparse
import logging
import os
import signal
import socket
import threading
import time

from agent import backoff as backoffmod
from agent import bootstrap, logs, paths, streaming, volumes
from agent import certrotation_setup as rotation
from agent import runtime as runtimes
from agent.containers import POLL, Context
from agent.kubelet import ApiAdapter, PodManager
from agent.network.cni import PodNetwork
from agent.network.routes import NODE_IP_ANNOTATION, HostGateway
from agent.node import (
    NodeAgent,
    cri_problem,
    default_node_ip,
    machine_pressure,
    parse_labels,
    parse_taints,
)
from agent.probes import Prober
from agent.server import AgentServer, server_context
from agent.stats import DEFAULT_INTERVAL as STATS_INTERVAL
from agent.stats import StatsCollector
from control.client import ApiException
from control.client.component import (
    add_connection_flags,
    configure_logging,
    connect,
)
from control.client.events import EventRecorder

log = logging.getLogger("agent")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="steer-agent", description=__doc__.split("\n")[0])
    add_connection_flags(p)     # --kubeconfig, or --api-server and --token-file
    p.add_argument("--node-name", default=socket.gethostname().lower())
    p.add_argument("--node-ip", help="this node's InternalIP (default: the outgoing address)")
    p.add_argument("--runtime", choices=("process", "cri", "fake"), default="process",
                   help="cri: pods are containers in containerd; process: host processes "
                        "(machines without containerd); fake: hollow nodes")
    p.add_argument("--container-runtime-endpoint",
                   default="unix:///run/containerd/containerd.sock",
                   help="the CRI socket of containerd (--runtime cri)")
    p.add_argument("--node-netns", help="the network namespace containerd and the pods run "
                   "in (a local cluster's node); probes and streams connect from there")
    p.add_argument("--resolv-conf", default="/etc/resolv.conf",
                   help='resolvers handed to pods (--runtime cri); "" hands none')
    p.add_argument("--cluster-dns", default="", metavar="IP[,IP]",
                   help="cluster DNS servers ClusterFirst pods resolve with (kubelet's flag; "
                        "none: they get the node's resolvers)")
    p.add_argument("--cluster-domain", default="cluster.local",
                   help="the cluster's DNS domain: pods' search path (<ns>.svc.DOMAIN ...)")
    p.add_argument("--runtime-request-timeout", type=float, default=120.0, metavar="SECONDS",
                   help="deadline of each CRI call but pulls (kubelet: 2m); a sandbox "
                        "start under load can take many seconds")
    p.add_argument("--cni-conf-dir", help="write the pod network's CNI configuration here "
                   "once the Node has a spec.podCIDR (--runtime cri; containerd's conf_dir)")
    p.add_argument("--pod-network-ip", help="the address other nodes route this node's "
                   "podCIDR through (default: the node IP); published on the Node as "
                   "annotation network.steersman.io/node-ip")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16",
                   help="the pods' address range of the whole cluster: pod traffic leaving "
                        "it is masqueraded, traffic inside it keeps the pod's address")
    p.add_argument("--cgroup-root", help="cgroupfs directory under which pods' cgroups go "
                   "(--runtime cri; default /steer/<node name>)")
    p.add_argument("--image-gc-high-threshold", type=int, default=85, metavar="PERCENT",
                   help="image filesystem usage that starts image garbage collection")
    p.add_argument("--image-gc-low-threshold", type=int, default=80, metavar="PERCENT",
                   help="usage image garbage collection frees down to")
    p.add_argument("--data-dir", default=os.path.expanduser("~/.steer/agent"),
                   help="pod directories, container state and logs")
    p.add_argument("--storage-root", default=volumes.STORAGE_ROOT,
                   help="where local-path persistent volumes of this node live (announced "
                        f"on the Node as {volumes.STORAGE_ROOT_ANNOTATION})")
    p.add_argument("--max-pods", type=int, default=110)
    p.add_argument("--node-labels", default="", help="k=v,... added to the Node's labels")
    p.add_argument("--register-with-taints", default="", help="key=value:Effect,...")
    p.add_argument("--heartbeat-interval", type=float, default=10.0,
                   help="seconds between Lease renewals (kubelet: 10)")
    p.add_argument("--node-status-report-frequency", type=float, default=300.0,
                   help="post node status at least this often, even unchanged (seconds)")
    p.add_argument("--address", help="address the agent's HTTP port binds (default: node IP)")
    p.add_argument("--port", type=int, default=10250, help="agent HTTP port (0: pick a free one)")
    tls = p.add_argument_group("TLS of the agent's port (required unless --insecure-plain-http)")
    tls.add_argument("--tls-cert-file", help="serving certificate of the agent's port "
                     "(CN system:node:<node>, SANs the node name and IP)")
    tls.add_argument("--tls-private-key-file", help="key of --tls-cert-file")
    tls.add_argument("--client-ca-file", help="cluster CA: clients of the agent's port must "
                     "present a certificate it signed (the API server's kubelet client)")
    tls.add_argument("--rotate-server-certificates", action=argparse.BooleanOptionalAction,
                     default=True, help="renew the serving certificate by CSRs (signer "
                     "kubernetes.io/kubelet-serving) at 70-90%% of its life; without "
                     "--tls-cert-file the first one is requested at start (default on)")
    tls.add_argument("--insecure-plain-http", action="store_true",
                     help="serve the agent's port as plain HTTP with no check of the caller: "
                          "anyone who reaches it reads every pod's logs (tests only)")
    certs = p.add_argument_group("client certificate (agent/certrotation.py, agent/bootstrap.py)")
    certs.add_argument("--bootstrap-kubeconfig", metavar="FILE",
                       help="kubeconfig with a bootstrap token: when --kubeconfig is missing or "
                            "its certificate expired, request a client certificate by a CSR "
                            "and write --kubeconfig (kubelet's TLS bootstrap)")
    certs.add_argument("--cert-dir", help="where renewed certificates are kept, 0700 "
                       "(default <data dir>/pki)")
    certs.add_argument("--rotate-certificates", action=argparse.BooleanOptionalAction,
                       default=True, help="renew the client certificate by CSRs at 70-90%% "
                       "of its life (default on)")
    p.add_argument("--backoff-base", type=float, default=backoffmod.DEFAULT_BASE,
                   help="first crash-loop restart delay (kubelet: 10 s)")
    p.add_argument("--backoff-max", type=float, default=backoffmod.DEFAULT_MAX,
                   help="longest crash-loop restart delay (kubelet: 300 s)")
    p.add_argument("--backoff-reset", type=float, default=backoffmod.DEFAULT_RESET,
                   help="seconds of running after which the backoff starts over")
    p.add_argument("--sync-period", type=float, default=POLL,
                   help="seconds between a pod worker's looks at its containers")
    p.add_argument("--container-log-max-size", type=int, default=logs.DEFAULT_MAX_BYTES,
                   help="bytes a container's log file reaches before it is rotated "
                        "(negative: never, --runtime cri)")
    p.add_argument("--container-log-max-files", type=int, default=logs.DEFAULT_MAX_FILES,
                   help="log files kept per container, the one being written included")
    p.add_argument("--container-log-monitor-interval", type=float, default=10.0,
                   metavar="SECONDS",
                   help="seconds between checks of containerd's log files (--runtime cri)")
    p.add_argument("--stats-interval", type=float, default=STATS_INTERVAL,
                   help="seconds between readings of container cpu, for usage rates (0: only "
                        "when asked)")
    p.add_argument("--streaming-connection-idle-timeout", type=float,
                   default=streaming.DEFAULT_IDLE_TIMEOUT, metavar="SECONDS",
                   help="close an exec, attach or port-forward stream idle this long "
                        "(kubelet: 4h; 0: never)")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def build_cri_runtime(args):
    """The cri runtime on a checked containerd; SystemExit saying what to do otherwise."""
    from agent.provision.containerd import ContainerdError, check_runtime, pod_cgroup_parent
    from agent.runtime.cri.client import CriClient
    from agent.runtime.cri.runtime import CriRuntime
    try:
        version = check_runtime(args.container_runtime_endpoint)
    except ContainerdError as exc:
        raise SystemExit(f"steer-agent: {exc}; or run pods as host processes with "
                         "--runtime process") from None
    if args.node_netns and not os.path.exists(args.node_netns):
        raise SystemExit(f"steer-agent: --node-netns {args.node_netns} does not exist")
    cgroup_parent = pod_cgroup_parent
    if args.cgroup_root:
        root = args.cgroup_root.rstrip("/")
        def cgroup_parent(_node, uid):     # noqa: E306 - kubelet's --cgroup-root
            return f"{root}/pod{uid}"
    return CriRuntime(CriClient(args.container_runtime_endpoint,
                                timeout=args.runtime_request_timeout), args.node_name,
                      netns_path=args.node_netns, resolv_conf=args.resolv_conf,
                      cgroup_parent=cgroup_parent, version=version,
                      cluster_dns=[a for a in args.cluster_dns.split(",") if a],
                      cluster_domain=args.cluster_domain)


def build_images(args, runtime, recorder):
    """The image manager of an image runtime (pull policy, events, backoff), else None."""
    if not runtime.runs_images:
        return None
    from agent.images import ImageManager
    return ImageManager(runtime.client, recorder, time.time)


def build_runtime(args):
    if args.runtime == "cri":
        return build_cri_runtime(args)
    if args.runtime == "process":
        from agent.runtime.process import ProcessRuntime
        return ProcessRuntime(args.data_dir, args.container_log_max_size,
                              args.container_log_max_files)
    return runtimes.create(args.runtime, args.data_dir)


def build_image_gc(args, runtime, recorder):
    """Image garbage collection by disk thresholds (kubelet's), for image runtimes."""
    if not runtime.runs_images:
        return None
    from agent.imagegc import ImageGC, node_reference
    return ImageGC(runtime.client, time.time, high_threshold=args.image_gc_high_threshold,
                   low_threshold=args.image_gc_low_threshold, recorder=recorder,
                   node=node_reference(args.node_name),
                   sandbox_image=sandbox_image_of(runtime.client))


def build_log_rotation(args, runtime):
    """Rotation of the log files containerd writes (kubelet's log manager), else None."""
    client = getattr(runtime, "client", None)
    if not runtime.runs_images or client is None or args.container_log_max_size < 0:
        return None
    from agent.runtime.cri.labels import ours
    from agent.runtime.cri.logrotation import ContainerLogRotator
    return ContainerLogRotator(client, args.container_log_max_size,
                               args.container_log_max_files, labels=ours(args.node_name))


def sandbox_image_of(client):
    """The pause image containerd uses (never collected), from its verbose status."""
    import json
    try:
        config = json.loads(client.status(verbose=True).info.get("config", "{}"))
    except (Exception, ValueError) as exc:     # an older containerd: GC keeps what runs
        log.info("msg=cannot read containerd's sandbox image error=%s", exc)
        return None
    return config.get("sandboxImage")


def stream_server(args, runtime, pods):
    """exec, attach and port-forward through CRI's streaming server (None: no such runtime)."""
    client = getattr(runtime, "client", None)
    if not runtime.runs_images or client is None:
        return None
    return streaming.StreamServer(pods.find_container, client, runtime.netns_path,
                                  idle_timeout=args.streaming_connection_idle_timeout)


def build_host_gateway(args, rest, own_ip):
    """Routes to the other nodes' pods in the node's namespace (a local cluster's node).

    Only with --node-netns: there the routes land in a namespace made for the node,
    never in the machine's own. (A real host's agent does not manage routes yet; its
    CNI bridge masquerades all pod traffic leaving the node, as before.)
    """
    if args.runtime != "cri" or not args.node_netns:
        return None
    return HostGateway(rest, args.node_name, args.node_netns, own_ip=own_ip,
                       cluster_cidr=args.cluster_cidr)


TLS_FLAGS = "--tls-cert-file, --tls-private-key-file and --client-ca-file"


def agent_port_tls(args):
    """The agent port's TLS context from the flags; None only with --insecure-plain-http."""
    given = (args.tls_cert_file, args.tls_private_key_file, args.client_ca_file)
    if args.insecure_plain_http:
        if any(given):
            raise SystemExit(f"steer-agent: --insecure-plain-http serves plain HTTP: drop "
                             f"{TLS_FLAGS}, or drop it")
        return None
    if args.rotate_server_certificates and args.client_ca_file and not (
            args.tls_cert_file or args.tls_private_key_file):
        # The serving certificate comes by CSR (agent/certrotation.py) before serving.
        return server_context(None, None, args.client_ca_file)
    if not all(given):
        raise SystemExit(f"steer-agent: the agent's port needs TLS: pass {TLS_FLAGS} "
                         "(or --insecure-plain-http to serve plain HTTP on purpose)")
    return server_context(args.tls_cert_file, args.tls_private_key_file, args.client_ca_file)


class Agent:
    """One node agent, wired from parsed flags; several can share a process (fake runtime)."""

    def __init__(self, args, rest=None, runtime=None):
        self.args = args
        ssl_context = agent_port_tls(args)     # refuse a half or missing TLS setup first
        self.node_ip = args.node_ip or default_node_ip()
        paths.make_private_dir(args.data_dir)      # pods' files, logs, container state: 0700
        args.cert_dir = args.cert_dir or os.path.join(args.data_dir, "pki")
        if args.bootstrap_kubeconfig and rest is None:
            if not args.kubeconfig:
                raise SystemExit("steer-agent: --bootstrap-kubeconfig needs --kubeconfig: "
                                 "the file the node's own credentials are written to")
            bootstrap.bootstrap(args.kubeconfig, args.bootstrap_kubeconfig, args.cert_dir,
                                args.node_name)
        self.rest = rest or connect(args, timeout=30)
        self.client_certs, self.serving_certs = rotation.managers(
            args, self.rest, ssl_context, self.node_ip)
        self.runtime = runtime or build_runtime(args)
        recorder = EventRecorder(self.rest, "kubelet", instance=args.node_name)
        self.ctx = Context(runtime=self.runtime, api=ApiAdapter(self.rest), recorder=recorder,
                           backoff=backoffmod.Backoff(args.backoff_base, args.backoff_max,
                                                      args.backoff_reset),
                           prober=Prober(self.runtime), clock=time.time,
                           data_dir=args.data_dir, host_ip=self.node_ip,
                           node_name=args.node_name, poll=args.sync_period,
                           # Secret volumes on tmpfs (/dev/shm) where it is writable.
                           secret_dir=paths.tmpfs_dir(args.data_dir)
                           if args.runtime in ("process", "cri") else None,
                           images=build_images(args, self.runtime, recorder))
        self.pods = PodManager(self.rest, self.ctx, max_pods=args.max_pods)
        self.image_gc = build_image_gc(args, self.runtime, recorder)
        self.log_rotation = build_log_rotation(args, self.runtime)
        self.pod_network_ip = args.pod_network_ip or self.node_ip
        self.host_gateway = build_host_gateway(args, self.rest, self.pod_network_ip)
        # Without a HostGateway nobody else masquerades: the CNI bridge does, as before.
        self.pod_network = PodNetwork(self.rest, args.node_name, args.cni_conf_dir,
                                      ip_masq=self.host_gateway is None) \
            if args.cni_conf_dir else None
        self._stop = threading.Event()
        self.stats = StatsCollector(args.node_name, self.runtime, self.pods.pods_by_uid)
        self.server = AgentServer(args.address or self.node_ip, args.port, self.pods.find_logs,
                                  metrics=self.pods.metrics, ssl_context=ssl_context,
                                  stats=self.stats,
                                  streams=stream_server(args, self.runtime, self.pods))
        self.node = NodeAgent(self.rest, args.node_name, self.node_ip, self.server.port,
                              max_pods=args.max_pods, labels=parse_labels(args.node_labels),
                              taints=parse_taints(args.register_with_taints),
                              heartbeat=args.heartbeat_interval,
                              report_interval=args.node_status_report_frequency,
                              runtime_name=args.runtime,
                              runtime_version=getattr(self.runtime, "version", None),
                              runtime_problem=(lambda: cri_problem(self.runtime.client))
                              if args.runtime == "cri" else None,
                              pressure=lambda: machine_pressure(args.data_dir),
                              on_node=self.pod_network.observe if self.pod_network else None,
                              annotations={NODE_IP_ANNOTATION: self.pod_network_ip,
                                           volumes.STORAGE_ROOT_ANNOTATION:
                                               os.path.abspath(args.storage_root)})

    def start(self, stop=None):
        """Serve, register the Node, start heartbeats and pod workers; return at once.

        Registration is retried (1 s doubling to 30 s) until the API server answers,
        as kubelet does, unless ``stop`` (an Event) is set meanwhile.
        """
        stop = stop or threading.Event()
        first_serving = self.serving_certs is not None and not self.serving_certs.pem
        if not first_serving:
            self.server.start()
        delay = 1.0
        while True:
            try:
                self.node.register()
                break
            except (ApiException, OSError) as exc:
                log.warning("node=%s msg=cannot register yet, retrying in %.0fs error=%s",
                            self.args.node_name, delay, exc)
                if stop.wait(delay):
                    return self
                delay = min(delay * 2, 30.0)
        if first_serving and not rotation.first_serving_certificate(self.serving_certs, stop):
            return self
        if first_serving:
            self.server.start()
        for manager in (self.client_certs, self.serving_certs):
            if manager is not None:
                manager.start(self._stop)
        self.node.start()
        if self.pod_network is not None:
            self.pod_network.start()
        if self.host_gateway is not None:
            self.host_gateway.start()
        if self.image_gc is not None:
            threading.Thread(target=self.image_gc.run, args=(self._stop, 300.0),
                             name="image-gc", daemon=True).start()
        if self.log_rotation is not None:
            threading.Thread(target=self.log_rotation.run,
                             args=(self._stop, self.args.container_log_monitor_interval),
                             name="log-rotation", daemon=True).start()
        self.pods.start()
        self.stats.start(self.args.stats_interval)
        log.info("node=%s ip=%s port=%d runtime=%s msg=agent running", self.args.node_name,
                 self.node_ip, self.server.port, self.args.runtime)
        return self

    def stop(self):
        """Stop the agent's threads; containers keep running for the next agent."""
        self._stop.set()
        self.node.stop()
        if self.pod_network is not None:
            self.pod_network.stop()
        if self.host_gateway is not None:
            self.host_gateway.stop()
        self.pods.stop()
        self.stats.stop()
        self.server.stop()
        self.runtime.close()
        paths.remove_tmpfs_dir_if_empty(self.ctx.secret_dir)


def main(argv=None):
    args = parse_args(argv)
    configure_logging(args.log_level)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    agent = Agent(args).start(stop)
    while not stop.wait(5.0):
        agent.pods.reap()
    log.info("node=%s msg=agent stopping; containers keep running", args.node_name)
    agent.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
