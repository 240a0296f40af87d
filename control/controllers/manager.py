"""Run ``steer-controller-manager``: the controllers, behind leader election by default.

Only the holder of the Lease kube-system/steer-controller-manager runs
controllers. Like kube-controller-manager, a copy starts its informers only once
it leads, and exits non-zero when it loses the Lease, so that its supervisor
restarts it as a clean standby (no half-stopped controllers left behind).
"""

import argparse
import logging
import re
import sys
import threading

from control.client import Informer, namespace_index
from control.client.component import (
    add_common_flags,
    configure_logging,
    rest_client,
    run_leader_elected,
)
from control.client.events import EventRecorder
from control.client.secure_serving import add_secure_serving_flags, start_secure_serving
from control.controllers import (
    csrapproving,
    csrsigning,
    endpoints,
    endpointslice,
    endpointslicing,
    garbagecollector,
    gcdiscovery,
    namespace,
    nodeipam,
    nodelifecycle,
    podgc,
    resourcequota,
    serviceaccounts,
)
from control.controllers import job as jobctl
from control.controllers.controller import Controller
from control.controllers.cronjob import CronJobController
from control.controllers.daemonset import DaemonSetController
from control.controllers.deployment import DeploymentController
from control.controllers.disruption import PDBS, DisruptionController
from control.controllers.nodelifecycle import NodeLifecycleController
from control.controllers.nodemetrics import register_node_conditions
from control.controllers.persistentvolume import localpath
from control.controllers.persistentvolume.controller import PersistentVolumeController
from control.controllers.podautoscaler import options as hpa_options
from control.controllers.replicaset import ReplicaSetController
from control.controllers.statefulset import StatefulSetController
from control.controllers.taintmanager import TaintEvictionController
from control.controllers.ttlafterfinished import TTLAfterFinishedController
from control.objects import kinds

log = logging.getLogger("steer-controller-manager")

LEASE_NAMESPACE, LEASE_NAME = "kube-system", "steer-controller-manager"


class SharedInformers:
    """One informer per resource, shared by every controller (client-go's factory)."""

    def __init__(self, rest):
        self.rest = rest
        self._informers = {}

    def informer(self, resource):
        """The informer of ``resource``, indexed by namespace; created on first use."""
        if resource not in self._informers:
            informer = Informer(self.rest, resource)
            informer.add_index("namespace", namespace_index)
            self._informers[resource] = informer
        return self._informers[resource]

    def start(self):
        for informer in self._informers.values():
            informer.start()

    def stop(self):
        for informer in self._informers.values():
            informer.stop()


def _replicaset(rest, informers, options):
    return ReplicaSetController(rest, informers.informer(kinds.REPLICASETS),
                                informers.informer(kinds.PODS))


def _daemonset(rest, informers, options):
    return DaemonSetController(rest, informers.informer(kinds.DAEMONSETS),
                               informers.informer(kinds.PODS), informers.informer(kinds.NODES),
                               informers.informer(kinds.CONTROLLERREVISIONS))


def _statefulset(rest, informers, options):
    return StatefulSetController(rest, informers.informer(kinds.STATEFULSETS),
                                 informers.informer(kinds.PODS),
                                 informers.informer(kinds.CONTROLLERREVISIONS))


def _option(options, name, default):
    """A controller flag's value, or ``default`` when there are no options (unit tests)."""
    return getattr(options, name, default) if options is not None else default


def _pods_by_node(informers):
    """The pod informer, also indexed by spec.nodeName (for the node controllers)."""
    pods = informers.informer(kinds.PODS)
    pods.add_index("nodeName", nodelifecycle.node_name_index)
    return pods


