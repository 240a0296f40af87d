"""Which fields of an object Steersman acts on, and which it only stores.

Every field of the Kubernetes schema is accepted, stored and returned
unchanged, but Steersman's scheduler, controllers and agent act on a subset.
The API server names the rest in a ``Warning`` header so a user knows.

Support is an allow-list of path patterns per kind, in the path syntax of
validation.py with ``[]`` for "any element of this list":
``spec.template.spec.containers[].livenessProbe.httpGet``. A pattern covers
its whole subtree. When a feature lands, add its pattern here.

``*_VALUES`` tables allow a field only with certain values: the values
Steersman implements, or the defaults the server itself fills in
(defaults.py), which every object carries and which ask for nothing special.

A field counts as set unless it is null or empty (``""``, ``{}``, ``[]``):
defaulting adds ``securityContext: {}`` to every pod spec. Only the shallowest
unsupported field is named (``...securityContext``, not each of its leaves).
Status is never warned about: it is written by Steersman's own components.
"""

# -- the pod spec (Pod, and the template of every workload) ------------------------

#: What a probe may use: the handlers and timings the agent implements.
_PROBE = ("exec", "httpGet", "tcpSocket", "initialDelaySeconds", "timeoutSeconds",
          "periodSeconds", "successThreshold", "failureThreshold")

#: Container fields, relative to one container (init containers alike).
_CONTAINER = (
    "name", "image", "command", "args",
    "env[].name", "env[].value",
    "env[].valueFrom.configMapKeyRef", "env[].valueFrom.secretKeyRef",
    "env[].valueFrom.fieldRef",
    # containerPorts: Services' named targetPorts; host ports for the scheduler.
    "ports[].name", "ports[].containerPort", "ports[].hostPort",
    # requests for the scheduler, limits enforced by the agent's cgroups.
    "resources.limits", "resources.requests",
    "volumeMounts[].name", "volumeMounts[].mountPath", "volumeMounts[].readOnly",
    *(f"{probe}.{field}" for probe in ("livenessProbe", "readinessProbe", "startupProbe")
      for field in _PROBE),
)

_CONTAINER_VALUES = {
    # Defaults: the pull policy follows the image tag; the runtime pulls as it must.
    "imagePullPolicy": ("Always", "IfNotPresent"),
    "terminationMessagePath": ("/dev/termination-log",),
    "terminationMessagePolicy": ("File",),
    # The service proxy forwards TCP only (UDP is not required yet).
    "ports[].protocol": ("TCP",),
}

_POD_SPEC_FIELDS = (
    # The scheduler's filters, and the binding it writes.
    "nodeName", "nodeSelector",
    "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution",
    "tolerations",
    # The agent.
    "restartPolicy", "terminationGracePeriodSeconds",
    "volumes[].name", "volumes[].emptyDir", "volumes[].configMap", "volumes[].secret",
    "volumes[].hostPath",
)

_POD_SPEC_DEFAULTS = {
    "dnsPolicy": ("ClusterFirst",),
    "schedulerName": ("default-scheduler",),
    # Steersman injects no service links, which is also what false asks for.
    "enableServiceLinks": (True, False),
}


def _under(prefix, patterns):
    """Return ``patterns`` (a tuple or a values dict) with ``prefix.`` put before each."""
    if isinstance(patterns, dict):
        return {f"{prefix}.{path}": values for path, values in patterns.items()}
    return tuple(f"{prefix}.{path}" for path in patterns)


_CONTAINER_LISTS = ("containers[]", "initContainers[]")
POD_SPEC = _POD_SPEC_FIELDS + tuple(
    path for containers in _CONTAINER_LISTS for path in _under(containers, _CONTAINER))
POD_SPEC_VALUES = {**_POD_SPEC_DEFAULTS, **{
    path: values for containers in _CONTAINER_LISTS
    for path, values in _under(containers, _CONTAINER_VALUES).items()}}

# -- the kinds -------------------------------------------------------------------------

#: Every kind: type and object metadata (managedFields: server-side apply).
_COMMON = (
    "apiVersion", "kind", "status",
    *_under("metadata", ("name", "generateName", "namespace", "labels", "annotations",
                         "uid", "resourceVersion", "generation", "creationTimestamp",
                         "deletionTimestamp", "deletionGracePeriodSeconds",
                         "ownerReferences", "finalizers", "selfLink", "managedFields")),
)


def _template(prefix):
    """Return the patterns of a PodTemplateSpec at ``prefix``."""
    return (f"{prefix}.metadata", *_under(f"{prefix}.spec", POD_SPEC))


def _template_values(prefix):
    """Return the allowed values of a PodTemplateSpec at ``prefix``."""
    return _under(f"{prefix}.spec", POD_SPEC_VALUES)


_JOB_SPEC = ("completions", "parallelism", "backoffLimit", "activeDeadlineSeconds",
             "selector", "suspend", "ttlSecondsAfterFinished", *_template("template"))
_JOB_SPEC_VALUES = {
    **_template_values("template"),
    "manualSelector": (False,),
    "completionMode": ("NonIndexed", "Indexed"),
    "podReplacementPolicy": ("TerminatingOrFailed", "Failed"),
}

