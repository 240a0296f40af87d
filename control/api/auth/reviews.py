"""Answer the review kinds: access reviews, rules reviews, TokenReview, SelfSubjectReview,
and TokenRequest (serviceaccounts/token). Reviews are created and answered, never stored.

``kubectl auth can-i`` POSTs a SelfSubjectAccessReview; ``kubectl auth whoami`` a
SelfSubjectReview; components that accept tokens ask TokenReview; node agents ask
serviceaccounts/{name}/token for the tokens they project into pods.
"""

import datetime

import falcon

from control import errors
from control.api import bodies
from control.api.auth import noderestriction
from control.api.auth import user as users
from control.api.auth.request_info import RequestInfo
from control.api.auth.tokens import InvalidCredentials
from control.objects import kinds

AUTHZ = "authorization.k8s.io/v1"
AUTHN = "authentication.k8s.io/v1"


def _answer(resp, body, spec, status):
    out = {"kind": body.get("kind"), "apiVersion": body.get("apiVersion"),
           "metadata": {**(body.get("metadata") or {}),
                        "creationTimestamp": None}, "spec": spec, "status": status}
    bodies.write_json(resp, out, falcon.HTTP_201)


def _check_kind(body, api_version, kind):
    if body.get("kind") not in (None, kind) or body.get("apiVersion") not in (None, api_version):
        raise errors.BadRequest(f"expected {api_version} {kind}, got "
                                f"{body.get('apiVersion')} {body.get('kind')}")
    body.setdefault("kind", kind)
    body.setdefault("apiVersion", api_version)


def attributes_of(spec, namespace_override=None):
    """Return the RequestInfo a SubjectAccessReview spec asks about."""
    resource = spec.get("resourceAttributes")
    if resource:
        namespace = resource.get("namespace", "")
        if namespace_override is not None:
            namespace = namespace_override
        return RequestInfo(verb=resource.get("verb", ""), path="", resource_request=True,
                           api_group=resource.get("group", ""),
                           api_version=resource.get("version", ""), namespace=namespace,
                           resource=resource.get("resource", ""),
                           subresource=resource.get("subresource", ""),
                           name=resource.get("name", ""))
    other = spec.get("nonResourceAttributes")
    if other:
        return RequestInfo(verb=other.get("verb", ""), path=other.get("path", ""))
    raise errors.Invalid("SubjectAccessReview", "", [
        ("spec.resourceAttributes", "FieldValueRequired",
         "exactly one of nonResourceAttributes or resourceAttributes must be specified")],
        group="authorization.k8s.io")


class AccessReviews:
    """SelfSubjectAccessReview, SubjectAccessReview and LocalSubjectAccessReview."""

    def __init__(self, authorizer, kind):
        self.authorizer, self.kind = authorizer, kind

    def on_post(self, req, resp, ns=None):
        body = bodies.read_object(req)
        _check_kind(body, AUTHZ, self.kind)
        spec = dict(body.get("spec") or {})
        if self.kind == "SelfSubjectAccessReview":
            subject = req.context.user
        else:
            if not spec.get("user") and not spec.get("groups"):
                raise errors.Invalid(self.kind, "", [("spec.user", "FieldValueRequired",
                                     "at least one of user or group must be specified")],
                                     group="authorization.k8s.io")
            subject = users.UserInfo(spec.get("user", ""), tuple(spec.get("groups") or ()),
                                     spec.get("uid", ""), dict(spec.get("extra") or {}))
        if self.kind == "LocalSubjectAccessReview":
            attrs = (spec.get("resourceAttributes") or {})
            if attrs.get("namespace", ns) != ns:
                raise errors.BadRequest(f"spec.resourceAttributes.namespace must match the "
                                        f"namespace of the request ({ns})")
        info = attributes_of(spec, ns if self.kind == "LocalSubjectAccessReview" else None)
        allowed, reason = self.authorizer.authorize(subject, info)
        status = {"allowed": allowed}
        if reason:
            status["reason"] = reason
        _answer(resp, body, spec, status)


