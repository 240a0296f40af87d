"""The Ansible collection (ansible/): lint, syntax of every playbook, one source with plan.py.

Needs ansible-core and ansible-lint (the test extra); skipped with the reason without.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from agent.provision import plan as planmod
from agent.provision import units
from cli.baremetal.credentials import ClusterCredentials

PROJECT = Path(__file__).resolve().parents[2]
COLLECTION = PROJECT / "ansible"
BIN = Path(sys.executable).parent
PLAYBOOKS = sorted(p.name for p in (COLLECTION / "playbooks").glob("*.yml"))

pytestmark = pytest.mark.skipif(
    not (BIN / "ansible-playbook").exists() or not (BIN / "ansible-lint").exists(),
    reason="ansible-core and ansible-lint are not installed: pip install -e '.[test]'")


@pytest.fixture(scope="module")
def ansible_env(tmp_path_factory):
    """Environment in which Ansible finds the collection as steersman.cluster."""
    tree = tmp_path_factory.mktemp("collections")
    (tree / "ansible_collections" / "steersman").mkdir(parents=True)
    (tree / "ansible_collections" / "steersman" / "cluster").symlink_to(COLLECTION)
    home = tmp_path_factory.mktemp("ansible-home")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tree), ANSIBLE_LOCAL_TEMP=str(home),
               ANSIBLE_HOME=str(home), ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0",
               PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    return env


def run(argv, env, cwd=COLLECTION, timeout=240):
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def test_ansible_lint_production_profile_passes(ansible_env):
    result = run([str(BIN / "ansible-lint"), "--offline", "--profile", "production"],
                 ansible_env)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_every_playbook_passes_the_syntax_check(ansible_env, playbook):
    result = run([str(BIN / "ansible-playbook"), "--syntax-check", "-i",
                  "inventory.example.yml", f"playbooks/{playbook}"], ansible_env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_role_lookup_and_plan_py_render_byte_identical_files(ansible_env, tmp_path):
    """The lookup the common role calls, then plan_files (as the roles do), against plan.py."""
    pki = tmp_path / "pki"
    out = tmp_path / "out"
    inventory = {"all": {"children": {
        "steersman_control": {"hosts": {"h1": {"ansible_host": "172.31.240.1"}}},
        "steersman_workers": {"hosts": {"h1": {}, "h2": {"steersman_address": "172.31.240.2"}}},
    }}}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "render.yml").write_text(textwrap.dedent(f"""\
        ---
        - name: Render h2's plan through the collection
          hosts: localhost
          connection: local
          gather_facts: false
          tasks:
            - name: Plan as the common role does
              ansible.builtin.set_fact:
                plan: "{{{{ lookup('steersman.cluster.host_plan', 'h2', cluster_name='demo',
                  version='0.1.0', control=groups['steersman_control'],
                  workers=groups['steersman_workers'], manager='supervisord',
                  pki_dir='{pki}', settings={{}}) }}}}"
            - name: Write every file under {out} as the roles do
              steersman.cluster.plan_files:
                root: "{out}"
                directories: "{{{{ plan.directories }}}}"
                files: "{{{{ plan.files }}}}"
        """))
    out.mkdir()
    result = run([str(BIN / "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"),
                  str(tmp_path / "render.yml")], ansible_env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    h1, h2 = planmod.HostSpec("h1", "172.31.240.1", "h1"), planmod.HostSpec("h2", "172.31.240.2", "h2")
    spec = planmod.ClusterSpec("demo", "0.1.0", control=(h1,), workers=(h1, h2))
    plan = planmod.plan_host(spec, h2, ClusterCredentials(str(pki)).host_files(spec, h2))
    expected = [*plan.files, *units.service_files("supervisord", plan.services)]
    assert any(f.path.endswith("steersman-agent.conf") for f in expected)
    for spec_file in expected:
        written = out / spec_file.path.lstrip("/")
        assert written.read_bytes() == spec_file.content, spec_file.path
        assert written.stat().st_mode & 0o777 == spec_file.mode, spec_file.path


def test_readme_documents_every_variable_the_roles_read():
    readme = (COLLECTION / "README.md").read_text()
    used = set()
    for path in COLLECTION.rglob("*.yml"):
        used.update(word for word in path.read_text().replace("(", " ").replace(")", " ")
                    .replace("|", " ").replace("{", " ").replace("}", " ").split()
                    if word.startswith("steersman_") and word.isidentifier())
    missing = sorted(v for v in used if v not in readme)
    assert not missing, f"variables not in ansible/README.md: {missing}"

