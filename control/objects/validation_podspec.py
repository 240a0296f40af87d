"""Validate what a pod spec runs: containers, ports, resources, policies, tolerations.

The rest of Kubernetes' ValidatePodSpec (1.32, pkg/apis/core/validation) that
podvalidation.py (names, volumes, mounts, paths) does not hold, with its field
paths and messages; and ValidatePodUpdate, which lets an update change only a
container's image, activeDeadlineSeconds (down), tolerations (additions) and
a negative terminationGracePeriodSeconds to 1. Returns error triples.
"""

import copy
import json

from control.objects import quantity, validation
from control.objects.networkpolicies import port_name_errors
from control.objects.selectors import _key_errors
from control.objects.validation_common import (
    INT32_MAX,
    duplicate,
    enum,
    forbidden,
    in_range,
    invalid,
    invalid_raw,
    label_errors,
    not_supported,
    required,
)

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("SCTP", "TCP", "UDP")
TOLERATION_OPERATORS = ("Equal", "Exists")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_TERMINATION_MESSAGE = "must be 'File' or 'FallbackToLogsOnError'"
POD_UPDATE_MESSAGE = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)")


def _ports(ports, path, host_network):
    errs, names = [], set()
    for index, port in enumerate(ports or ()):
        if not isinstance(port, dict):
            continue
        at = f"{path}[{index}]"
        name = port.get("name")
        if name:
            errs += [invalid(f"{at}.name", name, m) for m in port_name_errors(str(name))]
            if name in names:
                errs.append(duplicate(f"{at}.name", name))
            names.add(name)
        number = port.get("containerPort")
        if not number:
            errs.append(required(f"{at}.containerPort", ""))
        else:
            errs += in_range(number, 1, 65535, f"{at}.containerPort")
        host_port = port.get("hostPort")
        if host_port:
            errs += in_range(host_port, 1, 65535, f"{at}.hostPort")
            if host_network and number and host_port != number:
                errs.append(invalid(f"{at}.hostPort", host_port,
                                    "must match `containerPort` when `hostNetwork` is true"))
        errs += enum(port.get("protocol"), PROTOCOLS, f"{at}.protocol", required_if_unset=True)
    return errs


def _resource_name_errors(name, path):
    if name in STANDARD_RESOURCES or str(name).startswith("hugepages-"):
        return []
    if "/" not in str(name):
        return [invalid(path, name, "must be a standard resource for containers")]
    return [invalid(path, name, m) for m in _key_errors(name)]


def _quantities(section, path):
    """Return (errors, {name: value}) for a resources.limits or requests map."""
    errs, values = [], {}
    for name, raw in (section or {}).items():
        at = f"{path}[{name}]"
        errs += _resource_name_errors(name, at)
        try:
            values[name] = quantity.parse_quantity(raw)
        except quantity.QuantityTooLarge as exc:
            errs.append(invalid(at, str(raw)[:64], str(exc)))
            continue
        except quantity.QuantityError:
            continue        # the schema check has refused it already
        if values[name] < 0:
            errs.append(invalid(at, str(raw), "must be greater than or equal to 0"))
    return errs, values


def _resources(resources, path):
    if not isinstance(resources, dict):
        return []
    limit_errs, limits = _quantities(resources.get("limits"), f"{path}.limits")
    request_errs, requests = _quantities(resources.get("requests"), f"{path}.requests")
    errs = limit_errs + request_errs
    for name, value in requests.items():
        if name in limits and value > limits[name]:
            errs.append(invalid(f"{path}.requests[{name}]", str(resources["requests"][name]),
                                f"must be less than or equal to {name} limit of "
                                f"{resources['limits'][name]}"))
    return errs


def _env(env, path):
    errs = []
    for index, var in enumerate(env or ()):
        if isinstance(var, dict) and not var.get("name"):
            errs.append(required(f"{path}[{index}].name", ""))
    return errs


def _container(container, path, host_network):
    errs = []
    if not container.get("image"):
        errs.append(required(f"{path}.image", ""))
    errs += _ports(container.get("ports"), f"{path}.ports", host_network)
    errs += _env(container.get("env"), f"{path}.env")
    errs += _resources(container.get("resources"), f"{path}.resources")
    errs += enum(container.get("imagePullPolicy"), PULL_POLICIES, f"{path}.imagePullPolicy")
    policy = container.get("terminationMessagePolicy")
    if policy not in (None, "File", "FallbackToLogsOnError"):
        errs.append(invalid(f"{path}.terminationMessagePolicy", policy, _TERMINATION_MESSAGE))
    return errs


def _toleration_string(toleration):
    """Render a toleration as Go's %#v prints a core.Toleration."""
    seconds = toleration.get("tolerationSeconds")
    shown = "(*int64)(nil)" if seconds is None else "(*int64)(0xc000000000)"
    return (f"core.Toleration{{Key:{json.dumps(toleration.get('key') or '')}, "
            f"Operator:{json.dumps(toleration.get('operator') or '')}, "
            f"Value:{json.dumps(toleration.get('value') or '')}, "
            f"Effect:{json.dumps(toleration.get('effect') or '')}, TolerationSeconds:{shown}}}")