class RulesReview:
    """SelfSubjectRulesReview: the rules RBAC grants the requester in a namespace."""

    def __init__(self, authorizer):
        self.authorizer = authorizer

    def on_post(self, req, resp):
        body = bodies.read_object(req)
        _check_kind(body, AUTHZ, "SelfSubjectRulesReview")
        spec = body.get("spec") or {}
        rbac = self.authorizer.rbac
        rules = rbac.rules_for(req.context.user, spec.get("namespace", "")) if rbac else []
        resource_rules = [{k: r[k] for k in ("verbs", "apiGroups", "resources", "resourceNames")
                           if r.get(k)} for r in rules if not r.get("nonResourceURLs")]
        nonresource = [{"verbs": r["verbs"], "nonResourceURLs": r["nonResourceURLs"]}
                       for r in rules if r.get("nonResourceURLs")]
        if self.authorizer.allows_everything:
            resource_rules = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
            nonresource = [{"verbs": ["*"], "nonResourceURLs": ["*"]}]
        # Node authorization answers per object: it cannot list rules, so "incomplete".
        _answer(resp, body, spec, {"resourceRules": resource_rules,
                                   "nonResourceRules": nonresource,
                                   "incomplete": rbac is None or len(
                                       self.authorizer.authorizers) > 1})


class TokenReviews:
    """TokenReview: who a bearer token authenticates, for the audiences asked."""

    def __init__(self, tokens, audiences):
        self.tokens, self.audiences = tokens, list(audiences)

    def on_post(self, req, resp):
        body = bodies.read_object(req)
        _check_kind(body, AUTHN, "TokenReview")
        spec = body.get("spec") or {}
        token = spec.get("token")
        if not token:
            raise errors.Invalid("TokenReview", "", [("spec.token", "FieldValueRequired",
                                                      "Required value")],
                                 group="authentication.k8s.io")
        audiences = list(spec.get("audiences") or self.audiences)
        status = {"authenticated": False, "user": {}, "audiences": audiences}
        if self.tokens is not None:
            try:
                found = self.tokens.authenticate_token(token, audiences or None)
                status.update(authenticated=True, user=found.to_review())
            except InvalidCredentials as exc:
                status["error"] = str(exc)
        _answer(resp, body, spec, status)


class SelfSubjectReviews:
    """SelfSubjectReview (kubectl auth whoami): the requester's own user."""

    def on_post(self, req, resp):
        body = bodies.read_object(req)
        _check_kind(body, AUTHN, "SelfSubjectReview")
        _answer(resp, body, None, {"userInfo": req.context.user.to_review()})


class TokenRequests:
    """serviceaccounts/{name}/token: sign a token for a ServiceAccount, maybe bound to a pod."""

    def __init__(self, service, signer, max_expiration=None):
        self.service, self.signer = service, signer
        self.max_expiration = max_expiration

    def on_post(self, req, resp, ns, name):
        if self.signer is None:
            raise errors.NotFound("serviceaccounts/token is not served: the API server has no "
                                  "--service-account-signing-key-file")
        body = bodies.read_object(req)
        _check_kind(body, AUTHN, "TokenRequest")
        account = self.service.get(kinds.SERVICEACCOUNTS, ns, name)
        spec = dict(body.get("spec") or {})
        seconds = int(spec.get("expirationSeconds") or 3600)
        if seconds < 600:
            raise errors.Invalid("TokenRequest", name, [
                ("spec.expirationSeconds", "FieldValueInvalid",
                 "may not specify a duration less than 10 minutes")],
                group="authentication.k8s.io")
        if self.max_expiration:
            seconds = min(seconds, self.max_expiration)
        pod = self._bound_pod(ns, spec.get("boundObjectRef"))
        noderestriction.admit_token_request(name, pod)
        if pod is not None:
            pod = {"name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}
        token, expiry = self.signer.issue(ns, name, account["metadata"]["uid"],
                                          spec.get("audiences") or None, seconds, pod=pod)
        spec.update(expirationSeconds=seconds,
                    audiences=spec.get("audiences") or [self.signer.issuer])
        when = datetime.datetime.fromtimestamp(expiry, datetime.timezone.utc)
        out = {"kind": "TokenRequest", "apiVersion": AUTHN,
               "metadata": {"name": name, "namespace": ns, "creationTimestamp": None},
               "spec": spec, "status": {"token": token, "expirationTimestamp":
                                        when.strftime("%Y-%m-%dT%H:%M:%SZ")}}
        bodies.write_json(resp, out, falcon.HTTP_201)

    def _bound_pod(self, namespace, ref):
        if not ref:
            return None
        if ref.get("kind") != "Pod":
            raise errors.BadRequest("boundObjectRef: only a Pod can bind a token here")
        pod = self.service.get(kinds.PODS, namespace, ref.get("name", ""))
        if ref.get("uid") and ref["uid"] != pod["metadata"]["uid"]:
            raise errors.Conflict(f"the pod {ref.get('name')} has uid "
                                  f"{pod['metadata']['uid']}, not {ref['uid']}")
        if pod["metadata"].get("deletionTimestamp"):
            raise errors.BadRequest(f"the pod {ref.get('name')} is being deleted")
        return pod
