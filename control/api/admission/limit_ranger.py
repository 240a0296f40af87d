"""The LimitRanger admission plugin: default and bound pods' and claims' resources.

As kube-apiserver's plugin: on a pod create, every LimitRange of the namespace
fills in containers' missing requests and limits (``admit``), then each
Container and Pod item's min, max and maxLimitRequestRatio is enforced
(``validate``); a PersistentVolumeClaim's storage request is held to the
PersistentVolumeClaim items on create and update. What breaks a range is a 403
(``pods "web" is forbidden: maximum cpu usage per Container is 2, but limit is 3``).
Pod updates are not checked: containers' resources cannot change on update.
Runs before ResourceQuota, so that a quota charges the defaulted requests.
"""

from control.api.admission.resource_quota import forbidden
from control.objects import kinds, limitranges

LIMITRANGES = kinds.lookup("", "v1", "limitranges")


class LimitRangerAdmission:
    """Apply the namespace's LimitRanges to pods and PersistentVolumeClaims."""

    def __init__(self, service):
        self.service = service

    @staticmethod
    def _target(attrs):
        """Return "Pod", "PersistentVolumeClaim" or None: what this write is to us."""
        if attrs.subresource or attrs.resource.group != "" or not attrs.namespace:
            return None
        if attrs.resource.kind == "Pod" and attrs.operation == "CREATE":
            return "Pod"
        if attrs.resource.kind == "PersistentVolumeClaim" and \
                attrs.operation in ("CREATE", "UPDATE"):
            return "PersistentVolumeClaim"
        return None

    def _ranges(self, namespace):
        items, _, _ = self.service.registry.list(LIMITRANGES, namespace)
        return items

    def admit(self, attrs):
        if self._target(attrs) == "Pod":
            for limit_range in self._ranges(attrs.namespace):
                limitranges.default_pod(attrs.obj, limit_range)
        return attrs.obj

    def validate(self, attrs):
        target = self._target(attrs)
        if target is None or (attrs.obj.get("metadata") or {}).get("deletionTimestamp"):
            return
        check = limitranges.pod_violations if target == "Pod" else limitranges.claim_violations
        for limit_range in self._ranges(attrs.namespace):
            problems = check(attrs.obj, limit_range)
            if problems:    # the first LimitRange broken answers, as kube-apiserver's
                raise forbidden(attrs, limitranges.aggregate(problems))
