"""Output formatting: kubectl's ages, column layout, yaml/json/name forms."""

import json
from datetime import datetime, timezone

import pytest
import yaml

from cli import output
from control.objects import kinds


@pytest.mark.parametrize("seconds,text", [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (5, "5s"), (119, "119s"), (120, "2m"),
    (185, "3m5s"), (600, "10m"), (179 * 60, "179m"), (3 * 3600, "3h"),
    (3 * 3600 + 25 * 60, "3h25m"), (8 * 3600, "8h"), (47 * 3600, "47h"), (48 * 3600, "2d"),
    (50 * 3600, "2d2h"), (8 * 86400, "8d"), (400 * 86400, "400d"), (730 * 86400, "2y"),
    (800 * 86400, "2y70d"), (9 * 365 * 86400, "9y"),
])
def test_human_duration_matches_kubectl(seconds, text):
    assert output.human_duration(seconds) == text


def test_age_of_timestamps():
    now = datetime(2026, 1, 1, 0, 10, 0, tzinfo=timezone.utc)
    assert output.age("2026-01-01T00:09:55Z", now) == "5s"
    assert output.age("2026-01-01T00:00:00.000000Z", now) == "10m"
    assert output.age(None, now) == "<unknown>"


TABLE = {
    "kind": "Table",
    "columnDefinitions": [
        {"name": "Name", "format": "name", "priority": 0},
        {"name": "Ready", "format": "", "priority": 0},
        {"name": "Up-to-date", "format": "", "priority": 0},
        {"name": "Age", "format": "", "priority": 0},
        {"name": "Images", "format": "", "priority": 1},
    ],
    "rows": [
        {"cells": ["web", "2/2", 2, "5m", "nginx"],
         "object": {"metadata": {"name": "web", "namespace": "prod"}}},
        {"cells": ["a", "0/1", 0, "10s", "busybox"],
         "object": {"metadata": {"name": "a", "namespace": "default"}}},
    ],
}


def test_table_layout_is_kubectls():
    lines = output.columns(output.table_rows(TABLE))
    assert lines == ["NAME   READY   UP-TO-DATE   AGE",
                     "web    2/2     2            5m",
                     "a      0/1     0            10s"]


def test_wide_adds_priority_columns_and_all_namespaces_adds_namespace():
    lines = output.columns(output.table_rows(TABLE, wide=True, with_namespace=True))
    assert lines[0].split() == ["NAMESPACE", "NAME", "READY", "UP-TO-DATE", "AGE", "IMAGES"]
    assert lines[1].split() == ["prod", "web", "2/2", "2", "5m", "nginx"]


def test_kind_prefix_and_no_headers():
    deployments = kinds.lookup("apps", "v1", "deployments")
    rows = output.table_rows(TABLE, name_prefix=output.kind_prefix(deployments), headers=False)
    assert rows[0][0] == "deployment.apps/web"
    assert output.kind_prefix(kinds.lookup("", "v1", "pods")) == "pod"


def test_min_width_applies_to_short_columns():
    assert output.columns([["A", "B"], ["x", "y"]]) == ["A     B", "x     y"]


def test_tabwrite_aligns_blocks_separately():
    lines = output.tabwrite([["Name:", "web"], ["Namespace:", "default"], ["Containers:"],
                             ["  c:"], ["    Image:", "nginx"], ["    Port:", "80"]])
    assert lines == ["Name:       web", "Namespace:  default", "Containers:", "  c:",
                     "    Image:  nginx", "    Port:   80"]


def test_yaml_json_and_name_forms():
    pods = kinds.lookup("", "v1", "pods")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}
    assert yaml.safe_load(output.render_objects([pod], "yaml", single=True)) == pod
    listing = json.loads(output.render_objects([pod], "json"))
    assert listing["kind"] == "List" and listing["items"] == [pod]
    assert output.render_objects([pod], "json", single=True).startswith('{\n    "apiVersion"')
    assert output.name_line(pods, pod) == "pod/p"
    assert output.name_line(kinds.lookup("apps", "v1", "deployments"),
                            {"metadata": {"name": "w"}}) == "deployment.apps/w"


def test_cells_render_like_kubectl():
    assert output.cell_text(None) == "<none>"
    assert output.cell_text(3) == "3"
    assert output.cell_text(True) == "true"


def test_yaml_quotes_and_blocks_like_kubectl():
    doc = {"metadata": {"creationTimestamp": "2026-11-22T04:53:20Z",
                        "annotations": {"n": "1", "applied": '{"a":1}\n'}},
           "data": {"plain": "text"}}
    text = output.to_yaml(doc)
    assert 'creationTimestamp: "2026-11-22T04:53:20Z"' in text
    assert 'n: "1"' in text and "plain: text" in text
    assert 'applied: |\n      {"a":1}\n' in text
    assert yaml.safe_load(text) == doc


def test_watch_columns_only_grow():
    widths = []
    assert output.columns_growing([["NAME", "DATA", "AGE"], ["cfg", "1", "13m"]], widths) == [
        "NAME   DATA   AGE", "cfg    1      13m"]
    assert output.columns_growing([["a-much-longer-name", "0", "0s"]], widths) == [
        "a-much-longer-name   0      0s"]
    assert output.columns_growing([["cfg", "1", "13m"]], widths) == [
        "cfg                  1      13m"]
