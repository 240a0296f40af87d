"""Read the objects of ``-f``: files, directories (``-R`` to recurse), ``-`` for stdin.

Every YAML or JSON document becomes one object; ``kind: List`` documents are
unpacked; empty documents are skipped, as kubectl does. Errors name the file and
the line, so a typo is easy to find.
"""

import os
import sys

import yaml

from cli.errors import CommandError

EXTENSIONS = (".yaml", ".yml", ".json")


class Manifest:
    """One object read from a source (a path or "STDIN")."""

    def __init__(self, obj, source):
        self.obj = obj
        self.source = source

    def __repr__(self):
        return f"Manifest({self.source}: {self.obj.get('kind')}/{self.name})"

    @property
    def name(self):
        return (self.obj.get("metadata") or {}).get("name", "")


def expand(paths, recursive=False):
    """The files named by ``-f`` arguments, directories expanded in sorted order."""
    files = []
    for path in paths:
        if path == "-":
            files.append(path)
        elif os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs.sort()
                files.extend(os.path.join(root, n) for n in sorted(names)
                             if n.endswith(EXTENSIONS))
                if not recursive:
                    break
        elif os.path.exists(path):
            files.append(path)
        else:
            raise CommandError(f"the path \"{path}\" does not exist")
    return files


def parse(text, source):
    """Parse every document of a YAML/JSON text; return Manifests."""
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise CommandError(f"error parsing {source}:{where}: {problem}") from exc
    found = []
    for number, doc in enumerate(documents, 1):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise CommandError(f"error parsing {source}: document {number} is not an object")
        if doc.get("kind", "").endswith("List") and isinstance(doc.get("items"), list):
            found.extend(Manifest(item, source) for item in doc["items"] if item)
            continue
        if not doc.get("kind") or not doc.get("apiVersion"):
            missing = "kind" if not doc.get("kind") else "apiVersion"
            raise CommandError(f"error validating {source}: document {number}: "
                               f"{missing} not set")
        found.append(Manifest(doc, source))
    return found


def read(paths, recursive=False, stdin=None):
    """Every object of the ``-f`` arguments, in order."""
    manifests = []
    for path in expand(paths, recursive):
        if path == "-":
            text, source = (stdin or sys.stdin).read(), "STDIN"
        else:
            try:
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
            except OSError as exc:
                raise CommandError(f"cannot read {path}: {exc.strerror}") from exc
            source = path
        manifests.extend(parse(text, source))
    if not manifests:
        raise CommandError("no objects passed to apply")
    return manifests
