"""Per-kind strategies: the rules of each kind for create, update and delete.

``strategy_for(resource)`` returns the strategy the object service applies to a
resource's writes; ``strategy_for(resource, "status")`` the one for a write to
a subresource. Kinds not named here follow the defaults of base.py.
"""

import functools

from control import errors
from control.api.crd.strategy import CRDStrategy, CustomObjectStrategy
from control.api.strategies.base import Strategy
from control.api.strategies.csr import CSRApprovalStrategy, CSRStatusStrategy, CSRStrategy
from control.api.strategies.endpointslice import EndpointSliceStrategy
from control.api.strategies.job import JobStrategy
from control.api.strategies.namespace import NamespaceFinalizeStrategy, NamespaceStrategy
from control.api.strategies.networkpolicy import NetworkPolicyStrategy
from control.api.strategies.node import LeaseStrategy, NodeStrategy
from control.api.strategies.pod import PodStrategy
from control.api.strategies.poddisruptionbudget import PodDisruptionBudgetStrategy
from control.api.strategies.rbac import BindingStrategy, RoleStrategy
from control.api.strategies.secret import SecretStrategy
from control.api.strategies.service import ServiceStrategy
from control.api.strategies.status import StatusStrategy
from control.objects import kinds

__all__ = ["Strategy", "strategy_for"]

_BY_RESOURCE = {
    kinds.NAMESPACES: NamespaceStrategy,
    kinds.PODS: PodStrategy,
    kinds.SERVICES: ServiceStrategy,
    kinds.ENDPOINTSLICES: EndpointSliceStrategy,
    kinds.NETWORKPOLICIES: NetworkPolicyStrategy,
    kinds.JOBS: JobStrategy,
    kinds.SECRETS: SecretStrategy,
    kinds.NODES: NodeStrategy,
    kinds.LEASES: LeaseStrategy,
    kinds.ROLES: RoleStrategy,
    kinds.CLUSTERROLES: RoleStrategy,
    kinds.ROLEBINDINGS: BindingStrategy,
    kinds.CLUSTERROLEBINDINGS: BindingStrategy,
    kinds.CERTIFICATESIGNINGREQUESTS: CSRStrategy,
    kinds.CUSTOMRESOURCEDEFINITIONS: CRDStrategy,
    kinds.lookup("policy", "v1", "poddisruptionbudgets"): PodDisruptionBudgetStrategy,
}
#: Subresources with rules of their own (a kind without its own status rules gets
#: StatusStrategy).
_BY_SUBRESOURCE = {
    (kinds.NAMESPACES, "finalize"): NamespaceFinalizeStrategy,
    (kinds.CERTIFICATESIGNINGREQUESTS, "status"): CSRStatusStrategy,
    (kinds.CERTIFICATESIGNINGREQUESTS, "approval"): CSRApprovalStrategy,
}


@functools.lru_cache(maxsize=None)
def strategy_for(resource, subresource=None):
    """Return the strategy for writes to ``resource`` (or to one of its subresources)."""
    if subresource is None:
        if resource.custom is not None:      # a CRD's objects (control/api/crd/)
            return CustomObjectStrategy(resource)
        return _BY_RESOURCE.get(resource, Strategy)(resource)
    special = _BY_SUBRESOURCE.get((resource, subresource))
    if special is None and subresource == "status":
        return StatusStrategy(strategy_for(resource))
    if special is None:
        raise errors.NotFound(f"{resource.plural}/{subresource} cannot be written")
    return special(resource)
