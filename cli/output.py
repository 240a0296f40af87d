"""Printing as kubectl does: aligned columns, ages, and -o yaml|json|name.

Tables come from the API server (server-side printing, ``meta.k8s.io`` Table);
this module only lays them out: upper-case headers, columns padded by three
spaces (kubectl's tabwriter), priority-1 columns only with ``-o wide``, a
NAMESPACE column first with ``-A``, and ``kind/`` before names when one listing
shows several kinds.
"""

import json
from datetime import datetime, timezone

import yaml

from control.objects.meta import human_duration  # noqa: F401 - also used as output.human_duration

PADDING = 3
MIN_WIDTH = 6



def parse_time(text):
    """Parse an RFC 3339 timestamp (with or without fraction); None if empty or bad."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def age(timestamp, now=None):
    """The age of an RFC 3339 timestamp as kubectl prints it, or "<unknown>"."""
    when = parse_time(timestamp)
    if when is None:
        return "<unknown>"
    now = now or datetime.now(timezone.utc)
    return human_duration((now - when).total_seconds())


def tabwrite(lines, min_width=0, padding=2):
    """Go's text/tabwriter on lines given as cell lists (the last cell is not tab-ended).

    A column is aligned over each run of consecutive lines that have a cell there,
    exactly as kubectl's tabwriter does for `get` tables and `describe` blocks.
    """
    out = []

    def fmt(line0, line1, widths):
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write(line0, this, widths)
            line0 = this
            width = min_width
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            fmt(line0, this, widths + [width])
            line0 = this
        write(line0, line1, widths)

    def write(start, end, widths):
        for line in lines[start:end]:
            text = "".join(cell.ljust(widths[j]) if j < len(widths) and j < len(line) - 1
                           else cell for j, cell in enumerate(line))
            out.append(text)

    fmt(0, len(lines), [])
    return out


def columns(rows, padding=PADDING, min_width=MIN_WIDTH):
    """Lay out table rows of strings as `kubectl get` does; return the lines."""
    return [line.rstrip() for line in tabwrite([list(r) for r in rows], min_width, padding)]


def columns_growing(rows, widths, padding=PADDING, min_width=MIN_WIDTH):
    """Lay out rows with column widths that only grow across calls (``widths`` is kept
    by the caller), so the rows of `get -w` stay aligned as kubectl keeps them."""
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            if i >= len(widths):
                widths.append(min_width)
            widths[i] = max(widths[i], len(cell) + padding)
    return ["".join(cell.ljust(widths[i]) if i < len(row) - 1 else cell
                    for i, cell in enumerate(row)).rstrip() for row in rows]


def cell_text(value):
    if value is None:
        return "<none>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def table_rows(table, wide=False, with_namespace=False, name_prefix=None, headers=True):
    """Turn a server Table into rows of strings (header first when ``headers``)."""
    definitions = table.get("columnDefinitions") or []
    shown = [i for i, c in enumerate(definitions) if wide or not c.get("priority")]
    rows = []
    if headers:
        header = [definitions[i]["name"].upper() for i in shown]
        rows.append((["NAMESPACE"] if with_namespace else []) + header)
    for row in table.get("rows") or []:
        cells = row.get("cells") or []
        texts = []
        for i in shown:
            text = cell_text(cells[i] if i < len(cells) else None)
            if name_prefix and definitions[i].get("format") == "name":
                text = f"{name_prefix}/{text}"
            texts.append(text)
        if with_namespace:
            meta = (row.get("object") or {}).get("metadata") or {}
            texts.insert(0, meta.get("namespace") or "")
        rows.append(texts)
    return rows


def kind_prefix(resource):
    """``deployment.apps`` or ``pod``: the prefix kubectl puts before names."""
    kind = resource.kind.lower()
    return f"{kind}.{resource.group}" if resource.group else kind


def as_list(objects):
    """The v1 List kubectl prints for several objects with -o yaml|json."""
    return {"apiVersion": "v1", "items": list(objects), "kind": "List",
            "metadata": {"resourceVersion": ""}}


class _KubeDumper(yaml.SafeDumper):
    """Quote as kubectl (go-yaml) does: "double quotes" where a string needs quoting,
    and block (|) style for text spanning lines, such as embedded files."""

    def choose_scalar_style(self):
        style = super().choose_scalar_style()
        return '"' if style == "'" else style


def _str_representer(dumper, value):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_KubeDumper.add_representer(str, _str_representer)


def to_yaml(obj):
    return yaml.dump(obj, Dumper=_KubeDumper, default_flow_style=False, sort_keys=True,
                     allow_unicode=True)


def to_json(obj):
    return json.dumps(obj, indent=4, ensure_ascii=False, sort_keys=True)


def name_line(resource, obj):
    return f"{kind_prefix(resource)}/{obj['metadata']['name']}"


def render_objects(objects, fmt, single=False):
    """-o yaml|json of one named object (as itself) or of a listing (as a List)."""
    doc = objects[0] if single and len(objects) == 1 else as_list(objects)
    if fmt == "yaml":
        return to_yaml(doc).rstrip("\n")
    return to_json(doc)
