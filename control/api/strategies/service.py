"""Services: their clusterIPs and nodePorts are claimed with them and released after.

The claims themselves are the allocator's (control/api/allocators.py); this says
when: before a Service is stored (undone if the write fails), and once it is
deleted. A status write claims nothing.
"""

from control.api.strategies.base import Strategy, no_op


class ServiceStrategy(Strategy):
    """Service rules: allocation around create, update and delete."""

    def begin_create(self, obj, allocator):
        if allocator is None:
            return no_op
        return allocator.on_create(obj).rollback

    def begin_update(self, old, new, allocator):
        if allocator is None:
            return no_op, no_op
        claims, release_old = allocator.on_update(old, new)
        return claims.rollback, release_old

    def after_delete(self, obj, allocator):
        if allocator is not None:
            allocator.on_delete(obj)
