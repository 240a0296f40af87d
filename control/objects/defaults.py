"""Fill in the defaults kube-apiserver (1.32) gives objects on create and update.

Mirrors the SetDefaults_* functions of k8s.io/kubernetes/pkg/apis/{core,apps,
batch}/v1/defaults.go, the declarative ``+default`` markers of k8s.io/api, and
the DefaultTolerationSeconds admission plugin (the node lifecycle controller
relies on its tolerations to evict pods from dead nodes).

Two notions of "unset", as in Go:

* pointer fields (``replicas``, ``defaultMode``, ...): missing or null;
* value fields (strings such as ``dnsPolicy``, the probe integers): missing,
  null or their zero value ("" or 0), which Go cannot tell apart from unset;
  so ``timeoutSeconds: 0`` becomes 1, exactly as in Kubernetes.

Everything else a client sets is kept, except where Kubernetes itself
overrides it (the namespace name label, sessionAffinityConfig without
ClientIP affinity).
"""

import copy
import re

from control.objects import taints
from control.objects.autoscaling import default_hpa
from control.objects.validation_quota import default_limit_range

#: Permissions of files projected from ConfigMaps, Secrets, ... (0644).
DEFAULT_FILE_MODE = 0o644
#: DefaultTolerationSeconds admission: how long pods stay on a failing node.
DEFAULT_TOLERATION_SECONDS = 300
NODE_FAILURE_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
#: The admission plugin's tolerationSeconds per taint; kube-apiserver's
#: --default-not-ready-toleration-seconds and --default-unreachable-toleration-seconds.
DEFAULT_NODE_FAILURE_TOLERATIONS = {taint: DEFAULT_TOLERATION_SECONDS
                                    for taint in NODE_FAILURE_TAINTS}
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
#: ServiceSpec.sessionAffinityConfig.clientIP.timeoutSeconds (3 hours).
CLIENT_IP_AFFINITY_SECONDS = 10800
#: Job.spec.backoffLimit when backoffLimitPerIndex is used (math.MaxInt32).
MAX_INT32 = 2**31 - 1

_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_PROBE_DEFAULTS = (("timeoutSeconds", 1), ("periodSeconds", 10),
                   ("successThreshold", 1), ("failureThreshold", 3))
_VOLUME_NAME_FIELD = "name"
#: Declarative (+default) defaults of the legacy in-tree volume sources.
_VOLUME_SOURCE_DEFAULTS = {
    "iscsi": (("iscsiInterface", "default"),),
    "rbd": (("pool", "rbd"), ("user", "admin"), ("keyring", "/etc/ceph/keyring")),
    "azureDisk": (("cachingMode", "ReadWrite"), ("fsType", "ext4"), ("readOnly", False),
                  ("kind", "Shared")),
    "scaleIO": (("storageMode", "ThinProvisioned"), ("fsType", "xfs")),
}


# -- entry point -------------------------------------------------------------------


def apply_defaults(obj, toleration_seconds=None):
    """Return a copy of ``obj`` with Kubernetes' defaults filled in.

    Dispatches on apiVersion and kind; kinds without defaults come back
    unchanged (but copied, so callers may always mutate the result).
    ``toleration_seconds`` maps the node-failure taints to the tolerationSeconds
    pods get (DEFAULT_NODE_FAILURE_TOLERATIONS when None).
    """
    obj = copy.deepcopy(obj)
    kind = (obj.get("apiVersion"), obj.get("kind"))
    defaulter = _DEFAULTERS.get(kind)
    if defaulter is not None and isinstance(obj.get("spec") or {}, dict):
        defaulter(obj)
        if kind == ("v1", "Pod"):
            _default_tolerations(obj["spec"], toleration_seconds or DEFAULT_NODE_FAILURE_TOLERATIONS)
    return obj


# -- helpers -------------------------------------------------------------------------


def _default(node, key, value):
    """Set a pointer field: only when it is missing or null."""
    if node.get(key) is None:
        node[key] = value


def _default_value(node, key, value):
    """Set a value field: also when it holds Go's zero value ("" or 0)."""
    current = node.get(key)
    if current is None or current == "" or (current == 0 and not isinstance(current, bool)):
        node[key] = value