def _nodelifecycle(rest, informers, options):
    return NodeLifecycleController(
        rest, informers.informer(kinds.NODES), informers.informer(kinds.LEASES),
        _pods_by_node(informers),
        recorder=EventRecorder(rest, "node-controller"),
        grace_period=_option(options, "node_monitor_grace_period", nodelifecycle.GRACE_PERIOD),
        startup_grace_period=_option(options, "node_startup_grace_period",
                                     nodelifecycle.STARTUP_GRACE_PERIOD),
        monitor_period=_option(options, "node_monitor_period", nodelifecycle.MONITOR_PERIOD),
        eviction_rate=_option(options, "node_eviction_rate", nodelifecycle.EVICTION_RATE),
        secondary_rate=_option(options, "secondary_node_eviction_rate",
                               nodelifecycle.SECONDARY_EVICTION_RATE),
        unhealthy_threshold=_option(options, "unhealthy_zone_threshold",
                                    nodelifecycle.UNHEALTHY_ZONE_THRESHOLD),
        large_cluster_threshold=_option(options, "large_cluster_size_threshold",
                                        nodelifecycle.LARGE_CLUSTER_THRESHOLD))


def _taint_eviction(rest, informers, options):
    return TaintEvictionController(rest, informers.informer(kinds.NODES), _pods_by_node(informers),
                                   recorder=EventRecorder(rest, "taint-eviction-controller"))


def _nodeipam(rest, informers, options):
    if not _option(options, "allocate_node_cidrs", True):
        return Controller("nodeipam")     # as kube-controller-manager: on, doing nothing
    return nodeipam.NodeIpamController(
        rest, informers.informer(kinds.NODES),
        _option(options, "cluster_cidr", nodeipam.CLUSTER_CIDR),
        _option(options, "node_cidr_mask_size", nodeipam.NODE_CIDR_MASK_SIZE),
        recorder=EventRecorder(rest, "node-ipam-controller"))
def _job(rest, informers, options):
    base = getattr(options, "job_pod_failure_backoff", None) or jobctl.DEFAULT_BACKOFF
    return jobctl.JobController(rest, informers.informer(kinds.JOBS),
                                informers.informer(kinds.PODS),
                                recorder=EventRecorder(rest, "job-controller"),
                                backoff_base=base)


def _cronjob(rest, informers, options):
    return CronJobController(rest, informers.informer(kinds.CRONJOBS),
                             informers.informer(kinds.JOBS),
                             recorder=EventRecorder(rest, "cronjob-controller"))


def _disruption(rest, informers, options):
    return DisruptionController(
        rest, informers.informer(PDBS), informers.informer(kinds.PODS),
        informers.informer(kinds.REPLICASETS), informers.informer(kinds.DEPLOYMENTS),
        informers.informer(kinds.STATEFULSETS), recorder=EventRecorder(rest, "controllermanager"))


def _ttl_after_finished(rest, informers, options):
    return TTLAfterFinishedController(rest, informers.informer(kinds.JOBS))


def _endpoint(rest, informers, options):
    return endpoints.EndpointsController(rest, informers.informer(kinds.SERVICES),
                                         informers.informer(kinds.PODS),
                                         informers.informer(kinds.ENDPOINTS))


def _endpointslice(rest, informers, options):
    return endpointslice.EndpointSliceController(
        rest, informers.informer(kinds.SERVICES), informers.informer(kinds.PODS),
        informers.informer(kinds.ENDPOINTSLICES), informers.informer(kinds.NODES),
        max_endpoints_per_slice=_option(options, "max_endpoints_per_slice",
                                        endpointslicing.MAX_ENDPOINTS_PER_SLICE))


def _namespace(rest, informers, options):
    return namespace.NamespaceController(rest, informers.informer(kinds.NAMESPACES))


def _garbagecollector(rest, informers, options):
    # Every served resource (but Events): any object may own or be owned by any other.
    return garbagecollector.GarbageCollector(
        rest, [informers.informer(r) for r in garbagecollector.watched_resources()],
        discovery_period=_option(options, "gc_discovery_period", gcdiscovery.DEFAULT_PERIOD))


