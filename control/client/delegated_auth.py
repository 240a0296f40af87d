"""Decide who calls a component's secure port and whether they may, by asking the API server.

Kubernetes' delegated authentication and authorization (k8s.io/apiserver's
options.DelegatingAuthenticationOptions / DelegatingAuthorizationOptions) as the
scheduler and controller manager use them:

- a client certificate the cluster CA signed names the user (CN) and groups (O);
  the TLS handshake already checked the signature, this reads the subject;
- a bearer token is checked with a TokenReview through the API server;
- a request for a path outside ``always_allow_paths`` must be allowed by a
  SubjectAccessReview (non-resource URL, the request's verb).

Answers are cached briefly (Kubernetes: 10 s each), keyed by a hash of the token
and the (user, groups, path, verb), so that a scraper every few seconds costs the
API server one review pair per TTL, not one per scrape.
"""

import hashlib
import time

from control.client import errors

TOKENREVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
SUBJECTACCESSREVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
#: Kubernetes' --authentication-token-webhook-cache-ttl and the authorizer's two TTLs.
TOKEN_TTL = AUTHORIZED_TTL = UNAUTHORIZED_TTL = 10.0
#: --authorization-always-allow-paths of kube-scheduler and kube-controller-manager.
ALWAYS_ALLOW_PATHS = ("/healthz", "/readyz", "/livez")
#: Cache entries kept at most (a flood of distinct bad tokens must not grow memory).
CACHE_SIZE = 1024


class User:
    """Who is calling: name, groups, uid, extra (as a TokenReview's status.user)."""

    def __init__(self, name, groups=(), uid="", extra=None):
        self.name, self.groups, self.uid = name, tuple(groups), uid
        self.extra = dict(extra or {})

    def __repr__(self):
        return f"User({self.name!r}, groups={list(self.groups)!r})"


class TtlCache:
    """A small dict whose entries expire ``ttl`` seconds (by ``clock``) after being put."""

    def __init__(self, clock=time.monotonic, size=CACHE_SIZE):
        self.clock, self.size = clock, size
        self._entries = {}

    def get(self, key):
        """Return the cached value, or None when absent or expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= self.clock():
            del self._entries[key]
            return None
        return value

    def put(self, key, value, ttl):
        if len(self._entries) >= self.size and key not in self._entries:
            now = self.clock()
            for stale in [k for k, (exp, _) in self._entries.items() if exp <= now]:
                del self._entries[stale]
            if len(self._entries) >= self.size:          # all fresh: drop the oldest
                del self._entries[next(iter(self._entries))]
        self._entries[key] = (self.clock() + ttl, value)


def user_from_certificate(peercert):
    """The user a verified client certificate names (``ssl.getpeercert()``), or None."""
    name, groups = "", []
    for rdn in (peercert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                name = value
            elif key == "organizationName":
                groups.append(value)
    return User(name, groups) if name else None


class DelegatingAuthenticator:
    """Authenticate by client certificate, else by a bearer token reviewed by the API server."""

    def __init__(self, rest, clock=time.monotonic, ttl=TOKEN_TTL):
        self.rest, self.ttl = rest, ttl
        self.cache = TtlCache(clock)
        self.reviews = 0        # TokenReviews sent (tests see the cache work)

    def authenticate(self, peercert, authorization_header):
        """Return (User or None, reason); None with a reason when the caller is not known."""
        user = user_from_certificate(peercert)
        if user is not None:
            return user, ""
        scheme, _, token = (authorization_header or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None, "no client certificate or bearer token"
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        answer = self._review(token)
        if answer[1] != "review failed":        # an unreachable API server: ask again next time
            self.cache.put(key, answer, self.ttl)
        return answer

    def _review(self, token):
        self.reviews += 1
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": token}}
        try:
            status = (self.rest.request("POST", TOKENREVIEWS, body=body) or {}).get("status", {})
        except (errors.ApiException, OSError, ValueError):
            return None, "review failed"
        if not status.get("authenticated"):
            return None, "invalid bearer token"
        info = status.get("user") or {}
        return User(info.get("username", ""), info.get("groups") or (), info.get("uid", ""),
                    info.get("extra")), ""


class DelegatingAuthorizer:
    """Allow always-allowed paths; ask a SubjectAccessReview for everything else."""

    def __init__(self, rest, clock=time.monotonic, always_allow_paths=ALWAYS_ALLOW_PATHS,
                 authorized_ttl=AUTHORIZED_TTL, unauthorized_ttl=UNAUTHORIZED_TTL):
        self.rest = rest
        self.always_allow_paths = tuple(always_allow_paths)
        self.authorized_ttl, self.unauthorized_ttl = authorized_ttl, unauthorized_ttl
        self.cache = TtlCache(clock)
        self.reviews = 0

    def always_allowed(self, path):
        return path in self.always_allow_paths

    def authorize(self, user, path, verb="get"):
        """Return (allowed, reason) for ``user`` doing ``verb`` on the URL ``path``."""
        if self.always_allowed(path):
            return True, ""
        key = (user.name, user.groups, user.uid, path, verb)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        answer = self._review(user, path, verb)
        if answer[1] != "review failed":
            self.cache.put(key, answer, self.authorized_ttl if answer[0]
                           else self.unauthorized_ttl)
        return answer

    def _review(self, user, path, verb):
        self.reviews += 1
        spec = {"user": user.name, "groups": list(user.groups),
                "nonResourceAttributes": {"path": path, "verb": verb}}
        if user.uid:
            spec["uid"] = user.uid
        if user.extra:
            spec["extra"] = user.extra
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                "spec": spec}
        try:
            status = (self.rest.request("POST", SUBJECTACCESSREVIEWS, body=body)
                      or {}).get("status", {})
        except (errors.ApiException, OSError, ValueError):
            return False, "review failed"
        if status.get("allowed") and not status.get("denied"):
            return True, ""
        return False, status.get("reason") or "no RBAC rule allows it"
