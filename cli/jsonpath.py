"""kubectl's JSONPath templates for ``-o jsonpath=...`` and ``-o custom-columns=...``.

A template is text with ``{...}`` actions: a path (``.items[*].metadata.name``,
``$.spec``, ``..name``, ``[0]``, ``[1:3]``, ``['key']``, filters such as
``[?(@.type=="Ready")]``), ``range PATH`` ... ``end``, and quoted literals
(``{"\\n"}``). Several results of one action are joined by spaces; strings print
bare, maps and lists as compact JSON; missing keys print nothing (kubectl's
``--allow-missing-template-keys=true``).
"""

import json
import re

from cli.errors import CommandError

_SEGMENT = re.compile(r"\.\.([\w\-/]+)|\.([\w\-/]+|\*)|\[((?:[^\]'\"]|'[^']*'|\"[^\"]*\")*)\]")
_FILTER = re.compile(r"^\?\(\s*@((?:\.[\w\-/]+|\[[^\]]*\])*)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*\)$")


def parse(template):
    """Split a template into a tree of ("text", s) / ("path", expr) / ("range", expr, body)."""
    nodes, stack, position = [], [], 0
    current = nodes
    while position < len(template):
        start = template.find("{", position)
        if start < 0:
            current.append(("text", template[position:]))
            break
        if start > position:
            current.append(("text", template[position:start]))
        end = _closing(template, start)
        action = template[start + 1:end].strip()
        position = end + 1
        if action.startswith("range "):
            body = []
            current.append(("range", action[6:].strip(), body))
            stack.append(current)
            current = body
        elif action == "end":
            if not stack:
                raise CommandError(f"error parsing jsonpath {template}: unexpected {{end}}")
            current = stack.pop()
        elif action[:1] in ("\"", "'"):
            current.append(("text", _literal(action)))
        else:
            current.append(("path", action))
    if stack:
        raise CommandError(f"error parsing jsonpath {template}: unclosed {{range}}")
    return nodes


def _closing(template, start):
    quote = None
    for index in range(start + 1, len(template)):
        char = template[index]
        if quote:
            if char == "\\":
                continue
            if char == quote and template[index - 1] != "\\":
                quote = None
        elif char in ("\"", "'"):
            quote = char
        elif char == "}":
            return index
    raise CommandError(f"error parsing jsonpath {template}: unclosed action")


def _literal(text):
    try:
        return json.loads(text) if text[0] == "\"" else text[1:-1]
    except ValueError as exc:
        raise CommandError(f"invalid literal {text} in jsonpath") from exc


def evaluate(expr, current, root):
    """Every value the path ``expr`` names, starting from ``current`` (or ``$`` = root)."""
    expr = expr.strip()
    if expr.startswith("$"):
        values, expr = [root], expr[1:]
    elif expr.startswith("@"):
        values, expr = [current], expr[1:]
    else:
        values = [current]
    if expr and not expr.startswith((".", "[")):
        expr = "." + expr
    position = 0
    while position < len(expr):
        match = _SEGMENT.match(expr, position)
        if not match:
            raise CommandError(f"error parsing jsonpath {expr}: unexpected {expr[position:]!r}")
        position = match.end()
        recursive, field, bracket = match.groups()
        if recursive is not None:
            values = [v for value in values for v in _descendants(value, recursive)]
        elif field is not None:
            values = _children(values, field)
        else:
            values = _bracket(values, bracket.strip())
    return values


def _children(values, field):
    found = []
    for value in values:
        if field == "*":
            found.extend(value.values() if isinstance(value, dict) else
                         value if isinstance(value, list) else [])
        elif isinstance(value, dict) and field in value:
            found.append(value[field])
    return found


def _descendants(value, field):
    found = []
    if isinstance(value, dict):
        if field in value:
            found.append(value[field])
        for child in value.values():
            found.extend(_descendants(child, field))
    elif isinstance(value, list):
        for child in value:
            found.extend(_descendants(child, field))
    return found


def _bracket(values, text):
    if text == "*":
        return _children(values, "*")
    if text[:1] in ("'", "\""):
        return _children(values, text[1:-1])
    if text.startswith("?"):
        return _filter(values, text)
    found = []
    for value in values:
        if not isinstance(value, list):
            continue
        if ":" in text:
            parts = [int(p) if p.strip() else None for p in text.split(":")[:2]]
            found.extend(value[parts[0]:parts[1]])
        else:
            try:
                found.append(value[int(text)])
            except (IndexError, ValueError):
                continue
    return found


def _filter(values, text):
    match = _FILTER.match(text)
    if not match:
        raise CommandError(f"unsupported jsonpath filter [{text}]")
    path, operator, literal = match.groups()
    wanted = None
    if operator:
        try:
            wanted = json.loads(literal) if literal[0] != "'" else literal[1:-1]
        except ValueError:
            wanted = literal
    found = []
    for value in values:
        items = value if isinstance(value, list) else [value]
        for item in items:
            got = evaluate(path or "@", item, item)
            if not operator:
                if got:
                    found.append(item)
                continue
            if got and _compare(got[0], operator, wanted):
                found.append(item)
    return found


def _compare(left, operator, right):
    if operator == "==":
        return left == right
    if operator == "!=":
        return left != right
    try:
        return {"<": left < right, ">": left > right, "<=": left <= right,
                ">=": left >= right}[operator]
    except TypeError:
        return False


def text_of(value):
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def render(template, data):
    """Fill a JSONPath template with ``data``; return the text (kubectl adds no newline)."""
    out = []

    def run(nodes, current):
        for node in nodes:
            if node[0] == "text":
                out.append(node[1])
            elif node[0] == "path":
                out.append(" ".join(text_of(v) for v in evaluate(node[1], current, data)))
            else:
                for item in evaluate(node[1], current, data):
                    run(node[2], item)

    run(parse(template), data)
    return "".join(out)


def custom_columns(spec, objects):
    """Rows for ``-o custom-columns=NAME:.path,...``: header first, "<none>" when missing."""
    columns = []
    for part in spec.split(","):
        name, sep, path = part.partition(":")
        if not sep or not name or not path:
            raise CommandError(f"custom-columns format must be NAME:PATH,...; got {part!r}")
        path = path.strip()
        if path.startswith("{") and path.endswith("}"):
            path = path[1:-1]
        columns.append((name, path))
    rows = [[name for name, _ in columns]]
    for obj in objects:
        row = []
        for _, path in columns:
            values = evaluate(path, obj, obj)
            row.append(",".join(text_of(v) for v in values) if values else "<none>")
        rows.append(row)
    return rows
