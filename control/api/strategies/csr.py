"""The rules of CertificateSigningRequests: who asked, what may change, who may approve.

As kube-apiserver's certificates registry and admission plugins do:

- create: spec.username, uid, groups and extra are the requester's (never the
  body's); status starts empty. A kube-apiserver-client request for the group
  system:masters is refused (CertificateSubjectRestriction).
- update of the object: only metadata changes; spec and status stay.
- ``/status``: only the status changes; the Approved and Denied conditions stay
  (they are /approval's); setting the certificate needs ``sign`` on the signer
  (CertificateSigning).
- ``/approval``: only the Approved and Denied conditions change, and only for a
  user who may ``approve`` the signer: ``signers`` of certificates.k8s.io named
  by the signer name or ``<domain>/*`` (CertificateApproval).
"""

import copy

from control import errors
from control.api.auth import context
from control.api.auth.authz import forbidden
from control.api.auth.request_info import RequestInfo
from control.api.strategies.base import Strategy
from control.objects import certificates, meta, x509certs


def _check(resource, obj, problems):
    if problems:
        raise errors.Invalid(resource.kind, obj["metadata"].get("name", ""), problems,
                             group=resource.group)


def _may(auth, verb, signer):
    """Whether the request's user may ``verb`` the signer (by name or ``domain/*``)."""
    domain = signer.partition("/")[0]
    for name in (signer, f"{domain}/*"):
        info = RequestInfo(verb=verb, path="", resource_request=True,
                           api_group=certificates.GROUP, api_version="v1",
                           resource="signers", name=name)
        if auth.authorizer.authorize(auth.user, info)[0]:
            return True
    return False


def _require(verb, csr, what):
    """Raise 403 unless the user may ``verb`` the signer of ``csr`` (no user: nobody to judge)."""
    auth = context.current.get()
    if auth is None or auth.authorizer.allows_everything:
        return
    signer = (csr.get("spec") or {}).get("signerName") or ""
    if not _may(auth, verb, signer):
        info = RequestInfo(verb="update", path="", resource_request=True,
                           api_group=certificates.GROUP, resource="certificatesigningrequests",
                           subresource=what, name=csr["metadata"].get("name", ""))
        raise forbidden(auth.user, info, f'user not permitted to {verb} requests with '
                                         f'signerName "{signer}"')


def _conditions(status, keep):
    return [c for c in (status or {}).get("conditions") or ()
            if isinstance(c, dict) and keep(c.get("type"))]


def _stamp(conditions, now):
    for found in conditions:
        found.setdefault("lastUpdateTime", now)
        found.setdefault("lastTransitionTime", now)
    return conditions


class CSRStrategy(Strategy):
    """The object itself: the requester recorded on create; spec and status fixed after."""

    def prepare_for_create(self, obj):
        spec = obj.setdefault("spec", {})
        for field in certificates.REQUESTER_FIELDS:
            spec.pop(field, None)
        auth = context.current.get()
        if auth is not None:
            spec["username"] = auth.user.name
            if auth.user.uid:
                spec["uid"] = auth.user.uid
            if auth.user.groups:
                spec["groups"] = list(auth.user.groups)
            if auth.user.extra:
                spec["extra"] = {k: list(v) for k, v in auth.user.extra.items()}
        obj["status"] = {}
        self._restrict_subject(obj)
        return obj

    def _restrict_subject(self, obj):
        spec = obj["spec"]
        if spec.get("signerName") != certificates.KUBE_APISERVER_CLIENT:
            return
        try:
            request = x509certs.parse_request(certificates.request_pem(obj))
        except x509certs.RequestError:
            return      # validation reports it
        if "system:masters" in x509certs.request_names(request)[1]:
            raise errors.Forbidden(
                f'certificatesigningrequests.certificates.k8s.io '
                f'"{obj["metadata"].get("name", "")}" is forbidden: use of '
                f'{certificates.KUBE_APISERVER_CLIENT} signer with system:masters group is '
                "not allowed")

    def prepare_for_update(self, old, new):
        merged = super().prepare_for_update(old, new)
        merged["spec"] = copy.deepcopy(old.get("spec") or {})
        merged["status"] = copy.deepcopy(old.get("status") or {})
        return merged

    def validate(self, obj):
        _check(self.resource, obj, self.meta_errors(obj) + certificates.validate(obj))

    def warnings(self, obj):
        return []


class CSRStatusStrategy(CSRStrategy):
    """``/status``: the signer's conditions and the certificate; approval stays as stored."""

    def prepare_for_update(self, old, new):
        merged = {**old, "status": copy.deepcopy(new.get("status") or {})}
        merged["metadata"] = {**old["metadata"],
                              "resourceVersion": new["metadata"]["resourceVersion"]}
        status = merged["status"]
        now = meta.timestamp(meta.utcnow())
        status["conditions"] = (
            _conditions(old.get("status"), lambda t: t in certificates.APPROVAL_CONDITIONS)
            + _stamp(_conditions(status, lambda t: t not in certificates.APPROVAL_CONDITIONS),
                     now))
        _check(self.resource, merged, certificates.update_problems(old, merged))
        if status.get("certificate") and status.get("certificate") != \
                (old.get("status") or {}).get("certificate"):
            _require("sign", merged, "status")
        return merged


class CSRApprovalStrategy(CSRStrategy):
    """``/approval``: the Approved and Denied conditions, by whoever may approve the signer."""

    def prepare_for_update(self, old, new):
        merged = copy.deepcopy(old)
        merged["metadata"]["resourceVersion"] = new["metadata"]["resourceVersion"]
        status = merged.setdefault("status", {})
        now = meta.timestamp(meta.utcnow())
        status["conditions"] = (
            _stamp(_conditions(new.get("status"),
                               lambda t: t in certificates.APPROVAL_CONDITIONS), now)
            + _conditions(old.get("status"),
                          lambda t: t not in certificates.APPROVAL_CONDITIONS))
        _check(self.resource, merged, certificates.update_problems(old, merged))
        before = {c.get("type"): c.get("status") for c in _conditions(
            old.get("status"), lambda t: t in certificates.APPROVAL_CONDITIONS)}
        after = {c.get("type"): c.get("status") for c in _conditions(
            status, lambda t: t in certificates.APPROVAL_CONDITIONS)}
        if before != after:
            _require("approve", merged, "approval")
        return merged