def _child(node, key):
    """Return ``node[key]`` if it is an object, creating it when unset, else None."""
    if node.get(key) is None:
        node[key] = {}
    child = node[key]
    return child if isinstance(child, dict) else None


def _objects(node, key):
    """Yield the objects of the list at ``node[key]`` (nothing if unset)."""
    items = node.get(key) if isinstance(node, dict) else None
    if isinstance(items, list):
        yield from (item for item in items if isinstance(item, dict))


def _present(node, *path):
    """Return the object at ``path`` below ``node`` if every step is set, else None."""
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


# -- image references ------------------------------------------------------------------

_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_REFERENCE = re.compile(
    rf"(?:{_DOMAIN}/)?{_PATH_PART}(?:/{_PATH_PART})*"
    r"(?::(?P<tag>\w[\w.-]{0,127}))?"
    r"(?:@(?P<algorithm>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*)"
    r":(?P<hex>[0-9a-fA-F]{32,}))?")
_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


def image_tag(image):
    """Return the tag the kubelet pulls for an image reference ("" if none or invalid).

    As Kubernetes' parsers.ParseImageName: a reference with neither tag nor
    digest means ``latest``; one that does not parse has no tag.
    """
    if not isinstance(image, str) or re.fullmatch(r"[a-f0-9]{64}", image):
        return ""     # a bare image id is not a name that can be pulled by tag
    match = _IMAGE_REFERENCE.fullmatch(image)
    if match is None:
        return ""
    algorithm, hex_digest = match.group("algorithm"), match.group("hex")
    if algorithm is not None and not _valid_digest(algorithm, hex_digest):
        return ""
    if match.group("tag"):
        return match.group("tag")
    return "" if algorithm else "latest"


def _valid_digest(algorithm, hex_digest):
    """Return whether go-digest accepts a digest: a known algorithm, lower-case hex of its size."""
    return (_DIGEST_LENGTHS.get(algorithm) == len(hex_digest)
            and re.fullmatch(r"[a-f0-9]+", hex_digest) is not None)


# -- pods --------------------------------------------------------------------------------


def _container(container):
    """SetDefaults_Container and the defaults of what a container holds."""
    if not container.get("imagePullPolicy"):
        # A moving tag must be pulled every time; a fixed one only once.
        latest = image_tag(container.get("image")) == "latest"
        container["imagePullPolicy"] = "Always" if latest else "IfNotPresent"
    _default_value(container, "terminationMessagePath", "/dev/termination-log")
    _default_value(container, "terminationMessagePolicy", "File")
    for port in _objects(container, "ports"):
        _default_value(port, "protocol", "TCP")
    for probe_name in _PROBES:
        probe = _present(container, probe_name)
        if probe is not None:
            _probe(probe)
    for hook in ("postStart", "preStop"):
        _handler(_present(container, "lifecycle", hook))
    for env in _objects(container, "env"):
        _field_ref(_present(env, "valueFrom", "fieldRef"))


def _probe(probe):
    """SetDefaults_Probe, plus its handler's defaults."""
    for key, value in _PROBE_DEFAULTS:
        _default_value(probe, key, value)
    _handler(probe)
    grpc = _present(probe, "grpc")
    if grpc is not None:
        _default(grpc, "service", "")


def _handler(handler):
    """SetDefaults_HTTPGetAction for a probe or lifecycle handler (None: nothing)."""
    http_get = _present(handler, "httpGet")
    if http_get is not None:
        _default_value(http_get, "path", "/")
        _default_value(http_get, "scheme", "HTTP")


def _field_ref(field_ref):
    """SetDefaults_ObjectFieldSelector (None: nothing)."""
    if field_ref is not None:
        _default_value(field_ref, "apiVersion", "v1")


def _volume(volume):
    """SetDefaults_Volume and the defaults of its source."""
    if all(value is None for key, value in volume.items() if key != _VOLUME_NAME_FIELD):
        # A volume that names no source is a scratch directory.
        volume["emptyDir"] = {}
    for source in ("configMap", "secret", "projected"):
        _default_mode(_present(volume, source))
    downward = _present(volume, "downwardAPI")
    _default_mode(downward)
    _downward_items(downward)
    for projection in _objects(_present(volume, "projected"), "sources"):
        _downward_items(_present(projection, "downwardAPI"))
        token = _present(projection, "serviceAccountToken")
        if token is not None:
            _default(token, "expirationSeconds", 3600)
    host_path = _present(volume, "hostPath")
    if host_path is not None:
        _default(host_path, "type", "")
    claim_spec = _present(volume, "ephemeral", "volumeClaimTemplate", "spec")
    if claim_spec is not None:
        _default(claim_spec, "volumeMode", "Filesystem")
    for source, defaults in _VOLUME_SOURCE_DEFAULTS.items():
        node = _present(volume, source)
        for key, value in defaults if node is not None else ():
            _default(node, key, value)


