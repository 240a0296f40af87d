"""Approve nodes' own certificate requests: Kubernetes' csrapproving controller, and one step more.

Kubelet client requests (signer kube-apiserver-client-kubelet, a node subject, no
SANs, client usages) are approved as Kubernetes' SubjectAccessReview approver does:

- ``selfnodeclient``: the requester is the node the request names (a renewal) and a
  SubjectAccessReview says it may ``create certificatesigningrequests/selfnodeclient``
  (the group system:nodes is bound to it by default);
- ``nodeclient``: otherwise, if it may ``create certificatesigningrequests/nodeclient``
  (bound to system:bootstrappers: a node joining with a bootstrap token).

Steersman also approves kubelet *serving* requests, which Kubernetes leaves to an
admin or a third-party approver: only when the requester is ``system:node:<name>``
in system:nodes, the request's subject is that same node, the Node object exists and
every DNS and IP name asked for is one of that Node's own (its name, its
Hostname/InternalDNS/ExternalDNS and InternalIP/ExternalIP addresses). Anything
else stays Pending for `kubectl certificate approve`.
"""

import copy
import logging

from control.client import NotFound
from control.controllers.controller import Controller, split_key
from control.controllers.csrsigning import NODE_PREFIX, NODES_GROUP, signer_problem
from control.objects import certificates, kinds, meta, x509certs

log = logging.getLogger(__name__)

SUBJECTACCESSREVIEWS = kinds.lookup("authorization.k8s.io", "v1", "subjectaccessreviews")
NAME_ADDRESS_TYPES = ("Hostname", "InternalDNS", "ExternalDNS")
IP_ADDRESS_TYPES = ("InternalIP", "ExternalIP")
SELF_MESSAGE = "Auto approving self kubelet client certificate after SubjectAccessReview."
NODE_MESSAGE = "Auto approving kubelet client certificate after SubjectAccessReview."
SERVING_MESSAGE = ("Auto approving kubelet serving certificate: the requesting node asks "
                   "only for its own names and addresses.")


def node_names_of(node):
    """Return (DNS names, IP addresses) a Node may put in its serving certificate."""
    name = (node.get("metadata") or {}).get("name", "")
    addresses = (node.get("status") or {}).get("addresses") or ()
    dns = {name} | {a.get("address") for a in addresses if a.get("type") in NAME_ADDRESS_TYPES}
    ips = {a.get("address") for a in addresses if a.get("type") in IP_ADDRESS_TYPES}
    return dns - {None, ""}, ips - {None, ""}


def serving_problem(csr, request, node):
    """Return why a serving request is not the requesting node's own, or None."""
    spec = csr.get("spec") or {}
    username = spec.get("username", "")
    if not username.startswith(NODE_PREFIX) or NODES_GROUP not in (spec.get("groups") or ()):
        return f"requester {username!r} is not a node"
    cn, _, dns, ips, _ = x509certs.request_names(request)
    if cn != username:
        return f"the request names {cn!r}, not its requester {username!r}"
    if node is None:
        return f"node {username[len(NODE_PREFIX):]!r} does not exist"
    own_dns, own_ips = node_names_of(node)
    foreign = sorted(set(dns) - own_dns) + sorted(set(ips) - own_ips)
    return f"names not the node's own: {foreign}" if foreign else None


class CSRApprovingController(Controller):
    """Approve kubelet client requests by SubjectAccessReview; node-own serving requests."""

    def __init__(self, rest, csr_informer, node_informer, queue=None, clock=meta.utcnow):
        super().__init__("csrapproving", [csr_informer, node_informer], queue)
        self.rest, self.store, self.nodes = rest, csr_informer.store, node_informer.store
        self.clock = clock
        csr_informer.add_handler(self._maybe_enqueue, lambda old, new: self._maybe_enqueue(new))

    def _maybe_enqueue(self, csr):
        if self._pending(csr):
            self.enqueue(csr)

    @staticmethod
    def _pending(csr):
        status = csr.get("status") or {}
        return (csr.get("spec") or {}).get("signerName") in (
            certificates.KUBELET_CLIENT, certificates.KUBELET_SERVING) and not any(
            certificates.condition(status, kind) for kind in certificates.APPROVAL_CONDITIONS)

    def sync(self, key):
        _, name = split_key(key)
        cached = self.store.get(key)
        if cached is None or not self._pending(cached):
            return
        spec = cached["spec"]
        try:
            request = x509certs.parse_request(certificates.request_pem(cached))
        except x509certs.RequestError:
            return      # the signer marks it Failed once approved; nothing to approve
        if signer_problem(spec["signerName"], request, spec.get("usages")):
            return
        if spec["signerName"] == certificates.KUBELET_CLIENT:
            message = self._client_decision(spec, request)
        else:
            node = self.nodes.get(spec.get("username", "")[len(NODE_PREFIX):])
            problem = serving_problem(cached, request, node)
            if problem:
                log.info("event=csr_left_pending name=%s reason=%r", name, problem)
                return
            message = SERVING_MESSAGE
        if message is None:
            return
        csr = copy.deepcopy(cached)
        csr.setdefault("status", {}).setdefault("conditions", []).append(
            certificates.new_condition(certificates.APPROVED, "AutoApproved", message,
                                       meta.timestamp(self.clock())))
        try:
            self.rest.update(kinds.CERTIFICATESIGNINGREQUESTS, None, csr, subresource="approval")
        except NotFound:
            return
        log.info("event=csr_approved name=%s requestor=%s", name, spec.get("username", ""))

    def _client_decision(self, spec, request):
        cn = x509certs.request_names(request)[0]
        if cn == spec.get("username") and self._allowed(spec, "selfnodeclient"):
            return SELF_MESSAGE
        if self._allowed(spec, "nodeclient"):
            return NODE_MESSAGE
        return None

    def _allowed(self, spec, subresource):
        """Ask the API server whether the requester may create CSRs/``subresource``."""
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                  "spec": {"user": spec.get("username", ""), "groups": spec.get("groups") or [],
                           "uid": spec.get("uid", ""), "extra": spec.get("extra") or {},
                           "resourceAttributes": {
                               "group": certificates.GROUP, "verb": "create",
                               "resource": "certificatesigningrequests",
                               "subresource": subresource}}}
        answer = self.rest.create(SUBJECTACCESSREVIEWS, None, review)
        return bool((answer.get("status") or {}).get("allowed"))
