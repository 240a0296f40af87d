"""The resources the API serves: names, groups, scope, short names, subresources.

One table drives discovery (/api, /apis, APIResourceLists), routing and storage
keys, so adding a kind is one line here (plus its schema). The built-in kinds
(``RESOURCES``) seed ``TABLE``; CustomResourceDefinitions (control/api/crd/) add
and remove resources in it while the server runs, and every lookup here sees them.
"""

import threading
from dataclasses import dataclass, field, replace

from control.objects import autoscaling_v1

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
#: The verbs of kinds that are only ever created, answered and never stored (reviews).
CREATE_ONLY = ("create",)


@dataclass(frozen=True)
class Conversion:
    """How a served version maps to the stored one: one storage, one form, two converters.

    The object service (control/api/service.py) converts bodies with ``to_storage``
    and answers with ``from_storage``; watches and Tables convert the same way.
    """

    storage: object         # the Resource whose form is stored
    to_storage: object      # served form -> stored form
    from_storage: object    # stored form -> served form


@dataclass(frozen=True)
class Resource:
    """One REST resource, such as ``deployments`` in ``apps/v1``."""

    group: str              # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple = ()
    subresources: tuple = ()
    categories: tuple = field(default=())
    verbs: tuple = VERBS
    #: What a CustomResourceDefinition adds (schema, printer columns, scale paths:
    #: control/api/crd/model.py); None for a built-in kind. Compared by identity,
    #: so a changed definition is a new Resource.
    custom: object = None
    #: For a version served from another version's storage (autoscaling/v1
    #: HorizontalPodAutoscalers, kept as v2): a Conversion; None when stored as served.
    conversion: object = None

    @property
    def stored(self):
        """Whether objects of this resource are kept (reviews are answered, not stored)."""
        return "get" in self.verbs

    @property
    def api_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self):
        return self.api_version

    @property
    def list_kind(self):
        return self.custom.list_kind if self.custom is not None else f"{self.kind}List"

    @property
    def singular(self):
        return self.custom.singular if self.custom is not None else self.kind.lower()

    @property
    def qualified(self):
        """``plural.group``, as kubectl and error messages name a resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _r(group, version, kind, plural, namespaced=True, short=(), sub=(), cat=("all",),
       verbs=VERBS):
    return Resource(group, version, kind, plural, namespaced, tuple(short), tuple(sub), tuple(cat),
                    tuple(verbs))


RBAC = "rbac.authorization.k8s.io"
AUTHZ = "authorization.k8s.io"
AUTHN = "authentication.k8s.io"
CERTIFICATES = "certificates.k8s.io"


RESOURCES = (
    _r("", "v1", "Namespace", "namespaces", False, ("ns",), ("status", "finalize"), ()),
    _r("", "v1", "Node", "nodes", False, ("no",), ("status",), ()),
    _r("", "v1", "Pod", "pods", True, ("po",),
       ("status", "binding", "eviction", "log", "exec", "attach", "portforward")),
    _r("", "v1", "Service", "services", True, ("svc",), ("status",)),
    _r("", "v1", "Endpoints", "endpoints", True, ("ep",), (), ()),
    _r("", "v1", "ConfigMap", "configmaps", True, ("cm",), (), ()),
    _r("", "v1", "Secret", "secrets", True, (), (), ()),
    _r("", "v1", "Event", "events", True, ("ev",), (), ()),
    _r("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",), ("token",), ()),
    _r("coordination.k8s.io", "v1", "Lease", "leases", True, (), (), ()),
    _r("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True, (), (), ()),
    _r("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, ("netpol",), (), ()),
    _r("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), ("status", "scale")),
    _r("apps", "v1", "Deployment", "deployments", True, ("deploy",), ("status", "scale")),
    _r("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",), ("status",)),
    _r("apps", "v1", "StatefulSet", "statefulsets", True, ("sts",), ("status", "scale")),
    _r("apps", "v1", "ControllerRevision", "controllerrevisions", True, (), (), ()),
    _r("batch", "v1", "Job", "jobs", True, (), ("status",)),
    _r("batch", "v1", "CronJob", "cronjobs", True, ("cj",), ("status",)),
    _r(RBAC, "v1", "Role", "roles", True, (), (), ()),
    _r(RBAC, "v1", "ClusterRole", "clusterroles", False, (), (), ()),
    _r(RBAC, "v1", "RoleBinding", "rolebindings", True, (), (), ()),
    _r(RBAC, "v1", "ClusterRoleBinding", "clusterrolebindings", False, (), (), ()),
    _r(AUTHZ, "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False, (), (), (),
       CREATE_ONLY),
    _r(AUTHZ, "v1", "SubjectAccessReview", "subjectaccessreviews", False, (), (), (),
       CREATE_ONLY),
    _r(AUTHZ, "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", True, (), (), (),
       CREATE_ONLY),
    _r(AUTHZ, "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", False, (), (), (),
       CREATE_ONLY),
    _r(AUTHN, "v1", "TokenReview", "tokenreviews", False, (), (), (), CREATE_ONLY),
    _r(AUTHN, "v1", "SelfSubjectReview", "selfsubjectreviews", False, (), (), (), CREATE_ONLY),
    _r(CERTIFICATES, "v1", "CertificateSigningRequest", "certificatesigningrequests", False,
       ("csr",), ("status", "approval"), ()),
    _r("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, ("pdb",),
       ("status",), ()),
    _r("", "v1", "PersistentVolume", "persistentvolumes", False, ("pv",), ("status",), ()),
    _r("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, ("pvc",),
       ("status",), ()),
    _r("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, ("sc",), (), ()),
    _r("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True,
       ("hpa",), ("status",)),
    _r("", "v1", "ResourceQuota", "resourcequotas", True, ("quota",), ("status",), ()),
    _r("", "v1", "LimitRange", "limitranges", True, ("limits",), (), ()),
    _r("networking.k8s.io", "v1", "Ingress", "ingresses", True, ("ing",), ("status",), ()),
    _r("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False, (), (), ()),
)

APIEXTENSIONS = "apiextensions.k8s.io"
CUSTOMRESOURCEDEFINITIONS_RESOURCE = _r(APIEXTENSIONS, "v1", "CustomResourceDefinition",
                                        "customresourcedefinitions", False, ("crd", "crds"),
                                        ("status",), ("api-extensions",))
RESOURCES = RESOURCES + (CUSTOMRESOURCEDEFINITIONS_RESOURCE,)


def _served_from(stored, version, to_storage, from_storage):
    """``stored`` served at another version too, converted on the way in and out."""
    return replace(stored, version=version,
                   conversion=Conversion(stored, to_storage, from_storage))


# After v2, so that discovery prefers v2 (the first version of a group is preferred).
RESOURCES = RESOURCES + (_served_from(
    next(r for r in RESOURCES if r.kind == "HorizontalPodAutoscaler"), "v1",
    autoscaling_v1.from_v1, autoscaling_v1.to_v1),)


class ResourceTable:
    """The served resources: the built-in ones and those CRDs add, found by path or kind.

    Readers never lock: every change builds new indexes and swaps them in whole.
    ``on_miss(group, version, plural)``, when set (the API server sets it), is asked
    for a resource no index holds, so that a process learns of a CRD another one
    created before its watch told it; it returns the Resource or None.
    """

    def __init__(self, static):
        self.static = tuple(static)
        self._static_groups = {r.group for r in self.static}
        self._custom = {}       # owner (the CRD's name) -> tuple of Resources
        self._lock = threading.Lock()
        self.on_miss = None
        #: ``refresh()``, when set, re-reads every CRD now (before a CRD's names are checked).
        self.refresh = None
        self._reindex()

    def _reindex(self):
        everything = self.static + tuple(r for rs in self._custom.values() for r in rs)
        self._all = everything
        self._by_path = {(r.group, r.version, r.plural): r for r in everything}
        self._by_kind = {(r.group, r.version, r.kind): r for r in everything}

    def set_custom(self, owner, resources):
        """Serve ``resources`` (one per version of a CRD) in place of what ``owner`` had."""
        with self._lock:
            if resources:
                self._custom[owner] = tuple(resources)
            else:
                self._custom.pop(owner, None)
            self._reindex()

    def remove_custom(self, owner):
        self.set_custom(owner, ())

    def custom_owners(self):
        return set(self._custom)

    def custom_of(self, owner):
        return self._custom.get(owner, ())

    def all(self):
        return self._all

    def is_builtin_group(self, group):
        return group in self._static_groups

    def lookup(self, group, version, plural):
        found = self._by_path.get((group, version, plural))
        if found is None and self.on_miss is not None and not self.is_builtin_group(group):
            found = self.on_miss(group, version, plural)
        return found

    def by_kind(self, group, version, kind):
        return self._by_kind.get((group, version, kind))


TABLE = ResourceTable(RESOURCES)


def served():
    """Every resource served now: the built-in ones, then those of CRDs."""
    return TABLE.all()


def group_versions():
    """Every served group/version, core first, in a stable order."""
    seen = []
    for r in TABLE.all():
        if (r.group, r.version) not in seen:
            seen.append((r.group, r.version))
    return seen


def resources_in(group, version):
    return [r for r in TABLE.all() if r.group == group and r.version == version]


def lookup(group, version, plural):
    """Return the Resource served at this path segment, or None."""
    return TABLE.lookup(group, version, plural)


def by_api_version_kind(api_version, kind):
    """Return the Resource for an object's apiVersion and kind, or None."""
    group, _, version = api_version.rpartition("/")
    return TABLE.by_kind(group, version, kind)


