"""Build a pod's CRI PodSandboxConfig from the pod, as kubelet's generatePodSandboxConfig.

Pure: the pod, the node's facts and the pod's directories go in, a protobuf
message comes out. The sandbox holds what the pod's containers share: its
network namespace (CNI gives it the pod IP; hostNetwork pods use the node's),
hostname, DNS settings, host ports, the cgroup parent and the log directory
the containers' log files go under.
"""

from agent.runtime.cri import api_pb2
from agent.runtime.cri import labels as labelmod

PROTOCOLS = {"TCP": api_pb2.TCP, "UDP": api_pb2.UDP, "SCTP": api_pb2.SCTP}
#: kubelet's limits on the resolv.conf it hands a pod (as glibc reads it).
MAX_SERVERS, MAX_SEARCHES = 3, 32
#: The option a resolv.conf without resolvers carries (the glibc default, written out).
NO_DNS_OPTION = "ndots:1"


def read_resolv_conf(path):
    """(servers, searches, options) of a resolv.conf; empty when ``path`` is "" or unreadable.

    An empty path means "no host DNS" (kubelet's --resolv-conf=""): pods of a
    test cluster must not be handed resolvers outside the machine.
    """
    servers, searches, options = [], [], []
    if not path:
        return servers, searches, options
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return servers, searches, options
    for line in lines:
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            servers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            searches = fields[1:]
        elif fields[0] == "options":
            options.extend(fields[1:])
    return servers, searches, options


def dns_type(pod, cluster_dns):
    """"cluster", "host" or "none": where a pod's resolvers come from (kubelet's getPodDNSType).

    ClusterFirst on the host network means the node's resolvers (only
    ClusterFirstWithHostNet keeps cluster DNS there); a cluster-DNS pod on a node
    without --cluster-dns gets the node's, as kubelet falls back.
    """
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "None":
        return "none"
    wants_cluster = policy == "ClusterFirstWithHostNet" or (
        policy == "ClusterFirst" and not spec.get("hostNetwork"))
    return "cluster" if wants_cluster and cluster_dns else "host"