def _default_mode(source):
    """Default a projected-files volume source's defaultMode (None: nothing)."""
    if source is not None:
        _default(source, "defaultMode", DEFAULT_FILE_MODE)


def _downward_items(downward):
    """Default the fieldRefs of a downwardAPI source's items (None: nothing)."""
    for item in _objects(downward, "items"):
        _field_ref(_present(item, "fieldRef"))


def _pod_spec(spec, restart_policy="Always"):
    """SetDefaults_PodSpec and the defaults of containers and volumes.

    ``restart_policy`` None leaves restartPolicy unset (Job templates, which
    must choose OnFailure or Never themselves).
    """
    _default_value(spec, "dnsPolicy", "ClusterFirst")
    if restart_policy is not None:
        _default_value(spec, "restartPolicy", restart_policy)
    _default(spec, "securityContext", {})
    _default(spec, "terminationGracePeriodSeconds", 30)
    _default_value(spec, "schedulerName", "default-scheduler")
    for list_name in _CONTAINER_LISTS:
        for container in _objects(spec, list_name):
            _container(container)
    for volume in _objects(spec, "volumes"):
        _volume(volume)


def _template(spec, restart_policy="Always"):
    """Default the pod spec of ``spec.template`` (a PodTemplateSpec) if it has one."""
    pod_spec = _present(spec, "template", "spec")
    if pod_spec is not None:
        _pod_spec(pod_spec, restart_policy)


def _pod(pod):
    """SetDefaults_Pod: PodSpec defaults plus those only real pods get."""
    spec = _child(pod, "spec")
    _pod_spec(spec)
    # Pods only, not templates: a template's pods get these when created.
    for list_name in ("containers", "initContainers"):
        for container in _objects(spec, list_name):
            _requests_from_limits(container)
    _default(spec, "enableServiceLinks", True)
    if spec.get("hostNetwork"):
        for list_name in ("containers", "initContainers"):
            for container in _objects(spec, list_name):
                for port in _objects(container, "ports"):
                    if port.get("containerPort") is not None:
                        _default_value(port, "hostPort", port["containerPort"])
    # The DefaultTolerationSeconds admission plugin runs in apply_defaults (it is configurable).


def _requests_from_limits(container):
    """Request what is limited, unless a request is given (Guaranteed by default)."""
    limits = _present(container, "resources", "limits")
    if not limits:
        return
    requests = _child(container["resources"], "requests")
    if requests is not None:
        for resource, quantity in limits.items():
            requests.setdefault(resource, quantity)


def _default_tolerations(spec, toleration_seconds):
    """Add the DefaultTolerationSeconds admission plugin's NoExecute tolerations."""
    tolerations = spec.get("tolerations")
    if not isinstance(tolerations, list):
        tolerations = []
    for taint in NODE_FAILURE_TAINTS:
        # The plugin looks at key and effect only (never operator or value): the
        # toleration counts as if its operator were Exists.
        if not any(taints.tolerates({**toleration, "operator": "Exists"},
                                    {"key": taint, "effect": "NoExecute"})
                   for toleration in tolerations if isinstance(toleration, dict)):
            tolerations = tolerations + [{
                "key": taint, "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": toleration_seconds[taint]}]
    spec["tolerations"] = tolerations


# -- workloads ------------------------------------------------------------------------------


def _rolling_update(strategy, max_unavailable, max_surge):
    """Default a RollingUpdate strategy (type unset or RollingUpdate)."""
    _default_value(strategy, "type", "RollingUpdate")
    if strategy["type"] != "RollingUpdate":
        return
    rolling = _child(strategy, "rollingUpdate")
    if rolling is not None:
        _default(rolling, "maxUnavailable", max_unavailable)
        _default(rolling, "maxSurge", max_surge)


