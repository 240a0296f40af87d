"""The Node authorizer: what a node agent (system:node:<name>) may do, as Kubernetes allows.

A node reads every Node and writes only its own (and its status), its own Lease
in kube-node-lease, the pods bound to it (a list or watch must select
``spec.nodeName=<name>``; status writes and deletes only of its pods), events,
and reads the Secrets, ConfigMaps, ServiceAccounts and PersistentVolumeClaims its
pods reference, and the PersistentVolumes those claims are bound to. Kubernetes
keeps a graph of pods for the last question; at this scale the pods bound to the
node are listed from the store per request instead.
Anything else gets no opinion here (RBAC may still allow it).
"""

from control import errors
from control.api.auth import user as users
from control.objects import kinds

LEASE_NAMESPACE = "kube-node-lease"
READ = ("get", "list", "watch")
WRITE_OWN = ("get", "list", "watch", "create", "update", "patch")


def _volume_refs(pod_spec):
    """Yield (resource plural, name) of every object the pod spec's volumes and env use."""
    for volume in pod_spec.get("volumes") or ():
        if (volume.get("secret") or {}).get("secretName"):
            yield "secrets", volume["secret"]["secretName"]
        if (volume.get("configMap") or {}).get("name"):
            yield "configmaps", volume["configMap"]["name"]
        if (volume.get("persistentVolumeClaim") or {}).get("claimName"):
            yield "persistentvolumeclaims", volume["persistentVolumeClaim"]["claimName"]
        for source in (volume.get("projected") or {}).get("sources") or ():
            if (source.get("secret") or {}).get("name"):
                yield "secrets", source["secret"]["name"]
            if (source.get("configMap") or {}).get("name"):
                yield "configmaps", source["configMap"]["name"]


def _container_refs(pod_spec):
    containers = [*(pod_spec.get("initContainers") or ()), *(pod_spec.get("containers") or ()),
                  *(pod_spec.get("ephemeralContainers") or ())]
    for container in containers:
        for env in container.get("env") or ():
            source = env.get("valueFrom") or {}
            if (source.get("secretKeyRef") or {}).get("name"):
                yield "secrets", source["secretKeyRef"]["name"]
            if (source.get("configMapKeyRef") or {}).get("name"):
                yield "configmaps", source["configMapKeyRef"]["name"]
        for env_from in container.get("envFrom") or ():
            if (env_from.get("secretRef") or {}).get("name"):
                yield "secrets", env_from["secretRef"]["name"]
            if (env_from.get("configMapRef") or {}).get("name"):
                yield "configmaps", env_from["configMapRef"]["name"]


def pod_references(pod):
    """Return the set of (resource plural, name) a pod uses, in its own namespace."""
    spec = pod.get("spec") or {}
    refs = set(_volume_refs(spec)) | set(_container_refs(spec))
    refs |= {("secrets", s.get("name")) for s in spec.get("imagePullSecrets") or ()
             if s.get("name")}
    refs.add(("serviceaccounts", spec.get("serviceAccountName") or "default"))
    return refs


