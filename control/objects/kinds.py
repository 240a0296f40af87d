"""The resources the API serves: names, groups, scope, short names, subresources.

One table drives discovery (/api, /apis, APIResourceLists), routing and storage
keys, so adding a kind is one line here (plus its schema).
"""

from dataclasses import dataclass, field

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
#: The verbs of kinds that are only ever created, answered and never stored (reviews).
CREATE_ONLY = ("create",)


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
        return f"{self.kind}List"

    @property
    def singular(self):
        return self.kind.lower()

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
       ("status", "binding", "log", "exec", "attach", "portforward")),
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
)

_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
_BY_KIND = {(r.group, r.version, r.kind): r for r in RESOURCES}


def group_versions():
    """Every served group/version, core first, in a stable order."""
    seen = []
    for r in RESOURCES:
        if (r.group, r.version) not in seen:
            seen.append((r.group, r.version))
    return seen


def resources_in(group, version):
    return [r for r in RESOURCES if r.group == group and r.version == version]


def lookup(group, version, plural):
    """Return the Resource served at this path segment, or None."""
    return _BY_PATH.get((group, version, plural))


def by_api_version_kind(api_version, kind):
    """Return the Resource for an object's apiVersion and kind, or None."""
    group, _, version = api_version.rpartition("/")
    return _BY_KIND.get((group, version, kind))


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
