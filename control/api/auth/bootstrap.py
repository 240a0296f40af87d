"""Create the default RBAC policy on API server start, as kube-apiserver's bootstrap does.

The roles and bindings Kubernetes makes (cluster-admin, admin, edit, view with
aggregation, the system:* roles of each component) are created when missing;
existing ones are left as they are (an admin may have changed them), as with
kube-apiserver's ``rbac.authorization.kubernetes.io/autoupdate: "false"``. One
system:kube-controller-manager role holds what every controller needs, where
Kubernetes splits it per controller and gives each controller its own account.
"""

from control import errors
from control.api.auth.aggregation import aggregate
from control.objects import kinds

RBAC = "rbac.authorization.k8s.io"
AGGREGATE = RBAC + "/aggregate-to-"
READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AUTOUPDATE = {"rbac.authorization.kubernetes.io/autoupdate": "true"}


def rule(verbs, groups, resources, names=None):
    found = {"verbs": list(verbs), "apiGroups": list(groups), "resources": list(resources)}
    if names:
        found["resourceNames"] = list(names)
    return found


def urls(verbs, paths):
    return {"verbs": list(verbs), "nonResourceURLs": list(paths)}


WORKLOADS = ["pods", "pods/log", "pods/status", "services", "endpoints", "configmaps",
             "persistentvolumeclaims", "serviceaccounts", "events", "replicationcontrollers"]
APPS = ["deployments", "deployments/scale", "deployments/status", "replicasets",
        "replicasets/scale", "replicasets/status", "daemonsets", "daemonsets/status",
        "statefulsets", "statefulsets/scale", "statefulsets/status", "controllerrevisions"]
BATCH = ["jobs", "jobs/status", "cronjobs", "cronjobs/status"]

VIEW_RULES = [
    rule(READ, [""], [*WORKLOADS, "namespaces", "namespaces/status", "pods/status",
                      "services/status"]),
    rule(READ, ["apps"], APPS),
    rule(READ, ["batch"], BATCH),
    rule(READ, ["coordination.k8s.io"], ["leases"]),
    # Read only, also for edit and admin: writing slices could point a Service
    # anywhere (CVE-2021-25740), so Kubernetes grants no write.
    rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
    rule(READ, ["networking.k8s.io"], ["networkpolicies"]),
    rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
    rule(READ, [""], ["limitranges", "resourcequotas", "resourcequotas/status"]),
    rule(READ, ["autoscaling"], ["horizontalpodautoscalers",
                                 "horizontalpodautoscalers/status"]),
]
EDIT_RULES = [
    rule([*READ, *WRITE], [""], ["pods", "pods/attach", "pods/exec", "pods/portforward",
                                 "pods/proxy", "services", "services/proxy", "endpoints",
                                 "configmaps", "persistentvolumeclaims", "secrets",
                                 "serviceaccounts", "replicationcontrollers"]),
    rule(["create"], [""], ["serviceaccounts/token"]),
    rule(["create"], [""], ["pods/eviction"]),
    rule([*READ, *WRITE], ["policy"], ["poddisruptionbudgets"]),
    rule([*READ, *WRITE], ["autoscaling"], ["horizontalpodautoscalers"]),
    rule(READ, [""], ["secrets"]),
    rule([*READ, *WRITE], ["apps"], APPS),
    rule([*READ, *WRITE], ["batch"], BATCH),
    rule([*READ, *WRITE], ["coordination.k8s.io"], ["leases"]),
    rule([*READ, *WRITE], ["networking.k8s.io"], ["networkpolicies"]),
]
ADMIN_RULES = [
    rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
    rule([*READ, *WRITE], [RBAC], ["roles", "rolebindings"]),
]
SELF_REVIEWS = rule(["create"], ["authorization.k8s.io"],
                    ["selfsubjectaccessreviews", "selfsubjectrulesreviews"])
PUBLIC_PATHS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]


def _aggregated(name, feeds=None):
    role = {"aggregationRule": {"clusterRoleSelectors": [
        {"matchLabels": {AGGREGATE + name: "true"}}]}, "rules": []}
    return role, ({AGGREGATE + feeds: "true"} if feeds else {})


