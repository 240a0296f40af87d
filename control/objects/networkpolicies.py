"""Validate networking.k8s.io/v1 NetworkPolicies as kube-apiserver (1.32) does.

The rules of pkg/apis/networking/validation: label selectors well formed, at most
the two policyTypes Ingress and Egress, ports with a protocol of TCP, UDP or SCTP,
a number in 1..65535 or an IANA service name, an endPort only after a numeric port
and not below it; each peer names something, and an ipBlock stands alone, with a
valid cidr whose excepts are strict subsets of it. Each function returns the
(field path, reason, message) triples ``errors.Invalid`` takes.
"""

import ipaddress
import json
import re

from control.objects.endpointslices import invalid, not_supported, required
from control.objects.selectors import validate_label_selector

POLICY_TYPES = ("Ingress", "Egress")
PROTOCOLS = ("TCP", "UDP", "SCTP")
CIDR_EXAMPLE = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
_PORT_NAME_CHARS = re.compile(r"^[-a-z0-9]+$")


def forbidden(path, message):
    return (path, "FieldValueForbidden", f"Forbidden: {message}")


def port_number_errors(number):
    return [] if 1 <= number <= 65535 else ["must be between 1 and 65535, inclusive"]


def port_name_errors(name):
    """validation.IsValidPortName: an IANA_SVC_NAME, as a container port's name."""
    problems = []
    if len(name) > 15:
        problems.append("must be no more than 15 characters")
    if not _PORT_NAME_CHARS.match(name):
        problems.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", name):
        problems.append("must contain at least one letter (a-z)")
    if "--" in name:
        problems.append("must not contain consecutive hyphens (--)")
    if name.startswith("-") or name.endswith("-"):
        problems.append("must not begin or end with a hyphen (-)")
    return problems


def _selector_errors(selector, path):
    return [e.cause() for e in validate_label_selector(selector, path)]


def _parse_cidr(text):
    try:
        return ipaddress.ip_network(text, strict=False)
    except (ValueError, TypeError):
        return None


def ip_block_errors(block, path):
    cidr_text = block.get("cidr") or ""
    if not cidr_text:
        return [required(f"{path}.cidr")]
    cidr = _parse_cidr(cidr_text)
    if cidr is None:
        return [invalid(f"{path}.cidr", cidr_text, CIDR_EXAMPLE)]
    problems = []
    for index, text in enumerate(block.get("except") or ()):
        at = f"{path}.except[{index}]"
        hole = _parse_cidr(text)
        if hole is None:
            problems.append(invalid(at, text, CIDR_EXAMPLE))
        elif (hole.version != cidr.version or hole.network_address not in cidr
              or cidr.prefixlen >= hole.prefixlen):
            problems.append(invalid(at, text, "must be a strict subset of `cidr`"))
    return problems


def peer_errors(peer, path):
    problems, count = [], 0
    for key in ("podSelector", "namespaceSelector"):
        if peer.get(key) is not None:
            count += 1
            problems += _selector_errors(peer[key], f"{path}.{key}")
    if peer.get("ipBlock") is not None:
        count += 1
        problems += ip_block_errors(peer["ipBlock"], f"{path}.ipBlock")
    if count == 0:
        problems.append(required(path, "must specify a peer"))
    elif count > 1 and peer.get("ipBlock") is not None:
        problems.append(forbidden(path, "may not specify both ipBlock and another peer"))
    return problems


def port_errors(port, path):
    problems = []
    protocol, number, end = port.get("protocol"), port.get("port"), port.get("endPort")
    if protocol is not None and protocol not in PROTOCOLS:
        problems.append(not_supported(f"{path}.protocol", protocol, PROTOCOLS))
    if number is None:
        if end is not None:
            problems.append(invalid(f"{path}.endPort", end,
                                    "may not be specified when `port` is not specified"))
    elif isinstance(number, int):
        problems += [invalid(f"{path}.port", number, m) for m in port_number_errors(number)]
        if end is not None:
            if end < number:
                problems.append(invalid(f"{path}.endPort", number,
                                        "must be greater than or equal to `port`"))
            problems += [invalid(f"{path}.endPort", end, m) for m in port_number_errors(end)]
    else:
        if end is not None:
            problems.append(invalid(f"{path}.endPort", end,
                                    "may not be specified when `port` is non-numeric"))
        problems += [invalid(f"{path}.port", number, m) for m in port_name_errors(str(number))]
    return problems


def _rule_errors(rules, path, peers_key):
    problems = []
    for index, rule in enumerate(rules or ()):
        at = f"{path}[{index}]"
        rule = rule or {}
        for j, port in enumerate(rule.get("ports") or ()):
            problems += port_errors(port or {}, f"{at}.ports[{j}]")
        for j, peer in enumerate(rule.get(peers_key) or ()):
            problems += peer_errors(peer or {}, f"{at}.{peers_key}[{j}]")
    return problems


def validate(policy):
    """Every problem of a NetworkPolicy's spec (metadata is checked elsewhere)."""
    spec = policy.get("spec") or {}
    problems = _selector_errors(spec.get("podSelector") or {}, "spec.podSelector")
    problems += _rule_errors(spec.get("ingress"), "spec.ingress", "from")
    problems += _rule_errors(spec.get("egress"), "spec.egress", "to")
    types = spec.get("policyTypes") or []
    if len(types) > len(POLICY_TYPES):
        return problems + [("spec.policyTypes", "FieldValueInvalid",
                            f"Invalid value: {json.dumps(types)}: may not specify more than "
                            "two policyTypes")]
    for index, kind in enumerate(types):
        if kind not in POLICY_TYPES:
            problems.append(not_supported(f"spec.policyTypes[{index}]", kind, POLICY_TYPES))
    return problems
