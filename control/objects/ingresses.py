"""Validate networking.k8s.io/v1 Ingresses and IngressClasses as kube-apiserver (1.32) does.

The rules of pkg/apis/networking/validation for the two kinds: an Ingress has
rules or a default backend; each HTTP path names a pathType (Exact, Prefix or
ImplementationSpecific) and is absolute, and an Exact or Prefix path holds no
``//``, ``/./``, ``/../`` or encoded slash and does not end in ``/.`` or ``/..``;
a backend is a Service (a name and a port number or name, not both) or a typed
resource reference, never both; host names are DNS subdomains, a ``*`` allowed
only as the whole first label, and never an IP address; TLS hosts likewise, and
secretName a Secret's name. An IngressClass names its controller as a
domain-prefixed path (``steersman.io/ingress-nginx``), which never changes after.
Each function returns the (field path, reason, message) triples ``errors.Invalid`` takes.
"""

import ipaddress
import re

from control.objects import validation
from control.objects.networkpolicies import port_name_errors, port_number_errors
from control.objects.validation_common import (
    forbidden,
    immutable,
    invalid,
    invalid_raw,
    not_supported,
    required,
    too_long,
)

PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")   # Kubernetes' sorted list
INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
INVALID_PATH_SUFFIXES = ("/..", "/.")
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
MAX_CONTROLLER_LENGTH = 250
PARAMETER_SCOPES = ("Cluster", "Namespace")
_WILDCARD_FMT = (r"\*\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_WILDCARD = re.compile(_WILDCARD_FMT)
_HTTP_PATH_FMT = r"[A-Za-z0-9/\-._~%!$&'()*+,;=:]+"
_HTTP_PATH = re.compile(_HTTP_PATH_FMT)


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def wildcard_subdomain_errors(host):
    """IsWildcardDNS1123Subdomain: ``*.`` then a DNS subdomain; [] when ``host`` is one."""
    problems = []
    if len(host) > validation.DNS1123_SUBDOMAIN_MAX_LENGTH:
        problems.append(validation.max_len_error(validation.DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _WILDCARD.fullmatch(host):
        problems.append(validation.regex_error(
            "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS "
            "subdomain, which must consist of lower case alphanumeric characters, '-' or '.' "
            "and end with an alphanumeric character", _WILDCARD_FMT, "*.example.com"))
    return problems


def host_errors(host, path):
    """A rule's or a TLS entry's host: a DNS subdomain or ``*.`` + one, not an IP."""
    problems = []
    if _is_ip(host):
        problems.append(invalid(path, host, "must be a DNS name, not an IP address"))
    check = wildcard_subdomain_errors if "*" in host else validation.validate_dns1123_subdomain
    return problems + [invalid(path, host, m) for m in check(host)]


def _reference_errors(ref, path, name_field="name"):
    """A TypedLocalObjectReference: kind and name required, apiGroup a subdomain if set."""
    problems = []
    if not ref.get("kind"):
        problems.append(required(f"{path}.kind", ""))
    if not ref.get(name_field):
        problems.append(required(f"{path}.{name_field}", ""))
    for key in ("kind", name_field):
        value = ref.get(key) or ""
        if value in (".", "..") or "/" in value or "%" in value:
            problems.append(invalid(f"{path}.{key}", value,
                                    "may not contain '/' or '%' and may not be '.' or '..'"))
    group = ref.get("apiGroup")
    if group:
        problems += [invalid(f"{path}.apiGroup", group, m)
                     for m in validation.validate_dns1123_subdomain(group)]
    return problems


def backend_errors(backend, path):
    """An IngressBackend: a service (name + port number xor name) xor a resource."""
    service, resource = backend.get("service"), backend.get("resource")
    if service is not None and resource is not None:
        return [invalid(path, "", "cannot set both resource and service backends")]
    if resource is not None:
        return _reference_errors(resource, f"{path}.resource")
    if service is None:
        return [invalid(path, "", "resource or service backend is required")]
    problems = []
    name = service.get("name") or ""
    if not name:
        problems.append(required(f"{path}.service.name", ""))
    else:
        problems += [invalid(f"{path}.service.name", name, m)
                     for m in validation.validate_dns1035_label(name)]
    port = service.get("port") or {}
    port_name, number = port.get("name") or "", port.get("number") or 0
    if port_name and number:
        problems.append(invalid(path, "", "cannot set both port name & port number"))
    elif port_name:
        problems += [invalid(f"{path}.service.port.name", port_name, m)
                     for m in port_name_errors(port_name)]
    elif number:
        problems += [invalid(f"{path}.service.port.number", number, m)
                     for m in port_number_errors(number)]
    else:
        problems.append(required(path, "port name or number is required"))
    return problems


def http_path_errors(entry, path):
    """One HTTPIngressPath: its pathType, the path's syntax for that type, its backend."""
    problems = []
    kind, text = entry.get("pathType"), entry.get("path") or ""
    if not kind:
        problems.append(required(f"{path}.pathType", "pathType must be specified"))
    elif kind in ("Exact", "Prefix"):
        if not text.startswith("/"):
            problems.append(invalid(f"{path}.path", text, "must be an absolute path"))
        problems += [invalid(f"{path}.path", text, f"must not contain '{seq}'")
                     for seq in INVALID_PATH_SEQUENCES if seq in text]
        problems += [invalid(f"{path}.path", text, f"cannot end with '{suffix}'")
                     for suffix in INVALID_PATH_SUFFIXES if text.endswith(suffix)]
    elif kind == "ImplementationSpecific":
        if text and not text.startswith("/"):
            problems.append(invalid(f"{path}.path", text, "must be an absolute path"))
    else:
        problems.append(not_supported(f"{path}.pathType", kind, PATH_TYPES))
    return problems + backend_errors(entry.get("backend") or {}, f"{path}.backend")


def rule_errors(rule, path):
    problems = []
    host = rule.get("host") or ""
    if host:
        problems += host_errors(host, f"{path}.host")
    http = rule.get("http")
    if http is not None:
        paths = http.get("paths") or []
        if not paths:
            problems.append(required(f"{path}.http.paths", ""))
        for i, entry in enumerate(paths):
            problems += http_path_errors(entry, f"{path}.http.paths[{i}]")
    return problems


def tls_errors(entries, path):
    problems = []
    for i, entry in enumerate(entries):
        for j, host in enumerate(entry.get("hosts") or []):
            check = (wildcard_subdomain_errors if "*" in host
                     else validation.validate_dns1123_subdomain)
            problems += [invalid(f"{path}[{i}].hosts[{j}]", host, m) for m in check(host)]
        secret = entry.get("secretName") or ""
        if secret:
            problems += [invalid(f"{path}[{i}].secretName", secret, m)
                         for m in validation.validate_dns1123_subdomain(secret)]
    return problems


def load_balancer_errors(status, path):
    """status.loadBalancer.ingress: each ip a valid IP, each hostname a DNS name."""
    problems = []
    for i, entry in enumerate((status.get("loadBalancer") or {}).get("ingress") or []):
        ip, hostname = entry.get("ip") or "", entry.get("hostname") or ""
        if ip and not _is_ip(ip):
            problems.append(invalid(f"{path}[{i}].ip", ip, "must be a valid IP address"))
        if hostname:
            problems += [invalid(f"{path}[{i}].hostname", hostname, m)
                         for m in validation.validate_dns1123_subdomain(hostname)]
            if _is_ip(hostname):
                problems.append(invalid(f"{path}[{i}].hostname", hostname,
                                        "must be a DNS name, not an IP address"))
    return problems


def ingress_errors(obj):
    """Every error of an Ingress's spec and status ([] when it is valid)."""
    spec = obj.get("spec") or {}
    problems = []
    rules, default = spec.get("rules") or [], spec.get("defaultBackend")
    if not rules and default is None:
        problems.append(invalid_raw("spec", "[]networking.IngressRule(nil)",
                                    "either `defaultBackend` or `rules` must be specified"))
    if default is not None:
        problems += backend_errors(default, "spec.defaultBackend")
    for i, rule in enumerate(rules):
        problems += rule_errors(rule, f"spec.rules[{i}]")
    problems += tls_errors(spec.get("tls") or [], "spec.tls")
    class_name = spec.get("ingressClassName")
    if class_name is not None:
        problems += [invalid("spec.ingressClassName", class_name, m)
                     for m in validation.validate_dns1123_subdomain(class_name)]
    problems += load_balancer_errors(obj.get("status") or {}, "status.loadBalancer.ingress")
    return problems


def domain_prefixed_path_errors(text, path):
    """IsDomainPrefixedPath: ``<DNS subdomain>/<http path>``, e.g. ``acme.io/foo``."""
    if not text:
        return [required(path, "")]
    host, slash, rest = text.partition("/")
    if not slash or not host or not rest:
        return [invalid(path, text, 'must be a domain-prefixed path (such as "acme.io/foo")')]
    problems = [invalid(path, host, m) for m in validation.validate_dns1123_subdomain(host)]
    if not _HTTP_PATH.fullmatch(rest):
        problems.append(invalid(path, rest, validation.regex_error("Invalid path",
                                                                   _HTTP_PATH_FMT)))
    return problems


def ingress_class_errors(obj):
    """An IngressClass: spec.controller a domain-prefixed path, parameters well formed."""
    spec = obj.get("spec") or {}
    controller = spec.get("controller") or ""
    problems = []
    if len(controller) > MAX_CONTROLLER_LENGTH:
        problems.append(too_long("spec.controller", MAX_CONTROLLER_LENGTH))
    problems += domain_prefixed_path_errors(controller, "spec.controller")
    params = spec.get("parameters")
    if params is not None:
        problems += _reference_errors(params, "spec.parameters")
        scope, namespace = params.get("scope") or "Cluster", params.get("namespace")
        if scope not in PARAMETER_SCOPES:
            problems.append(not_supported("spec.parameters.scope", scope, PARAMETER_SCOPES))
        elif scope == "Namespace" and not namespace:
            problems.append(required("spec.parameters.namespace",
                                     "`parameters.scope` is set to 'Namespace'"))
        elif scope == "Cluster" and namespace:
            problems.append(forbidden("spec.parameters.namespace",
                                      "`parameters.scope` is set to 'Cluster'"))
    return problems


def ingress_class_update_errors(new, old):
    """spec.controller never changes (kube-apiserver: field is immutable)."""
    return immutable((new.get("spec") or {}).get("controller"),
                     (old.get("spec") or {}).get("controller"), "spec.controller")

