"""`steer up`, `steer down`, `steer status`: a whole cluster on this machine.

`steer up` starts, each as a detached process recorded by pid (cli/local_cluster.py):
the store nodes, one API server, the scheduler, the controller manager, N node
agents with the process runtime (node-N on its own loopback address 127.0.1.N)
and one service proxy serving every ClusterIP and NodePort on this machine. First
it makes the cluster CA and every certificate and kubeconfig (cli/local_pki.py: the
API server and every agent's port serve TLS, each component presents its own client
certificate through a kubeconfig, the API server reaches the agents with its kubelet
client certificate, no secret is on a command line).
It waits for each part with a deadline, then writes ``$STEER_HOME/config`` (read by
every `steer` verb) and ``$STEER_HOME/kubeconfig`` (for kubectl: the admin's client
certificate embedded), both 0600. `steer down` stops it all by pid, the agents'
containers included.
"""

import argparse
import glob
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request

import yaml

from cli import (
    certrenewal,
    component_metrics,
    encryption_config,
    local_addons,
    local_containers,
    local_dns_image,
    local_network,
    pki,
    supervisor,
)
from cli.local_cluster import LocalCluster, python_module
from cli.local_pki import IN_CLUSTER_NAMES, LocalCredentials, kubeconfig_document
from cli.local_store import LocalStoreCluster, free_ports
from cli.store_cmd import CommandError
from control.objects import conditions

SERVICE_CIDR = "127.64.0.0/16"
#: A containers cluster's ClusterIPs live only inside its node namespaces (Kubernetes'
#: default range); the process runtime's are loopback addresses of this machine.
CONTAINERS_SERVICE_CIDR = "10.96.0.0/12"
NODE_IP_PREFIX = "127.0.1"
STORE_ARGS = ["--election-min", "1.0", "--election-max", "2.0"]


def steer_home():
    return os.path.abspath(os.environ.get("STEER_HOME") or os.path.expanduser("~/.steer"))


# -- wiring ---------------------------------------------------------------------------
def register(groups):
    up = groups.add_parser("up", help="start a local cluster on this machine")
    up.add_argument("--nodes", type=int, help="node agents to run (default 2)")
    up.add_argument("--store-nodes", type=int, choices=(3, 5), default=3,
                    help="members of the Raft store (default 3)")
    up.add_argument("--runtime", choices=("auto", "cri", "process"), default="auto",
                    help="container runtime of the agents: cri (containerd, one network "
                         "namespace per node), process (host processes: machines without "
                         "containerd), auto (cri where this machine can, else process)")
    up.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                    help="seconds to wait for each part to become ready")
    up.add_argument("--addons", type=local_addons.parse_addons, default=local_addons.DEFAULT,
                    metavar="NAMES",
                    help="comma-separated cluster addons to start (default "
                         f"{','.join(local_addons.DEFAULT)}; known: "
                         f"{','.join(sorted(local_addons.KNOWN))}); 'none' for none")
    addressing = up.add_argument_group(
        "addressing (change them to run two local clusters side by side)")
    addressing.add_argument("--node-ip-prefix", default=NODE_IP_PREFIX, metavar="A.B.C",
                            help="node-N gets the address PREFIX.N (default 127.0.1)")
    addressing.add_argument("--service-cluster-ip-range", metavar="CIDR",
                            help=f"range of ClusterIPs (default {CONTAINERS_SERVICE_CIDR} "
                                 "inside the node namespaces of a containers cluster; "
                                 f"the loopback range {SERVICE_CIDR} with the process runtime)")
    timings = up.add_argument_group(
        "timings (Kubernetes' defaults; the end-to-end tests shorten them)")
    timings.add_argument("--heartbeat-interval", metavar="SECONDS", type=float, default=10.0,
                         help="seconds between an agent's Lease renewals")
    timings.add_argument("--node-monitor-grace-period", metavar="SECONDS", type=float, default=40.0,
                         help="seconds without a Lease renewal before a node is NotReady")
    timings.add_argument("--pod-eviction-timeout", metavar="SECONDS", type=int, default=300,
                         help="seconds pods stay on a NotReady/unreachable node before "
                              "they are evicted (the API server's default tolerations)")
    timings.add_argument("--backoff-base", metavar="SECONDS", type=float, default=10.0,
                         help="first crash-loop restart delay of a container")
    timings.add_argument("--cert-lifetime", metavar="DURATION", type=certrenewal.parse_lifetime,
                         help="life of the certificates `steer up` issues and the controller "
                              "manager signs (default a year); e.g. 60s to watch them renewed "
                              "while the cluster runs (cli/certrenewal.py)")
    up.add_argument("--supervise", default=",".join(supervisor.DEFAULT_KINDS), metavar="KINDS",
                    help="kinds of processes a supervisor restarts when they exit (default "
                         f"{','.join(supervisor.DEFAULT_KINDS)}; "
                         "'' for none)")
    up.set_defaults(func=cmd_up)

    down = groups.add_parser("down", help="stop the local cluster (and its containers)")
    down.add_argument("--purge", action="store_true",
                      help="also delete its data, logs and the config written by `steer up`")
    down.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                      help="seconds between SIGTERM and SIGKILL")
    down.set_defaults(func=cmd_down)

    status = groups.add_parser("status", help="the local cluster's processes and nodes")
    status.set_defaults(func=cmd_status)

    shell = groups.add_parser(
        "node-shell", help="run a command (default: a shell) in a local node's network "
                           "namespace, where its pods' and Services' addresses answer")
    shell.add_argument("node", help="node name (node-1, ...)")
    shell.add_argument("command", nargs=argparse.REMAINDER,
                       help="-- COMMAND [ARGS...] (default: $SHELL)")
    shell.set_defaults(func=cmd_node_shell)


