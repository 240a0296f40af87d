"""The ResourceQuota admission plugin: refuse a write that would exceed a quota, charge it.

As kube-apiserver's plugin, for every create (and updates of Services and
PersistentVolumeClaims, whose usage can grow) in a namespace with quotas: each
quota whose status.hard names a resource the object uses and whose scopes match
it is checked; a missing container request is refused ("failed quota: ...:
must specify ..."), a quota the controller has not counted yet ("status unknown
for quota"), and one the write would exceed ("exceeded quota: ..."), all 403.
Otherwise the new usage is written to the quotas' status.used with the
resourceVersion read (optimistic concurrency), so that concurrent creates never
pass a quota together: a conflict re-reads the quotas and checks again. A dry
run is checked but never charged. The resource quota controller later recounts
status.used from the objects (a charged write that then failed is corrected).
"""

import random
import time

from control import errors
from control.objects import kinds, meta
from control.objects import quota as evaluation
from control.objects import quota_amounts as amounts

RESOURCEQUOTAS = kinds.lookup("", "v1", "resourcequotas")
#: Times the quotas are read again after another write charged them first.
CONFLICT_RETRIES = 20
#: The longest pause (seconds) before such a retry, spread at random across writers.
RETRY_JITTER = 0.02
#: Kinds whose updates may change usage (the others are charged on create only).
CHARGED_ON_UPDATE = ("Service", "PersistentVolumeClaim")


def forbidden(attrs, message):
    """Return kube-apiserver's admission 403: <resource> "<name>" is forbidden: <why>."""
    name = (attrs.obj.get("metadata") or {}).get("name", "")
    return errors.Forbidden(f'{attrs.resource.qualified} "{name}" is forbidden: {message}',
                            name=name, kind=attrs.resource.plural,
                            group=attrs.resource.group or None)


def charge(attrs, quotas, now=None):
    """Return the quotas whose status.used must grow by this write (403 if one is exceeded).

    ``quotas`` are the namespace's ResourceQuota objects; the returned ones are
    copies with the new status.used. An empty list: nothing to charge.
    """
    resource, obj = attrs.resource, attrs.obj
    interesting = []
    for quota in quotas:
        if not evaluation.matches(quota, resource, obj):
            continue
        hard = (quota.get("status") or {}).get("hard") or {}
        restricted = evaluation.matching_resources(resource, hard)
        name = quota["metadata"]["name"]
        if resource.group == "" and resource.kind == "Pod":
            problem = evaluation.pod_constraints(restricted, obj)
            if problem:
                raise forbidden(attrs, f"failed quota: {name}: {problem}")
        used = (quota.get("status") or {}).get("used") or {}
        if any(resource_name not in used for resource_name in restricted):
            raise forbidden(attrs, f"status unknown for quota: {name}, resources: "
                                   f"{','.join(sorted(restricted))}")
        interesting.append(quota)
    if not interesting:
        return []
    delta = amounts.remove_zeros(evaluation.usage(resource, obj, now))
    if delta and attrs.operation == "UPDATE" and attrs.old is not None:
        delta = amounts.subtract_non_negative(delta, evaluation.usage(resource, attrs.old, now))
        delta = amounts.remove_zeros(delta)
    if not delta:
        return []
    charged = []
    for quota in interesting:
        status = quota.get("status") or {}
        hard, used = amounts.parse_list(status.get("hard")), amounts.parse_list(status.get("used"))
        requested = amounts.mask(delta, hard)
        new_used = amounts.add(used, requested)
        over = amounts.exceeded(amounts.mask(new_used, requested), hard)
        if over:
            raise forbidden(attrs, (
                f"exceeded quota: {quota['metadata']['name']}, "
                f"requested: {amounts.pretty(amounts.mask(requested, over))}, "
                f"used: {amounts.pretty(_used_or_zero(used, over))}, "
                f"limited: {amounts.pretty(amounts.mask(hard, over))}"))
        charged.append({**quota, "status": {**status, "used": {
            **(status.get("used") or {}), **amounts.to_api(amounts.mask(new_used, requested))}}})
    return charged


def _used_or_zero(used, names):
    # A name in hard but never used prints as 0, as an empty Quantity does.
    return {name: used.get(name, amounts.ZERO) for name in names}


class ResourceQuotaAdmission:
    """Enforce the namespace's ResourceQuotas on every write that adds usage."""

    def __init__(self, service, clock=meta.utcnow, sleep=time.sleep, rng=None):
        self.service = service
        self.clock, self.sleep = clock, sleep
        self.random = rng or random.Random()

    def applies(self, attrs):
        """Return whether this write can change any quota's usage."""
        if attrs.subresource or not attrs.resource.namespaced or not attrs.namespace:
            return False
        if attrs.operation == "CREATE":
            return True
        return attrs.operation == "UPDATE" and attrs.resource.group == "" and \
            attrs.resource.kind in CHARGED_ON_UPDATE

    def validate(self, attrs):
        if not self.applies(attrs):
            return
        done = set()        # quotas already charged by an earlier attempt
        for attempt in range(CONFLICT_RETRIES):
            quotas, _, _ = self.service.registry.list(RESOURCEQUOTAS, attrs.namespace)
            pending = [q for q in quotas if q["metadata"]["name"] not in done]
            if not pending:
                return
            charged = charge(attrs, pending, self.clock())
            if not charged or getattr(attrs, "dry_run", False):
                return
            try:
                for quota in charged:
                    self.service.registry.update(RESOURCEQUOTAS, quota)
                    done.add(quota["metadata"]["name"])
                return
            except errors.Conflict:
                self.sleep(self.random.uniform(0, RETRY_JITTER * (attempt + 1)))
        raise errors.Conflict(
            f"Operation cannot be fulfilled on resourcequotas: the quotas of namespace "
            f"{attrs.namespace} kept changing while this {attrs.resource.kind} was charged; "
            f"try again", kind="resourcequotas")
