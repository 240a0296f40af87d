"""Reading -f: multi-document YAML, Lists, directories, stdin and bad YAML."""

import io

import pytest

from cli import manifests
from cli.errors import CommandError

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\n"


def test_multi_document_and_empty_documents(tmp_path):
    path = tmp_path / "all.yaml"
    path.write_text(CM.format("a") + "---\n---\n" + CM.format("b"))
    found = manifests.read([str(path)])
    assert [m.name for m in found] == ["a", "b"]
    assert found[0].source == str(path)


def test_list_documents_are_unpacked():
    text = ("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, "
            "metadata: {name: x}}\n")
    assert [m.name for m in manifests.parse(text, "f")] == ["x"]


def test_json_is_yaml_too():
    found = manifests.parse('{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}',
                            "p.json")
    assert found[0].obj["kind"] == "Pod"


def test_directory_non_recursive_and_recursive(tmp_path):
    (tmp_path / "b.yaml").write_text(CM.format("b"))
    (tmp_path / "a.yml").write_text(CM.format("a"))
    (tmp_path / "notes.txt").write_text("not a manifest")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "c.json").write_text('{"apiVersion": "v1", "kind": "ConfigMap", '
                                '"metadata": {"name": "c"}}')
    assert [m.name for m in manifests.read([str(tmp_path)])] == ["a", "b"]
    assert [m.name for m in manifests.read([str(tmp_path)], recursive=True)] == ["a", "b", "c"]


def test_stdin():
    found = manifests.read(["-"], stdin=io.StringIO(CM.format("s")))
    assert found[0].name == "s" and found[0].source == "STDIN"


def test_bad_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n")
    with pytest.raises(CommandError) as caught:
        manifests.read([str(path)])
    assert f"error parsing {path}: line" in str(caught.value)


def test_missing_kind_missing_path_and_no_objects(tmp_path):
    with pytest.raises(CommandError, match="kind not set"):
        manifests.parse("apiVersion: v1\nmetadata: {name: x}\n", "f")
    with pytest.raises(CommandError, match="does not exist"):
        manifests.read([str(tmp_path / "nope.yaml")])
    empty = tmp_path / "empty.yaml"
    empty.write_text("---\n")
    with pytest.raises(CommandError, match="no objects"):
        manifests.read([str(empty)])
    with pytest.raises(CommandError, match="not an object"):
        manifests.parse("- a\n- b\n", "f")