# -- small helpers --------------------------------------------------------------------
def say(text):
    print(text, flush=True)


def http_get_json(url, timeout=2.0, context=None):
    """GET ``url`` (TLS with ``context``); the decoded JSON body, or None if it does not answer 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            body = resp.read()
    except (OSError, urllib.error.URLError):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


def credentials(home, state):
    """Issue (or renew) the local cluster's certificates and kubeconfigs for its record."""
    creds = LocalCredentials(home, lifetime=state.get("certLifetime"))
    creds.ensure(state["apiServer"], list(zip(state.get("nodes", []), state.get("nodeIPs", []))),
                 extra_hosts=(*IN_CLUSTER_NAMES, *state.get("inClusterAddresses", ())))
    if creds.issued:
        say(f"issued {len(creds.issued)} certificates in {creds.dir}")
    return creds


class Failure(Exception):
    """A part of the cluster did not come up; names the process whose log explains it."""

    def __init__(self, message, name=None):
        super().__init__(message)
        self.name = name


def wait_for(cluster, names, check, what, timeout):
    """Poll ``check()`` until truthy; fail early if one of ``names`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        for name in names:
            if not cluster.is_running(name):
                raise Failure(f"{name} exited while waiting for {what}", name)
        if time.monotonic() > deadline:
            raise Failure(f"{what} not within {timeout:g}s", names[0] if names else None)
        time.sleep(0.2)


# -- steer up -------------------------------------------------------------------------
def cmd_up(args):
    home = steer_home()
    cluster = LocalCluster(home)
    if cluster.exists:
        stopped = [n for n in cluster.processes if not cluster.is_running(n)]
        if not stopped:
            say(f"the local cluster in {cluster.dir} is already up ({len(cluster.processes)} "
                "processes); `steer status` shows it, `steer down` stops it")
            supervise(cluster, args)
            return 0
        say(f"restarting the local cluster recorded in {cluster.dir} "
            f"({len(stopped)} of {len(cluster.processes)} processes stopped)")
        recorded = len(cluster.state.get("nodes", []))
        if args.nodes is not None and args.nodes != recorded:
            say(f"note: it has {recorded} nodes (--nodes {args.nodes} ignored); "
                "`steer down --purge` first to start a new one")
        started = []
        try:
            credentials(home, cluster.state)
            if cluster.state.get("network"):      # gone after a reboot: made again
                local_network.create(local_network.LocalNetwork.from_record(
                    cluster.state["network"]))
            handled = supervisor.supervised(cluster, stopped)   # it restarts those itself
            for name in [n for n in stopped if n not in handled]:
                cluster.restart(name)
                started.append(name)
            wait_up(cluster, args.timeout, LocalCredentials(home).admin_context())
        except Failure as exc:
            fail(cluster, started, exc)
        finish(cluster, home)
        supervise(cluster, args)
        return 0
    args.nodes = 2 if args.nodes is None else args.nodes
    if args.nodes < 1:
        raise CommandError("--nodes must be at least 1")
    started = []
    os.makedirs(home, mode=0o700, exist_ok=True)
    os.chmod(home, 0o700)
    try:
        start_all(cluster, args, started)
    except Failure as exc:
        fail(cluster, started, exc, fresh=True)
    except BaseException:
        cluster.stop(started, timeout=5)
        forget(cluster)
        raise
    finish(cluster, home)
    supervise(cluster, args)
    return 0


def fail(cluster, started, exc, fresh=False):
    """Report which part failed with the tail of its log, stop what was started, exit 1.

    A cluster that never came up is forgotten (its logs stay), so the next `steer up`
    starts a new one instead of restarting the broken one.
    """
    if exc.name:
        tail = cluster.log_tail(exc.name)
        say(f"--- last lines of {cluster.log_path(exc.name)} ---\n{tail.rstrip()}\n---")
    say(f"stopping the {len(started)} processes started ...")
    cluster.stop_containers(timeout=5)
    cluster.stop([n for n in reversed(started)
                  if cluster.processes.get(n, {}).get("kind") != "containerd"], timeout=5)
    local_containers.stop(cluster, say, timeout=5)
    if fresh:
        forget(cluster)
    raise CommandError(f"the local cluster did not come up: {exc}; logs are in "
                       f"{cluster.logs_dir}")


def forget(cluster):
    """Drop the record and data of a cluster that never came up; keep its logs."""
    for path in (os.path.join(cluster.dir, "store"), os.path.join(cluster.dir, "agents"),
                 os.path.join(cluster.dir, "containerd"), os.path.join(cluster.dir, "registry")):
        shutil.rmtree(path, ignore_errors=True)
    try:
        os.remove(cluster.state_path)
    except FileNotFoundError:
        pass


def start_all(cluster, args, started):
    os.makedirs(cluster.dir, exist_ok=True)
    timeout = args.timeout
    state = cluster.state

    # The store: members on free loopback ports, described (and later recorded) by
    # cli/local_store.py so `steer store --dir <cluster>/store ...` can talk to it too.
    store_dir = os.path.join(cluster.dir, "store")
    store = LocalStoreCluster(args.store_nodes, base_dir=store_dir, extra_args=STORE_ARGS,
                              detach=True)
    say(f"starting {args.store_nodes} store nodes in {store_dir} ...")
    # Their /metrics speak TLS; only cluster-CA clients in system:monitoring may read.
    cluster_ca = component_metrics.cluster_ca_file(LocalCredentials(cluster.home).dir)
    for i, node in enumerate(store.nodes):
        os.makedirs(node.data_dir, exist_ok=True)
        name = f"store-{node.name}"
        node.pid = cluster.start(name, store.command(i) + component_metrics.store_metrics_flags(
            *store._member_files(node), cluster_ca), "store")
        started.append(name)
    store.save()
    state["componentMetrics"] = {"store": {n.name: n.metrics_addr for n in store.nodes
                                           if n.metrics_addr}}
    names = [f"store-{n.name}" for n in store.nodes]
    shown = [0]

    def store_progress():
        up = sum(1 for i in range(len(store.nodes))
                 if (store.node_status(i, 0.5) or {}).get("leader_peer"))
        if up != shown[0]:
            say(f"store {up}/{len(store.nodes)} ready")
            shown[0] = up
        return up == len(store.nodes)

    wait_for(cluster, names, store_progress, "the store's members to agree on a leader",
             timeout)
    try:
        store.wait_ready(timeout)
    except Exception as exc:
        raise Failure(f"the store answers no reads: {exc}", names[0]) from None
    state["store"] = {"dir": store_dir, "endpoints": store.endpoints}

    containers = uses_containers(args)
    if args.service_cluster_ip_range is None:
        args.service_cluster_ip_range = CONTAINERS_SERVICE_CIDR if containers else SERVICE_CIDR

    # The API server.
    port = free_ports(1)[0]
    url = f"https://127.0.0.1:{port}"
    node_names = [f"node-{n}" for n in range(1, args.nodes + 1)]
    node_ips = [f"{args.node_ip_prefix}.{n}" for n in range(1, args.nodes + 1)]
    if args.cert_lifetime:
        state["certLifetime"] = args.cert_lifetime
    state.update(apiServer=url, nodes=node_names, nodeIPs=node_ips,
                 serviceClusterIPRange=args.service_cluster_ip_range)
    # Pods reach the API server as default/kubernetes: its ClusterIP leads to the door
    # on the LAN's gateway (cli/local_containers.py); both are in its certificate.
    advertise = local_containers.api_advertise(cluster.home, node_names) if containers else None
    state["inClusterAddresses"] = local_containers.in_cluster_addresses(
        cluster.home, node_names, args.service_cluster_ip_range) if containers else []
    creds = credentials(cluster.home, state)
    context = creds.admin_context()
    serving_cert, serving_key = creds.cert("apiserver")
    kubelet_cert, kubelet_key = creds.cert("apiserver-kubelet-client")
    argv = python_module("control.api.server", "--bind", f"127.0.0.1:{port}",
                         "--store-endpoints", ",".join(store.endpoints), "--workers", "1",
                         "--tls-cert-file", serving_cert, "--tls-private-key-file", serving_key,
                         "--client-ca-file", creds.ca_file,
                         *store.apiserver_tls_flags(),
                         # Its own identity towards the agents' ports (logs).
                         "--kubelet-client-certificate", kubelet_cert,
                         "--kubelet-client-key", kubelet_key,
                         "--kubelet-certificate-authority", creds.ca_file,
                         # Secrets encrypted at rest with a key of this cluster's own
                         # (cli/encryption_config.py).
                         "--encryption-provider-config", encryption_config.ensure(cluster.dir),
                         # ServiceAccount tokens: signed with this cluster's key (made once,
                         # cli/local_pki.py), projected into every pod by the admission.
                         "--service-account-signing-key-file", creds.service_account_key,
                         "--service-account-key-file", creds.service_account_public_key,
                         "--enable-admission-plugins",
                         ",".join(local_admission_plugins(containers)),
                         "--service-cluster-ip-range", args.service_cluster_ip_range,
                         *local_containers.advertise_flags(advertise),
                         "--default-not-ready-toleration-seconds",
                         str(args.pod_eviction_timeout),
                         "--default-unreachable-toleration-seconds",
                         str(args.pod_eviction_timeout))
    cluster.start("apiserver", argv, "apiserver")
    started.append("apiserver")
    cluster.save()
    wait_for(cluster, ["apiserver"],
             lambda: http_get_json(url + "/readyz", context=context) is not None,
             "the API server's /readyz", timeout)
    say(f"api server ready at {url}")

    # The control plane, each with its own kubeconfig (no credential on argv).
    for name, module, extra in (
            ("scheduler", "control.scheduler.main", []),
            ("controller-manager", "control.controllers.manager",
             ["--root-ca-file", creds.ca_file,        # published as kube-root-ca.crt
              # The agents renew their certificates by CSRs; the cluster CA signs them.
              *certrenewal.signing_flags(creds, state.get("certLifetime")),
              "--node-monitor-grace-period", f"{args.node_monitor_grace_period:g}s",
              "--node-monitor-period",
              f"{max(1.0, min(5.0, args.node_monitor_grace_period / 4)):g}s"])):
        # /healthz and /metrics over HTTPS with delegated auth (cli/component_metrics.py).
        secure_port = free_ports(1)[0]
        state.setdefault("componentMetrics", {})[name] = f"127.0.0.1:{secure_port}"
        cluster.start(name, python_module(module, "--kubeconfig", creds.kubeconfig(name),
                                          "--identity", f"local-{name}", *extra,
                                          *component_metrics.secure_port_flags(
                                              creds, name, secure_port)), name)
        started.append(name)
    say("scheduler and controller manager started")

    # containerd per node (each in its own network namespace) and the registry.
    runtime_flags = start_runtimes(cluster, containers, node_names, started, timeout)

    # The node agents, each on its own loopback address.
    agents = []
    for name, ip in zip(node_names, node_ips):
        data_dir = os.path.join(cluster.dir, "agents", name)
        try:
            agent_port = free_ports(1, ip)[0]
        except OSError as exc:
            raise Failure(f"cannot listen on {ip} for {name}: {exc} (a loopback address "
                          "such as 127.0.1.N is needed)") from None
        # The agent's port serves TLS with its node's certificate and verifies callers.
        node_cert, node_key = creds.cert(f"nodes/{name}-serving")
        cluster.start(name, python_module(
            "agent.main", "--kubeconfig", creds.agent_kubeconfig(name),
            "--tls-cert-file", node_cert, "--tls-private-key-file", node_key,
            "--client-ca-file", creds.ca_file,
            "--node-name", name, "--node-ip", ip,
            "--port", str(agent_port), "--data-dir", data_dir,
            "--storage-root", os.path.join(data_dir, "storage"),
            *runtime_flags.get(name, ["--runtime", "process"]),
            "--heartbeat-interval", f"{args.heartbeat_interval:g}",
            "--backoff-base", f"{args.backoff_base:g}"), "agent")
        started.append(name)
        agents.append(name)
    state["nodes"] = agents
    state["nodeIPs"] = node_ips
    cluster.save()

    if containers:
        start_node_proxies(cluster, args, creds, started)
    else:
        start_userspace_proxy(cluster, creds, node_ips, started)

    ready = set()

    def nodes_ready():
        for name in agents:
            if name not in ready and conditions.is_ready(
                    http_get_json(f"{url}/api/v1/nodes/{name}", context=context)):
                ready.add(name)
                say(f"{name} Ready")
        return len(ready) == len(agents)

    wait_for(cluster, agents + ["apiserver", "controller-manager"], nodes_ready,
             "every node to be Ready", timeout)
    # ServiceAccount admission refuses pods until the namespace has its account.
    wait_for(cluster, ["apiserver", "controller-manager"],
             lambda: isinstance(http_get_json(
                 f"{url}/api/v1/namespaces/default/serviceaccounts/default", context=context),
                 dict), "the ServiceAccount default/default", timeout)
    if containers and "dns" in args.addons:
        # Cluster DNS as an addon Deployment behind kube-dns (cli/local_addons.py).
        local_addons.start_dns(url, creds, args.service_cluster_ip_range,
                               local_dns_image.DNS_IMAGE, say)
    local_addons.start_others(local_addons.AddonContext(
        url=url, creds=creds, args=args, containers=containers, say=say), args.addons)


def local_admission_plugins(containers):
    """The API server's admission plugins on a local cluster (kube-apiserver's usual set).

    Pods of a containers cluster must meet the Pod Security baseline unless their
    namespace's label says otherwise; the process runtime's pods share the host's
    network (host ports), so PodSecurity stays off there.
    """
    return ["LimitRanger", "ServiceAccount", *(["PodSecurity"] if containers else []),
            "DefaultStorageClass", "StorageObjectInUseProtection",
            "PersistentVolumeClaimResize", "ResourceQuota"]


def start_userspace_proxy(cluster, creds, node_ips, started):
    """The process runtime's service proxy: every ClusterIP and NodePort on this machine."""
    cluster.start("proxy", python_module("agent.proxy", "--kubeconfig",
                                         creds.kubeconfig("proxy"),
                                         "--node-ips", ",".join(node_ips)), "proxy")
    started.append("proxy")
    say("service proxy started")


