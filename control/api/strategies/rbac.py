"""The rules of RBAC kinds: validation, immutable roleRef and escalation prevention."""

from control import errors
from control.api.auth import context, escalation
from control.api.strategies.base import Strategy
from control.objects import rbacvalidation


def _check(resource, obj, problems):
    problems = rbacvalidation.name_errors(obj["metadata"].get("name", "")) + problems
    if problems:
        raise errors.Invalid(resource.kind, obj["metadata"].get("name", ""), problems,
                             group=resource.group)


class RoleStrategy(Strategy):
    """Roles and ClusterRoles: valid rules, granted only by who holds them."""

    def validate(self, obj):
        _check(self.resource, obj, self.meta_errors(obj) +
               rbacvalidation.validate_role(obj, not self.resource.namespaced))
        auth = context.current.get()
        if auth is not None and not auth.authorizer.allows_everything:
            escalation.check_role(auth, self.resource.plural, obj)


class BindingStrategy(Strategy):
    """RoleBindings and ClusterRoleBindings: valid subjects, fixed roleRef, no escalation."""

    def prepare_for_update(self, old, new):
        merged = super().prepare_for_update(old, new)
        problem = rbacvalidation.role_ref_changed(old, merged)
        if problem:
            raise errors.Invalid(self.resource.kind, old["metadata"]["name"], [problem],
                                 group=self.resource.group)
        return merged

    def validate(self, obj):
        _check(self.resource, obj, self.meta_errors(obj) +
               rbacvalidation.validate_binding(obj, not self.resource.namespaced))
        auth = context.current.get()
        if auth is None or auth.authorizer.allows_everything or auth.authorizer.rbac is None:
            return
        ref = obj["roleRef"]
        rules = auth.authorizer.rbac.policy.current().role_rules(
            ref["kind"], obj["metadata"].get("namespace", ""), ref["name"])
        escalation.check_binding(auth, self.resource.plural, obj, rules)
