"""Write the small subset of TOML that containerd's configuration needs.

Python 3.11 reads TOML (tomllib) but cannot write it; the configuration is nested
tables of strings, booleans, integers and lists of strings, which this covers.
"""

import json
import re

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(name):
    return name if _BARE_KEY.match(name) else json.dumps(name)


def _value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        # JSON's escapes (\" \\ \n \uXXXX ...) are all valid in TOML basic strings.
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML: {value!r}")


def dumps(document):
    """Return ``document`` (a dict of dicts and values) as TOML text."""
    lines = []
    _table(document, (), lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _table(table, path, lines):
    values = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path and (values or not tables):
        lines.append("")
        lines.append("[" + ".".join(_key(part) for part in path) + "]")
    for name, value in values.items():
        lines.append(f"{_key(name)} = {_value(value)}")
    for name, sub in tables.items():
        _table(sub, path + (name,), lines)
