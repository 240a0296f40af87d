"""-o jsonpath and -o custom-columns: kubectl's template language (the common subset)."""

import pytest

from cli import jsonpath
from cli.errors import CommandError

PODS = {"kind": "List", "items": [
    {"metadata": {"name": "a", "labels": {"app": "x"}},
     "spec": {"containers": [{"name": "c1", "image": "i1"}, {"name": "c2", "image": "i2"}]},
     "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"},
                                                   {"type": "PodScheduled", "status": "True"}]}},
    {"metadata": {"name": "b"}, "spec": {"containers": [{"name": "c", "image": "i3"}]},
     "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]}},
]}


@pytest.mark.parametrize("template,text", [
    ("{.items[*].metadata.name}", "a b"),
    ("{.items[0].metadata.name}", "a"),
    ("{.items[-1:].metadata.name}", "b"),
    ("{$.kind}", "List"),
    ("{.kind}", "List"),
    ("names: {.items[*].metadata.name}!", "names: a b!"),
    ('{range .items[*]}{.metadata.name}{"\\t"}{.status.phase}{"\\n"}{end}',
     "a\tRunning\nb\tPending\n"),
    ('{.items[*].status.conditions[?(@.type=="Ready")].status}', "True False"),
    ("{..image}", "i1 i2 i3"),
    ("{.items[0].metadata.labels}", '{"app":"x"}'),
    ("{.items[0].missing}", ""),
    ("{.items[0].spec.containers[*]['name']}", "c1 c2"),
])
def test_templates(template, text):
    assert jsonpath.render(template, PODS) == text


def test_custom_columns():
    rows = jsonpath.custom_columns("NAME:.metadata.name,IMAGES:.spec.containers[*].image,"
                                   "APP:.metadata.labels.app", PODS["items"])
    assert rows == [["NAME", "IMAGES", "APP"], ["a", "i1,i2", "x"], ["b", "i3", "<none>"]]


def test_bad_templates_are_user_errors():
    for template in ("{range .items[*]}{.x}", "{end}", "{.items[?(@.a ~ 1)]}"):
        with pytest.raises(CommandError):
            jsonpath.render(template, PODS)
    with pytest.raises(CommandError):
        jsonpath.custom_columns("NAME", [])
