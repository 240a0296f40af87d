"""Evaluate RBAC as Kubernetes does: rules of Roles and ClusterRoles, bound to subjects.

A request is allowed when some ClusterRoleBinding, or some RoleBinding in the
request's namespace, binds a subject the user is to a role with a rule that
covers the request. Nothing here denies: RBAC only ever allows or has no opinion.
"""

from control.api.auth import user as users

ALL = "*"
#: Users whose bindings a snapshot remembers before it starts afresh.
MEMO_LIMIT = 4096


def _has(values, wanted):
    return ALL in values or wanted in values


def _resource_matches(rule_resources, info):
    combined = info.resource_and_sub
    for ruled in rule_resources:
        if ruled in (ALL, combined):
            return True
        # "*/scale": this subresource of every resource.
        if info.subresource and ruled == "*/" + info.subresource:
            return True
    return False


def _nonresource_matches(urls, path):
    for url in urls:
        if url == ALL or url == path:
            return True
        if url.endswith("*") and path.startswith(url[:-1]):
            return True
    return False


def rule_allows(rule, info):
    """Return whether one PolicyRule dict covers the request ``info`` (a RequestInfo)."""
    if not _has(rule.get("verbs") or (), info.verb):
        return False
    if not info.resource_request:
        return _nonresource_matches(rule.get("nonResourceURLs") or (), info.path)
    if not _has(rule.get("apiGroups") or (), info.api_group):
        return False
    if not _resource_matches(rule.get("resources") or (), info):
        return False
    names = rule.get("resourceNames") or ()
    return not names or info.name in names


def subject_matches(subject, user, binding_namespace=""):
    """Return whether a binding's subject is ``user``."""
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "User":
        return name == user.name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return bool(namespace) and users.service_account_user(namespace, name) == user.name
    return False


def binds(binding, user):
    namespace = binding.get("metadata", {}).get("namespace", "")
    return any(subject_matches(s, user, namespace) for s in binding.get("subjects") or ())


class RBACAuthorizer:
    """Allow what the roles bound to a user allow; no opinion otherwise."""

    name = "RBAC"

    def __init__(self, policy):
        #: A policy.Policy snapshot source: ``policy.current()`` returns a Snapshot.
        self.policy = policy

    def authorize(self, user, info):
        """Return (allowed, reason); reason names the binding that allowed."""
        snapshot = self.policy.current()
        scopes = (None, info.namespace) if info.namespace else (None,)
        for namespace in scopes:
            for reason, rules in self._granted(snapshot, user, namespace):
                if any(rule_allows(rule, info) for rule in rules):
                    return True, reason
        return False, ""

    @staticmethod
    def _granted(snapshot, user, namespace):
        """Return [(reason, rules)] of the bindings of ``user``: ClusterRoleBindings
        (``namespace`` None) or the RoleBindings of ``namespace``.

        Remembered per snapshot: matching every binding's subjects against the user
        on every request was the largest part of RBAC's cost under load.
        """
        key = (user.name, user.groups, namespace)
        found = snapshot.memo.get(key)
        if found is not None:
            return found
        if namespace is None:
            found = [(f'RBAC: allowed by ClusterRoleBinding "{b["metadata"]["name"]}"',
                      snapshot.rules_of(b))
                     for b in snapshot.cluster_role_bindings if binds(b, user)]
        else:
            found = [(f'RBAC: allowed by RoleBinding "{b["metadata"]["name"]}/{namespace}"',
                      snapshot.rules_of(b))
                     for b in snapshot.role_bindings.get(namespace, ()) if binds(b, user)]
        if len(snapshot.memo) >= MEMO_LIMIT:
            snapshot.memo.clear()
        snapshot.memo[key] = found
        return found

    def rules_for(self, user, namespace):
        """Return every rule that applies to ``user`` in ``namespace`` (rules reviews)."""
        snapshot = self.policy.current()
        rules = []
        for binding in snapshot.cluster_role_bindings:
            if binds(binding, user):
                rules.extend(snapshot.rules_of(binding))
        for binding in snapshot.role_bindings.get(namespace, ()):
            if binds(binding, user):
                rules.extend(snapshot.rules_of(binding))
        return rules
