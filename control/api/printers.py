"""Per-kind table columns and cells, as kube-apiserver's printers produce them.

Mirrors k8s.io/kubernetes/pkg/printers/internalversion/printers.go (1.32): the
server always prints the wide form (every column, priority 1 ones included) and
kubectl hides priority-1 columns unless ``-o wide``. Each printer takes an object
and the current time and returns the row's cells.
"""

from control.objects import conditions
from control.objects.certificates import display_status
from control.objects.meta import human_duration, parse_time
from control.objects.selectors import selector_to_string

NAME_DOC = ("Name must be unique within a namespace. Is required when creating resources, "
            "although some resources may allow a client to request the generation of an "
            "appropriate name automatically. Name is primarily intended for creation "
            "idempotence and configuration definition. Cannot be updated.")
AGE_DOC = ("CreationTimestamp is a timestamp representing the server time when this object "
           "was created. It is represented in RFC3339 form and is in UTC.")
CONTAINERS_DOC = "Names of each container in the template."
IMAGES_DOC = "Images referenced by each container in the template."


def column(name, kind="string", description="", priority=0, fmt=""):
    """Return one TableColumnDefinition."""
    return {"name": name, "type": kind, "format": fmt, "description": description,
            "priority": priority}


NAME = column("Name", description=NAME_DOC, fmt="name")
AGE = column("Age", description=AGE_DOC)
CONTAINERS = column("Containers", description=CONTAINERS_DOC, priority=1)
IMAGES = column("Images", description=IMAGES_DOC, priority=1)


def _selector_column(doc):
    return column("Selector", description=doc, priority=1)


# ------------------------------------------------------------------ helpers

def age(timestamp, now):
    """Return the human age of an RFC 3339 timestamp, "<unknown>" when unset."""
    moment = parse_time(timestamp)
    return "<unknown>" if moment is None else human_duration(now - moment)


def format_labels(labels):
    """Render a label map as labels.FormatLabels does ("<none>" when empty)."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def format_label_selector(selector):
    """Render a LabelSelector as metav1.FormatLabelSelector does."""
    try:
        text = selector_to_string(selector)
    except (ValueError, TypeError, AttributeError):
        return "<error>"
    return text or "<none>"


def _selector_string(selector):
    """Render a LabelSelector as LabelSelectorAsSelector(...).String() does."""
    try:
        return selector_to_string(selector)
    except (ValueError, TypeError, AttributeError):
        return "<invalid>"


def layout_containers(containers):
    """Return the comma-joined container names and images."""
    containers = containers or []
    return (",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers))


def bool_ptr(value):
    """Render an optional bool as printBoolPtr does."""
    if value is None:
        return "<unset>"
    return "True" if value else "False"


def created_age(obj, now):
    """Return the AGE cell of ``obj``."""
    return age(metadata_of(obj).get("creationTimestamp"), now)


def metadata_of(obj):
    """Return the object's metadata (empty when unset)."""
    return obj.get("metadata") or {}


def spec_of(obj):
    """Return the object's spec (empty when unset)."""
    return obj.get("spec") or {}


def status_of(obj):
    """Return the object's status (empty when unset)."""
    return obj.get("status") or {}


def _template_spec(spec):
    return ((spec.get("template") or {}).get("spec")) or {}


def _replicas(spec):
    value = spec.get("replicas")
    return 1 if value is None else int(value)


# --------------------------------------------------------------- workloads

def _wide_template(spec, selector_text):
    names, images = layout_containers(_template_spec(spec).get("containers"))
    return [names, images, selector_text]


def print_deployment(obj, now):
    spec, status = spec_of(obj), status_of(obj)
    return ([metadata_of(obj).get("name", ""),
             f"{int(status.get('readyReplicas') or 0)}/{_replicas(spec)}",
             int(status.get("updatedReplicas") or 0), int(status.get("availableReplicas") or 0),
             created_age(obj, now)]
            + _wide_template(spec, _selector_string(spec.get("selector"))))


def print_replicaset(obj, now):
    spec, status = spec_of(obj), status_of(obj)
    return ([metadata_of(obj).get("name", ""), _replicas(spec), int(status.get("replicas") or 0),
             int(status.get("readyReplicas") or 0), created_age(obj, now)]
            + _wide_template(spec, format_label_selector(spec.get("selector"))))


def print_daemonset(obj, now):
    spec, status = spec_of(obj), status_of(obj)
    counts = [int(status.get(f) or 0) for f in ("desiredNumberScheduled", "currentNumberScheduled",
                                               "numberReady", "updatedNumberScheduled",
                                               "numberAvailable")]
    return ([metadata_of(obj).get("name", ""), *counts,
             format_labels(_template_spec(spec).get("nodeSelector")),
             created_age(obj, now)]
            + _wide_template(spec, format_label_selector(spec.get("selector"))))


