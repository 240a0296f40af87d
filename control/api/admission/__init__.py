"""Admission: the plugins every create and update passes, as kube-apiserver's chain.

A write is defaulted, then each enabled plugin's ``admit`` may change it
(mutating admission), then the kind's strategy validates it, then each plugin's
``validate`` may refuse it (validating admission), then it is stored. Plugins
are named as kube-apiserver names them and enabled with
``--enable-admission-plugins``; each lives in a module of its own here, and is
found through ``PLUGINS`` (name -> "module:class"), imported when enabled.

A plugin is a class built with the object service; it has ``admit(attrs)``
(returns the object, changed or not) and/or ``validate(attrs)`` (raises an
ApiError to refuse).
"""

import dataclasses
import importlib

#: Every plugin this server knows, by kube-apiserver's name.
PLUGINS = {
    "ServiceAccount": "control.api.admission.service_account:ServiceAccountAdmission",
    "PodSecurity": "control.api.admission.pod_security:PodSecurityAdmission",
    "LimitRanger": "control.api.admission.limit_ranger:LimitRangerAdmission",
    "ResourceQuota": "control.api.admission.resource_quota:ResourceQuotaAdmission",
    "DefaultStorageClass": "control.api.admission.storage:DefaultStorageClassAdmission",
    "StorageObjectInUseProtection":
        "control.api.admission.storage:StorageObjectInUseProtectionAdmission",
    "PersistentVolumeClaimResize":
        "control.api.admission.storage:PersistentVolumeClaimResizeAdmission",
}
#: Enabled when --enable-admission-plugins is not given. ServiceAccount and PodSecurity
#: are not: ServiceAccount needs the serviceaccount controller and TokenRequest running, and
#: PodSecurity's baseline refuses the host ports every process-runtime pod has.
#: LimitRanger and ResourceQuota are on, as in kube-apiserver: without a LimitRange or
#: ResourceQuota in the namespace they only read (one store range each).
DEFAULT_PLUGINS = ("LimitRanger", "ResourceQuota", "DefaultStorageClass",
                   "StorageObjectInUseProtection", "PersistentVolumeClaimResize")
#: kube-apiserver's order: mutating plugins first in this order, then validating ones.
ORDER = ("NamespaceLifecycle", "LimitRanger", "ServiceAccount", "PodSecurity",
         "DefaultStorageClass", "StorageObjectInUseProtection", "PersistentVolumeClaimResize",
         "ResourceQuota")


@dataclasses.dataclass
class Attributes:
    """What a plugin sees of one write (admission.Attributes)."""
    operation: str              # CREATE or UPDATE
    resource: object            # a kinds.Resource
    namespace: str
    obj: dict
    old: dict = None
    subresource: str = None
    dry_run: bool = False       # ?dryRun=All: check, but change nothing (no quota charge)

    @property
    def kind(self):
        return self.resource.kind


def parse(text):
    """Split a --enable-admission-plugins value into names; refuse unknown names."""
    names = [name.strip() for name in (text or "").split(",") if name.strip()]
    unknown = [name for name in names if name not in PLUGINS]
    if unknown:
        raise ValueError(f"unknown admission plugins: {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(PLUGINS))})")
    return names


def _load(name):
    module, _, cls = PLUGINS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


class Chain:
    """The enabled plugins, run in kube-apiserver's order."""

    def __init__(self, plugins=()):
        self.plugins = list(plugins)

    @classmethod
    def build(cls, names, service):
        """Build the named plugins over ``service`` (the ObjectService)."""
        rank = {name: index for index, name in enumerate(ORDER)}
        ordered = sorted(dict.fromkeys(names), key=lambda n: rank.get(n, len(ORDER)))
        return cls([_load(name)(service) for name in ordered])

    def admit(self, attrs):
        """Run every mutating plugin; return the (possibly changed) object."""
        for plugin in self.plugins:
            if hasattr(plugin, "admit"):
                attrs.obj = plugin.admit(attrs)
        return attrs.obj

    def validate(self, attrs):
        """Run every validating plugin; any may raise to refuse the write."""
        for plugin in self.plugins:
            if hasattr(plugin, "validate"):
                plugin.validate(attrs)
