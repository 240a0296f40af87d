"""Refuse to grant what the granter does not hold, as Kubernetes' RBAC storage does.

Creating or updating a Role or ClusterRole is allowed when the user already holds
every permission it grants (in the role's namespace, or cluster-wide for a
ClusterRole), or may ``escalate`` on it. Creating or updating a binding is allowed
when the user holds every permission of the role it references, or may ``bind``
that role.
"""

from control.api.auth.authz import forbidden
from control.api.auth.rbac import ALL
from control.api.auth.request_info import RequestInfo

RBAC_GROUP = "rbac.authorization.k8s.io"


def _covers(owner_rules, verb, group, resource, name, url=None):
    for rule in owner_rules:
        verbs = rule.get("verbs") or ()
        if ALL not in verbs and verb not in verbs:
            continue
        if url is not None:
            for owned in rule.get("nonResourceURLs") or ():
                if owned in (ALL, url) or (owned.endswith("*") and url.startswith(owned[:-1])):
                    return True
            continue
        groups = rule.get("apiGroups") or ()
        if ALL not in groups and group not in groups:
            continue
        resources = rule.get("resources") or ()
        sub = resource.partition("/")[2]
        if not (ALL in resources or resource in resources
                or (sub and f"*/{sub}" in resources)):
            continue
        names = rule.get("resourceNames") or ()
        if not names or (name and name in names):
            return True
    return False


def uncovered(requested_rules, owner_rules):
    """Return the requested rules (broken down) that ``owner_rules`` do not cover."""
    missing = []
    for rule in requested_rules:
        for verb in rule.get("verbs") or ():
            for url in rule.get("nonResourceURLs") or ():
                if not _covers(owner_rules, verb, "", "", "", url):
                    missing.append({"verbs": [verb], "nonResourceURLs": [url]})
            for group in rule.get("apiGroups") or ():
                for resource in rule.get("resources") or ():
                    for name in rule.get("resourceNames") or [""]:
                        if not _covers(owner_rules, verb, group, resource, name):
                            piece = {"verbs": [verb], "apiGroups": [group],
                                     "resources": [resource]}
                            if name:
                                piece["resourceNames"] = [name]
                            missing.append(piece)
    return missing


def _may(auth, verb, plural, namespace, name):
    info = RequestInfo(verb=verb, path="", resource_request=True, api_group=RBAC_GROUP,
                       api_version="v1", namespace=namespace, resource=plural, name=name)
    return auth.authorizer.authorize(auth.user, info)[0]


def _owned_rules(auth, namespace):
    rbac = auth.authorizer.rbac
    return rbac.rules_for(auth.user, namespace) if rbac is not None else []


def check_role(auth, plural, role):
    """Raise 403 if ``role`` (a Role or ClusterRole) grants what its author lacks."""
    meta = role.get("metadata", {})
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    if _may(auth, "escalate", plural, namespace, name):
        return
    missing = uncovered(role.get("rules") or (), _owned_rules(auth, namespace))
    if missing:
        info = RequestInfo(verb="create", path="", resource_request=True, api_group=RBAC_GROUP,
                           namespace=namespace, resource=plural, name=name)
        raise forbidden(auth.user, info, "user is attempting to grant RBAC permissions not "
                        f"currently held: {missing}")


def check_binding(auth, plural, binding, role_rules):
    """Raise 403 if ``binding`` references a role whose rules its author lacks."""
    meta = binding.get("metadata", {})
    namespace = meta.get("namespace", "")
    ref = binding.get("roleRef") or {}
    ref_plural = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
    if _may(auth, "bind", ref_plural, namespace, ref.get("name", "")):
        return
    if uncovered(role_rules, _owned_rules(auth, namespace)):
        info = RequestInfo(verb="bind", path="", resource_request=True, api_group=RBAC_GROUP,
                           namespace=namespace, resource=ref_plural, name=ref.get("name", ""))
        raise forbidden(auth.user, info, "user is attempting to bind a role with permissions "
                        "not currently held")
