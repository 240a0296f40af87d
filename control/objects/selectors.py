"""Label and field selectors, parsed and matched as kube-apiserver does.

Grammar, validation and error texts follow k8s.io/apimachinery 1.32
(pkg/labels/selector.go, pkg/fields/selector.go, metav1 validation), because
kubectl and the client libraries show these messages to users verbatim.
"""

import json
import re
from typing import NamedTuple

__all__ = [
    "DEFAULT_FIELDS", "FIELDS_BY_KIND", "FieldError", "FieldSelector", "LabelSelector",
    "Requirement", "SelectorError", "field_value", "parse_field_selector",
    "fields_for_kind", "parse_label_selector", "selector_to_string", "validate_label_selector",
]

# ----------------------------------------------------------------- validation

_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_VALUE_FMT = f"({_NAME_FMT})?"
_DNS_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_FMT = rf"{_DNS_LABEL_FMT}(\.{_DNS_LABEL_FMT})*"
_NAME_RE, _VALUE_RE, _DNS_RE = (re.compile(f) for f in (_NAME_FMT, _VALUE_FMT, _DNS_FMT))


def _regex_error(message, fmt, *examples):
    """Word a regex mismatch like validation.RegexError (double spaces included)."""
    shown = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{fmt}')"


_NAME_MSG = _regex_error("must consist of alphanumeric characters, '-', '_' or '.', and must "
                         "start and end with an alphanumeric character",
                         _NAME_FMT, "MyName", "my.name", "123-abc")
_VALUE_MSG = _regex_error("a valid label must be an empty string or consist of alphanumeric "
                          "characters, '-', '_' or '.', and must start and end with an "
                          "alphanumeric character", _VALUE_FMT, "MyValue", "my_value", "12345")
_DNS_MSG = _regex_error("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                        "characters, '-' or '.', and must start and end with an alphanumeric "
                        "character", _DNS_FMT, "example.com")


def _key_errors(key):
    """Return why *key* is not a label key (validation.IsQualifiedName)."""
    if not isinstance(key, str):
        return ["must be a string"]
    parts = key.split("/")
    if len(parts) > 2:
        return [f"a qualified name {_NAME_MSG} with an optional DNS subdomain prefix and '/' "
                "(e.g. 'example.com/MyName')"]
    errors, name = [], parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            # Go measures bytes, so a multi-byte character counts more than once.
            if len(prefix.encode()) > 253:
                errors.append("prefix part must be no more than 253 characters")
            if not _DNS_RE.fullmatch(prefix):
                errors.append(f"prefix part {_DNS_MSG}")
    if not name:
        errors.append("name part must be non-empty")
    elif len(name.encode()) > 63:
        errors.append("name part must be no more than 63 characters")
    if not _NAME_RE.fullmatch(name):
        errors.append(f"name part {_NAME_MSG}")
    return errors


def _value_errors(value):
    """Return why *value* is not a label value (validation.IsValidLabelValue)."""
    if not isinstance(value, str):
        return ["must be a string"]
    errors = ["must be no more than 63 characters"] if len(value.encode()) > 63 else []
    return errors + ([] if _VALUE_RE.fullmatch(value) else [_VALUE_MSG])


_ERROR_TYPES = {"FieldValueRequired": "Required value", "FieldValueForbidden": "Forbidden",
                "FieldValueInvalid": "Invalid value"}


class FieldError(tuple):
    """Hold one validation error as a (field path, message) pair, like field.Error.

    ``reason`` is the StatusCause reason and ``value`` the offending value, so
    ``cause()`` yields the (path, reason, message) triple errors.Invalid takes.
    """

    def __new__(cls, path, message, reason="FieldValueInvalid", value=None):
        self = super().__new__(cls, (path, message))
        self.reason, self.value = reason, value
        return self

    path = property(lambda self: self[0])
    message = property(lambda self: self[1])

    def body(self):
        """Return the message prefixed with the error type, as field.Error.ErrorBody."""
        head = _ERROR_TYPES[self.reason]
        if self.reason == "FieldValueInvalid":
            head += ": " + json.dumps(self.value, ensure_ascii=False)
        return f"{head}: {self.message}"

    def cause(self):
        """Return the (field, reason, message) triple of a Status cause."""
        return self.path, self.reason, self.body()

    def __str__(self):
        return f"{self.path}: {self.body()}"


def _aggregate(errors):
    """Join errors the way utilerrors.Aggregate does: one bare, several bracketed."""
    messages = list(dict.fromkeys(map(str, errors)))
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"


class SelectorError(ValueError):
    """Report a malformed selector; ``errors`` lists FieldErrors where there are any."""

    def __init__(self, message, errors=()):
        super().__init__(message)
        self.message, self.errors = message, list(errors)