def cluster_searches(namespace, cluster_domain, host_searches):
    """<ns>.svc.<domain>, svc.<domain>, <domain>, then the node's (no duplicates)."""
    if not cluster_domain:
        return list(host_searches)
    ours = [f"{namespace}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain]
    return _unique(ours + list(host_searches))


def dns_config(pod, host_dns, cluster_dns=(), cluster_domain=""):
    """The pod's DNSConfig per dnsPolicy, then spec.dnsConfig merged in (as kubelet's GetPodDNS).

    cluster: the cluster DNS servers, the cluster search path, ndots:5; host: the
    node's resolv.conf (``host_dns``); none: only spec.dnsConfig.
    """
    spec = pod.get("spec") or {}
    kind = dns_type(pod, cluster_dns)
    if kind == "cluster":
        namespace = (pod.get("metadata") or {}).get("namespace") or "default"
        servers = list(cluster_dns)
        searches = cluster_searches(namespace, cluster_domain, host_dns[1])
        options = ["ndots:5"]
    elif kind == "host":
        servers, searches, options = list(host_dns[0]), list(host_dns[1]), list(host_dns[2])
    else:
        servers, searches, options = [], [], []
    extra = spec.get("dnsConfig") or {}
    servers = _unique(servers + list(extra.get("nameservers") or ()))
    searches = _unique(searches + list(extra.get("searches") or ()))
    for option in extra.get("options") or ():
        name = option.get("name")
        if not name:
            continue
        options = [o for o in options if o.split(":", 1)[0] != name]
        options.append(f"{name}:{option['value']}" if option.get("value") else name)
    if not (servers or searches or options):
        # containerd copies the host's resolv.conf when handed nothing; an explicit file
        # without nameservers keeps the pod off resolvers it was not given.
        options = [NO_DNS_OPTION]
    return api_pb2.DNSConfig(servers=servers[:MAX_SERVERS], searches=searches[:MAX_SEARCHES],
                             options=options)


def _unique(items):
    return list(dict.fromkeys(items))


def port_mappings(pod):
    """One PortMapping per containerPort with a hostPort (portmap ignores the others)."""
    out = []
    spec = pod.get("spec") or {}
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for port in container.get("ports") or ():
            if not port.get("hostPort"):
                continue
            out.append(api_pb2.PortMapping(
                protocol=PROTOCOLS.get(port.get("protocol") or "TCP", api_pb2.TCP),
                container_port=int(port["containerPort"]), host_port=int(port["hostPort"]),
                host_ip=port.get("hostIP") or ""))
    return out


def namespace_options(pod):
    """Network, PID and IPC modes: the pod's own unless hostNetwork/hostPID/hostIPC."""
    spec = pod.get("spec") or {}
    pid = api_pb2.NODE if spec.get("hostPID") else \
        api_pb2.POD if spec.get("shareProcessNamespace") else api_pb2.CONTAINER
    return api_pb2.NamespaceOption(
        network=api_pb2.NODE if spec.get("hostNetwork") else api_pb2.POD, pid=pid,
        ipc=api_pb2.NODE if spec.get("hostIPC") else api_pb2.POD)


def any_privileged(pod):
    """True if a container asks to be privileged (the sandbox must then allow it)."""
    spec = pod.get("spec") or {}
    return any(((c.get("securityContext") or {}).get("privileged"))
               for c in (spec.get("initContainers") or []) + (spec.get("containers") or []))


def supplemental_groups(pod):
    """The pod's supplementalGroups, then its fsGroup (which owns its volumes)."""
    context = (pod.get("spec") or {}).get("securityContext") or {}
    groups = [int(g) for g in context.get("supplementalGroups") or ()]
    if context.get("fsGroup") is not None and int(context["fsGroup"]) not in groups:
        groups.append(int(context["fsGroup"]))
    return groups


def security_context(pod):
    context = (pod.get("spec") or {}).get("securityContext") or {}
    out = api_pb2.LinuxSandboxSecurityContext(
        namespace_options=namespace_options(pod), privileged=any_privileged(pod),
        supplemental_groups=supplemental_groups(pod))
    if context.get("runAsUser") is not None:
        out.run_as_user.value = int(context["runAsUser"])
    if context.get("runAsGroup") is not None:
        out.run_as_group.value = int(context["runAsGroup"])
    return out


def hostname(pod):
    """spec.hostname or the pod's name (cut to a DNS label); the node's with hostNetwork."""
    spec = pod.get("spec") or {}
    if spec.get("hostNetwork"):
        return ""
    return (spec.get("hostname") or pod["metadata"]["name"])[:63].rstrip("-.")


def build(pod, *, node, attempt, log_directory, cgroup_parent, host_dns=((), (), ()),
          cluster_dns=(), cluster_domain=""):
    """The PodSandboxConfig of ``pod``'s sandbox number ``attempt`` on ``node``."""
    meta = pod["metadata"]
    spec = pod.get("spec") or {}
    sysctls = {s["name"]: str(s.get("value", ""))
               for s in (spec.get("securityContext") or {}).get("sysctls") or () if s.get("name")}
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=meta["name"], uid=meta["uid"],
                                            namespace=meta["namespace"], attempt=attempt),
        hostname=hostname(pod), log_directory=log_directory,
        dns_config=dns_config(pod, host_dns, cluster_dns, cluster_domain),
        port_mappings=port_mappings(pod),
        labels=labelmod.pod_labels(pod, node),
        annotations={k: v for k, v in (meta.get("annotations") or {}).items()
                     if isinstance(v, str)},
        linux=api_pb2.LinuxPodSandboxConfig(cgroup_parent=cgroup_parent,
                                            security_context=security_context(pod),
                                            sysctls=sysctls))
