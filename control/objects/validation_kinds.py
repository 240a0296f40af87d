"""Pick the semantic validation of each kind, for create and for update.

``errors_for(kind, obj, namespaced)`` returns every error of a new or updated
object: its ObjectMeta (labels, annotations, namespace, generateName, ...), the
pod spec it runs, and its kind's own rules. ``update_errors_for(kind, new, old)``
adds what an update may not change. Names are checked by the strategies
(control/objects/meta.name_errors). All return ``(path, reason, message)`` triples.
"""

from control.objects import (
    ingresses,
    podvalidation,
    validation_batch,
    validation_core,
    validation_podspec,
    validation_policy,
    validation_quota,
)
from control.objects import validation_storage as storage
from control.objects import validation_workloads as workloads
from control.objects.validation_autoscaling import hpa_errors
from control.objects.validation_common import object_meta_errors, object_meta_update_errors

_KIND_RULES = {
    "PersistentVolume": storage.persistentvolume_errors,
    "PersistentVolumeClaim": storage.persistentvolumeclaim_errors,
    "StorageClass": storage.storageclass_errors,
    "Deployment": workloads.deployment_errors,
    "ReplicaSet": workloads.replicaset_errors,
    "ReplicationController": workloads.replication_controller_errors,
    "StatefulSet": workloads.statefulset_errors,
    "DaemonSet": workloads.daemonset_errors,
    "Job": validation_batch.job_errors,
    "CronJob": validation_batch.cronjob_errors,
    "Service": validation_core.service_errors,
    "ConfigMap": validation_core.configmap_errors,
    "Secret": validation_core.secret_errors,
    "PodDisruptionBudget": validation_policy.pdb_errors,
    "HorizontalPodAutoscaler": hpa_errors,
    "Ingress": ingresses.ingress_errors,
    "IngressClass": ingresses.ingress_class_errors,
    "ResourceQuota": validation_quota.resourcequota_errors,
    "LimitRange": validation_quota.limitrange_errors,
}
_UPDATE_RULES = {
    "PersistentVolume": (storage.persistentvolume_update_errors,),
    "PersistentVolumeClaim": (storage.persistentvolumeclaim_update_errors,),
    "StorageClass": (storage.storageclass_update_errors,),
    "Deployment": (workloads.selector_update_errors,),
    "ReplicaSet": (workloads.selector_update_errors,),
    "DaemonSet": (workloads.selector_update_errors,),
    "StatefulSet": (workloads.statefulset_update_errors,),
    "Job": (validation_batch.job_update_errors,),
    "Service": (validation_core.service_update_errors,),
    "ConfigMap": (validation_core.configmap_update_errors,),
    "Secret": (validation_core.secret_update_errors,),
    "IngressClass": (ingresses.ingress_class_update_errors,),
    "ResourceQuota": (validation_quota.resourcequota_update_errors,),
}


_POD_SPEC_PATHS = {"Pod": "spec", "CronJob": "spec.jobTemplate.spec.template.spec"}


def pod_spec_errors(kind, obj):
    """Return the errors of the pod spec a Pod is, or a workload's template holds."""
    if kind not in ("Pod", "CronJob", *podvalidation.TEMPLATE_KINDS):
        return []
    spec, _ = podvalidation.pod_spec_of(kind, obj)
    path = _POD_SPEC_PATHS.get(kind, "spec.template.spec")
    if spec is None and kind == "ReplicationController":
        return []           # its template is a pointer: Required, from the kind's rules
    if spec is None:
        # Go's zero pod spec (defaulted): only its containers are missing.
        return [podvalidation.required(f"{path}.containers", "")]
    return validation_podspec.validate_pod_spec(spec, path)


def errors_for(kind, obj, namespaced, with_pod_spec=True):
    """Return ObjectMeta, pod spec and kind errors of ``obj`` ([] if it is valid)."""
    errs = object_meta_errors(obj, kind, namespaced)
    if with_pod_spec:
        errs += pod_spec_errors(kind, obj)
    rule = _KIND_RULES.get(kind)
    if rule is not None:
        errs += rule(obj)
    return errs


def update_errors_for(kind, new, old):
    """Return what an update of ``old`` to ``new`` changes that it may not."""
    errs = object_meta_update_errors(new, old)
    if kind == "Pod":
        errs += validation_podspec.validate_pod_update(new.get("spec"), old.get("spec"))
    for rule in _UPDATE_RULES.get(kind, ()):
        errs += rule(new, old)
    return errs
