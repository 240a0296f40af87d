"""Validate discovery.k8s.io/v1 EndpointSlices as kube-apiserver (1.32) does.

The limits are the API's (pkg/apis/discovery/validation): 1000 endpoints per
slice, 1..100 addresses per endpoint, 20000 ports, 8 zone and node hints, and
addresses that parse as the slice's addressType. Endpoint IPs may not be
unspecified, loopback or link-local: a slice must not point a Service at a
node's own services (CVE-2021-25737). Each function returns the
(field path, reason, message) triples ``errors.Invalid`` takes.
"""

import ipaddress
import json

from control.objects import validation
from control.objects.selectors import _key_errors, _value_errors

ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
PROTOCOLS = ("SCTP", "TCP", "UDP")
MAX_ENDPOINTS = 1000
MAX_ADDRESSES = 100
#: Kubernetes raised this from 100 to 20000 in 1.21 (and backports) so that a
#: Service with many ports still gets slices.
MAX_PORTS = 20000
MAX_HINTS = 8
MAX_TOPOLOGY_LABELS = 16
ZONE_LABEL = "topology.kubernetes.io/zone"

#: Ranges an endpoint address may not be in, with Kubernetes' words for them.
_FORBIDDEN_RANGES = (
    ("may not be in the loopback range (127.0.0.0/8, ::1/128)",
     ("127.0.0.0/8", "::1/128")),
    ("may not be in the link-local range (169.254.0.0/16, fe80::/10)",
     ("169.254.0.0/16", "fe80::/10")),
    ("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
     ("224.0.0.0/24", "ff02::/16")),
)


def _quote(value):
    return json.dumps(value) if isinstance(value, str) else str(value)


def invalid(path, value, message):
    return (path, "FieldValueInvalid", f"Invalid value: {_quote(value)}: {message}")


def required(path, detail=""):
    return (path, "FieldValueRequired", "Required value" + (f": {detail}" if detail else ""))


def too_many(path, count, limit):
    return (path, "FieldValueTooMany", f"Too many: {count}: must have at most {limit} items")


def not_supported(path, value, supported):
    choices = ", ".join(f'"{s}"' for s in supported)
    return (path, "FieldValueNotSupported",
            f"Unsupported value: {_quote(value)}: supported values: {choices}")


def duplicate(path, value):
    return (path, "FieldValueDuplicate", f"Duplicate value: {_quote(value)}")


