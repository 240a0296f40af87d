"""Build the wheelhouse a host installs from: this checkout's wheel and every dependency.

The admin machine has a package index; the hosts need not: ``install.py`` copies the
wheelhouse over SFTP and runs ``pip install --no-index``. A build is cached under
``~/.cache/steersman/wheelhouse/<hash>``, the hash covering the files that go into the
wheel (the packages, setup.cfg, pyproject.toml, README.md) and the Python version, so
building again from an unchanged checkout returns at once, and a changed checkout can
never be served an old build. A pip wheel rides along: the host runs pip from it
(``python pip.whl/pip install``) into a venv made ``--without-pip``, which saves the
seconds ensurepip takes on every host.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGES = ("store", "control", "agent", "cli")
TOP_FILES = ("setup.cfg", "pyproject.toml", "README.md", "LICENSE")
MANIFEST = "wheelhouse.json"
SKIP_DIRS = {"__pycache__"}
SKIP_SUFFIXES = (".pyc", ".pyo")


def default_cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "steersman" / "wheelhouse"


def python_tag():
    """``3.11``: the hosts' python3 must have this version to use the binary wheels."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def source_files(project_dir):
    """The checkout's files that make up the wheel, as sorted relative paths."""
    project_dir = Path(project_dir)
    found = [name for name in TOP_FILES if (project_dir / name).is_file()]
    for package in PACKAGES:
        for dirpath, dirnames, filenames in os.walk(project_dir / package):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for name in filenames:
                if not name.endswith(SKIP_SUFFIXES):
                    found.append(os.path.relpath(os.path.join(dirpath, name), project_dir))
    return sorted(found)


def source_hash(project_dir):
    """A short hash of the wheel's inputs and the Python version."""
    digest = hashlib.sha256(python_tag().encode())
    for rel in source_files(project_dir):
        digest.update(rel.encode() + b"\0")
        digest.update(hashlib.sha256((Path(project_dir) / rel).read_bytes()).digest())
    return digest.hexdigest()[:20]


def read_manifest(wheelhouse_dir):
    """The manifest of a built wheelhouse: hash, python, project_wheel, wheels."""
    path = Path(wheelhouse_dir) / MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{wheelhouse_dir} is not a wheelhouse built by build_wheelhouse "
                         f"({MANIFEST}: {exc})") from exc


def build_wheelhouse(project_dir, cache_dir=None, *, pip=(sys.executable, "-m", "pip")):
    """Return ``(dir, hash)`` of the wheelhouse for ``project_dir``, building it if needed."""
    project_dir = Path(project_dir).resolve()
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    digest = source_hash(project_dir)
    final = cache_dir / digest
    if (final / MANIFEST).is_file():
        return final, digest
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{digest}-", dir=cache_dir))
    try:
        source = work / "src"
        for rel in source_files(project_dir):     # build from exactly the hashed files
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(project_dir / rel, source / rel)
        wheels = work / "wheels"
        result = subprocess.run(
            [*pip, "wheel", "--quiet", "--disable-pip-version-check", "--wheel-dir",
             str(wheels), str(source), "pip"], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError("pip wheel of the checkout failed (is a package index "
                               f"reachable from this machine?):\n{result.stderr[-3000:]}")
        names = sorted(p.name for p in wheels.glob("*.whl"))
        project = [n for n in names if n.startswith("steersman-")]
        pip_wheel = [n for n in names if n.startswith("pip-")]
        if len(project) != 1 or len(pip_wheel) != 1:
            raise RuntimeError(f"pip wheel made no single steersman and pip wheel: {names}")
        (wheels / MANIFEST).write_text(json.dumps(
            {"hash": digest, "python": python_tag(), "project_wheel": project[0],
             "pip_wheel": pip_wheel[0], "wheels": names}, indent=1))
        try:
            os.rename(wheels, final)     # atomic: a concurrent build may have won
        except OSError:
            if not (final / MANIFEST).is_file():
                raise
        _prune(cache_dir, keep=final)
        return final, digest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _prune(cache_dir, keep, builds_kept=4):
    """Delete all but the newest few builds: every edit of the checkout makes one."""
    builds = sorted((p for p in cache_dir.iterdir()
                     if p.is_dir() and not p.name.startswith(".") and p != keep),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    for old in builds[builds_kept - 1:]:
        shutil.rmtree(old, ignore_errors=True)
