"""Build the API server's authentication and authorization from its flags.

``AuthOptions`` holds kube-apiserver's flags (--authorization-mode,
--token-auth-file, --service-account-*, --anonymous-auth, --api-audiences);
``build(options, service)`` returns an ``Auth`` with the middleware and what the
review and TokenRequest endpoints need.
"""

import datetime
import time
from dataclasses import dataclass, field

from control.api.auth import authn, authz, reviews, sa_token, tokens
from control.api.auth.middleware import AuthMiddleware, ProtobufReviews
from control.api.auth.policy import DEFAULT_TTL, Policy


@dataclass
class AuthOptions:
    """The flags; the defaults keep the behaviour of a server without authorization."""

    authorization_mode: str = authz.DEFAULT_MODE
    token_auth_file: str = None
    service_account_key_files: tuple = ()
    service_account_signing_key_file: str = None
    service_account_issuer: str = "https://kubernetes.default.svc.cluster.local"
    api_audiences: tuple = ()
    anonymous_auth: bool = True
    service_account_max_token_expiration: int = 0
    policy_ttl: float = DEFAULT_TTL
    #: Refuse bad credentials (401) even under AlwaysAllow; None: only when authorizing.
    enforce_authentication: bool = None
    static_tokens: dict = field(default_factory=dict)      # tests: token -> UserInfo


@dataclass
class Auth:
    middleware: AuthMiddleware
    authorizer: authz.Authorizer
    tokens: tokens.TokenChain
    audiences: list
    signer: sa_token.TokenSigner = None
    max_expiration: int = 0
    #: Reads kubectl's protobuf review bodies as JSON (before the request guard).
    protobuf_reviews: ProtobufReviews = field(default_factory=ProtobufReviews)


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def build(options, service, clock=time.time, now=_utcnow):
    """Return the Auth for ``options`` over the object service."""
    audiences = list(options.api_audiences) or [options.service_account_issuer]
    chain = []
    static = dict(options.static_tokens)
    if options.token_auth_file:
        static.update(tokens.read_token_file(options.token_auth_file))
    if static:
        chain.append(tokens.StaticTokens(static))
    signer = None
    verify_keys = []
    for path in options.service_account_key_files:
        verify_keys += sa_token.load_verify_keys(path)
    if options.service_account_signing_key_file:
        key = sa_token.load_signing_key(options.service_account_signing_key_file)
        signer = sa_token.TokenSigner(key, options.service_account_issuer, clock=clock)
        if not options.service_account_key_files:
            verify_keys.append(key.public_key())
    if verify_keys:
        verifier = sa_token.TokenVerifier(verify_keys, [options.service_account_issuer],
                                          audiences, clock=clock)
        chain.append(tokens.ServiceAccountTokens(verifier, service.get))
    chain.append(tokens.BootstrapTokens(service.get, now))
    token_chain = tokens.TokenChain(chain)
    policy = Policy.for_service(service, ttl=options.policy_ttl)
    authorizer = authz.Authorizer.from_modes(authz.parse_modes(options.authorization_mode),
                                             service, policy)
    authenticator = authn.RequestAuthenticator(token_chain)
    middleware = AuthMiddleware(authenticator, authorizer, policy, service,
                                anonymous_auth=options.anonymous_auth,
                                enforce=options.enforce_authentication)
    return Auth(middleware, authorizer, token_chain, audiences, signer,
                options.service_account_max_token_expiration)


def add_routes(app, auth, service):
    """Serve the reviews and serviceaccounts/token (literal routes win over the generic)."""
    authz_base, authn_base = "/apis/authorization.k8s.io/v1", "/apis/authentication.k8s.io/v1"
    for kind in ("SelfSubjectAccessReview", "SubjectAccessReview"):
        app.add_route(f"{authz_base}/{kind.lower()}s", reviews.AccessReviews(auth.authorizer,
                                                                              kind))
    app.add_route(f"{authz_base}/namespaces/{{ns}}/localsubjectaccessreviews",
                  reviews.AccessReviews(auth.authorizer, "LocalSubjectAccessReview"))
    app.add_route(f"{authz_base}/selfsubjectrulesreviews", reviews.RulesReview(auth.authorizer))
    app.add_route(f"{authn_base}/tokenreviews", reviews.TokenReviews(auth.tokens, auth.audiences))
    app.add_route(f"{authn_base}/selfsubjectreviews", reviews.SelfSubjectReviews())
    app.add_route("/api/v1/namespaces/{ns}/serviceaccounts/{name}/token",
                  reviews.TokenRequests(service, auth.signer, auth.max_expiration))
