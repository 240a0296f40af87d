"""Table-driven tests of label and field selectors against Kubernetes 1.32 behaviour."""

import pytest

from control.objects.selectors import (
    DEFAULT_FIELDS,
    FIELDS_BY_KIND,
    LabelSelector,
    SelectorError,
    fields_for_kind,
    parse_field_selector,
    parse_label_selector,
    selector_to_string,
    validate_label_selector,
)

# Messages copied from kube-apiserver responses, double spaces and all.
NAME_HINT = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
             "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
             "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
VALUE_HINT = ("a valid label must be an empty string or consist of alphanumeric characters, "
              "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
              "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
              "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
DNS_HINT = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character (e.g. "
            "'example.com', regex used for validation is "
            r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
REQ = "unable to parse requirement: "

# ------------------------------------------------------- label selector parsing

# (query string, canonical form as labels.Selector.String() prints it)
VALID_LABEL_SELECTORS = [
    ("", ""),
    ("   \t", ""),
    ("x=a", "x=a"),
    ("x==a", "x==a"),
    ("x!=a", "x!=a"),
    ("x = a", "x=a"),
    ("x=", "x="),
    ("x=,y=b", "x=,y=b"),
    ("x= ", "x="),
    ("x= ,z= ", "x=,z="),
    ("x!=", "x!="),
    ("z=a,y=b,x=c", "x=c,y=b,z=a"),
    ("x=a,y=b,z=c", "x=a,y=b,z=c"),
    ("env in (prod, staging)", "env in (prod,staging)"),
    ("  env   in   ( staging ,prod )  ", "env in (prod,staging)"),
    ("env in (prod,prod)", "env in (prod)"),
    ("tier notin (frontend)", "tier notin (frontend)"),
    ("partition", "partition"),
    ("!partition", "!partition"),
    ("! partition", "!partition"),
    ("! in", "!in"),
    ("partition,!canary", "!canary,partition"),
    ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
    ("x in (,a)", "x in (,a)"),
    ("x in (a,)", "x in (,a)"),
    ("x in ()", "x in ()"),
    ("in in (in, notin)", "in in (in,notin)"),
    ("notin=in", "notin=in"),
    ("app.kubernetes.io/name=web", "app.kubernetes.io/name=web"),
    ("example.com/MyName in (a.b_c-1)", "example.com/MyName in (a.b_c-1)"),
    ("v=1.2_3-A", "v=1.2_3-A"),
    ("a=b,\tc\n,\r!d", "a=b,c,!d"),
    ("k" * 63 + "=" + "v" * 63, "k" * 63 + "=" + "v" * 63),
    ("p" * 253 + "/k", "p" * 253 + "/k"),
    ("x>1", "x>1"),
    ("x < 10", "x<10"),
    ("x in (b),x notin (a)", "x in (b),x notin (a)"),
]


@pytest.mark.parametrize("text, canonical", VALID_LABEL_SELECTORS)
def test_label_selector_parses_to_canonical_form(text, canonical):
    selector = parse_label_selector(text)
    assert str(selector) == canonical
    # The canonical form is itself a selector that parses to the same thing.
    assert str(parse_label_selector(canonical)) == canonical


def test_empty_label_selector_selects_everything():
    for text in ("", "  ", None):
        selector = parse_label_selector(text)
        assert selector.empty
        assert selector.matches({}) and selector.matches({"a": "b"}) and selector.matches(None)


# (query string, the whole error message)
INVALID_LABEL_SELECTORS = [
    ("x=a,", "found '', expected: identifier after ','"),
    ("x=a, ", "found '', expected: identifier after ','"),
    (",x=a", "found ',', expected: !, identifier, or 'end of string'"),
    ("x=a,,y=b", "found ',', expected: identifier after ','"),
    ("x=a,=b", "found '=', expected: identifier after ','"),
    ("=a", "found '=', expected: !, identifier, or 'end of string'"),
    ("(x)", "found '(', expected: !, identifier, or 'end of string'"),
    ("x==a==b", "found '==', expected: ',' or 'end of string'"),
    ("x=a b", "found 'b', expected: ',' or 'end of string'"),
    ("x in (a) b", "found 'b', expected: ',' or 'end of string'"),
    ("!x=a", "found '=', expected: ',' or 'end of string'"),
    ("!", REQ + "found '', expected: identifier"),
    ("!!x", REQ + "found '!', expected: identifier"),
    ("x y", REQ + "found 'y', expected: in, notin, =, ==, !=, gt, lt"),
    ("x ! y", REQ + "found '!', expected: in, notin, =, ==, !=, gt, lt"),
    ("x in", REQ + "found '' expected: '('"),
    ("x in a", REQ + "found 'a' expected: '('"),
    ("x notin a,b", REQ + "found 'a' expected: '('"),
    ("x in (", REQ + "found '', expected: ',', ')' or identifier"),
    ("x in (=)", REQ + "found '=', expected: ',', ')' or identifier"),
    ("x in (a", REQ + "found '', expected: ',' or ')'"),
    ("x in (a b)", REQ + "found 'b', expected: ',' or ')'"),
    ("x in (a,", REQ + "found '', expected: ',', or identifier"),
    ("x in (a,=)", REQ + "found '=', expected: ',', or identifier"),
    ("x=(a)", REQ + "found '(', expected: identifier"),
    ("x==!a", REQ + "found '!', expected: identifier"),
    ("a/b/c", REQ + '<nil>: Invalid value: "a/b/c": a qualified name ' + NAME_HINT
     + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"),
    ("/a", REQ + '<nil>: Invalid value: "/a": prefix part must be non-empty'),
    ("a/", REQ + '<nil>: Invalid value: "a/": name part must be non-empty; name part ' + NAME_HINT),
    ("Example.com/a", REQ + '<nil>: Invalid value: "Example.com/a": prefix part ' + DNS_HINT),
    ("-a", REQ + '<nil>: Invalid value: "-a": name part ' + NAME_HINT),
    ("a.=b", REQ + '<nil>: Invalid value: "a.": name part ' + NAME_HINT),
    ("k" * 64, REQ + f'<nil>: Invalid value: "{"k" * 64}": name part must be no more than 63 '
     "characters"),
    ("p" * 254 + "/k", REQ + f'<nil>: Invalid value: "{"p" * 254}/k": prefix part must be no '
     "more than 253 characters"),
    ("x=a||y=b", REQ + 'values[0][x]: Invalid value: "a||y": ' + VALUE_HINT),
    ("x=-a", REQ + 'values[0][x]: Invalid value: "-a": ' + VALUE_HINT),
    ("x=a.", REQ + 'values[0][x]: Invalid value: "a.": ' + VALUE_HINT),
    ("x=" + "v" * 64, REQ + f'values[0][x]: Invalid value: "{"v" * 64}": must be no more than '
     "63 characters"),
    ("x in (ok,_bad)", REQ + 'values[0][x]: Invalid value: "_bad": ' + VALUE_HINT),
    ("x>a", REQ + 'values[0]: Invalid value: "a": for \'Gt\', \'Lt\' operators, the value must '
     "be an integer"),
    ("x>", REQ + 'values[0]: Invalid value: "": for \'Gt\', \'Lt\' operators, the value must '
     "be an integer"),
    ("x<-5", REQ + 'values[0][x]: Invalid value: "-5": ' + VALUE_HINT),
    ("x>1.5", REQ + 'values[0]: Invalid value: "1.5": for \'Gt\', \'Lt\' operators, the value '
     "must be an integer"),
]


@pytest.mark.parametrize("text, message", INVALID_LABEL_SELECTORS)
def test_malformed_label_selector_is_rejected_with_kubernetes_message(text, message):
    with pytest.raises(SelectorError) as caught:
        parse_label_selector(text)
    assert caught.value.message == message
    assert str(caught.value) == message


def test_invalid_value_errors_carry_field_errors():
    # Values are sorted before validation, as sets.String.List() returns them.
    with pytest.raises(SelectorError) as caught:
        parse_label_selector("x in (ok,-a,b-)")
    assert [error.path for error in caught.value.errors] == ["values[0][x]", "values[1][x]"]
    assert caught.value.message.startswith(REQ + '[values[0][x]: Invalid value: "-a": ')


# ------------------------------------------------------------ label matching

# (selector, labels, selected?)
LABEL_MATCHES = [
    ("", {}, True),
    ("a=b", {"a": "b"}, True),
    ("a==b", {"a": "b", "c": "d"}, True),
    ("a=b", {"a": "c"}, False),
    ("a=b", {}, False),
    ("a=", {"a": ""}, True),
    ("a=", {}, False),
    ("a!=b", {}, True),
    ("a!=b", {"a": "b"}, False),
    ("a!=b", {"a": "c"}, True),
    ("env in (prod, staging)", {"env": "staging"}, True),
    ("env in (prod, staging)", {"env": "dev"}, False),
    ("env in (prod, staging)", {}, False),
    ("tier notin (frontend)", {}, True),
    ("tier notin (frontend)", {"tier": "frontend"}, False),
    ("tier notin (frontend)", {"tier": "backend"}, True),
    ("x in ()", {"x": ""}, True),
    ("x in ()", {"x": "a"}, False),
    ("partition", {"partition": ""}, True),
    ("partition", {}, False),
    ("!partition", {}, True),
    ("!partition", {"partition": "a"}, False),
    ("a=b,c!=d", {"a": "b", "c": "e"}, True),
    ("a=b,c!=d", {"a": "b", "c": "d"}, False),
    ("app.kubernetes.io/name=web", {"app.kubernetes.io/name": "web"}, True),
    ("app.kubernetes.io/name=web", {"name": "web"}, False),
    ("a>5", {"a": "6"}, True),
    ("a>5", {"a": "5"}, False),
    ("a>5", {"a": "x"}, False),
    ("a>5", {}, False),
    ("a<5", {"a": "-1"}, True),
    ("a<5", {"a": "+4"}, True),
    ("a<5", {"a": " 4"}, False),
    ("a<5", {"a": "1_0"}, False),
    ("a>5", {"a": "9223372036854775808"}, False),
]


@pytest.mark.parametrize("text, labels, expected", LABEL_MATCHES)
def test_label_selector_matches(text, labels, expected):
    assert parse_label_selector(text).matches(labels) is expected


# -------------------------------------------------------- structured selectors

WEB = {"matchLabels": {"app": "web"}}
FULL = {"matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "env", "operator": "In", "values": ["b", "a"]},
                             {"key": "x", "operator": "DoesNotExist"},
                             {"key": "y", "operator": "Exists", "values": []},
                             {"key": "tier", "operator": "NotIn", "values": ["db"]}]}

# (selector object, query-string form, labels, selected?)
STRUCTURED = [
    (None, "", {}, False),
    (None, "", {"app": "web"}, False),
    ({}, "", {}, True),
    ({"matchLabels": {}, "matchExpressions": []}, "", {"a": "b"}, True),
    ({"matchLabels": None}, "", {"a": "b"}, True),
    (WEB, "app=web", {"app": "web", "x": "y"}, True),
    (WEB, "app=web", {"app": "db"}, False),
    ({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2", {"a": "1", "b": "2"}, True),
    (FULL, "app=web,env in (a,b),tier notin (db),!x,y", {"app": "web", "env": "a", "y": ""},
     True),
    (FULL, "app=web,env in (a,b),tier notin (db),!x,y",
     {"app": "web", "env": "a", "y": "", "x": "1"}, False),
    (FULL, "app=web,env in (a,b),tier notin (db),!x,y",
     {"app": "web", "env": "a", "y": "", "tier": "db"}, False),
    ({"matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "Exists"}]},
     "app.kubernetes.io/name", {"app.kubernetes.io/name": "x"}, True),
]


@pytest.mark.parametrize("obj, text, labels, expected", STRUCTURED)
def test_structured_selector(obj, text, labels, expected):
    selector = LabelSelector.from_object(obj)
    assert selector.matches(labels) is expected
    assert selector_to_string(obj) == text
    if obj is not None:
        # The rendered form selects the same objects when sent as a query.
        assert parse_label_selector(text).matches(labels) is expected


def test_none_selector_is_not_empty_and_empty_selector_is():
    assert not LabelSelector.from_object(None).empty
    assert LabelSelector.from_object({}).empty
    assert validate_label_selector(None) == []


P = "spec.selector"
# (selector object, expected (field path, message) pairs)
INVALID_STRUCTURED = [
    ({"matchExpressions": [{"key": "k", "operator": "In"}]},
     [(f"{P}.matchExpressions[0].values", "must be specified when `operator` is 'In' or 'NotIn'")]),
    ({"matchExpressions": [{"key": "k", "operator": "NotIn", "values": []}]},
     [(f"{P}.matchExpressions[0].values", "must be specified when `operator` is 'In' or 'NotIn'")]),
    ({"matchExpressions": [{"key": "k", "operator": "Exists", "values": ["a"]}]},
     [(f"{P}.matchExpressions[0].values",
       "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")]),
    ({"matchExpressions": [{"key": "k", "operator": "in", "values": ["a"]}]},
     [(f"{P}.matchExpressions[0].operator", "not a valid selector operator")]),
    ({"matchExpressions": [{"key": "k", "operator": "Exists"}, {"key": "a/b/c",
                                                                "operator": "Exists"}]},
     [(f"{P}.matchExpressions[1].key", "a qualified name " + NAME_HINT
       + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')")]),
    ({"matchExpressions": [{"operator": "Exists"}]},
     [(f"{P}.matchExpressions[0].key", "name part must be non-empty"),
      (f"{P}.matchExpressions[0].key", "name part " + NAME_HINT)]),
    ({"matchExpressions": [{"key": "k", "operator": "In", "values": ["ok", "-bad"]}]},
     [(f"{P}.matchExpressions[0].values[1]", VALUE_HINT)]),
    ({"matchLabels": {"app": "-x"}}, [(f"{P}.matchLabels", VALUE_HINT)]),
    ({"matchLabels": {"app": "v" * 64}},
     [(f"{P}.matchLabels", "must be no more than 63 characters")]),
    ({"matchLabels": {"Bad_Prefix/app": "x"}}, [(f"{P}.matchLabels", "prefix part " + DNS_HINT)]),
    ({"matchLabels": {"app": 3}}, [(f"{P}.matchLabels", "must be a string")]),
]


@pytest.mark.parametrize("obj, errors", INVALID_STRUCTURED)
def test_invalid_structured_selector(obj, errors):
    assert validate_label_selector(obj) == errors
    with pytest.raises(SelectorError) as caught:
        LabelSelector.from_object(obj)
    assert caught.value.errors == errors


def test_structured_errors_render_like_kubernetes():
    obj = {"matchLabels": {"app": "-x"},
           "matchExpressions": [{"key": "k", "operator": "In"}]}
    with pytest.raises(SelectorError) as caught:
        LabelSelector.from_object(obj, path="spec.template.selector")
    invalid, required = caught.value.errors
    assert required.cause() == (
        "spec.template.selector.matchExpressions[0].values", "FieldValueRequired",
        "Required value: must be specified when `operator` is 'In' or 'NotIn'")
    assert invalid.cause() == ("spec.template.selector.matchLabels", "FieldValueInvalid",
                               'Invalid value: "-x": ' + VALUE_HINT)
    assert caught.value.message == f"[{invalid}, {required}]"
    assert str(required) == ("spec.template.selector.matchExpressions[0].values: Required value: "
                             "must be specified when `operator` is 'In' or 'NotIn'")

    with pytest.raises(SelectorError) as caught:
        selector_to_string({"matchExpressions": [{"key": "k", "operator": "Exists",
                                                  "values": ["a"]}]})
    assert caught.value.message == (f"{P}.matchExpressions[0].values: Forbidden: may not be "
                                    "specified when `operator` is 'Exists' or 'DoesNotExist'")


# ------------------------------------------------------------ field selectors

POD_FIELDS = fields_for_kind("Pod")
POD = {"metadata": {"name": "web-1", "namespace": "prod"},
       "spec": {"nodeName": "n1", "restartPolicy": "Always", "hostNetwork": True},
       "status": {"phase": "Running", "podIP": "10.0.0.5"}}
PENDING = {"metadata": {"name": "web-2", "namespace": "dev"}, "spec": {},
           "status": {"phase": "Pending"}}

# (query string, supported fields, object, selected?)
FIELD_MATCHES = [
    ("", DEFAULT_FIELDS, POD, True),
    ("metadata.name=web-1", DEFAULT_FIELDS, POD, True),
    ("metadata.name==web-1", DEFAULT_FIELDS, POD, True),
    ("metadata.name=web-2", DEFAULT_FIELDS, POD, False),
    ("metadata.namespace!=prod", DEFAULT_FIELDS, POD, False),
    ("metadata.namespace!=prod", DEFAULT_FIELDS, PENDING, True),
    ("metadata.name=web-1,", DEFAULT_FIELDS, POD, True),
    (",metadata.name=web-1,,", DEFAULT_FIELDS, POD, True),
    ("spec.nodeName=", POD_FIELDS, POD, False),
    ("spec.nodeName=", POD_FIELDS, PENDING, True),
    ("spec.nodeName!=", POD_FIELDS, POD, True),
    ("status.phase=Running", POD_FIELDS, POD, True),
    ("status.phase=Running,spec.nodeName=n1", POD_FIELDS, POD, True),
    ("status.phase=Running,spec.nodeName=n2", POD_FIELDS, POD, False),
    ("status.phase!=Running,status.phase!=Succeeded", POD_FIELDS, PENDING, True),
    ("status.podIP=10.0.0.5", POD_FIELDS, POD, True),
    ("spec.hostNetwork=true", POD_FIELDS, POD, True),
    ("spec.hostNetwork=false", POD_FIELDS, PENDING, True),
    ("metadata.name=", DEFAULT_FIELDS, {}, True),
    ("spec.unschedulable=true", fields_for_kind("Node"), {"spec": {"unschedulable": True}}, True),
    ("spec.unschedulable=false", fields_for_kind("Node"), {"spec": {}}, True),
    ("status.replicas=3", fields_for_kind("ReplicaSet"), {"status": {"replicas": 3}}, True),
    ("status.replicas=0", fields_for_kind("ReplicaSet"), {"status": {}}, True),
    ("status.successful=0", fields_for_kind("Job"), {}, True),
    ("type=kubernetes.io/tls", fields_for_kind("Secret"), {"type": "kubernetes.io/tls"}, True),
    ("source=kubelet,involvedObject.kind=Pod", fields_for_kind("Event"),
     {"source": {"component": "kubelet"}, "involvedObject": {"kind": "Pod"}}, True),
    (r"metadata.name=a\,b", DEFAULT_FIELDS, {"metadata": {"name": "a,b"}}, True),
    (r"metadata.name=a\=b\\c", DEFAULT_FIELDS, {"metadata": {"name": "a=b\\c"}}, True),
]


@pytest.mark.parametrize("text, fields, obj, expected", FIELD_MATCHES)
def test_field_selector_matches(text, fields, obj, expected):
    assert parse_field_selector(text, fields).matches(obj) is expected


# (query string, supported fields, error message)
INVALID_FIELD_SELECTORS = [
    ("spec.foo=x", POD_FIELDS, "field label not supported: spec.foo"),
    ("spec.nodeName=n1", DEFAULT_FIELDS, "field label not supported: spec.nodeName"),
    ("metadata.name=a,spec.foo=x", DEFAULT_FIELDS, "field label not supported: spec.foo"),
    # Kubernetes does not trim field selectors, so the space is part of the label.
    ("metadata.name =x", DEFAULT_FIELDS, "field label not supported: metadata.name "),
    ("metadata.name", DEFAULT_FIELDS,
     "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
    ("metadata.name=a,b", DEFAULT_FIELDS, "invalid selector: 'metadata.name=a,b'; can't "
     "understand 'b'"),
    ("metadata.name=a=b", DEFAULT_FIELDS,
     "invalid field selector: unescaped character in value: 61"),
    (r"metadata.name=a\x", DEFAULT_FIELDS, "invalid field selector: invalid escape sequence: \\x"),
    ("metadata.name=a\\", DEFAULT_FIELDS, "invalid field selector: invalid escape sequence: \\"),
]


@pytest.mark.parametrize("text, fields, message", INVALID_FIELD_SELECTORS)
def test_malformed_field_selector_is_rejected(text, fields, message):
    with pytest.raises(SelectorError) as caught:
        parse_field_selector(text, fields)
    assert caught.value.message == message


def test_field_selector_helpers():
    selector = parse_field_selector(r"status.phase!=Failed,metadata.name==a\,b", POD_FIELDS)
    assert str(selector) == r"metadata.name=a\,b,status.phase!=Failed"
    assert selector.exact("metadata.name") == "a,b"
    assert selector.exact("status.phase") is None
    assert not selector.empty and parse_field_selector("").empty
    assert parse_field_selector("metadata.namespace=x").exact("metadata.namespace") == "x"


def test_supported_fields_by_kind():
    assert DEFAULT_FIELDS == {"metadata.name", "metadata.namespace"}
    assert fields_for_kind("ConfigMap") == DEFAULT_FIELDS
    assert {"spec.nodeName", "status.phase", "status.podIP"} <= fields_for_kind("Pod")
    assert {"involvedObject.uid", "reason", "type", "source"} <= FIELDS_BY_KIND["Event"]
    assert FIELDS_BY_KIND["Node"] == {"spec.unschedulable"}
