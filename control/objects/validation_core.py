"""Validate Services, ConfigMaps and Secrets as pkg/apis/core/validation (1.32) does.

Services: ports (numbers, names, protocols, target ports), the type and session
affinity Kubernetes knows, externalName for ExternalName, nodePorts only where a
node port exists; on update the clusterIP stays. ConfigMaps and Secrets: keys
that can be file names, the keys each Secret type needs, and nothing changes
once ``immutable: true``. Returns error triples.
"""

import json
import re

from control.objects import validation
from control.objects.networkpolicies import port_name_errors
from control.objects.validation_common import (
    duplicate,
    enum,
    forbidden,
    go_value,
    in_range,
    invalid,
    invalid_raw,
    label_errors,
    required,
)

SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
PROTOCOLS = ("SCTP", "TCP", "UDP")
SESSION_AFFINITIES = ("ClientIP", "None")
TRAFFIC_POLICIES = ("Cluster", "Local")
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY = re.compile(_CONFIG_KEY_FMT)
_CONFIG_KEY_MSG = validation.regex_error(
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
    _CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name")
_IMMUTABLE_SET = "field is immutable when `immutable` is set"
#: The data keys each Secret type needs (any one of a tuple for basic-auth).
_SECRET_KEYS = {
    "kubernetes.io/dockercfg": ((".dockercfg",),),
    "kubernetes.io/dockerconfigjson": ((".dockerconfigjson",),),
    "kubernetes.io/ssh-auth": (("ssh-privatekey",),),
    "kubernetes.io/tls": (("tls.crt",), ("tls.key",)),
}


def _spec(obj):
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _service_port(port, at, many, names, service_type):
    errs = []
    name = port.get("name")
    if many and not name:
        errs.append(required(f"{at}.name", ""))
    elif name:
        errs += [invalid(f"{at}.name", name, m) for m in validation.validate_dns1123_label(name)]
        if name in names:
            errs.append(duplicate(f"{at}.name", name))
        names.add(name)
    number = port.get("port")
    if number is None or number == 0:
        errs.append(invalid(f"{at}.port", number or 0, "must be between 1 and 65535, inclusive"))
    else:
        errs += in_range(number, 1, 65535, f"{at}.port")
    errs += enum(port.get("protocol"), PROTOCOLS, f"{at}.protocol", required_if_unset=True)
    target = port.get("targetPort")
    if isinstance(target, int) and not isinstance(target, bool) and target != 0:
        errs += in_range(target, 1, 65535, f"{at}.targetPort")
    elif isinstance(target, str) and target:
        errs += [invalid(f"{at}.targetPort", target, m) for m in port_name_errors(target)]
    node_port = port.get("nodePort")
    if node_port:
        if service_type == "ClusterIP":
            errs.append(forbidden(f"{at}.nodePort", "may not be used when `type` is 'ClusterIP'"))
        else:
            errs += in_range(node_port, 1, 65535, f"{at}.nodePort")
    return errs


def _service_port_key(protocol, number):
    """Render the (protocol, port) key Kubernetes reports a duplicate port with (Go's %#v)."""
    return (f'core.ServicePort{{Name:"", Protocol:{json.dumps(protocol)}, '
            f"AppProtocol:(*string)(nil), Port:{number}, "
            f'TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:""}}, NodePort:0}}')


def service_errors(obj):
    """ValidateService (without the address checks the allocator makes)."""
    spec = _spec(obj)
    service_type = spec.get("type") or "ClusterIP"
    errs = enum(spec.get("type"), SERVICE_TYPES, "spec.type")
    headless = spec.get("clusterIP") == "None"
    ports = spec.get("ports") or []
    if not ports and not headless and service_type != "ExternalName":
        errs.append(required("spec.ports", ""))
    names, seen = set(), set()
    for index, port in enumerate(ports):
        if isinstance(port, dict):
            errs += _service_port(port, f"spec.ports[{index}]", len(ports) > 1, names,
                                  service_type)
            key = (port.get("protocol") or "TCP", port.get("port"))
            if key in seen:
                errs.append((f"spec.ports[{index}]", "FieldValueDuplicate",
                             f"Duplicate value: {_service_port_key(*key)}"))
            seen.add(key)
    if service_type == "ExternalName":
        external = spec.get("externalName")
        if not external:
            errs.append(required("spec.externalName", ""))
        else:
            errs += [invalid("spec.externalName", external, m) for m in
                     validation.validate_dns1123_subdomain(external.rstrip("."))]
    errs += enum(spec.get("sessionAffinity"), SESSION_AFFINITIES, "spec.sessionAffinity")
    errs += enum(spec.get("externalTrafficPolicy"), TRAFFIC_POLICIES,
                 "spec.externalTrafficPolicy")
    errs += enum(spec.get("internalTrafficPolicy"), TRAFFIC_POLICIES,
                 "spec.internalTrafficPolicy")
    errs += label_errors(spec.get("selector"), "spec.selector")
    return errs


def service_update_errors(new, old):
    """A set clusterIP never changes (an unset one is filled in from the stored Service)."""
    new_spec, old_spec = _spec(new), _spec(old)
    wanted = new_spec.get("clusterIPs") or ([new_spec["clusterIP"]]
                                            if new_spec.get("clusterIP") else [])
    held = old_spec.get("clusterIPs") or ([old_spec["clusterIP"]]
                                          if old_spec.get("clusterIP") else [])
    if wanted and held and wanted[0] != held[0]:
        return [invalid_raw("spec.clusterIPs[0]", go_value(list(wanted)), "may not change once set")]
    return []


# -- ConfigMaps and Secrets ----------------------------------------------------------------


def config_key_errors(key):
    """IsConfigMapKey: a key that can name a file in a volume."""
    messages = []
    if len(key) > validation.DNS1123_SUBDOMAIN_MAX_LENGTH:
        messages.append(validation.max_len_error(validation.DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _CONFIG_KEY.fullmatch(key):
        messages.append(_CONFIG_KEY_MSG)
    if key == ".":
        messages.append("must not be '.'")
    elif key == "..":
        messages.append("must not be '..'")
    elif key.startswith(".."):
        messages.append("must not start with '..'")
    return messages


def _keys(obj, field):
    data = obj.get(field)
    return list(data) if isinstance(data, dict) else []


def configmap_errors(obj):
    """ValidateConfigMap: keys of data and binaryData, none in both."""
    errs = []
    for field, other in (("data", "binaryData"), ("binaryData", "data")):
        others = set(_keys(obj, other))
        for key in _keys(obj, field):
            errs += [invalid(f"{field}[{key}]", key, m) for m in config_key_errors(key)]
            if key in others:
                errs.append(invalid(f"{field}[{key}]", key,
                                    f"duplicate of key present in {other}"))
    return errs


def secret_errors(obj):
    """ValidateSecret: keys, and the keys (or annotation) the Secret's type needs."""
    errs = []
    for key in _keys(obj, "data"):
        errs += [invalid(f"data[{key}]", key, m) for m in config_key_errors(key)]
    secret_type, keys = obj.get("type") or "Opaque", set(_keys(obj, "data"))
    for needed in _SECRET_KEYS.get(secret_type, ()):
        if not keys.intersection(needed):
            errs.append(required(f"data[{needed[0]}]", ""))
    if secret_type == "kubernetes.io/basic-auth" and not keys & {"username", "password"}:
        errs.append(required("data[username]", ""))
        errs.append(required("data[password]", ""))
    if secret_type == "kubernetes.io/service-account-token":
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if not annotations.get("kubernetes.io/service-account.name"):
            errs.append(required("metadata.annotations[kubernetes.io/service-account.name]", ""))
    return errs


def immutable_data_update_errors(new, old, fields):
    """ConfigMap and Secret updates: nothing in ``fields`` changes once immutable is set."""
    if old.get("immutable") is not True:
        return []
    errs = []
    if new.get("immutable") is not True:
        errs.append(forbidden("immutable", _IMMUTABLE_SET))
    for field in fields:
        if (new.get(field) or {}) != (old.get(field) or {}):
            errs.append(forbidden(field, _IMMUTABLE_SET))
    return errs


def secret_update_errors(new, old):
    """ValidateSecretUpdate: the type stays; immutable Secrets stay as they are."""
    errs = []
    old_type, new_type = old.get("type") or "Opaque", new.get("type") or "Opaque"
    if new_type != old_type:
        errs.append(invalid("type", new_type, "field is immutable"))
    return errs + immutable_data_update_errors(new, old, ("data",))


def configmap_update_errors(new, old):
    """ValidateConfigMapUpdate."""
    return immutable_data_update_errors(new, old, ("data", "binaryData"))