# ------------------------------------------------------------ label selectors

IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "in", "notin", "=", "==", "!="
EXISTS, DOES_NOT_EXIST, GT, LT = "exists", "!", "gt", "lt"
_BINARY = {"in": IN, "notin": NOT_IN, "=": EQUALS, "==": DOUBLE_EQUALS, "!=": NOT_EQUALS,
           ">": GT, "<": LT}
_STRUCTURED = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}
_INT64 = re.compile(r"[+-]?[0-9]+")


def _int64(text):
    """Parse *text* as strconv.ParseInt(text, 10, 64) would, or return None."""
    if not _INT64.fullmatch(text):
        return None
    number = int(text)
    return number if -2**63 <= number < 2**63 else None


class Requirement(NamedTuple):
    """One term of a label selector: a key, an operator and its values."""

    key: str
    operator: str
    values: tuple = ()

    def matches(self, labels):
        """Return whether the label dict *labels* satisfies this requirement."""
        if self.operator == EXISTS:
            return self.key in labels
        if self.operator == DOES_NOT_EXIST:
            return self.key not in labels
        if self.key not in labels:
            # Exclusions hold for objects that lack the label altogether.
            return self.operator in (NOT_IN, NOT_EQUALS)
        value = labels[self.key]
        if self.operator in (NOT_IN, NOT_EQUALS):
            return value not in self.values
        if self.operator in (GT, LT):
            have, want = _int64(value), _int64(self.values[0])
            if have is None or want is None:
                return False
            return have > want if self.operator == GT else have < want
        return value in self.values

    def __str__(self):
        if self.operator in (EXISTS, DOES_NOT_EXIST):
            return ("!" if self.operator == DOES_NOT_EXIST else "") + self.key
        values = ",".join(sorted(self.values))
        if self.operator in (IN, NOT_IN):
            return f"{self.key} {self.operator} ({values})"
        return self.key + {GT: ">", LT: "<"}.get(self.operator, self.operator) + values


def _new_requirement(key, operator, values):
    """Build a parsed requirement, checking its values as labels.NewRequirement."""
    errors = []
    if operator in (GT, LT):
        errors += [FieldError(f"values[{i}]", "for 'Gt', 'Lt' operators, the value must be an "
                              "integer", value=v) for i, v in enumerate(values) if _int64(v) is None]
    for i, value in enumerate(values):
        messages = _value_errors(value)
        if messages:
            errors.append(FieldError(f"values[{i}][{key}]", "; ".join(messages), value=value))
    if errors:
        raise SelectorError(_aggregate(errors), errors)
    return Requirement(key, operator, tuple(values))


_WHITESPACE, _SPECIAL = " \t\r\n", "=!(),><"
_IDENT, _END = "identifier", "end of string"


def _lex(text):
    """Split *text* into (token, literal) pairs that end with an end-of-string token."""
    items, i = [], 0
    while True:
        while i < len(text) and text[i] in _WHITESPACE:
            i += 1
        if i == len(text):
            return items + [(_END, "")]
        if text[i] in _SPECIAL:
            literal = text[i:i + 2] if text[i:i + 2] in ("!=", "==") else text[i]
        else:
            end = i
            while end < len(text) and text[end] not in _WHITESPACE + _SPECIAL:
                end += 1
            literal = text[i:end]
        i += len(literal)
        keyword = literal in ("in", "notin") or literal[0] in _SPECIAL
        items.append((literal if keyword else _IDENT, literal))