def _deployment(deployment):
    """SetDefaults_Deployment."""
    spec = _child(deployment, "spec")
    _default(spec, "replicas", 1)
    strategy = _child(spec, "strategy")
    if strategy is not None:
        _rolling_update(strategy, "25%", "25%")
    _default(spec, "revisionHistoryLimit", 10)
    _default(spec, "progressDeadlineSeconds", 600)
    _template(spec)


def _replica_set(replica_set):
    """SetDefaults_ReplicaSet."""
    spec = _child(replica_set, "spec")
    _default(spec, "replicas", 1)
    _template(spec)


def _daemon_set(daemon_set):
    """SetDefaults_DaemonSet."""
    spec = _child(daemon_set, "spec")
    strategy = _child(spec, "updateStrategy")
    if strategy is not None:
        _rolling_update(strategy, 1, 0)
    _default(spec, "revisionHistoryLimit", 10)
    _template(spec)


def _stateful_set(stateful_set):
    """SetDefaults_StatefulSet."""
    spec = _child(stateful_set, "spec")
    _default_value(spec, "podManagementPolicy", "OrderedReady")
    strategy = _child(spec, "updateStrategy")
    if strategy is not None:
        _stateful_set_strategy(strategy)
    policy = _child(spec, "persistentVolumeClaimRetentionPolicy")
    if policy is not None:
        _default_value(policy, "whenDeleted", "Retain")
        _default_value(policy, "whenScaled", "Retain")
    _default(spec, "replicas", 1)
    _default(spec, "revisionHistoryLimit", 10)
    _template(spec)
    for claim in _objects(spec, "volumeClaimTemplates"):
        _claim_template(claim)


def _claim_template(claim):
    """SetDefaults_PersistentVolumeClaim(Spec), as they run on claim templates."""
    status, spec = _child(claim, "status"), _child(claim, "spec")
    if status is not None:
        _default_value(status, "phase", "Pending")
    if spec is not None:
        _default(spec, "volumeMode", "Filesystem")


def _stateful_set_strategy(strategy):
    """Default a StatefulSet's updateStrategy."""
    # Kubernetes adds rollingUpdate only along with the type: an explicit
    # RollingUpdate without it stays without (and means partition 0 anyway).
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
        _default(strategy, "rollingUpdate", {})
    rolling = strategy.get("rollingUpdate")
    if strategy["type"] == "RollingUpdate" and isinstance(rolling, dict):
        _default(rolling, "partition", 0)


def _job(job):
    """SetDefaults_Job (its pod template keeps an unset restartPolicy)."""
    spec = _child(job, "spec")
    if spec.get("completions") is None and spec.get("parallelism") is None:
        # A job that says neither runs one pod to completion.
        spec["completions"] = 1
    _default(spec, "parallelism", 1)
    _default(spec, "backoffLimit", MAX_INT32 if spec.get("backoffLimitPerIndex") is not None
             else 6)
    template_labels = _present(spec, "template", "metadata", "labels")
    metadata = _child(job, "metadata")
    if template_labels and metadata is not None and not metadata.get("labels"):
        metadata["labels"] = dict(template_labels)
    _default(spec, "completionMode", "NonIndexed")
    _default(spec, "suspend", False)
    _default(spec, "manualSelector", False)
    failure_policy = _present(spec, "podFailurePolicy")
    for rule in _objects(failure_policy, "rules"):
        for pattern in _objects(rule, "onPodConditions"):
            _default_value(pattern, "status", "True")
    # With a failure policy, pods are replaced only once fully gone.
    _default(spec, "podReplacementPolicy",
             "Failed" if failure_policy is not None else "TerminatingOrFailed")
    _template(spec, restart_policy=None)


def _cron_job(cron_job):
    """SetDefaults_CronJob (the job template gets only pod defaults, as in Kubernetes)."""
    spec = _child(cron_job, "spec")
    _default_value(spec, "concurrencyPolicy", "Allow")
    _default(spec, "suspend", False)
    _default(spec, "successfulJobsHistoryLimit", 3)
    _default(spec, "failedJobsHistoryLimit", 1)
    job_spec = _present(spec, "jobTemplate", "spec")
    if job_spec is not None:
        _template(job_spec, restart_policy=None)


# -- core objects ----------------------------------------------------------------------------