# The resources that components name in code, so that none looks them up by string.
NAMESPACES = lookup("", "v1", "namespaces")
NODES = lookup("", "v1", "nodes")
PODS = lookup("", "v1", "pods")
SERVICES = lookup("", "v1", "services")
ENDPOINTS = lookup("", "v1", "endpoints")
CONFIGMAPS = lookup("", "v1", "configmaps")
SECRETS = lookup("", "v1", "secrets")
EVENTS = lookup("", "v1", "events")
SERVICEACCOUNTS = lookup("", "v1", "serviceaccounts")
LEASES = lookup("coordination.k8s.io", "v1", "leases")
ENDPOINTSLICES = lookup("discovery.k8s.io", "v1", "endpointslices")
NETWORKPOLICIES = lookup("networking.k8s.io", "v1", "networkpolicies")
REPLICASETS = lookup("apps", "v1", "replicasets")
DEPLOYMENTS = lookup("apps", "v1", "deployments")
DAEMONSETS = lookup("apps", "v1", "daemonsets")
STATEFULSETS = lookup("apps", "v1", "statefulsets")
CONTROLLERREVISIONS = lookup("apps", "v1", "controllerrevisions")
JOBS = lookup("batch", "v1", "jobs")
CRONJOBS = lookup("batch", "v1", "cronjobs")
ROLES = lookup(RBAC, "v1", "roles")
CLUSTERROLES = lookup(RBAC, "v1", "clusterroles")
ROLEBINDINGS = lookup(RBAC, "v1", "rolebindings")
CLUSTERROLEBINDINGS = lookup(RBAC, "v1", "clusterrolebindings")
CERTIFICATESIGNINGREQUESTS = lookup(CERTIFICATES, "v1", "certificatesigningrequests")
CUSTOMRESOURCEDEFINITIONS = CUSTOMRESOURCEDEFINITIONS_RESOURCE