class _Parser:
    """Recursive-descent parser mirroring labels.Parser token for token."""

    def __init__(self, text):
        self.items, self.pos = _lex(text), 0

    def peek(self, values=True):
        # 'in' and 'notin' are plain identifiers anywhere but the operator slot.
        token, literal = self.items[min(self.pos, len(self.items) - 1)]
        return (_IDENT if values and token in ("in", "notin") else token), literal

    def take(self, values=True):
        item = self.peek(values)
        self.pos += 1
        return item

    def parse(self):
        requirements = []
        while True:
            token, literal = self.peek()
            if token == _END:
                return requirements
            if token not in (_IDENT, "!"):
                raise SelectorError(f"found '{literal}', expected: !, identifier, or "
                                    "'end of string'")
            try:
                requirements.append(self.requirement())
            except SelectorError as err:
                raise SelectorError(f"unable to parse requirement: {err.message}",
                                    err.errors) from None
            token, literal = self.take()
            if token == _END:
                return requirements
            if token != ",":
                raise SelectorError(f"found '{literal}', expected: ',' or 'end of string'")
            token, literal = self.peek()
            if token not in (_IDENT, "!"):
                raise SelectorError(f"found '{literal}', expected: identifier after ','")

    def requirement(self):
        negated = self.peek()[0] == "!"
        if negated:
            self.take()
        token, key = self.take()
        if token != _IDENT:
            raise SelectorError(f"found '{key}', expected: identifier")
        messages = _key_errors(key)
        if messages:
            # Kubernetes validates the key with a nil field path, printed as "<nil>".
            raise SelectorError(f"<nil>: Invalid value: {json.dumps(key)}: {'; '.join(messages)}")
        if negated or self.peek()[0] in (_END, ","):
            return Requirement(key, DOES_NOT_EXIST if negated else EXISTS)
        token, literal = self.take(values=False)
        if token not in _BINARY:
            raise SelectorError(f"found '{literal}', expected: in, notin, =, ==, !=, gt, lt")
        operator = _BINARY[token]
        values = self.value_set() if operator in (IN, NOT_IN) else self.exact_value()
        return _new_requirement(key, operator, sorted(values))

    def value_set(self):
        token, literal = self.take()
        if token != "(":
            raise SelectorError(f"found '{literal}' expected: '('")
        token, literal = self.peek()
        if token == ")":
            # Kubernetes reads "()" as the set holding only the empty value.
            self.take()
            return {""}
        if token not in (_IDENT, ","):
            raise SelectorError(f"found '{literal}', expected: ',', ')' or identifier")
        values = set()
        while True:
            token, literal = self.take()
            if token == _IDENT:
                values.add(literal)
                token, literal = self.peek()
                if token == ")":
                    break
                if token != ",":
                    raise SelectorError(f"found '{literal}', expected: ',' or ')'")
            elif token == ",":
                # A missing value next to a comma, as in "(,a)" or "(a,,b)", is "".
                if not values or self.peek()[0] in (",", ")"):
                    values.add("")
                if self.peek()[0] == ")":
                    break
            else:
                raise SelectorError(f"found '{literal}', expected: ',', or identifier")
        self.take()
        return values

    def exact_value(self):
        if self.peek()[0] in (_END, ","):
            return {""}
        token, literal = self.take()
        if token != _IDENT:
            raise SelectorError(f"found '{literal}', expected: identifier")
        return {literal}


class LabelSelector:
    """Match label dicts against a conjunction of requirements, or against nothing."""

    def __init__(self, requirements=(), *, nothing=False):
        # Sorted by key (stably) so str() is canonical, as Kubernetes sorts ByKey.
        self.requirements = tuple(sorted(requirements, key=lambda r: r.key))
        self.nothing = nothing

    @classmethod
    def from_object(cls, selector, path="spec.selector"):
        """Build from a metav1.LabelSelector dict; None selects nothing, {} everything."""
        if selector is None:
            return cls(nothing=True)
        errors = validate_label_selector(selector, path)
        if errors:
            raise SelectorError(_aggregate(errors), errors)
        requirements = [Requirement(key, EQUALS, (value,))
                        for key, value in (selector.get("matchLabels") or {}).items()]
        requirements += [Requirement(e["key"], _STRUCTURED[e["operator"]],
                                     tuple(e.get("values") or ()))
                         for e in selector.get("matchExpressions") or ()]
        return cls(requirements)

    @property
    def empty(self):
        """Return whether this selector matches every object."""
        return not self.requirements and not self.nothing

    def matches(self, labels):
        """Return whether the label dict *labels* (None meaning none) is selected."""
        labels = labels or {}
        return not self.nothing and all(r.matches(labels) for r in self.requirements)

    def __str__(self):
        return ",".join(map(str, self.requirements))

    def __repr__(self):
        return "LabelSelector(<nothing>)" if self.nothing else f"LabelSelector({str(self)!r})"


def parse_label_selector(text):
    """Parse a ``labelSelector`` query string; raise SelectorError if it is malformed."""
    return LabelSelector(_Parser(text or "").parse())


def validate_label_selector(selector, path="spec.selector"):
    """Return FieldErrors for a metav1.LabelSelector dict, as ValidateLabelSelector."""
    if selector is None:
        return []
    if not isinstance(selector, dict):
        return [FieldError(path, "must be an object", value=selector)]
    errors, labels_path = [], f"{path}.matchLabels"
    for key, value in (selector.get("matchLabels") or {}).items():
        errors += [FieldError(labels_path, m, value=key) for m in _key_errors(key)]
        errors += [FieldError(labels_path, m, value=value) for m in _value_errors(value)]
    for i, expr in enumerate(selector.get("matchExpressions") or ()):
        at = f"{path}.matchExpressions[{i}]"
        operator, values = expr.get("operator"), expr.get("values") or []
        if operator in ("In", "NotIn") and not values:
            errors.append(FieldError(f"{at}.values", "must be specified when `operator` is "
                                     "'In' or 'NotIn'", "FieldValueRequired"))
        elif operator in ("Exists", "DoesNotExist") and values:
            errors.append(FieldError(f"{at}.values", "may not be specified when `operator` is "
                                     "'Exists' or 'DoesNotExist'", "FieldValueForbidden"))
        elif operator not in _STRUCTURED:
            errors.append(FieldError(f"{at}.operator", "not a valid selector operator",
                                     value=operator))
        key = expr.get("key", "")
        errors += [FieldError(f"{at}.key", m, value=key) for m in _key_errors(key)]
        for j, value in enumerate(values):
            errors += [FieldError(f"{at}.values[{j}]", m, value=value)
                       for m in _value_errors(value)]
    return errors