def start_node_proxies(cluster, args, creds, started):
    """A containers cluster: kube-proxy's nftables mode in each node's namespace."""
    for node, info in cluster.state.get("containerd", {}).items():
        name = f"proxy-{node}"
        cluster.start(name, python_module(
            "agent.proxy", "--mode", "nftables", "--kubeconfig", creds.kubeconfig("proxy"),
            "--node-name", node, "--netns", info["netns"], "--cluster-cidr", local_containers.CLUSTER_CIDR,
            "--service-cluster-ip-range", args.service_cluster_ip_range), "proxy")
        started.append(name)
    say("service proxies (nftables, one per node namespace) started")


def uses_containers(args):
    """True for the cri runtime: asked for, or (auto) possible here; says why not."""
    reason = local_containers.unavailable_reason()
    if args.runtime == "process" or (args.runtime == "auto" and reason):
        if args.runtime == "auto":
            say(f"pods run as host processes (the process runtime): {reason}; "
                "`make run` installs what containers need")
        return False
    if reason:
        raise Failure(f"--runtime cri cannot run here: {reason}")
    return True


def start_runtimes(cluster, containers, node_names, started, timeout):
    """containerd per node for the cri runtime; {node: agent flags} ({} for process)."""
    if not containers:
        return {}
    try:
        flags = local_containers.start(cluster, node_names, say, timeout)
    except Exception as exc:
        started.extend(n for n in cluster.processes if n not in started)
        raise Failure(f"containers for the nodes: {exc}") from None
    started.extend(n for n in cluster.processes if n not in started)
    return flags


