"""Evaluate what an object costs a ResourceQuota, as Kubernetes' quota evaluators do.

Pure functions shared by the ResourceQuota admission plugin (charges a write)
and the resource quota controller (sums what exists): ``usage`` of one object,
which quota resources a kind can be charged for, whether a quota's scopes match a
pod, and the pod ``constraints`` (a quota on cpu or memory requires every
container to state it). Resource lists are quota_amounts' dicts of ``Amount``.
"""

import datetime
from fractions import Fraction

from control.objects import kinds
from control.objects.quota_amounts import Amount, parse_list

ONE = Amount(Fraction(1))
#: The object counts with names of their own (besides count/<resource>).
LEGACY_COUNTS = {"pods": "pods", "services": "services", "configmaps": "configmaps",
                 "secrets": "secrets", "persistentvolumeclaims": "persistentvolumeclaims",
                 "replicationcontrollers": "replicationcontrollers",
                 "resourcequotas": "resourcequotas"}
POD_COMPUTE = ("cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu",
               "limits.memory", "ephemeral-storage", "requests.ephemeral-storage",
               "limits.ephemeral-storage")
#: The resources a quota on cpu or memory makes every container state (validationSet).
CONSTRAINED = ("cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory")
SERVICE_RESOURCES = ("services", "services.nodeports", "services.loadbalancers")
STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"
SCOPES = ("Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass",
          "CrossNamespacePodAffinity")


def count_name(resource):
    """Return count/<plural> (core) or count/<plural>.<group>."""
    return f"count/{resource.plural}" + (f".{resource.group}" if resource.group else "")


def _count_names(resource):
    names = {count_name(resource)}
    if not resource.group and resource.plural in LEGACY_COUNTS:
        names.add(LEGACY_COUNTS[resource.plural])
    return names


def matching_resources(resource, names):
    """Return the quota resource names among ``names`` that ``resource``'s objects use."""
    own = _count_names(resource)
    result = []
    for name in names:
        if name in own:
            result.append(name)
        elif resource.kind == "Pod" and resource.group == "" and (
                name in POD_COMPUTE or name.startswith(("requests.hugepages-", "hugepages-"))):
            result.append(name)
        elif resource.kind == "Service" and resource.group == "" and name in SERVICE_RESOURCES:
            result.append(name)
        elif resource.kind == "PersistentVolumeClaim" and resource.group == "" and (
                name == "requests.storage" or STORAGE_CLASS_SUFFIX in name):
            result.append(name)
    return sorted(result)


# -- usage --------------------------------------------------------------------------------------
def pod_counts(pod, now=None):
    """Return whether a pod still counts against quota (QuotaV1Pod).

    A pod that finished (Succeeded or Failed) no longer counts, nor one whose
    deletion grace period is over.
    """
    if ((pod.get("status") or {}).get("phase")) in ("Succeeded", "Failed"):
        return False
    metadata = pod.get("metadata") or {}
    deleted, grace = metadata.get("deletionTimestamp"), metadata.get("deletionGracePeriodSeconds")
    if deleted and grace is not None and now is not None:
        try:
            when = datetime.datetime.fromisoformat(deleted.replace("Z", "+00:00"))
        except ValueError:
            return True
        return now <= when + datetime.timedelta(seconds=grace)
    return True


def pod_requests_limits(spec):
    """Return the pod's (requests, limits): containers summed, each init container a floor."""
    totals = ({}, {})
    for container in spec.get("containers") or []:
        for index, part in enumerate(("requests", "limits")):
            for name, amount in parse_list(_resources(container).get(part)).items():
                totals[index][name] = totals[index][name] + amount if name in totals[index] \
                    else amount
    for container in spec.get("initContainers") or []:
        for index, part in enumerate(("requests", "limits")):
            for name, amount in parse_list(_resources(container).get(part)).items():
                if name not in totals[index] or amount.value > totals[index][name].value:
                    totals[index][name] = amount
    for index in (0, 1):
        for name, amount in parse_list(spec.get("overhead")).items():
            if name in totals[index]:
                totals[index][name] = totals[index][name] + amount
    return totals


def _resources(container):
    resources = container.get("resources")
    return resources if isinstance(resources, dict) else {}


def _compute_usage(requests, limits):
    """podComputeUsageHelper: what one set of requests and limits charges."""
    usage = {"pods": ONE, "count/pods": ONE}
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name in requests:
            usage[name] = requests[name]
            usage[f"requests.{name}"] = requests[name]
        if name in limits:
            usage[f"limits.{name}"] = limits[name]
    for name, amount in requests.items():
        if name.startswith("hugepages-"):
            usage[f"requests.{name}"] = amount
    return usage


def pod_usage(pod, now=None):
    """Return what a pod charges (nothing once it no longer counts)."""
    if not pod_counts(pod, now):
        return {}
    requests, limits = pod_requests_limits(pod.get("spec") or {})
    return _compute_usage(requests, limits)


def service_usage(service):
    """Return what a Service charges: itself, its node ports, a load balancer."""
    spec = service.get("spec") or {}
    usage = {"services": ONE, "count/services": ONE}
    ports = spec.get("ports") or []
    if spec.get("type") == "NodePort":
        usage["services.nodeports"] = Amount(Fraction(len(ports)))
    elif spec.get("type") == "LoadBalancer":
        usage["services.loadbalancers"] = ONE
        if spec.get("allocateLoadBalancerNodePorts") is False:
            ports = [port for port in ports if port.get("nodePort")]
        usage["services.nodeports"] = Amount(Fraction(len(ports)))
    return usage


