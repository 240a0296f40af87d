"""Install a Steersman release on a host: /opt/steersman/<version>/venv from a wheelhouse.

The wheelhouse (wheelhouse.py) is streamed to the host as one tar over the SSH
connection and installed with ``pip install --no-index``: the host needs python3
with venv, no package index. ``/opt/steersman/<version>/installed.json`` records the
wheelhouse hash once the venv is complete (pip runs from the wheelhouse's pip wheel
into a venv made ``--without-pip``: ensurepip would cost seconds per host), so installing the same build again changes
nothing, and ``/opt/steersman/current`` is switched (atomically) to the version. A
failed install removes what it made: a host never keeps half a release.
"""

import io
import json
import posixpath
import shlex
import tarfile
from dataclasses import dataclass
from pathlib import Path

from agent.provision.wheelhouse import read_manifest

BASE = "/opt/steersman"


class InstallError(Exception):
    """An install step failed on a host; the message names host, step and fix."""


@dataclass(frozen=True)
class InstallResult:
    changed: bool
    version: str
    hash: str
    venv: str


def release_dir(version):
    if not version or "/" in version or version.startswith(".") or version == "current":
        raise ValueError(f"{version!r} is not a release version")
    return posixpath.join(BASE, version)


def installed_record(conn, version):
    """The installed.json of ``version`` on the host, or None when not (fully) installed."""
    data = conn.read_bytes(posixpath.join(release_dir(version), "installed.json"))
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def _tar_of(directory, names):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in names:
            tar.add(Path(directory) / name, arcname=name)
    return buffer.getvalue()


def _step(conn, step, fix, command, **kwargs):
    try:
        return conn.run(command, sudo=True, **kwargs)
    except Exception as exc:
        raise InstallError(f"{conn.target}: install step {step!r} failed: {exc}\n"
                           f"fix: {fix}") from exc


def _switch_current(conn, version):
    current = posixpath.join(BASE, "current")
    link = conn.run(["readlink", current], sudo=True, check=False).stdout.decode().strip()
    if link == version:
        return False
    _step(conn, "switch current", f"check {BASE} is writable",
          f"ln -sfn {shlex.quote(version)} {current}.tmp && mv -Tf {current}.tmp {current}")
    return True


def install_release(conn, wheelhouse_dir, version, *, compile_bytecode=False):
    """Install the wheelhouse as ``version`` on the host behind ``conn``; InstallResult.

    ``compile_bytecode=False`` (pip ``--no-compile``) saves most of pip's time; the
    modules are compiled on first import instead (the venv is root-writable).
    """
    manifest = read_manifest(wheelhouse_dir)
    release = release_dir(version)
    venv = posixpath.join(release, "venv")
    record = installed_record(conn, version)
    if record and record.get("hash") == manifest["hash"]:
        changed = _switch_current(conn, version)
        return InstallResult(changed, version, manifest["hash"], venv)

    found = _step(conn, "python3", "install python3 and python3-venv on the host "
                  "(Debian: apt-get install python3 python3-venv)",
                  "python3 -c 'import sys, venv, ensurepip; print(\"%d.%d\" % sys.version_info[:2])'")
    host_python = found.stdout.decode().strip()
    if host_python != manifest["python"]:
        raise InstallError(
            f"{conn.target}: the host has Python {host_python} but the wheelhouse was built "
            f"with Python {manifest['python']}: its binary wheels would not install.\n"
            f"fix: build the wheelhouse with a Python {host_python} on the admin machine")

    incoming = posixpath.join(BASE, f".incoming-{manifest['hash']}")
    try:
        _step(conn, "upload wheelhouse", f"check free space under {BASE}",
              f"rm -rf {release} {incoming} && mkdir -p -m 0755 {BASE} {release} && "
              f"mkdir -m 0700 {incoming} && tar -x -C {incoming}",
              input=_tar_of(wheelhouse_dir, manifest["wheels"]), timeout=600)
        _step(conn, "create venv", "install python3-venv on the host",
              ["python3", "-m", "venv", "--without-pip", venv], timeout=300)
        pip = [posixpath.join(venv, "bin", "python"),
               posixpath.join(incoming, manifest["pip_wheel"], "pip"),
               "install", "--no-index", "--find-links",
               incoming, "--no-cache-dir", "--disable-pip-version-check", "--quiet"]
        if not compile_bytecode:
            pip.append("--no-compile")
        _step(conn, "pip install", "see pip's message above",
              pip + [posixpath.join(incoming, manifest["project_wheel"])], timeout=900)
        record = {"version": version, "hash": manifest["hash"], "python": host_python,
                  "wheel": manifest["project_wheel"]}
        conn.put_bytes(json.dumps(record).encode(), posixpath.join(release, "installed.json"),
                       mode=0o644)
    except BaseException:
        conn.run(f"rm -rf {release} {incoming}", sudo=True, check=False)
        raise
    conn.run(["rm", "-rf", incoming], sudo=True, check=False)
    _switch_current(conn, version)
    return InstallResult(True, version, manifest["hash"], venv)

