"""The JSONPath subset CRDs use: printer columns and the scale subresource's paths.

``.spec.replicas``, ``.metadata.labels.app``, ``.items[0].name``, ``.items[*].name``,
``.metadata.annotations['a.b/c']`` and a filter ``.status.conditions[?(@.type=="Ready")].status``
(what kubectl's column templates hold). ``is_simple`` paths (dots and names only)
are what ``specReplicasPath`` and friends may be.
"""

import re

_STEP = re.compile(r"""
    \.(?P<name>[A-Za-z0-9_$-]+)              # .name
  | \[(?P<index>-?\d+)\]                     # [0]
  | \[(?P<star>\*)\]                         # [*]
  | \[(?P<q>['"])(?P<key>[^'"]*)(?P=q)\]     # ['a.b']
  | \[\?\(@\.(?P<ffield>[A-Za-z0-9_.-]+)\s*==\s*(?P<fq>['"])(?P<fvalue>[^'"]*)(?P=fq)\)\]
""", re.VERBOSE)
_SIMPLE = re.compile(r"(\.[A-Za-z0-9_-]+)+")
MAX_LENGTH = 512


class PathError(ValueError):
    pass


def parse(text):
    """Return the steps of a path: ("name", n), ("index", i), ("all",), ("filter", f, v)."""
    if not isinstance(text, str) or len(text) > MAX_LENGTH:
        raise PathError(f"must be a string of at most {MAX_LENGTH} characters")
    text = text.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    if not text.startswith("."):
        raise PathError("must be a JSON path starting with a dot, such as .spec.replicas")
    steps, position = [], 0
    while position < len(text):
        match = _STEP.match(text, position)
        if match is None:
            raise PathError(f"cannot parse the JSON path at {text[position:position + 20]!r}")
        if match["name"] is not None:
            steps.append(("name", match["name"]))
        elif match["index"] is not None:
            steps.append(("index", int(match["index"])))
        elif match["star"] is not None:
            steps.append(("all",))
        elif match["key"] is not None:
            steps.append(("name", match["key"]))
        else:
            steps.append(("filter", match["ffield"].split("."), match["fvalue"]))
        position = match.end()
    return steps


def problem(text):
    """Say why ``text`` is not a usable path, or return None."""
    try:
        parse(text)
    except PathError as exc:
        return str(exc)
    return None


def is_simple(text):
    return isinstance(text, str) and _SIMPLE.fullmatch(text) is not None


def find(obj, text):
    """Return the values the path selects in ``obj`` (empty when it selects nothing)."""
    values = [obj]
    for step in parse(text):
        values = [found for value in values for found in _step(value, step)]
    return values


def _step(value, step):
    if step[0] == "name":
        return [value[step[1]]] if isinstance(value, dict) and step[1] in value else []
    if not isinstance(value, list):
        return []
    if step[0] == "index":
        return [value[step[1]]] if -len(value) <= step[1] < len(value) else []
    if step[0] == "all":
        return list(value)
    fields, wanted = step[1], step[2]
    return [item for item in value if str(_dig(item, fields)) == wanted]


def _dig(value, fields):
    for field in fields:
        if not isinstance(value, dict):
            return None
        value = value.get(field)
    return value


def get_simple(obj, text):
    """Return the value at a simple path, or None."""
    found = find(obj, text)
    return found[0] if found else None


def set_simple(obj, text, value):
    """Set the value at a simple path, creating the objects on the way."""
    names = [step[1] for step in parse(text)]
    for name in names[:-1]:
        nxt = obj.get(name)
        if not isinstance(nxt, dict):
            nxt = obj[name] = {}
        obj = nxt
    obj[names[-1]] = value