def _podgc(rest, informers, options):
    return podgc.PodGCController(
        rest, informers.informer(kinds.PODS), informers.informer(kinds.NODES),
        threshold=_option(options, "terminated_pod_gc_threshold", podgc.DEFAULT_THRESHOLD),
        period=_option(options, "podgc_check_period", podgc.CHECK_PERIOD),
        quarantine=_option(options, "podgc_quarantine", podgc.QUARANTINE))
def _deployment(rest, informers, options):
    return DeploymentController(rest, informers.informer(kinds.DEPLOYMENTS),
                                informers.informer(kinds.REPLICASETS),
                                informers.informer(kinds.PODS))


def _serviceaccount(rest, informers, options):
    return serviceaccounts.ServiceAccountsController(
        rest, informers.informer(kinds.NAMESPACES), informers.informer(kinds.SERVICEACCOUNTS))


def _root_ca_cert_publisher(rest, informers, options):
    root_ca = serviceaccounts.read_root_ca(_option(options, "root_ca_file", None))
    if not root_ca:
        return Controller("root-ca-cert-publisher")     # no CA to publish: on, doing nothing
    return serviceaccounts.RootCACertPublisher(
        rest, informers.informer(kinds.NAMESPACES), informers.informer(kinds.CONFIGMAPS),
        root_ca)


def _csrsigning(rest, informers, options):
    cert_file = _option(options, "cluster_signing_cert_file", None)
    key_file = _option(options, "cluster_signing_key_file", None)
    if not cert_file or not key_file:
        log.info("msg=csrsigning signs nothing: no --cluster-signing-cert-file/"
                 "--cluster-signing-key-file")
        return Controller("csrsigning")     # no CA: on, doing nothing
    try:
        ca = csrsigning.SigningCA(cert_file, key_file)
    except (csrsigning.SigningKeyError, ValueError) as exc:
        raise SystemExit(f"steer-controller-manager: csrsigning: {exc}") from None
    return csrsigning.CSRSigningController(
        rest, informers.informer(kinds.CERTIFICATESIGNINGREQUESTS), ca,
        duration=_option(options, "cluster_signing_duration", csrsigning.DEFAULT_DURATION))


def _persistentvolume(rest, informers, options):
    return PersistentVolumeController(
        rest, informers.informer(kinds.lookup("", "v1", "persistentvolumeclaims")),
        informers.informer(kinds.lookup("", "v1", "persistentvolumes")),
        informers.informer(kinds.lookup("storage.k8s.io", "v1", "storageclasses")),
        informers.informer(kinds.PODS), informers.informer(kinds.NODES),
        recorder=EventRecorder(rest, "persistentvolume-controller"),
        helper_image=_option(options, "local_path_helper_image", localpath.HELPER_IMAGE))


def _csrapproving(rest, informers, options):
    return csrapproving.CSRApprovingController(
        rest, informers.informer(kinds.CERTIFICATESIGNINGREQUESTS),
        informers.informer(kinds.NODES))


#: Every controller this manager can run, by its --controllers name: a factory
#: (rest client, SharedInformers, parsed options) -> Controller. A controller's own
#: flags are added in parse_args and read from ``options``.
CONTROLLERS = {
    "deployment": _deployment,
    "replicaset": _replicaset,
    "daemonset": _daemonset,
    "statefulset": _statefulset,
    "nodelifecycle": _nodelifecycle,
    "taint-eviction-controller": _taint_eviction,
    "nodeipam": _nodeipam,
    "job": _job,
    "cronjob": _cronjob,
    "ttl-after-finished": _ttl_after_finished,
    "disruption": _disruption,
    "endpoint": _endpoint,
    "endpointslice-controller": _endpointslice,
    "namespace": _namespace,
    "garbagecollector": _garbagecollector,
    "podgc": _podgc,
    "serviceaccount": _serviceaccount,
    "root-ca-cert-publisher": _root_ca_cert_publisher,
    "csrsigning": _csrsigning,
    "csrapproving": _csrapproving,
    "horizontalpodautoscaling": hpa_options.controller_factory,
    "persistentvolume-binder": _persistentvolume,
    "resourcequota": resourcequota.controller_factory,
}