CSR = "certificatesigningrequests"
#: The certificates.k8s.io roles Kubernetes bootstraps: approving per signer, the
#: kubelet client auto-approval (nodeclient for new nodes, selfnodeclient for
#: renewals) and the certificate controller's own (here the controller manager's).
CERTIFICATE_ROLES = {
    **{f"system:certificates.k8s.io:{signer.split('/')[1]}-approver": ({"rules": [
        rule(["approve"], ["certificates.k8s.io"], ["signers"], [signer])]}, {})
       for signer in ("kubernetes.io/kube-apiserver-client",
                      "kubernetes.io/kube-apiserver-client-kubelet",
                      "kubernetes.io/kubelet-serving", "kubernetes.io/legacy-unknown")},
    "system:certificates.k8s.io:certificatesigningrequests:nodeclient": ({"rules": [
        rule(["create"], ["certificates.k8s.io"], [f"{CSR}/nodeclient"])]}, {}),
    "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient": ({"rules": [
        rule(["create"], ["certificates.k8s.io"], [f"{CSR}/selfnodeclient"])]}, {}),
    "system:controller:certificate-controller": ({"rules": [
        rule(["get", "list", "watch", "delete"], ["certificates.k8s.io"], [CSR]),
        rule(["update"], ["certificates.k8s.io"], [f"{CSR}/status", f"{CSR}/approval"]),
        rule(["approve"], ["certificates.k8s.io"], ["signers"],
             ["kubernetes.io/kube-apiserver-client-kubelet", "kubernetes.io/kubelet-serving"]),
        rule(["sign"], ["certificates.k8s.io"], ["signers"],
             ["kubernetes.io/kube-apiserver-client", "kubernetes.io/kube-apiserver-client-kubelet",
              "kubernetes.io/kubelet-serving", "kubernetes.io/legacy-unknown"]),
        rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
        rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
    ]}, {}),
}