def wait_up(cluster, timeout, context=None):
    """After a restart: the API server answers and every node is Ready again."""
    url = cluster.state["apiServer"]
    wait_for(cluster, ["apiserver"],
             lambda: http_get_json(url + "/readyz", context=context) is not None,
             "the API server's /readyz", timeout)
    say(f"api server ready at {url}")
    agents = cluster.state.get("nodes", [])
    wait_for(cluster, agents, lambda: all(
        conditions.is_ready(http_get_json(f"{url}/api/v1/nodes/{n}", context=context))
        for n in agents),
        "every node to be Ready", timeout)
    say(f"{len(agents)} nodes Ready")


def finish(cluster, home):
    """Write $STEER_HOME/config and kubeconfig and tell the user what to do next."""
    url = cluster.state["apiServer"]
    kubeconfig = os.path.join(home, "kubeconfig")
    write_config(home, url, kubeconfig, cluster.dir, LocalCredentials(home))
    say("")
    say(f"Steersman is up: {len(cluster.state.get('nodes', []))} nodes, API server {url}")
    say("  steer get nodes                     # the `steer` verbs find it through "
        f"{os.path.join(home, 'config')}")
    say(f"  export KUBECONFIG={kubeconfig}   # then kubectl works too")
    say("  steer status                        # processes and nodes")
    say(f"  {url}/ui/   # the web dashboard (a token from `kubectl create token NAME`)")
    say(f"  steer down                          # stop it (logs in {cluster.logs_dir})")