def claim_usage(claim):
    """Return what a PersistentVolumeClaim charges: itself and the storage it requests."""
    spec = claim.get("spec") or {}
    usage = {"persistentvolumeclaims": ONE, "count/persistentvolumeclaims": ONE}
    storage = parse_list(((spec.get("resources") or {}).get("requests") or {})).get("storage")
    klass = spec.get("storageClassName") or ((claim.get("metadata") or {}).get(
        "annotations") or {}).get("volume.beta.kubernetes.io/storage-class")
    if klass:
        usage[f"{klass}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"] = ONE
    if storage is not None:
        usage["requests.storage"] = storage
        if klass:
            usage[f"{klass}{STORAGE_CLASS_SUFFIX}requests.storage"] = storage
    return usage


def usage(resource, obj, now=None):
    """Return the resource list ``obj`` (an object of ``resource``) charges."""
    if resource.group == "" and resource.kind == "Pod":
        return pod_usage(obj, now)
    if resource.group == "" and resource.kind == "Service":
        return service_usage(obj)
    if resource.group == "" and resource.kind == "PersistentVolumeClaim":
        return claim_usage(obj)
    return {name: ONE for name in _count_names(resource)}


# -- scopes -------------------------------------------------------------------------------------
def scope_selectors(quota):
    """Return a quota's scopes and scopeSelector as (scopeName, operator, values) triples."""
    spec = quota.get("spec") or {}
    selectors = [(scope, "Exists", ()) for scope in spec.get("scopes") or []]
    for expr in ((spec.get("scopeSelector") or {}).get("matchExpressions") or []):
        selectors.append((expr.get("scopeName"), expr.get("operator"),
                          tuple(expr.get("values") or ())))
    return selectors


def is_best_effort(spec):
    """Return whether no container requests or limits cpu or memory (QoS BestEffort)."""
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        resources = _resources(container)
        for part in ("requests", "limits"):
            if any(name in ("cpu", "memory") for name in (resources.get(part) or {})):
                return False
    return True


def _cross_namespace_affinity(spec):
    affinity = spec.get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        section = affinity.get(kind) or {}
        terms = list(section.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
        terms += [weighted.get("podAffinityTerm") or {} for weighted in
                  section.get("preferredDuringSchedulingIgnoredDuringExecution") or []]
        if any(term.get("namespaces") or term.get("namespaceSelector") is not None
               for term in terms):
            return True
    return False


def pod_matches_scope(scope, operator, values, pod):
    """Return whether one scope selector matches a pod (podMatchesScopeFunc)."""
    spec = pod.get("spec") or {}
    deadline = spec.get("activeDeadlineSeconds")
    terminating = deadline is not None and deadline >= 0
    if scope == "Terminating":
        return terminating
    if scope == "NotTerminating":
        return not terminating
    if scope == "BestEffort":
        return is_best_effort(spec)
    if scope == "NotBestEffort":
        return not is_best_effort(spec)
    if scope == "PriorityClass":
        name = spec.get("priorityClassName") or ""
        return {"Exists": name != "", "In": name in values, "NotIn": name not in values}.get(
            operator, False)
    if scope == "CrossNamespacePodAffinity":
        return _cross_namespace_affinity(spec)
    return False


def matches(quota, resource, obj):
    """Return whether a quota (by its status.hard and scopes) charges ``obj``."""
    hard = ((quota.get("status") or {}).get("hard")) or {}
    if not matching_resources(resource, hard):
        return False
    return scopes_match(quota, resource, obj)


# -- constraints --------------------------------------------------------------------------------
def pod_constraints(required, pod):
    """Return "must specify ..." when a container does not state a quota'd resource, else None.

    A quota on cpu or memory requires every container (and init container) to
    request (or limit) it, as Kubernetes' pod evaluator does.
    """
    required = sorted(set(required) & set(CONSTRAINED))
    missing = {}
    spec = pod.get("spec") or {}
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        resources = _resources(container)
        stated = _compute_usage(parse_list(resources.get("requests")),
                                parse_list(resources.get("limits")))
        for name in required:
            if name not in stated:
                missing.setdefault(name, []).append(container.get("name", ""))
    if not missing:
        return None
    parts = [f"{name} for: {','.join(sorted(missing[name]))}" for name in sorted(missing)]
    return "must specify " + "; ".join(parts)


# -- counting (the controller) ------------------------------------------------------------------
def resource_for(name):
    """Return the kinds.Resource whose objects a quota resource name counts, or None."""
    core = {plural: kinds.lookup("", "v1", plural) for plural in
            ("pods", "services", "persistentvolumeclaims")}
    for resource in core.values():
        if resource is not None and matching_resources(resource, [name]):
            return resource
    if name in LEGACY_COUNTS:
        return kinds.lookup("", "v1", name)
    if not name.startswith("count/"):
        return None
    plural, _, group = name[len("count/"):].partition(".")
    for resource in kinds.served():
        if resource.plural == plural and resource.group == group:
            return resource
    return None


def scopes_match(quota, resource, obj):
    """Return whether every scope of ``quota`` selects ``obj`` (no scope: every object)."""
    selectors = scope_selectors(quota)
    if not selectors:
        return True
    if not (resource.group == "" and resource.kind == "Pod"):
        return False
    return all(pod_matches_scope(*selector, obj) for selector in selectors)


def total_usage(quota, resource, objects, names, now=None):
    """Return the usage of ``names`` summed over the objects ``quota``'s scopes select.

    Every name starts at zero, so that status.used names each resource limited.
    """
    total = {name: Amount(Fraction(0)) for name in names}
    for obj in objects:
        if not scopes_match(quota, resource, obj):
            continue
        for name, amount in usage(resource, obj, now).items():
            if name in total:
                total[name] = total[name] + amount
    return total