def endpoint_ip_errors(address):
    """Why ``address`` may not be an endpoint IP (ValidateEndpointIP); [] when it may."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return ["must be a valid IP address"]
    problems = []
    if ip.is_unspecified:
        problems.append(f"may not be unspecified ({address})")
    for message, ranges in _FORBIDDEN_RANGES:
        if any(ip in ipaddress.ip_network(r) for r in ranges if
               ipaddress.ip_network(r).version == ip.version):
            problems.append(message)
    return problems


def _address_errors(address_type, address, path):
    if not isinstance(address, str):
        return [invalid(path, address, "must be a string")]
    if address_type in ("IPv4", "IPv6"):
        parser = ipaddress.IPv4Address if address_type == "IPv4" else ipaddress.IPv6Address
        try:
            parser(address)
        except ValueError:
            return [invalid(path, address, f"must be a valid {address_type} address")]
        return [invalid(path, address, m) for m in endpoint_ip_errors(address)]
    if address_type == "FQDN":
        return [invalid(path, address, m) for m in fqdn_errors(address)]
    return []


def fqdn_errors(name):
    """IsFullyQualifiedDomainName: a DNS subdomain of at least two labels (a final dot ok)."""
    name = name[:-1] if name.endswith(".") else name
    problems = validation.validate_dns1123_subdomain(name)
    if not problems and len(name.split(".")) < 2:
        problems.append("should be a domain with at least two segments separated by dots")
    return problems


def _hints_errors(hints, path):
    problems = []
    for field in ("forZones", "forNodes"):
        entries = hints.get(field) or []
        if len(entries) > MAX_HINTS:
            problems.append(too_many(f"{path}.{field}", len(entries), MAX_HINTS))
            continue
        seen = set()
        for index, entry in enumerate(entries):
            name = (entry or {}).get("name", "")
            at = f"{path}.{field}[{index}].name"
            if name in seen:
                problems.append(duplicate(at, name))
            seen.add(name)
            check = _value_errors if field == "forZones" else validation.validate_dns1123_subdomain
            problems += [invalid(at, name, m) for m in check(name)]
    return problems


def _endpoint_errors(endpoint, address_type, path):
    problems = []
    addresses = endpoint.get("addresses") or []
    if not addresses:
        problems.append(required(f"{path}.addresses", "must contain at least 1 address"))
    elif len(addresses) > MAX_ADDRESSES:
        problems.append(too_many(f"{path}.addresses", len(addresses), MAX_ADDRESSES))
    for index, address in enumerate(addresses):
        problems += _address_errors(address_type, address, f"{path}.addresses[{index}]")
    if endpoint.get("nodeName") is not None:
        problems += [invalid(f"{path}.nodeName", endpoint["nodeName"], m)
                     for m in validation.validate_dns1123_subdomain(endpoint["nodeName"])]
    topology = endpoint.get("deprecatedTopology") or {}
    if len(topology) > MAX_TOPOLOGY_LABELS:
        problems.append(too_many(f"{path}.deprecatedTopology", len(topology),
                                 MAX_TOPOLOGY_LABELS))
    for key, value in topology.items():
        at = f"{path}.deprecatedTopology"
        problems += [invalid(at, key, m) for m in _key_errors(key)]
        problems += [invalid(at, value, m) for m in _value_errors(value)]
    if ZONE_LABEL in topology:
        problems.append(invalid(f"{path}.deprecatedTopology[{ZONE_LABEL}]", ZONE_LABEL,
                                "use the endpoint's zone field, not this reserved key"))
    if endpoint.get("hostname") is not None:
        problems += [invalid(f"{path}.hostname", endpoint["hostname"], m)
                     for m in validation.validate_dns1123_label(endpoint["hostname"])]
    if endpoint.get("hints"):
        problems += _hints_errors(endpoint["hints"], f"{path}.hints")
    return problems


def _port_errors(ports):
    if len(ports) > MAX_PORTS:
        return [too_many("ports", len(ports), MAX_PORTS)]
    problems, names = [], set()
    for index, port in enumerate(ports):
        path = f"ports[{index}]"
        name = port.get("name") or ""
        if name:
            problems += [invalid(f"{path}.name", name, m)
                         for m in validation.validate_dns1123_label(name)]
        if name in names:
            problems.append(duplicate(f"{path}.name", name))
        names.add(name)
        protocol = port.get("protocol")
        if not protocol:
            problems.append(required(f"{path}.protocol"))
        elif protocol not in PROTOCOLS:
            problems.append(not_supported(f"{path}.protocol", protocol, PROTOCOLS))
        if port.get("appProtocol") is not None:
            problems += [invalid(f"{path}.appProtocol", port["appProtocol"], m)
                         for m in _key_errors(port["appProtocol"])]
    return problems


def validate(endpoint_slice):
    """Return the errors of an EndpointSlice (ValidateEndpointSlice, name aside)."""
    problems = []
    address_type = endpoint_slice.get("addressType")
    if not address_type:
        problems.append(required("addressType"))
    elif address_type not in ADDRESS_TYPES:
        problems.append(not_supported("addressType", address_type, ADDRESS_TYPES))
    endpoints = endpoint_slice.get("endpoints") or []
    if len(endpoints) > MAX_ENDPOINTS:
        problems.append(too_many("endpoints", len(endpoints), MAX_ENDPOINTS))
    else:
        for index, endpoint in enumerate(endpoints):
            problems += _endpoint_errors(endpoint or {}, address_type, f"endpoints[{index}]")
    return problems + _port_errors([p or {} for p in endpoint_slice.get("ports") or []])

