"""Server-side printing: the ``meta.k8s.io`` ``Table`` that ``kubectl get`` asks for.

``wants_table`` reads the Accept header as kube-apiserver negotiates it;
``to_table`` turns objects into a Table with kube-apiserver's columns (the wide
form: kubectl hides priority-1 columns unless ``-o wide``); ``watch_transform``
turns watch events into one-row Tables, column definitions on the first only.
"""

from control import errors
from control.api import printers as p
from control.api import printers_autoscaling as autoscaling
from control.api import printers_core as core
from control.api import printers_networking as networking
from control.api import printers_policy as policy
from control.api import printers_quota as quota
from control.api import printers_storage as storage
from control.api.crd import printing as crd_printing
from control.api.printers import AGE, CONTAINERS, IMAGES, NAME, column
from control.objects import meta

GROUP = "meta.k8s.io"
VERSIONS = ("v1", "v1beta1")
INCLUDE_MODES = ("None", "Metadata", "Object")


def content_type(version):
    """Return the Content-Type of a Table response in ``version``."""
    return f"application/json;as=Table;v={version};g={GROUP}"


# ------------------------------------------------------------- negotiation

def _parse_media_range(text):
    """Split ``type/subtype;k=v;...`` into (type, params) with lower-cased keys."""
    parts = [part.strip() for part in text.split(";")]
    params = {}
    for part in parts[1:]:
        key, _, value = part.partition("=")
        params[key.strip().lower()] = value.strip().strip('"')
    return parts[0].lower(), params


def _quality(params):
    try:
        return float(params.get("q", "1"))
    except ValueError:
        return 0.0


def _accepted(accept_header):
    """Return the media ranges of an Accept header, best quality first, stable."""
    ranges = [_parse_media_range(item) for item in (accept_header or "").split(",")
              if item.strip()]
    ranges = [(media, params) for media, params in ranges if _quality(params) > 0]
    return sorted(ranges, key=lambda entry: -_quality(entry[1]))


def wants_table(accept_header):
    """Return the Table version ("v1"/"v1beta1") the client asks for first, or None."""
    for media, params in _accepted(accept_header):
        if media not in ("application/json", "application/*", "*/*"):
            continue
        wanted = params.get("as")
        if wanted is None:
            return None
        if wanted == "Table" and params.get("g") == GROUP and params.get("v") in VERSIONS:
            return params["v"]
    return None


def include_mode(value):
    """Validate the ``includeObject`` query parameter (default Metadata)."""
    if value in (None, ""):
        return "Metadata"
    if value not in INCLUDE_MODES:
        raise errors.BadRequest(f"unrecognized includeObject value: {value!r}")
    return value


# ----------------------------------------------------------------- columns

def _c(name, kind="string", description="", priority=0):
    return column(name, kind, description, priority)


_POD = [NAME, _c("Ready", description="The aggregate readiness state of this pod for accepting "
                 "traffic."),
        _c("Status", description="The aggregate status of the containers in this pod."),
        _c("Restarts", description="The number of times the containers in this pod have been "
           "restarted and when the last container in this pod has restarted."),
        AGE, _c("IP", description="podIP address allocated to the pod.", priority=1),
        _c("Node", description="NodeName is a request to schedule this pod onto a specific "
           "node.", priority=1),
        _c("Nominated Node", description="nominatedNodeName is set only when this pod "
           "preempts other pods on the node.", priority=1),
        _c("Readiness Gates", description="If specified, all readiness gates will be evaluated "
           "for pod readiness.", priority=1)]
_SELECTOR = _c("Selector", description="Label selector for pods.", priority=1)
_COUNTS = {name: _c(name, "integer", doc) for name, doc in (
    ("Desired", "Number of desired pods."), ("Current", "The number of current pods."),
    ("Ready", "The number of ready pods."), ("Up-to-date", "The number of updated pods."),
    ("Available", "The number of available pods."))}
_DEPLOYMENT = [NAME, _c("Ready", description="Number of the pod with ready state"),
               _c("Up-to-date", description="Total number of non-terminated pods targeted by "
                  "this deployment that have the desired template spec."),
               _c("Available", description="Total number of available pods (ready for at least "
                  "minReadySeconds) targeted by this deployment."),
               AGE, CONTAINERS, IMAGES, _SELECTOR]
_REPLICASET = [NAME, _COUNTS["Desired"], _COUNTS["Current"], _COUNTS["Ready"], AGE,
               CONTAINERS, IMAGES, _SELECTOR]
_DAEMONSET = [NAME, *_COUNTS.values(),
              _c("Node Selector", description="NodeSelector is a selector which must be true "
                 "for the pod to fit on a node."),
              AGE, CONTAINERS, IMAGES, _SELECTOR]