def duration(text):
    """Seconds from a plain number or a Go duration ("4s", "40s", "5m", "1m30s", "500ms")."""
    try:
        return float(text)
    except ValueError:
        pass
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6,
             "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 40s, 5m, 1m30s)")
    return sum(float(n) * units[u] for n, u in parts)


def add_node_flags(parser):
    """kube-controller-manager's flags for the node lifecycle, taint eviction and IPAM."""
    add = parser.add_argument
    add("--node-monitor-grace-period", type=duration, default=nodelifecycle.GRACE_PERIOD,
        help="how long a node may go without renewing its Lease before it is Unknown (40s)")
    add("--node-startup-grace-period", type=duration,
        default=nodelifecycle.STARTUP_GRACE_PERIOD,
        help="the same, for a node that never posted Ready (60s)")
    add("--node-monitor-period", type=duration, default=nodelifecycle.MONITOR_PERIOD,
        help="how often node health is checked (5s)")
    add("--node-eviction-rate", type=float, default=nodelifecycle.EVICTION_RATE,
        help="nodes per second given NoExecute taints in a healthy zone (0.1)")
    add("--secondary-node-eviction-rate", type=float,
        default=nodelifecycle.SECONDARY_EVICTION_RATE,
        help="the same in a partly disrupted large zone (0.01)")
    add("--unhealthy-zone-threshold", type=float,
        default=nodelifecycle.UNHEALTHY_ZONE_THRESHOLD,
        help="share of not-Ready nodes (at least 3) that makes a zone partly disrupted")
    add("--large-cluster-size-threshold", type=int,
        default=nodelifecycle.LARGE_CLUSTER_THRESHOLD,
        help="zones with more nodes than this keep tainting at the secondary rate")
    add("--allocate-node-cidrs", action=argparse.BooleanOptionalAction, default=True,
        help="give every node a spec.podCIDR from --cluster-cidr (default on)")
    add("--cluster-cidr", default=nodeipam.CLUSTER_CIDR, help="the pods' address range")
    add("--node-cidr-mask-size", type=int, default=nodeipam.NODE_CIDR_MASK_SIZE,
        help="prefix length of each node's pod subnet (24)")


def add_signing_flags(parser):
    """kube-controller-manager's flags of the certificate signer (csrsigning)."""
    add = parser.add_argument
    add("--cluster-signing-cert-file", metavar="FILE",
        help="the cluster CA certificate (PEM) that signs approved kubelet and client "
             "certificate requests; read again when it changes")
    add("--cluster-signing-key-file", metavar="FILE",
        help="its private key (PEM, mode 0600)")
    add("--cluster-signing-duration", type=duration, default=csrsigning.DEFAULT_DURATION,
        help="the longest life of a signed certificate (default 8760h: a year); a request's "
             "spec.expirationSeconds may ask for less")