def supervise(cluster, args):
    """Start the supervisor (cli/supervisor.py) of the kinds ``--supervise`` names."""
    kinds = [k for k in args.supervise.split(",") if k]
    if kinds and not supervisor.running_pid(cluster):
        pid = supervisor.start(cluster, kinds)
        say(f"supervisor (pid {pid}) restarts {', '.join(kinds)} processes that exit")


def write_config(home, url, kubeconfig, cluster_dir, creds=None):
    """Write $STEER_HOME/config and the admin's kubeconfig, both 0600 in a 0700 directory.

    With ``creds`` (a LocalCredentials) the kubeconfig carries the cluster CA and the
    admin's client certificate and key, embedded, so kubectl works unchanged.
    """
    config = {"apiServer": url, "token": "", "kubeconfig": kubeconfig, "clusterDir": cluster_dir}
    pki.write_private(os.path.join(home, "config"), yaml.safe_dump(config, sort_keys=False))
    if creds is not None:
        creds.write_admin_kubeconfig(kubeconfig, url)
        return
    kube = kubeconfig_document(url, "steersman", {}, {}, namespace="default")
    pki.write_private(kubeconfig, yaml.safe_dump(kube, sort_keys=False))


# -- steer down -----------------------------------------------------------------------
def cmd_down(args):
    home = steer_home()
    cluster = LocalCluster(home)
    if not cluster.exists:
        say(f"no local cluster recorded in {cluster.dir}")
        if args.purge:
            purge(cluster, home)
        return 0
    # The supervisor first, or it would restart what is stopped; it stops what it
    # supervises itself (the loop below then finds those stopped).
    pid = supervisor.stop(cluster, timeout=args.timeout)
    if pid:
        say(f"stopped the supervisor (pid {pid}) and the processes it supervised")
    kinds = {}
    for name, proc in cluster.processes.items():
        kinds.setdefault(proc["kind"], []).append(name)
    # Agents first (a stopped agent leaves its containers running, so nothing restarts
    # them), then the containers, then the rest in the reverse order of `steer up`.
    order = [kinds.get("agent", []), None, kinds.get("proxy", []),
             kinds.get("controller-manager", []) + kinds.get("scheduler", []),
             kinds.get("apiserver", []), kinds.get("store", [])]
    for names in order:
        if names is None:
            count = cluster.stop_containers(timeout=args.timeout)
            if count:
                say(f"stopped {count} containers")
            nodes = local_containers.stop(cluster, say, timeout=args.timeout)
            if nodes:
                say(f"stopped containerd and the pods of {nodes} nodes, and the registry")
            continue
        running = {n: cluster.processes[n]["pid"] for n in names if cluster.is_running(n)}
        if not running:
            continue
        killed = cluster.stop(list(running), timeout=args.timeout)
        for name, pid in running.items():
            how = " (SIGKILL)" if pid in killed else ""
            say(f"stopped {name} (pid {pid}){how}")
    if args.purge:
        purge(cluster, home)
    else:
        say(f"data kept in {cluster.dir}: `steer up` restarts it, `steer down --purge` "
            "deletes it")
    return 0


