#!/usr/bin/python
"""Ansible module: write a host plan's directories and files in one call."""

from __future__ import annotations

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: plan_files
author: Steersman project
version_added: "1.0.0"
short_description: Write the directories and files of a Steersman host plan
description:
  - Creates the directories (and sets their modes) and writes every file whose content
    or mode differs, atomically (a temporary file renamed over the old one), in one
    module call instead of one per file.
  - Returns the changed paths and the services that read them, so the roles restart
    exactly those services.
options:
  directories:
    description: Directories to create, with their modes.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      mode:
        description: Octal mode, e.g. C(0700).
        type: str
        required: true
  files:
    description: Files to write (the host_plan lookup's C(files)).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      content:
        description: The exact content (UTF-8).
        type: str
        required: true
      mode:
        description: Octal mode, e.g. C(0600).
        type: str
        required: true
      services:
        description: Services that read the file.
        type: list
        elements: str
        default: []
      secret:
        description: Never show the content in a diff.
        type: bool
        default: false
  root:
    description: Prefix for every path (tests write a plan under a temporary directory).
    type: path
    default: /
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Write the host's files
  steersman.cluster.plan_files:
    files: "{{ common_plan.files }}"
"""

RETURN = r"""
paths:
  description: Paths written or whose mode was changed.
  returned: always
  type: list
  elements: str
services:
  description: Services whose files changed content (to restart).
  returned: always
  type: list
  elements: str
"""

def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read(), os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return None, None


def _write(path, data, mode):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".steersman-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _under(root, path):
    return os.path.join(root, path.lstrip("/")) if root != "/" else path


def main():
    entry = {"path": {"type": "path", "required": True}, "mode": {"type": "str", "required": True}}
    module = AnsibleModule(argument_spec={
        "directories": {"type": "list", "elements": "dict", "default": [], "options": entry},
        "files": {"type": "list", "elements": "dict", "default": [], "options": {
            **entry, "content": {"type": "str", "required": True},
            "services": {"type": "list", "elements": "str", "default": []},
            "secret": {"type": "bool", "default": False}}},
        "root": {"type": "path", "default": "/"},
    }, supports_check_mode=True)
    root = module.params["root"]
    paths, services, diffs = [], set(), []
    for item in module.params["directories"]:
        path, mode = _under(root, item["path"]), int(item["mode"], 8)
        if not os.path.isdir(path):
            paths.append(item["path"])
            if not module.check_mode:
                os.makedirs(path, mode=mode, exist_ok=True)
                os.chmod(path, mode)
        elif os.stat(path).st_mode & 0o7777 != mode:
            paths.append(item["path"])
            if not module.check_mode:
                os.chmod(path, mode)
    for item in module.params["files"]:
        path, mode = _under(root, item["path"]), int(item["mode"], 8)
        data = item["content"].encode()
        current, current_mode = _read(path)
        if current == data and current_mode == mode:
            continue
        paths.append(item["path"])
        if current != data:
            services.update(item["services"])
            if not item["secret"]:
                diffs.append({"before_header": item["path"], "after_header": item["path"],
                              "before": (current or b"").decode("utf-8", "replace"),
                              "after": item["content"]})
        if module.check_mode:
            continue
        if current == data:
            os.chmod(path, mode)
        else:
            _write(path, data, mode)
    module.exit_json(changed=bool(paths), paths=paths, services=sorted(services), diff=diffs)


if __name__ == "__main__":
    main()