def parse_args(argv=None):
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="steer-controller-manager",
                                     description=__doc__.splitlines()[0])
    add_common_flags(parser, "controllers")
    parser.add_argument("--controllers", default=",".join(CONTROLLERS),
                        help=f"comma-separated controllers to run (default all: "
                             f"{','.join(CONTROLLERS)})")
    parser.add_argument("--workers", type=int, default=5,
                        help="worker threads per controller (--concurrent-*-syncs)")
    add_node_flags(parser)
    parser.add_argument("--job-pod-failure-backoff", type=float, default=jobctl.DEFAULT_BACKOFF,
                        metavar="SECONDS",
                        help="first wait before a Job re-creates pods after a pod failure; "
                             "doubles with each further failure, capped at 6 minutes "
                             f"(default {jobctl.DEFAULT_BACKOFF:g}, as Kubernetes; tests "
                             "use less)")
    parser.add_argument("--terminated-pod-gc-threshold", type=int,
                        default=podgc.DEFAULT_THRESHOLD,
                        help="finished pods kept before the oldest are deleted (0: no limit)")
    parser.add_argument("--gc-discovery-period", type=float, default=gcdiscovery.DEFAULT_PERIOD,
                        help="seconds between the garbage collector's reads of discovery, "
                             "which start monitors for new custom resources (CRDs)")
    parser.add_argument("--podgc-check-period", type=float, default=podgc.CHECK_PERIOD,
                        help="seconds between pod GC runs (Kubernetes: fixed 20)")
    parser.add_argument("--podgc-quarantine", type=float, default=podgc.QUARANTINE,
                        help="seconds a node must be missing before its pods are force-deleted "
                             "(Kubernetes: fixed 40)")
    parser.add_argument("--max-endpoints-per-slice", type=int,
                        default=endpointslicing.MAX_ENDPOINTS_PER_SLICE,
                        help="the most endpoints the EndpointSlice controller puts in one "
                             f"slice (1 to {endpointslicing.MAX_ENDPOINTS_LIMIT}; default "
                             f"{endpointslicing.MAX_ENDPOINTS_PER_SLICE})")
    parser.add_argument("--root-ca-file", metavar="FILE",
                        help="the cluster CA (PEM) published as ConfigMap kube-root-ca.crt in "
                             "every namespace, for pods' service account token volumes")
    add_signing_flags(parser)
    add_secure_serving_flags(parser, 10257)
    hpa_options.add_flags(parser)
    resourcequota.add_flags(parser)
    parser.add_argument("--local-path-helper-image", default=localpath.HELPER_IMAGE,
                        help="image of the pod that removes a deleted local-path volume's "
                             "directory on its node (needs sh and rm)")
    args = parser.parse_args(argv)
    args.controllers = [n.strip() for n in args.controllers.split(",") if n.strip()]
    if not 1 <= args.max_endpoints_per_slice <= endpointslicing.MAX_ENDPOINTS_LIMIT:
        parser.error(f"--max-endpoints-per-slice must be between 1 and "
                     f"{endpointslicing.MAX_ENDPOINTS_LIMIT}")
    unknown = [n for n in args.controllers if n not in CONTROLLERS]
    if unknown:
        parser.error(f"unknown controllers: {', '.join(unknown)} "
                     f"(available: {', '.join(CONTROLLERS)})")
    return args


class Manager:
    """Build the chosen controllers over shared informers; run them until stopped."""

    def __init__(self, rest, names, workers, options=None):
        self.informers = SharedInformers(rest)
        self.controllers = [CONTROLLERS[name](rest, self.informers, options) for name in names]
        self.workers = workers
        self.stop_event = threading.Event()
        self._threads = []

    def start(self):
        """Start informers and one thread per controller; return at once."""
        self.informers.start()
        for controller in self.controllers:
            thread = threading.Thread(target=controller.run, args=(self.workers, self.stop_event),
                                      name=f"controller-{controller.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self):
        self.stop_event.set()
        for thread in self._threads:
            thread.join(10)
        self.informers.stop()


def main(argv=None):
    """Run until SIGTERM/SIGINT, or until leadership is lost; return the exit status."""
    args = parse_args(argv)
    configure_logging(args.log_level)
    rest = rest_client(args)
    manager = Manager(rest, args.controllers, args.workers, args)
    register_node_conditions(manager.informers.informer(kinds.NODES))
    secure = start_secure_serving(args, rest)
    try:
        return run_leader_elected(rest, args, LEASE_NAME, manager.start,
                                  manager.stop_event.set, lease_namespace=LEASE_NAMESPACE)
    finally:
        manager.stop()
        if secure is not None:
            secure.stop()


if __name__ == "__main__":
    sys.exit(main())