_STATEFULSET = [NAME, _c("Ready", description="Number of the pod with ready state"), AGE,
                CONTAINERS, IMAGES]
_JOB = [NAME, _c("Status", description="Status of the job."),
        _c("Completions", description="The number of pods which reached phase Succeeded."),
        _c("Duration", description="Time required to complete the job."), AGE, CONTAINERS,
        IMAGES, _SELECTOR]
_CRONJOB = [NAME, _c("Schedule", description="The schedule in Cron format."),
            _c("Timezone", description="The time zone name for the given schedule."),
            _c("Suspend", "boolean", "This flag tells the controller to suspend subsequent "
               "executions."),
            _c("Active", "integer", "A list of pointers to currently running jobs."),
            _c("Last Schedule", description="Information when was the last time the job was "
               "successfully scheduled."),
            AGE, CONTAINERS, IMAGES, _SELECTOR]
_SERVICE = [NAME, _c("Type", description="type determines how the Service is exposed."),
            _c("Cluster-IP", description="clusterIP is the IP address of the service."),
            _c("External-IP", description="externalIPs is a list of IP addresses for which "
               "nodes in the cluster will also accept traffic for this service."),
            _c("Port(s)", description="The list of ports that are exposed by this service."),
            AGE, _c("Selector", description="Route service traffic to pods with label keys and "
                    "values matching this selector.", priority=1)]
_ENDPOINTS = [NAME, _c("Endpoints", description="The set of all endpoints is the union of all "
                       "subsets."), AGE]
_ENDPOINTSLICE = [NAME, _c("AddressType", description="addressType specifies the type of "
                           "address carried by this EndpointSlice."),
                  _c("Ports", description="ports specifies the list of network ports exposed "
                     "by each endpoint in this slice."),
                  _c("Endpoints", description="endpoints is a list of unique endpoints in "
                     "this slice."), AGE]
_NETWORKPOLICY = [NAME, _c("Pod-Selector", description="podSelector selects the pods to which "
                           "this NetworkPolicy object applies."), AGE]
_NODE = [NAME, _c("Status", description="The status of the node"),
         _c("Roles", description="The roles of the node"), AGE,
         _c("Version", description="Kubelet Version reported by the node."),
         _c("Internal-IP", description="List of addresses reachable to the node.", priority=1),
         _c("External-IP", description="List of addresses reachable to the node.", priority=1),
         _c("OS-Image", description="OS Image reported by the node.", priority=1),
         _c("Kernel-Version", description="Kernel Version reported by the node.", priority=1),
         _c("Container-Runtime", description="ContainerRuntime Version reported by the node.",
            priority=1)]
_EVENT = [_c("Last Seen", description="The time at which the most recent occurrence of this "
             "event was recorded."),
          _c("Type", description="Type of this event (Normal, Warning)."),
          _c("Reason", description="This should be a short, machine understandable string that "
             "gives the reason for the transition into the object's current status."),
          _c("Object", description="The object that this event is about."),
          _c("Subobject", description="The field of the object the event is about.",
             priority=1),
          _c("Source", description="The component reporting this event.", priority=1),
          _c("Message", description="A human-readable description of the status of this "
             "operation."),
          _c("First Seen", description="The time at which the event was first recorded.",
             priority=1),
          _c("Count", description="The number of times this event has occurred.", priority=1),
          {**NAME, "priority": 1}]