def _tolerations(tolerations, path):
    errs = []
    for index, toleration in enumerate(tolerations or ()):
        if not isinstance(toleration, dict):
            continue
        at = f"{path}[{index}]"
        key, operator = toleration.get("key"), toleration.get("operator") or "Equal"
        if key:
            errs += [invalid(f"{at}.key", key, m) for m in _key_errors(key)]
        elif operator != "Exists":
            errs.append(invalid(f"{at}.operator", operator, "operator must be Exists when `key` "
                                'is empty, which means "match all values and all keys"'))
        if operator == "Exists" and toleration.get("value"):
            errs.append(invalid_raw(f"{at}.operator", _toleration_string(toleration),
                                    "value must be empty when `operator` is 'Exists'"))
        elif operator not in TOLERATION_OPERATORS:
            errs.append(not_supported(f"{at}.operator", operator, TOLERATION_OPERATORS))
        effect = toleration.get("effect")
        if toleration.get("tolerationSeconds") is not None and effect != "NoExecute":
            errs.append(invalid(f"{at}.effect", effect or "",
                                "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        errs += enum(effect, TAINT_EFFECTS, f"{at}.effect")
    return errs


def _dns_names(spec, path):
    errs = []
    for field, check in (("nodeName", validation.validate_dns1123_subdomain),
                         ("serviceAccountName", validation.validate_dns1123_subdomain),
                         ("hostname", validation.validate_dns1123_label),
                         ("subdomain", validation.validate_dns1123_label)):
        value = spec.get(field)
        if isinstance(value, str) and value:
            errs += [invalid(f"{path}.{field}", value, m) for m in check(value)]
    return errs


def validate_pod_spec(spec, path="spec"):
    """Return the errors of a pod spec's containers, policies and scheduling fields."""
    if not isinstance(spec, dict):
        return [required(path, "")]
    errs = []
    host_network = spec.get("hostNetwork") is True
    if not spec.get("containers"):
        errs.append(required(f"{path}.containers", ""))
    for list_name in ("containers", "initContainers"):
        for index, container in enumerate(spec.get(list_name) or ()):
            if isinstance(container, dict):
                errs += _container(container, f"{path}.{list_name}[{index}]", host_network)
    # Unset reads as Always, the default Kubernetes gives every pod spec.
    errs += enum(spec.get("restartPolicy"), RESTART_POLICIES, f"{path}.restartPolicy")
    errs += enum(spec.get("dnsPolicy"), DNS_POLICIES, f"{path}.dnsPolicy")
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None:
        errs += in_range(deadline, 1, INT32_MAX, f"{path}.activeDeadlineSeconds")
    errs += _dns_names(spec, path)
    errs += label_errors(spec.get("nodeSelector"), f"{path}.nodeSelector")
    errs += _tolerations(spec.get("tolerations"), f"{path}.tolerations")
    return errs


# -- updates --------------------------------------------------------------------------


def _allowed_changes_undone(new, old):
    """Return new's spec with what ValidatePodUpdate lets change copied from old's."""
    munged = copy.deepcopy(new)
    for list_name in ("containers", "initContainers"):
        new_list, old_list = munged.get(list_name) or [], old.get(list_name) or []
        if len(new_list) == len(old_list):
            for mine, theirs in zip(new_list, old_list):
                if isinstance(mine, dict) and isinstance(theirs, dict):
                    mine["image"] = theirs.get("image")
                    if mine["image"] is None:
                        del mine["image"]
    for field in ("activeDeadlineSeconds", "tolerations", "ephemeralContainers"):
        if field in old:
            munged[field] = old[field]
        else:
            munged.pop(field, None)
    old_grace, new_grace = old.get("terminationGracePeriodSeconds"), \
        new.get("terminationGracePeriodSeconds")
    if isinstance(old_grace, int) and old_grace < 0 and new_grace == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    gates_new, gates_old = new.get("schedulingGates") or [], old.get("schedulingGates") or []
    if all(gate in gates_old for gate in gates_new):
        munged["schedulingGates"] = old.get("schedulingGates")
        if munged["schedulingGates"] is None:
            del munged["schedulingGates"]
    return munged


def _diff(old, new):
    """Name the top-level spec fields that differ, as a short hint after the message."""
    keys = sorted(set(old) | set(new))
    lines = [f"  {key}: {json.dumps(old.get(key))} -> {json.dumps(new.get(key))}"
             for key in keys if old.get(key) != new.get(key)]
    return "\n".join(lines)


def _without_seconds(toleration):
    if not isinstance(toleration, dict):
        return toleration
    return {k: v for k, v in toleration.items() if k != "tolerationSeconds"}


def validate_pod_update(new_spec, old_spec, path="spec"):
    """ValidatePodUpdate: Forbidden unless only the fields Kubernetes allows changed."""
    if not isinstance(new_spec, dict) or not isinstance(old_spec, dict):
        return []
    errs = []
    old_deadline, new_deadline = (old_spec.get("activeDeadlineSeconds"),
                                  new_spec.get("activeDeadlineSeconds"))
    if old_deadline is not None:
        if new_deadline is None:
            errs.append(invalid(f"{path}.activeDeadlineSeconds", "null",
                                "must not update from a positive integer to nil value"))
        elif isinstance(new_deadline, int) and new_deadline > old_deadline:
            errs.append(invalid(f"{path}.activeDeadlineSeconds", new_deadline,
                                "must be less than or equal to previous value"))
    # Each old toleration must still be there; only its tolerationSeconds may change.
    new_tolerations = [_without_seconds(t) for t in new_spec.get("tolerations") or []]
    if any(_without_seconds(t) not in new_tolerations for t in old_spec.get("tolerations") or []):
        errs.append(forbidden(f"{path}.tolerations",
                              "existing toleration can not be modified except its "
                              "tolerationSeconds"))
    munged = _allowed_changes_undone(new_spec, old_spec)
    if munged != old_spec:
        errs.append(forbidden(path, POD_UPDATE_MESSAGE + "\n" + _diff(old_spec, munged)))
    return errs