CLUSTER_ROLES = {
    "cluster-admin": ({"rules": [rule(["*"], ["*"], ["*"]), urls(["*"], ["*"])]}, {}),
    "admin": _aggregated("admin"),
    "edit": _aggregated("edit", feeds="admin"),
    "view": _aggregated("view", feeds="edit"),
    "system:aggregate-to-admin": ({"rules": ADMIN_RULES}, {AGGREGATE + "admin": "true"}),
    "system:aggregate-to-edit": ({"rules": EDIT_RULES}, {AGGREGATE + "edit": "true"}),
    "system:aggregate-to-view": ({"rules": VIEW_RULES}, {AGGREGATE + "view": "true"}),
    # metrics-server's role: kubectl top for whoever may view, edit or administer.
    "system:aggregated-metrics-reader": ({"rules": [
        rule(READ, ["metrics.k8s.io"], ["pods", "nodes"])]}, {
        AGGREGATE + "view": "true", AGGREGATE + "edit": "true", AGGREGATE + "admin": "true"}),
    "system:basic-user": ({"rules": [
        SELF_REVIEWS, rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"])]}, {}),
    "system:discovery": ({"rules": [urls(["get"], [
        "/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*", *PUBLIC_PATHS])]}, {}),
    "system:public-info-viewer": ({"rules": [urls(["get"], PUBLIC_PATHS)]}, {}),
    "system:kube-scheduler": ({"rules": [
        rule(READ, [""], ["nodes", "namespaces", "services", "persistentvolumeclaims",
                          "persistentvolumes", "replicationcontrollers"]),
        rule([*READ, "delete"], [""], ["pods"]),
        rule(["create"], [""], ["pods/binding", "bindings"]),
        # system:volume-scheduler: the chosen node goes on WaitForFirstConsumer claims.
        rule(["patch", "update"], [""], ["persistentvolumeclaims", "persistentvolumes"]),
        rule(READ, ["storage.k8s.io"], ["storageclasses"]),
        rule(["patch", "update"], [""], ["pods/status"]),
        rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
        rule(READ, ["apps"], ["replicasets", "statefulsets"]),
        rule(READ, ["policy"], ["poddisruptionbudgets"]),
        rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
        rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
    ]}, {}),
    "system:kube-controller-manager": ({"rules": [
        rule(["*"], ["", "apps", "batch", "coordination.k8s.io", "policy", "events.k8s.io"],
             ["*"]),
        rule([*READ, "delete", "deletecollection", "patch", "update"], ["*"], ["*"]),
        rule(["create"], ["discovery.k8s.io"], ["endpointslices"]),
        rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
        rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
    ]}, {}),
    "system:node-proxier": ({"rules": [
        rule(READ, [""], ["services", "endpoints", "nodes"]),
        rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
        rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
    ]}, {}),
    # steer-proxy --mode nftables also enforces NetworkPolicy for its node, as
    # kube-router does; Kubernetes has no such default role, its network plugins
    # bring their own.
    "system:steersman:network-policy-enforcer": ({"rules": [
        rule(["list", "watch"], [""], ["pods", "namespaces"]),
        rule(["list", "watch"], ["networking.k8s.io"], ["networkpolicies"]),
    ]}, {}),
    "system:node": ({"rules": [
        rule(READ + ["create", "update", "patch", "delete"], [""], ["nodes", "nodes/status"]),
        rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
        rule(READ, [""], ["services"]),     # the containers' service variables
        # Each node enforces NetworkPolicy for its own pods (agent/network/netpol.py).
        rule(READ, ["networking.k8s.io"], ["networkpolicies"]),
        rule([*READ, "delete"], [""], ["pods"]),
        rule(["update", "patch"], [""], ["pods/status"]),
        rule(["get"], [""], ["secrets", "configmaps", "persistentvolumeclaims",
                             "persistentvolumes"]),
        rule(["create"], [""], ["serviceaccounts/token"]),
        rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
        rule(["get", "create", "update", "patch", "delete"], ["coordination.k8s.io"],
             ["leases"]),
        # Client and serving certificate renewal (kubelet's certificate manager).
        rule(["create", "get", "list", "watch"], ["certificates.k8s.io"],
             ["certificatesigningrequests"]),
    ]}, {}),
    # Kubernetes' role of the EndpointSlice controller's own account; here the
    # controller manager runs every controller as one user, which holds all of it.
    "system:controller:endpointslice-controller": ({"rules": [
        rule(READ, [""], ["services", "pods", "nodes"]),
        rule(["update"], [""], ["services/finalizers"]),
        rule(["get", "list", "watch", "create", "update", "delete"], ["discovery.k8s.io"],
             ["endpointslices"]),
        rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
    ]}, {}),
    # Kubernetes' role of the disruption controller's own account (read pods, their
    # controllers and scales; write only PDB status and events).
    "system:controller:disruption-controller": ({"rules": [
        rule(READ, ["apps"], ["deployments", "replicasets", "statefulsets"]),
        rule(READ, [""], ["pods", "replicationcontrollers"]),
        rule(READ, ["policy"], ["poddisruptionbudgets"]),
        rule(["update"], ["policy"], ["poddisruptionbudgets/status"]),
        rule(["get"], ["*"], ["*/scale"]),
        rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
    ]}, {}),
    "system:node-bootstrapper": ({"rules": [
        rule(["create", "get", "list", "watch"], ["certificates.k8s.io"],
             ["certificatesigningrequests"]),
    ]}, {}),
    # The PV controller with the local-path provisioner (control/controllers/
    # persistentvolume/): it binds, provisions, runs the helper pods that delete.
    "system:controller:persistent-volume-binder": ({"rules": [
        rule(["get", "list", "watch", "create", "delete", "patch", "update"], [""],
             ["persistentvolumes"]),
        rule(["patch", "update"], [""], ["persistentvolumes/status",
                                         "persistentvolumeclaims/status"]),
        rule(["get", "list", "watch", "patch", "update"], [""], ["persistentvolumeclaims"]),
        rule(["get", "list", "watch", "create", "delete"], [""], ["pods"]),
        rule(READ, [""], ["nodes"]),
        rule(READ, ["storage.k8s.io"], ["storageclasses"]),
        rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
    ]}, {}),
    # The horizontal pod autoscaler's own (least-privilege) role, as Kubernetes bootstraps it.
    "system:controller:horizontal-pod-autoscaler": ({"rules": [
        rule(["get", "list", "watch"], ["autoscaling"], ["horizontalpodautoscalers"]),
        rule(["update"], ["autoscaling"], ["horizontalpodautoscalers/status"]),
        rule(["get", "update"], ["*"], ["*/scale"]),
        rule(["list", "watch"], [""], ["pods"]),
        rule(["list"], ["metrics.k8s.io"], ["pods"]),
        rule(["get", "list"], ["custom.metrics.k8s.io", "external.metrics.k8s.io"], ["*"]),
        rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
    ]}, {}),
    # The resource quota controller's role, as Kubernetes bootstraps it: it counts
    # anything a quota can name, and writes only quotas' status.
    "system:controller:resourcequota-controller": ({"rules": [
        rule(["list", "watch"], ["*"], ["*"]),
        rule(["update"], [""], ["resourcequotas/status"]),
        rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
    ]}, {}),
    **CERTIFICATE_ROLES,
}


def _subject(kind, name):
    return {"kind": kind, "apiGroup": RBAC, "name": name}


CLUSTER_ROLE_BINDINGS = {
    "cluster-admin": ("cluster-admin", [_subject("Group", "system:masters")]),
    "system:discovery": ("system:discovery", [_subject("Group", "system:authenticated")]),
    "system:basic-user": ("system:basic-user", [_subject("Group", "system:authenticated")]),
    "system:public-info-viewer": ("system:public-info-viewer", [
        _subject("Group", "system:authenticated"), _subject("Group", "system:unauthenticated")]),
    "system:kube-scheduler": ("system:kube-scheduler",
                              [_subject("User", "system:kube-scheduler")]),
    "system:kube-controller-manager": ("system:kube-controller-manager",
                                       [_subject("User", "system:kube-controller-manager")]),
    "system:node-proxier": ("system:node-proxier", [_subject("User", "system:kube-proxy")]),
    "system:steersman:network-policy-enforcer": ("system:steersman:network-policy-enforcer",
                                                 [_subject("User", "system:kube-proxy")]),
    "system:controller:endpointslice-controller": (
        "system:controller:endpointslice-controller",
        [{"kind": "ServiceAccount", "name": "endpointslice-controller",
          "namespace": "kube-system"}]),
    "system:controller:disruption-controller": (
        "system:controller:disruption-controller",
        [{"kind": "ServiceAccount", "name": "disruption-controller",
          "namespace": "kube-system"}]),
    "system:node-bootstrapper": ("system:node-bootstrapper",
                                 [_subject("Group", "system:bootstrappers")]),
    "system:controller:horizontal-pod-autoscaler": (
        "system:controller:horizontal-pod-autoscaler",
        [{"kind": "ServiceAccount", "name": "horizontal-pod-autoscaler",
          "namespace": "kube-system"}]),
    "system:controller:resourcequota-controller": (
        "system:controller:resourcequota-controller",
        [{"kind": "ServiceAccount", "name": "resourcequota-controller",
          "namespace": "kube-system"}]),
    # kubeadm's bindings: new nodes' client certificates and their renewals are
    # approved by the csrapproving controller.
    "kubeadm:node-autoapprove-bootstrap": (
        "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
        [_subject("Group", "system:bootstrappers")]),
    "kubeadm:node-autoapprove-certificate-rotation": (
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
        [_subject("Group", "system:nodes")]),
    "system:controller:persistent-volume-binder": (
        "system:controller:persistent-volume-binder",
        [_subject("User", "system:kube-controller-manager"),
         {"kind": "ServiceAccount", "name": "persistent-volume-binder",
          "namespace": "kube-system"}]),
    "system:controller:certificate-controller": (
        "system:controller:certificate-controller",
        [_subject("User", "system:kube-controller-manager"),
         {"kind": "ServiceAccount", "name": "certificate-controller",
          "namespace": "kube-system"}]),
}

#: Leader election: each component renews its own Lease in kube-system.
LEADER_LEASES = {"kube-scheduler": "steer-scheduler",
                 "kube-controller-manager": "steer-controller-manager"}


def _leader_locking():
    roles, bindings = {}, {}
    for component, lease in LEADER_LEASES.items():
        name = f"system::leader-locking-{component}"
        roles[name] = {"rules": [rule(["get", "update", "patch"], ["coordination.k8s.io"],
                                      ["leases"], [lease]),
                                 rule(["create", "list", "watch"], ["coordination.k8s.io"],
                                      ["leases"])]}
        bindings[name] = (name, [_subject("User", f"system:{component}")])
    return roles, bindings


def _create(service, resource, namespace, body):
    try:
        service.create(resource, namespace, body)
        return True
    except errors.AlreadyExists:
        return False


def _meta(name, labels=None, namespace=None):
    meta = {"name": name, "labels": {**BOOTSTRAP_LABELS, **(labels or {})},
            "annotations": dict(AUTOUPDATE)}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _binding(kind, name, role_kind, role_name, subjects, namespace=None):
    return {"apiVersion": f"{RBAC}/v1", "kind": kind, "metadata": _meta(name, namespace=namespace),
            "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role_name},
            "subjects": subjects}


def ensure_policy(service):
    """Create every default role and binding that is missing; aggregate ClusterRoles."""
    for name, (body, labels) in CLUSTER_ROLES.items():
        _create(service, kinds.CLUSTERROLES, None, {
            "apiVersion": f"{RBAC}/v1", "kind": "ClusterRole",
            "metadata": _meta(name, labels), **body})
    for name, (role, subjects) in CLUSTER_ROLE_BINDINGS.items():
        _create(service, kinds.CLUSTERROLEBINDINGS, None,
                _binding("ClusterRoleBinding", name, "ClusterRole", role, subjects))
    roles, bindings = _leader_locking()
    for name, body in roles.items():
        _create(service, kinds.ROLES, "kube-system", {
            "apiVersion": f"{RBAC}/v1", "kind": "Role",
            "metadata": _meta(name, namespace="kube-system"), **body})
    for name, (role, subjects) in bindings.items():
        _create(service, kinds.ROLEBINDINGS, "kube-system",
                _binding("RoleBinding", name, "Role", role, subjects, "kube-system"))
    aggregate(service)