def purge(cluster, home):
    for record in glob.glob(os.path.join(cluster.dir, "agents", "*", "tmpfs-dir")):
        remove_agent_tmpfs(record)
    shutil.rmtree(cluster.dir, ignore_errors=True)
    shutil.rmtree(LocalCredentials(home).dir, ignore_errors=True)     # its CA and certificates
    for name in ("config", "kubeconfig"):
        try:
            os.remove(os.path.join(home, name))
        except FileNotFoundError:
            pass
    say(f"removed {cluster.dir}")


def remove_agent_tmpfs(record):
    """Delete the tmpfs directory an agent recorded (its pods' secrets), if it is one."""
    try:
        with open(record) as f:
            path = f.read().strip()
    except OSError:
        return
    # Only what an agent makes (agent/paths.py tmpfs_dir), never a path a file names.
    if os.path.dirname(path) == "/dev/shm" and os.path.basename(path).startswith("steer-agent-"):
        shutil.rmtree(path, ignore_errors=True)


# -- steer node-shell -----------------------------------------------------------------
def cmd_node_shell(args):
    """Exec ``command`` inside the node's network namespace (as `docker exec` into kind)."""
    cluster = LocalCluster(steer_home())
    nodes = cluster.state.get("containerd") or {}
    if args.node not in nodes:
        known = ", ".join(sorted(nodes)) or "none: its pods are host processes"
        raise CommandError(f"no local node {args.node!r} with a network namespace "
                           f"(nodes of the local cluster: {known})")
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    command = command or [os.environ.get("SHELL") or "/bin/sh"]
    os.execvp("nsenter", ["nsenter", f"--net={nodes[args.node]['netns']}", "--", *command])