PRINTERS = {
    "Pod": (_POD, core.print_pod),
    "Deployment": (_DEPLOYMENT, p.print_deployment),
    "ReplicaSet": (_REPLICASET, p.print_replicaset),
    "DaemonSet": (_DAEMONSET, p.print_daemonset),
    "StatefulSet": (_STATEFULSET, p.print_statefulset),
    "Job": (_JOB, p.print_job),
    "CronJob": (_CRONJOB, p.print_cronjob),
    "Service": (_SERVICE, core.print_service),
    "Endpoints": (_ENDPOINTS, core.print_endpoints),
    "EndpointSlice": (_ENDPOINTSLICE, core.print_endpointslice),
    "NetworkPolicy": (_NETWORKPOLICY, p.print_networkpolicy),
    "HorizontalPodAutoscaler": (autoscaling.HPA_COLUMNS, autoscaling.print_hpa),
    "PodDisruptionBudget": (policy.PDB_COLUMNS, policy.print_poddisruptionbudget),
    "Ingress": (networking.INGRESS_COLUMNS, networking.print_ingress),
    "IngressClass": (networking.INGRESSCLASS_COLUMNS, networking.print_ingressclass),
    "ResourceQuota": (quota.QUOTA_COLUMNS, quota.print_resourcequota),
    "LimitRange": (quota.LIMITRANGE_COLUMNS, quota.print_limitrange),
    "PersistentVolume": (storage.PV_COLUMNS, storage.print_persistentvolume),
    "PersistentVolumeClaim": (storage.PVC_COLUMNS, storage.print_persistentvolumeclaim),
    "StorageClass": (storage.SC_COLUMNS, storage.print_storageclass),
    "Node": (_NODE, core.print_node),
    "Event": (_EVENT, core.print_event),
    "Namespace": ([NAME, _c("Status", description="The status of the namespace"), AGE],
                  p.print_namespace),
    "ConfigMap": ([NAME, _c("Data", description="Data contains the configuration data."), AGE],
                  p.print_configmap),
    "Secret": ([NAME, _c("Type", description="Used to facilitate programmatic handling of "
                         "secret data."),
                _c("Data", description="Data contains the secret data."), AGE],
               p.print_secret),
    "ServiceAccount": ([NAME, _c("Secrets", description="Secrets is a list of the secrets in "
                                 "the same namespace that pods running using this "
                                 "ServiceAccount are allowed to use."), AGE],
                       p.print_serviceaccount),
    "Lease": ([NAME, _c("Holder", description="holderIdentity contains the identity of the "
                        "holder of a current lease."), AGE], p.print_lease),
    "ControllerRevision": ([NAME, _c("Controller", description="The controller that owns "
                                     "this revision."),
                            _c("Revision", "number",
                               description="Revision indicates the revision of the state "
                               "represented by Data."), AGE],
                           p.print_controllerrevision),
    "CertificateSigningRequest": ([NAME, AGE, _c("SignerName", description="Only "
                                                 "requests for this signer may be signed by it."),
                                   _c("Requestor", description="Name of the user who made "
                                      "the request."),
                                   _c("RequestedDuration", description="How long the "
                                      "issued certificate should be valid."),
                                   _c("Condition", description="Approved, Denied, Failed "
                                      "and whether a certificate is issued.")],
                                  p.print_certificatesigningrequest),
}
DEFAULT = ([NAME, AGE], p.print_default)


def columns_for(kind):
    """Return the column definitions kube-apiserver prints for ``kind``."""
    return PRINTERS.get(kind, DEFAULT)[0]


# ---------------------------------------------------------------- assembly

def row_object(resource, obj, include, version="v1"):
    """Return a row's ``object`` for the includeObject mode."""
    if include == "None":
        return None
    if include == "Object":
        return {"kind": resource.kind, "apiVersion": resource.api_version, **obj}
    return {"kind": "PartialObjectMetadata", "apiVersion": f"{GROUP}/{version}",
            "metadata": obj.get("metadata") or {}}


def _stored_form_printer(printer, to_storage):
    """A printer of a served version's objects through the stored version's printer."""
    return lambda obj, now: printer(to_storage(obj), now)


def to_table(resource, objects, list_metadata, include_object="Metadata", *, now=None,
             version="v1", headers=True):
    """Return a Table of ``objects`` with kube-apiserver's columns for the kind."""
    columns, printer = (crd_printing.printer_for(resource) if resource.custom is not None
                        else PRINTERS.get(resource.kind, DEFAULT))
    if resource.conversion is not None:     # upstream prints the internal (stored) form
        printer = _stored_form_printer(printer, resource.conversion.to_storage)
    now = now or meta.utcnow()
    metadata = {"resourceVersion": str(list_metadata.get("resourceVersion", ""))}
    if list_metadata.get("continue"):
        metadata["continue"] = list_metadata["continue"]
    return {"kind": "Table", "apiVersion": f"{GROUP}/{version}", "metadata": metadata,
            "columnDefinitions": list(columns) if headers else None,
            "rows": [{"cells": printer(obj, now),
                      "object": row_object(resource, obj, include_object, version)}
                     for obj in objects]}


def watch_transform(resource, include_object="Metadata", version="v1", clock=meta.utcnow):
    """Return ``transform(event_type, obj)`` making each watch event's object a Table."""
    state = {"headers": True}

    def transform(event_type, obj):
        revision = (obj.get("metadata") or {}).get("resourceVersion", "")
        if event_type == "BOOKMARK":
            return to_table(resource, [], {"resourceVersion": revision}, include_object,
                            now=clock(), version=version, headers=False)
        table = to_table(resource, [obj], {"resourceVersion": revision}, include_object,
                         now=clock(), version=version, headers=state["headers"])
        state["headers"] = False
        return table

    return transform
