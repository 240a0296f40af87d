"""The API server's authentication and authorization flags, named as kube-apiserver's.

Only the standard library is imported at module level: steer-apiserver parses its
flags before gunicorn forks, and the workers import the rest.
"""

import os

#: steer-apiserver's --authorization-mode default, as Kubernetes' deployments run it:
#: nodes through the Node authorizer, everyone else through RBAC.
DEFAULT_AUTHORIZATION_MODE = "Node,RBAC"


def _bool(text):
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise ValueError(f"want true or false, got {text!r}")
    return value in ("true", "1")


def add_arguments(parser):
    """Add the authn/authz flags to the steer-apiserver parser."""
    group = parser.add_argument_group("authentication and authorization")
    group.add_argument("--authorization-mode", default=DEFAULT_AUTHORIZATION_MODE,
                       help="comma-separated authorizers, tried in order: Node, RBAC, "
                            "AlwaysAllow, AlwaysDeny (e.g. Node,RBAC)")
    group.add_argument("--anonymous-auth", type=_bool, default=True, metavar="BOOL",
                       help="true: requests without credentials are system:anonymous and go "
                            "to authorization; false: 401 except /healthz, /livez, /readyz, "
                            "/version")
    group.add_argument("--token-auth-file", metavar="FILE",
                       help="static bearer tokens, CSV token,user,uid,\"group1,group2\"")
    group.add_argument("--service-account-key-file", metavar="FILE", action="append",
                       default=[], help="PEM public (or private) keys that verify "
                                        "ServiceAccount tokens (repeatable)")
    group.add_argument("--service-account-signing-key-file", metavar="FILE",
                       help="PEM private key (EC P-256 or RSA) that signs ServiceAccount tokens")
    group.add_argument("--service-account-issuer",
                       default="https://kubernetes.default.svc.cluster.local",
                       help="iss of the ServiceAccount tokens issued and accepted")
    group.add_argument("--api-audiences", default="",
                       help="comma-separated audiences tokens must have (default: the issuer)")
    group.add_argument("--service-account-max-token-expiration", type=int, default=0,
                       metavar="SECONDS", help="cap on a requested token's lifetime (0: none)")


def check(parser, args):
    """Refuse unknown modes and missing key or token files before any worker starts."""
    from control.api.auth import authz

    try:
        authz.parse_modes(args.authorization_mode)
    except ValueError as exc:
        parser.error(str(exc))
    for flag, path in (("--token-auth-file", args.token_auth_file),
                       ("--service-account-signing-key-file",
                        args.service_account_signing_key_file),
                       *(("--service-account-key-file", p)
                         for p in args.service_account_key_file)):
        if path and not os.path.isfile(path):
            parser.error(f"{flag}: no such file: {path}")


def options(args):
    """Return the AuthOptions the flags describe (called in the worker)."""
    from control.api.auth.setup import AuthOptions

    return AuthOptions(
        authorization_mode=args.authorization_mode,
        token_auth_file=args.token_auth_file,
        service_account_key_files=tuple(args.service_account_key_file),
        service_account_signing_key_file=args.service_account_signing_key_file,
        service_account_issuer=args.service_account_issuer,
        api_audiences=tuple(a.strip() for a in args.api_audiences.split(",") if a.strip()),
        anonymous_auth=args.anonymous_auth,
        service_account_max_token_expiration=args.service_account_max_token_expiration)