# -- steer status ---------------------------------------------------------------------
def cmd_status(args):
    cluster = LocalCluster(steer_home())
    if not cluster.exists:
        raise CommandError(f"no local cluster in {cluster.dir}: run `steer up`")
    rows = [("PROCESS", "PID", "STATUS", "RESTARTS", "LAST EXIT")]
    supervised = supervisor.read_state(cluster).get("programs", {})
    for name, proc in cluster.processes.items():
        running = cluster.is_running(name)
        seen = supervised.get(name, {})
        rows.append((name, proc["pid"] if running else "-", "running" if running else "down",
                     seen.get("restarts", "-"), seen.get("last_exit", "")))
    table(rows)
    pid = supervisor.running_pid(cluster)
    say(f"supervisor: {f'pid {pid}' if pid else 'not running (`steer up` starts it)'}")
    containers = len(cluster.running_containers())
    say(f"\ncontainers running: {containers + local_containers.running(cluster)}")
    url = cluster.state.get("apiServer")
    context = _admin_context(steer_home()) if url and url.startswith("https:") else None
    ready = None
    # A busy machine can stall one answer (the store's leader mid-election, say):
    # look a few times over about 6 s before calling the API server down.
    for attempt in range(3) if url else ():
        ready = http_get_json(f"{url}/readyz", timeout=2.0 + attempt, context=context)
        if ready is not None:
            break
    say(f"api server {url}: {'ready' if ready is not None else 'not answering'}")
    if ready is None:
        return 1
    nodes = http_get_json(f"{url}/api/v1/nodes", context=context) or {}
    rows = [("NODE", "STATUS", "ADDRESS")]
    for node in nodes.get("items", []):
        addresses = node.get("status", {}).get("addresses") or [{}]
        rows.append((node["metadata"]["name"], "Ready" if conditions.is_ready(node) else "NotReady",
                     addresses[0].get("address", "")))
    say("")
    table(rows)
    return 0 if all(cluster.is_running(n) for n in cluster.processes) else 1


def _admin_context(home):
    try:
        return LocalCredentials(home).admin_context()
    except (OSError, ValueError):       # credentials gone: report "not answering"
        return None


def table(rows):
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    sys.stdout.flush()