def print_statefulset(obj, now):
    spec, status = spec_of(obj), status_of(obj)
    return ([metadata_of(obj).get("name", ""),
             f"{int(status.get('readyReplicas') or 0)}/{_replicas(spec)}",
             created_age(obj, now)]
            + _wide_template(spec, None)[:2])


def _job_completions(spec, status):
    succeeded = int(status.get("succeeded") or 0)
    if spec.get("completions") is not None:
        return f"{succeeded}/{spec['completions']}"
    parallelism = int(spec.get("parallelism") or 0)
    if parallelism > 1:
        return f"{succeeded}/1 of {parallelism}"
    return f"{succeeded}/1"


def _job_status(obj):
    for kind in ("Complete", "Failed"):
        if conditions.is_true(obj, kind):
            return kind
    if metadata_of(obj).get("deletionTimestamp"):
        return "Terminating"
    for kind in ("Suspended", "FailureTarget"):
        if conditions.is_true(obj, kind):
            return kind
    return "Running"


def print_job(obj, now):
    spec, status = spec_of(obj), status_of(obj)
    start, end = parse_time(status.get("startTime")), parse_time(status.get("completionTime"))
    elapsed = "" if start is None else human_duration((end or now) - start)
    return ([metadata_of(obj).get("name", ""), _job_status(obj), _job_completions(spec, status),
             elapsed, created_age(obj, now)]
            + _wide_template(spec, format_label_selector(spec.get("selector"))))


def print_cronjob(obj, now):
    spec, status = spec_of(obj), status_of(obj)
    last = status.get("lastScheduleTime")
    job_spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return ([metadata_of(obj).get("name", ""), spec.get("schedule", ""),
             spec.get("timeZone") or "<none>", bool_ptr(spec.get("suspend")),
             len(status.get("active") or []), age(last, now) if last else "<none>",
             created_age(obj, now)]
            + _wide_template(job_spec, format_label_selector(job_spec.get("selector"))))


# ------------------------------------------------------------------- config

def print_configmap(obj, now):
    return [metadata_of(obj).get("name", ""),
            len(obj.get("data") or {}) + len(obj.get("binaryData") or {}),
            created_age(obj, now)]


def print_secret(obj, now):
    return [metadata_of(obj).get("name", ""), obj.get("type", ""), len(obj.get("data") or {}),
            created_age(obj, now)]


def print_serviceaccount(obj, now):
    return [metadata_of(obj).get("name", ""), len(obj.get("secrets") or []),
            created_age(obj, now)]


def print_namespace(obj, now):
    return [metadata_of(obj).get("name", ""), status_of(obj).get("phase", ""),
            created_age(obj, now)]


def print_lease(obj, now):
    return [metadata_of(obj).get("name", ""), spec_of(obj).get("holderIdentity") or "",
            created_age(obj, now)]


def print_controllerrevision(obj, now):
    """NAME, CONTROLLER (``daemonset.apps/web``, or ``<none>``), REVISION, AGE."""
    controller = "<none>"
    for ref in metadata_of(obj).get("ownerReferences") or ():
        if ref.get("controller"):
            group = (ref.get("apiVersion") or "").rpartition("/")[0]
            kind = (ref.get("kind") or "").lower()
            controller = f"{kind}.{group}/{ref.get('name', '')}" if group else \
                f"{kind}/{ref.get('name', '')}"
    return [metadata_of(obj).get("name", ""), controller, int(obj.get("revision") or 0),
            created_age(obj, now)]


def print_networkpolicy(obj, now):
    """NAME, POD-SELECTOR (``<none>`` for the empty selector: every pod), AGE."""
    return [metadata_of(obj).get("name", ""),
            format_label_selector(spec_of(obj).get("podSelector") or {}), created_age(obj, now)]


def print_default(obj, now):
    return [metadata_of(obj).get("name", ""), created_age(obj, now)]


def print_certificatesigningrequest(obj, now):
    """NAME, AGE, SIGNERNAME, REQUESTOR, REQUESTEDDURATION, CONDITION (as kubectl's csr printer)."""
    spec = spec_of(obj)
    seconds = spec.get("expirationSeconds")
    duration = "<none>" if seconds is None else human_duration(int(seconds))
    return [metadata_of(obj).get("name", ""), created_age(obj, now),
            spec.get("signerName") or "<none>", spec.get("username", ""), duration,
            display_status(obj)]