class NodeAuthorizer:
    """Allow node agents what their own node needs; no opinion on anything else."""

    name = "Node"

    def __init__(self, service):
        self.service = service

    def authorize(self, user, info):
        node = users.node_name(user)
        if node is None or not info.resource_request:
            return False, ""
        check = self._CHECKS.get((info.api_group, info.resource))
        if check is None:
            return False, f'node "{node}" may not touch {info.resource}'
        return check(self, node, info)

    # -- per resource ---------------------------------------------------------------
    def _nodes(self, node, info):
        if info.subresource == "status":
            return info.name == node and info.verb in ("get", "update", "patch"), ""
        if not info.subresource and info.verb in READ:
            return True, ""
        if not info.subresource and info.verb in WRITE_OWN and info.name == node:
            return True, ""
        # A POST names its object in the body; NodeRestriction checks that name.
        if info.verb == "create" and not info.name and not info.subresource:
            return True, ""
        return False, f'node "{node}" may only modify its own Node'

    def _leases(self, node, info):
        if info.namespace == LEASE_NAMESPACE and info.verb == "create" and not info.name:
            return True, ""     # the name in the body is checked by NodeRestriction
        allowed = (info.namespace == LEASE_NAMESPACE and info.name == node
                   and info.verb in (*WRITE_OWN, "delete"))
        return allowed, "" if allowed else f'node "{node}" may only use its own Lease'

    def _pods(self, node, info):
        if info.verb in ("list", "watch") and not info.subresource:
            selected = f"spec.nodeName={node}" in info.field_selector.split(",")
            return selected, "" if selected else (
                f'node "{node}" can only list pods with fieldSelector spec.nodeName={node}')
        if info.verb == "get" and info.subresource in ("", "status") or (
                info.subresource == "status" and info.verb in ("update", "patch")) or (
                info.verb == "delete" and not info.subresource):
            bound = self._pod_node(info.namespace, info.name) == node
            return bound, "" if bound else f'node "{node}" has no relationship to this pod'
        return False, f'node "{node}" may not {info.verb} pods/{info.subresource}'

    def _events(self, node, info):
        return info.verb in ("create", "update", "patch"), ""

    def _endpointslices(self, node, info):
        """Read-only: a node's service proxy and DNS follow every Service's endpoints."""
        allowed = info.verb in READ and not info.subresource
        return allowed, "" if allowed else f'node "{node}" may only read endpointslices'

    def _services(self, node, info):
        """Read-only: the agent gives containers every Service's variables (kubelet does)."""
        allowed = info.verb in READ and not info.subresource
        return allowed, "" if allowed else f'node "{node}" may only read services'

    def _networkpolicies(self, node, info):
        """Read-only: a node enforces every policy that selects its pods or their peers."""
        allowed = info.verb in READ and not info.subresource
        return allowed, "" if allowed else f'node "{node}" may only read networkpolicies'

    def _certificatesigningrequests(self, node, info):
        """Its own client and serving certificates: create CSRs and read them back."""
        allowed = info.verb in ("create", *READ) and not info.subresource
        return allowed, "" if allowed else (
            f'node "{node}" may only create and read certificatesigningrequests')

    def _referenced(self, node, info):
        if info.verb not in READ or not info.name or info.subresource:
            return False, f'node "{node}" can only get individual {info.resource}'
        for pod in self._pods_on(node, info.namespace):
            if (info.resource, info.name) in pod_references(pod):
                return True, ""
        return False, (f'no relationship found between node "{node}" and this object')

    def _token(self, node, info):
        """serviceaccounts/token: a projected token for a ServiceAccount its pods run as."""
        if info.verb != "create":
            return False, ""
        for pod in self._pods_on(node, info.namespace):
            if ("serviceaccounts", info.name) in pod_references(pod):
                return True, ""
        return False, f'no relationship found between node "{node}" and this object'

    def _persistentvolumes(self, node, info):
        """A PV is readable by a node whose pods use a claim bound to it (the graph's edge)."""
        if info.verb != "get" or not info.name or info.subresource:
            return False, f'node "{node}" can only get individual persistentvolumes'
        claims = {(pod["metadata"].get("namespace"), ref)
                  for pod in self._pods_on(node, None)
                  for kind, ref in _volume_refs(pod.get("spec") or {})
                  if kind == "persistentvolumeclaims"}
        for namespace, claim_name in sorted(claims):
            try:
                claim = self.service.get(kinds.lookup("", "v1", "persistentvolumeclaims"),
                                         namespace, claim_name)
            except errors.NotFound:
                continue
            if (claim.get("spec") or {}).get("volumeName") == info.name:
                return True, ""
        return False, f'no relationship found between node "{node}" and this object'

    def _serviceaccounts(self, node, info):
        if info.subresource == "token":
            return self._token(node, info)
        return self._referenced(node, info)

    _CHECKS = {
        ("", "nodes"): _nodes,
        ("coordination.k8s.io", "leases"): _leases,
        ("", "pods"): _pods,
        ("", "events"): _events,
        ("events.k8s.io", "events"): _events,
        ("", "secrets"): _referenced,
        ("", "configmaps"): _referenced,
        ("", "persistentvolumeclaims"): _referenced,
        ("", "persistentvolumes"): _persistentvolumes,
        ("", "serviceaccounts"): _serviceaccounts,
        ("discovery.k8s.io", "endpointslices"): _endpointslices,
        ("", "services"): _services,
        ("networking.k8s.io", "networkpolicies"): _networkpolicies,
        ("certificates.k8s.io", "certificatesigningrequests"): _certificatesigningrequests,
    }

    # -- lookups (per request; see the module docstring) -------------------------------
    def _pod_node(self, namespace, name):
        try:
            pod = self.service.get(kinds.PODS, namespace, name)
        except errors.NotFound:
            return None
        return (pod.get("spec") or {}).get("nodeName")

    def _pods_on(self, node, namespace):
        items, _, _ = self.service.list(kinds.PODS, namespace or None,
                                        field_selector=f"spec.nodeName={node}")
        return items