def selector_to_string(selector):
    """Render a metav1.LabelSelector dict in query-string form ("" selects all)."""
    return str(LabelSelector.from_object(selector))


# ------------------------------------------------------------ field selectors

DEFAULT_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
FIELDS_BY_KIND = {
    "Pod": frozenset({"spec.nodeName", "status.phase", "spec.restartPolicy", "spec.schedulerName",
                      "spec.serviceAccountName", "status.podIP", "spec.hostNetwork",
                      "status.nominatedNodeName"}),
    "Event": frozenset({"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                        "involvedObject.uid", "involvedObject.apiVersion",
                        "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                        "reportingComponent", "type", "source"}),
    "Node": frozenset({"spec.unschedulable"}),
    "Secret": frozenset({"type"}),
    "Namespace": frozenset({"status.phase"}),
    "ReplicaSet": frozenset({"status.replicas"}),
    "Job": frozenset({"status.successful"}),
}
# Fields Kubernetes derives from somewhere other than the path of the same name.
_FIELD_PATHS = {"source": "source.component"}
# Go zero values: kube-apiserver compares an unset bool or int as "false" or "0".
_FIELD_ZEROS = {"spec.unschedulable": "false", "spec.hostNetwork": "false",
                "status.replicas": "0", "status.successful": "0"}


def fields_for_kind(kind):
    """Return the field selector labels kube-apiserver accepts for *kind*."""
    return DEFAULT_FIELDS | FIELDS_BY_KIND.get(kind, frozenset())


def field_value(obj, field):
    """Return *field* of *obj* as the string a field selector compares with."""
    node = obj
    for part in _FIELD_PATHS.get(field, field).split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if node is None:
        return _FIELD_ZEROS.get(field, "")
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def _split_unescaped(text, separator):
    """Split *text* at each *separator* not escaped by a backslash."""
    parts, start, escaped = [], 0, False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append(text[start:i])
            start = i + 1
    return parts + [text[start:]]


def _unescape(value):
    """Undo \\\\, \\, and \\= escapes as fields.UnescapeValue; bare ',' or '=' is an error."""
    out, escaped = [], False
    for char in value:
        if escaped:
            if char not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{char}")
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            # Go formats the rune with %v, which prints its code point.
            raise SelectorError(f"invalid field selector: unescaped character in value: "
                                f"{ord(char)}")
        else:
            out.append(char)
    if escaped:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


class FieldSelector:
    """Match objects against (field, negated, value) terms, all of which must hold."""

    def __init__(self, terms=()):
        self.terms = tuple(terms)

    @property
    def empty(self):
        """Return whether this selector matches every object."""
        return not self.terms

    def matches(self, obj):
        """Return whether the object dict *obj* is selected."""
        return all((field_value(obj, field) == value) != negated
                   for field, negated, value in self.terms)

    def exact(self, field):
        """Return the value an equality term requires of *field*, or None."""
        return next((value for f, negated, value in self.terms if f == field and not negated),
                    None)

    def __str__(self):
        escape = {"\\": "\\\\", ",": "\\,", "=": "\\="}
        return ",".join(f"{f}{'!=' if negated else '='}" + "".join(escape.get(c, c) for c in v)
                        for f, negated, v in self.terms)

    def __repr__(self):
        return f"FieldSelector({str(self)!r})"


def parse_field_selector(text, supported_fields=DEFAULT_FIELDS):
    """Parse a ``fieldSelector`` query string over the *supported_fields* labels."""
    terms = []
    # Kubernetes sorts the terms and skips empty ones, so "a=b," is accepted.
    for part in sorted(_split_unescaped(text or "", ",")):
        if not part:
            continue
        match = re.search("!=|==|=", part)
        if match is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        field, value = part[:match.start()], _unescape(part[match.end():])
        terms.append((field, match.group() == "!=", value))
    for field, _, _ in terms:
        if field not in supported_fields:
            raise SelectorError(f"field label not supported: {field}")
    return FieldSelector(terms)