def _service(service):
    """SetDefaults_Service."""
    spec = _child(service, "spec")
    _default_value(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        # Kubernetes drops a config that has nothing to configure.
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        client_ip = _present(spec, "sessionAffinityConfig", "clientIP")
        if client_ip is None or client_ip.get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {
                "clientIP": {"timeoutSeconds": CLIENT_IP_AFFINITY_SECONDS}}
    _default_value(spec, "type", "ClusterIP")
    service_type = spec["type"]
    for port in _objects(spec, "ports"):
        _default_value(port, "protocol", "TCP")
        if port.get("port") is not None:
            _default_value(port, "targetPort", port["port"])
    if _externally_accessible(spec):
        _default_value(spec, "externalTrafficPolicy", "Cluster")
    if service_type in ("ClusterIP", "NodePort", "LoadBalancer"):
        _default(spec, "internalTrafficPolicy", "Cluster")
    if service_type == "LoadBalancer":
        _default(spec, "allocateLoadBalancerNodePorts", True)
        for ingress in _objects(_present(service, "status", "loadBalancer"), "ingress"):
            if ingress.get("ip"):
                _default(ingress, "ipMode", "VIP")


def _externally_accessible(spec):
    """Return whether traffic reaches the service from outside (apiservice.ExternallyAccessible)."""
    return (spec["type"] in ("NodePort", "LoadBalancer")
            or spec["type"] == "ClusterIP" and bool(spec.get("externalIPs")))


def _secret(secret):
    """SetDefaults_Secret."""
    _default_value(secret, "type", "Opaque")


def _endpoints(endpoints):
    """SetDefaults_Endpoints."""
    for subset in _objects(endpoints, "subsets"):
        for port in _objects(subset, "ports"):
            _default_value(port, "protocol", "TCP")


def _endpoint_slice(endpoint_slice):
    """SetDefaults_EndpointPort of discovery/v1: an unnamed port has name "", TCP by default."""
    for port in _objects(endpoint_slice, "ports"):
        _default(port, "name", "")
        _default(port, "protocol", "TCP")


def _network_policy(policy):
    """SetDefaults_NetworkPolicy(Port): Ingress (+ Egress with egress rules), TCP ports.

    podSelector is a struct without omitempty in Go: a policy sent without one is
    stored (and read back) with ``podSelector: {}``, every pod of its namespace.
    """
    spec = _child(policy, "spec")
    if spec is None:
        return
    _default(spec, "podSelector", {})
    for rules in ("ingress", "egress"):
        for rule in _objects(spec, rules):
            for port in _objects(rule, "ports"):
                _default(port, "protocol", "TCP")
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress"] + (["Egress"] if spec.get("egress") else [])


def _namespace(namespace):
    """SetDefaults_Namespace and SetDefaults_NamespaceStatus."""
    metadata = _child(namespace, "metadata")
    name = metadata.get("name") if metadata is not None else None
    if name:
        # Always the name, even over a user's value: selectors rely on it.
        labels = _child(metadata, "labels")
        if labels is not None:
            labels[NAMESPACE_NAME_LABEL] = name
    status = _present(namespace, "status")
    if status is not None:
        _default_value(status, "phase", "Active")


def _node(node):
    """SetDefaults_NodeStatus: all the capacity is allocatable unless said otherwise."""
    status = _present(node, "status")
    if status is not None and isinstance(status.get("capacity"), dict):
        _default(status, "allocatable", dict(status["capacity"]))


_DEFAULTERS = {
    ("v1", "Pod"): _pod,
    ("v1", "Service"): _service,
    ("v1", "Secret"): _secret,
    ("v1", "Endpoints"): _endpoints,
    ("discovery.k8s.io/v1", "EndpointSlice"): _endpoint_slice,
    ("networking.k8s.io/v1", "NetworkPolicy"): _network_policy,
    ("v1", "Namespace"): _namespace,
    ("v1", "Node"): _node,
    ("apps/v1", "Deployment"): _deployment,
    ("apps/v1", "ReplicaSet"): _replica_set,
    ("apps/v1", "DaemonSet"): _daemon_set,
    ("apps/v1", "StatefulSet"): _stateful_set,
    ("batch/v1", "Job"): _job,
    ("batch/v1", "CronJob"): _cron_job,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): default_hpa,
    ("v1", "LimitRange"): default_limit_range,
}