SUPPORTED = {
    ("v1", "Pod"): (*_COMMON, *_under("spec", POD_SPEC)),
    ("apps/v1", "ReplicaSet"): (*_COMMON, "spec.replicas", "spec.selector",
                                *_template("spec.template")),
    ("apps/v1", "Deployment"): (
        *_COMMON, "spec.replicas", "spec.selector", *_template("spec.template"),
        "spec.strategy", "spec.revisionHistoryLimit", "spec.paused",
        "spec.progressDeadlineSeconds"),
    ("apps/v1", "DaemonSet"): (
        *_COMMON, "spec.selector", *_template("spec.template"), "spec.updateStrategy.type",
        "spec.updateStrategy.rollingUpdate.maxUnavailable"),
    ("apps/v1", "StatefulSet"): (*_COMMON, "spec.replicas", "spec.selector",
                                 *_template("spec.template")),
    ("batch/v1", "Job"): (*_COMMON, *_under("spec", _JOB_SPEC)),
    ("batch/v1", "CronJob"): (
        *_COMMON, "spec.schedule", "spec.timeZone", "spec.startingDeadlineSeconds",
        "spec.concurrencyPolicy", "spec.suspend", "spec.successfulJobsHistoryLimit",
        "spec.failedJobsHistoryLimit", "spec.jobTemplate.metadata",
        *_under("spec.jobTemplate.spec", _JOB_SPEC)),
    ("v1", "Service"): (
        *_COMMON, "spec.selector", "spec.clusterIP", "spec.clusterIPs", "spec.ports[].name",
        "spec.ports[].port", "spec.ports[].targetPort", "spec.ports[].nodePort"),
}

SUPPORTED_VALUES = {
    ("v1", "Pod"): _under("spec", POD_SPEC_VALUES),
    ("apps/v1", "ReplicaSet"): _template_values("spec.template"),
    ("apps/v1", "Deployment"): _template_values("spec.template"),
    ("apps/v1", "DaemonSet"): {
        **_template_values("spec.template"),
        "spec.updateStrategy.rollingUpdate.maxSurge": (0,),
        "spec.revisionHistoryLimit": (10,),
    },
    ("apps/v1", "StatefulSet"): {
        **_template_values("spec.template"),
        "spec.podManagementPolicy": ("OrderedReady",),
        "spec.updateStrategy.type": ("RollingUpdate",),
        "spec.updateStrategy.rollingUpdate.partition": (0,),
        "spec.persistentVolumeClaimRetentionPolicy.whenDeleted": ("Retain",),
        "spec.persistentVolumeClaimRetentionPolicy.whenScaled": ("Retain",),
        "spec.revisionHistoryLimit": (10,),
    },
    ("batch/v1", "Job"): _under("spec", _JOB_SPEC_VALUES),
    ("batch/v1", "CronJob"): _under("spec.jobTemplate.spec", _JOB_SPEC_VALUES),
    ("v1", "Service"): {
        "spec.type": ("ClusterIP", "NodePort"),
        "spec.ports[].protocol": ("TCP",),
        "spec.sessionAffinity": ("None",),
        # Defaults that come along with settings warned about themselves.
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds": (10800,),
        "spec.externalTrafficPolicy": ("Cluster",),
        "spec.internalTrafficPolicy": ("Cluster",),
        "spec.allocateLoadBalancerNodePorts": (True,),
        "spec.ipFamilies": (["IPv4"],),
        "spec.ipFamilyPolicy": ("SingleStack",),
    },
}


def _prefixes(patterns):
    """Return every proper prefix of the patterns: the paths to walk into."""
    prefixes = set()
    for pattern in patterns:
        for index, char in enumerate(pattern):
            if char in ".[":
                prefixes.add(pattern[:index])
            if char == "]":
                prefixes.add(pattern[:index + 1])
    return frozenset(prefixes)


_PREFIXES = {key: _prefixes((*SUPPORTED[key], *SUPPORTED_VALUES.get(key, {})))
             for key in SUPPORTED}

# -- the walk ----------------------------------------------------------------------------


def unsupported_fields(obj):
    """Return the paths of the fields set in ``obj`` that Steersman does not act on.

    Kinds outside SUPPORTED (data and bookkeeping kinds, unknown kinds) have none.
    """
    if not isinstance(obj, dict):
        return []
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key not in SUPPORTED:
        return []
    found = []
    _walk(obj, "", "", frozenset(SUPPORTED[key]), SUPPORTED_VALUES.get(key, {}),
          _PREFIXES[key], found)
    return found


def warnings_for(obj):
    """Return the API warning for each field of ``obj`` that Steersman does not act on."""
    return [f"steersman does not act on {path} yet; it is stored unchanged"
            for path in unsupported_fields(obj)]


def _is_set(value):
    """Return whether a value asks for anything: not null and not empty."""
    return value is not None and not (isinstance(value, (str, dict, list)) and not value)


def _walk(node, path, pattern, supported, values, prefixes, found):
    """Append to ``found`` the shallowest unsupported set fields of the object ``node``."""
    for key, value in node.items():
        if not _is_set(value):
            continue
        child_path = f"{path}.{key}" if path else key
        child_pattern = f"{pattern}.{key}" if pattern else key
        if child_pattern in supported:
            continue
        if child_pattern in values:
            if value not in values[child_pattern]:
                found.append(child_path)
            continue
        if child_pattern not in prefixes:
            found.append(child_path)
        elif isinstance(value, dict):
            _walk(value, child_path, child_pattern, supported, values, prefixes, found)
        elif isinstance(value, list) and f"{child_pattern}[]" in prefixes:
            for index, item in enumerate(value):
                item_path = f"{child_path}[{index}]"
                if isinstance(item, dict):
                    _walk(item, item_path, f"{child_pattern}[]", supported, values,
                          prefixes, found)
                elif _is_set(item):
                    found.append(item_path)
        else:
            found.append(child_path)
