"""Decode JSON and YAML request bodies without letting a hostile one exhaust a worker.

A body is parsed only into what JSON can hold, at most ``MAX_DEPTH`` levels deep:
deeper values would overflow the recursion of every later step (deepcopy, patches,
validation), so 100,000 nested ``[`` is a 400, not a RecursionError. YAML is
scanned event by event before it is built: an alias is refused (a 576-byte alias
bomb expands to gigabytes) and the scan stops at the first level too deep, so
neither costs more than reading the text once. YAML timestamps stay strings, as
Kubernetes' YAML-to-JSON conversion keeps them.
"""

import json
import math
import re

import yaml

from control import errors

#: Nesting (objects and lists) a body may have; Kubernetes objects need ~20.
MAX_DEPTH = 100
_SURROGATE = re.compile("[\ud800-\udfff]")

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _JsonishLoader(_Loader):
    """A safe loader that keeps timestamps as the strings they were written as."""


_JsonishLoader.add_constructor("tag:yaml.org,2002:timestamp",
                               _JsonishLoader.construct_yaml_str)


def decode_json(raw):
    """Parse ``raw`` as JSON into plain values (400 if malformed or too deep)."""
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise _too_deep("JSON") from None
    except ValueError as exc:
        raise errors.BadRequest(f"the request body is not valid JSON: {exc}") from None
    return check_value(value, "JSON")


def decode_yaml(raw):
    """Parse ``raw`` as one YAML document, refusing aliases and deep nesting first."""
    try:
        _scan_yaml(raw)
        value = yaml.load(raw, Loader=_JsonishLoader)   # noqa: S506 - a safe loader
    except RecursionError:
        raise _too_deep("YAML") from None
    except yaml.YAMLError as exc:
        raise errors.BadRequest(f"the request body is not valid YAML: {exc}") from None
    return check_value(value, "YAML")


def _scan_yaml(raw):
    """Refuse (400) YAML with an alias or nesting over MAX_DEPTH, reading events only."""
    depth = 0
    for event in yaml.parse(raw, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            raise errors.BadRequest(
                f"the request body uses the YAML alias *{event.anchor}: aliases are not "
                "accepted (they can expand a small body into gigabytes); write the value out")
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise _too_deep("YAML")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def check_value(value, syntax="JSON", what="the request body"):
    """Return ``value`` as JSON values only; 400 if too deep or not representable.

    Walks without recursion. Non-string map keys (YAML allows them) become strings,
    as Kubernetes' YAML-to-JSON conversion does.
    """
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)) and depth > MAX_DEPTH:
            raise _too_deep(syntax, what)
        if isinstance(node, dict):
            if any(not isinstance(key, str) for key in node):
                fixed = {_key_text(key, syntax): item for key, item in node.items()}
                node.clear()
                node.update(fixed)
            for key in node:
                _check_unicode(key, what)
            stack.extend((item, depth + 1) for item in node.values())
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, str):
            _check_unicode(node, what)
        elif isinstance(node, float) and not math.isfinite(node):
            raise errors.BadRequest(f"{what} holds {node}: not a JSON number")
        elif not (node is None or isinstance(node, (str, int, float))):
            raise errors.BadRequest(f"{what} holds a {type(node).__name__} value, "
                                    f"which JSON cannot represent; quote it in the {syntax}")
    return value


def _check_unicode(text, what):
    """Refuse (400) a string holding a lone UTF-16 surrogate: it is not Unicode text.

    JSON's \\ud800 escapes (and UTF-8-encoded surrogates, which json.loads lets
    through) decode to one; no store, watch or client could encode it again.
    """
    match = _SURROGATE.search(text)
    if match:
        raise errors.BadRequest(
            f"{what} holds a lone UTF-16 surrogate (\\u{ord(match.group()):04x}) in a string: "
            "strings must be valid Unicode; send the character as a surrogate pair or in UTF-8")


def _key_text(key, syntax):
    if isinstance(key, str):
        return key
    if isinstance(key, bool) or key is None:
        return json.dumps(key)
    if isinstance(key, (int, float)):
        return str(key)
    raise errors.BadRequest(f"the request body has a {type(key).__name__} map key, which "
                            f"JSON cannot represent; quote it in the {syntax}")


def _refuse_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def _too_deep(syntax, what="the request body"):
    return errors.BadRequest(f"{what} is nested too deeply: {syntax} values may be at most "
                             f"{MAX_DEPTH} levels deep")
