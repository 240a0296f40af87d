"""Keep every file the agent writes or removes for a pod inside that pod's directory.

The API server validates names and paths (control/objects/podvalidation.py), but
the agent does not rely on it: an object from an older server, a bug, or a
container that plants a symlink in its own volume must still not make the agent
create, overwrite or delete anything outside ``<data dir>/pods/<uid>`` (and the
pod's tmpfs directory for secrets). Each helper here raises ``UnsafePath`` (a
ConfigError, so the pod worker reports it as a pod event and status message).

Paths are checked after resolving symlinks (``os.path.realpath``) and compared
with ``os.path.commonpath``. A container racing the agent with symlinks could
still win between check and use; the process runtime gives containers the
agent's own user anyway, so this guards against hostile objects, not against
the containers themselves.
"""

import os
import re
import shutil

from agent.env import ConfigError
from control.objects.validation import validate_dns1123_label

#: A pod UID as the API server makes them (a UUID), or any token with no dots or slashes.
_UID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
#: Container ids the process runtime makes (hex) or any runtime's plain token.
_CONTAINER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


class UnsafePath(ConfigError):
    """A name or path of a pod that would reach outside the pod's directory."""


def check_uid(uid):
    """Return ``uid`` if it is a safe directory name (UUID-like); raise UnsafePath."""
    if not isinstance(uid, str) or not _UID.fullmatch(uid):
        raise UnsafePath(f"pod uid {uid!r} is not a valid uid")
    return uid


def check_container_id(container_id):
    """Return ``container_id`` if it names one entry of a directory; raise UnsafePath."""
    if not isinstance(container_id, str) or not _CONTAINER_ID.fullmatch(container_id):
        raise UnsafePath(f"container id {container_id!r} is not valid")
    return container_id


def check_name(name, what):
    """Return ``name`` if it is a DNS-1123 label (container, volume names); raise UnsafePath."""
    if not isinstance(name, str) or validate_dns1123_label(name):
        raise UnsafePath(f"{what} name {name!r} is not a valid DNS-1123 label")
    return name


def is_within(path, *bases):
    """True if ``path``, symlinks resolved, is one of ``bases`` or below one (bases resolved)."""
    real = os.path.realpath(path)
    for base in bases:
        real_base = os.path.realpath(base)
        if os.path.commonpath([real, real_base]) == real_base:
            return True
    return False


def _relative_parts(relative, what):
    """Split a relative path into its elements; refuse '..' and an empty path."""
    if not isinstance(relative, str):
        raise UnsafePath(f"{what} {relative!r} is not a string")
    elements = relative.replace("\\", "/").split("/")
    if ".." in elements:
        raise UnsafePath(f"{what} {relative!r} must not contain '..'")
    parts = [p for p in elements if p not in ("", ".")]
    if not parts:
        raise UnsafePath(f"{what} {relative!r} names no file below its directory")
    return parts


def lexical_join(base, relative, what="path"):
    """Join ``relative`` (leading slashes ignored) to ``base`` with no '..'; follow nothing."""
    return os.path.join(base, *_relative_parts(relative, what))


def join_under(base, relative, what="path", also=()):
    """Join ``relative`` (leading slashes ignored) to ``base``; refuse to leave ``base``.

    Refused: any '..' element, a path naming ``base`` itself, and a result whose
    existing part resolves (through symlinks) outside ``base`` and ``also``.
    """
    path = lexical_join(base, relative, what)
    if not is_within(path, base, *also):
        raise UnsafePath(f"{what} {relative!r} resolves outside its directory")
    return path


def entry_under(base, relative, what="path", also=()):
    """Like join_under, but the last element itself is not followed (it may be a link).

    For a path the agent will replace with a symlink: its parent must resolve
    inside ``base`` (or ``also``), whatever the entry itself points at.
    """
    path = lexical_join(base, relative, what)
    if not is_within(os.path.dirname(path), base, *also):
        raise UnsafePath(f"{what} {relative!r} resolves outside its directory")
    return path


def make_private_dir(path):
    """Create ``path`` (and parents) and make it 0700: only the agent's user enters it."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def pod_dir(data_dir, uid):
    """Return ``<data dir>/pods/<uid>`` for a checked uid (not created)."""
    return os.path.join(data_dir, "pods", check_uid(uid))


def remove_entry(path, *bases):
    """Remove a file, link or tree at ``path`` only if it lies inside one of ``bases``.

    A symlink is unlinked, never followed; a directory is removed only when it
    resolves inside a base (so a link planted on its way cannot redirect it).
    """
    if not os.path.lexists(path):
        return
    parent = os.path.dirname(path.rstrip("/"))
    if not is_within(parent, *bases) or \
            any(os.path.realpath(path) == os.path.realpath(base) for base in bases):
        raise UnsafePath(f"refusing to remove {path}: not inside the pod's directory")
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return
    if not is_within(path, *bases):
        raise UnsafePath(f"refusing to remove {path}: not inside the pod's directory")
    shutil.rmtree(path)


def remove_pod_dir(data_dir, uid):
    """Remove ``<data dir>/pods/<uid>`` and nothing else (uid checked; links unlinked)."""
    pods = os.path.join(data_dir, "pods")
    path = pod_dir(data_dir, uid)
    if os.path.lexists(path):
        remove_entry(path, pods)


def tmpfs_dir(data_dir, shm="/dev/shm"):
    """Return a private tmpfs directory for this agent's secret volumes, or None.

    Secrets then never reach the disk, as kubelet's secret volumes are tmpfs
    mounts. Named after the data directory, so that agents sharing a machine
    (tests, hollow nodes) never share it; None when ``shm`` is not writable.
    """
    if not os.path.isdir(shm) or not os.access(shm, os.W_OK | os.X_OK):
        return None
    tag = re.sub(r"[^A-Za-z0-9]+", "-", os.path.realpath(data_dir)).strip("-")[-80:]
    path = os.path.join(shm, f"steer-agent-{os.getuid()}-{tag}")
    try:
        if os.path.islink(path):
            return None             # someone else's planted link: do not follow it
        make_private_dir(path)
        if os.stat(path).st_uid != os.getuid():
            return None
    except OSError:
        return None
    record = os.path.join(data_dir, TMPFS_RECORD)
    try:
        with open(record + ".tmp", "w") as f:
            f.write(path + "\n")
        os.replace(record + ".tmp", record)
    except OSError:
        pass                # no record: only a purge by hand would miss the directory
    return path


#: The file in an agent's data directory naming its tmpfs directory, so that whoever
#: deletes the data directory (`steer down --purge`, a test) can delete that one too.
TMPFS_RECORD = "tmpfs-dir"


def remove_tmpfs_dir_if_empty(path):
    """Remove the agent's tmpfs directory when no pod's secrets are left in it."""
    if path:
        try:
            os.rmdir(path)
        except OSError:
            pass            # pods' secrets remain for the containers still running
