"""Build steer.local/steer-dns:<version>: the cluster DNS server (control/dns) in an image.

No base image and no internet: the image is this machine's own Python, cut down
to what `python -m control.dns.server` uses:

    usr/local/bin/python3.11 (+ python3)   the interpreter that runs `steer`
    usr/local/lib/python3.11/...           the standard library modules the server imports
                                           (found by importing it in a child process), and
                                           the C extensions among them (lib-dynload)
    usr/local/lib/python3.11/site-packages dnspython and idna (whole), and the project's
                                           control/{dns,client,objects} packages
    the shared libraries all of them need  at the paths ``ldd`` names (libc, libssl, ...;
                                           a libpython from elsewhere in usr/local/lib),
                                           stripped of debugging symbols

Entrypoint ``python3 -m control.dns.server``; PYTHONHOME and LD_LIBRARY_PATH are set
in the image, so nothing depends on the host's paths. The layer is written by
``cli.oci_layout`` like the other images (cli/local_images.py) and cached in
``$STEER_IMAGE_CACHE``; the file list and the files' sizes and times are hashed
first, so an unchanged input is not even read again.
"""

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from cli import local_images
from cli.oci_layout import ImageConfig, directory, regular_file, symlink

VERSION = importlib.metadata.version("steersman")
DNS_IMAGE = f"steer.local/steer-dns:{VERSION}"
PREFIX = "usr/local"
PYVER = f"python{sys.version_info.major}.{sys.version_info.minor}"
#: Packages copied whole: dnspython imports its record types lazily, by name.
WHOLE_PACKAGES = ("dns", "idna", "encodings", "asyncio", "concurrent", "json", "logging",
                  "importlib", "email", "http", "collections", "urllib")
#: Project packages the server runs (control/__init__ included by the closure).
PROJECT_PACKAGES = ("control/dns", "control/client", "control/objects")
#: Modules the server may import late (errors, time parsing, executors).
LATE_IMPORTS = ("_strptime", "concurrent.futures.thread", "dns.asyncbackend",
                "dns._asyncio_backend", "encodings.idna", "ipaddress", "uuid", "secrets")
#: Imports the entry modules (argv[1]: comma-separated) and the late ones (the rest) in a
#: fresh interpreter and prints {module: file} of everything loaded.
_CLOSURE = """
import json, sys
for name in sys.argv[1].split(","):
    __import__(name)
for name in sys.argv[2:]:
    try:
        __import__(name)
    except ImportError:
        pass
print(json.dumps({n: m.__file__ for n, m in list(sys.modules.items())
                  if getattr(m, "__file__", None)}))
"""
#: The modules the DNS image's closure starts from.
ENTRY_MODULES = ("control.dns.server", "control.client.incluster")


def build_dns(cache=None):
    """The steer-dns image as an ImageArchive (cached; rebuilt when an input changed)."""
    files = plan()
    return build_cached(DNS_IMAGE, files, layer(files), image_config(files),
                        [f"steer-dns: {PYVER}, dnspython, control/dns"], cache)


def build_cached(image, files, layer_entries, config, history, cache=None):
    """Build ``image`` from ``files`` once: an ImageArchive, reused while no input changed.

    The key hashes every file's destination, source, size and mtime, so an unchanged
    input is not even read again.
    """
    cache = local_images._cache(cache)
    key = hashlib.sha256(json.dumps(
        [image, sorted((dest, src, *_stamp(src)) for dest, src in files.items())]
    ).encode()).hexdigest()[:16]
    name = image.rpartition("/")[2].partition(":")[0]
    marker = os.path.join(cache, f"{name}-inputs-{key}.json")
    try:
        with open(marker) as f:
            known = local_images.ImageArchive(**json.load(f))
        if os.path.exists(known.path):
            return known
    except (OSError, ValueError, TypeError):
        pass
    archive = local_images._build(cache, image, [layer_entries], config, history)
    tmp = marker + ".tmp"
    with open(tmp, "w") as f:
        json.dump(archive.__dict__, f)
    os.replace(tmp, marker)
    return archive


def _stamp(path):
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def plan():
    """{path in the image: file on this machine} of everything the image holds."""
    return python_files(ENTRY_MODULES, WHOLE_PACKAGES, PROJECT_PACKAGES, "the DNS server")


def python_files(entry_modules, whole_packages, project_packages, what):
    """{path in the image: file}: this interpreter cut down to what ``entry_modules`` import.

    The standard library and site-packages modules they load (found by importing them
    in a child process), ``whole_packages`` copied whole (imported lazily by name),
    the project's ``project_packages``, and the shared libraries all of them need.
    """
    stdlib = os.path.join(sys.base_prefix, "lib", PYVER)
    site = sysconfig.get_paths()["purelib"]
    project = os.path.dirname(os.path.dirname(os.path.abspath(local_images.__file__)))
    image_lib = f"{PREFIX}/lib/{PYVER}"
    executable = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    files = {f"{PREFIX}/bin/{PYVER}": executable}
    roots = ((stdlib, image_lib), (site, f"{image_lib}/site-packages"),
             (project, f"{image_lib}/site-packages"))
    for path in _closure(entry_modules, what).values():
        for root, dest in roots:
            if path.startswith(root + os.sep) and "/test/" not in path:
                files[f"{dest}/{os.path.relpath(path, root)}"] = path
                break
    for name in whole_packages:
        for root, dest in roots[:2]:
            if os.path.isdir(os.path.join(root, name)):
                _add_tree(files, os.path.join(root, name), f"{dest}/{name}")
                break
    for package in project_packages:
        _add_tree(files, os.path.join(project, package), f"{image_lib}/site-packages/{package}",
                  suffixes=(".py", ".json"))
    for library, source in shared_libraries([p for p in files.values()
                                             if p == executable or p.endswith(".so")]).items():
        if not library.startswith(("/lib", "/usr/lib")):
            # libpython of a Python built elsewhere (pyenv): beside the interpreter.
            library = f"/{PREFIX}/lib/{os.path.basename(library)}"
        files[library.lstrip("/")] = source
    return files


def _add_tree(files, source_dir, dest_dir, suffixes=(".py",)):
    for folder, dirs, names in os.walk(source_dir):
        dirs[:] = [d for d in dirs if d not in ("__pycache__", "tests", "test")]
        for name in names:
            if name.endswith(suffixes) or (name.endswith(".so") and "lib-dynload" in folder):
                path = os.path.join(folder, name)
                files[f"{dest_dir}/{os.path.relpath(path, source_dir)}"] = path


def _closure(entry_modules, what):
    """{module: file} after ``entry_modules`` are imported in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-c", _CLOSURE, ",".join(entry_modules),
                           *LATE_IMPORTS], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise local_images.ImageError(f"could not list {what}'s modules: "
                                      f"{proc.stderr.strip()[-300:]}")
    return json.loads(proc.stdout)


def shared_libraries(binaries):
    """{path ldd names: real file} of every library ``binaries`` load, and the loader."""
    local_images.require_tool("ldd", "libc-bin")
    found = {}
    for binary in binaries:
        out = subprocess.run(["ldd", binary], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL).stdout
        for line in out.splitlines():
            match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
            if match:
                found[match.group(1)] = os.path.realpath(match.group(1))
    return found


def image_config(files):
    library_dirs = sorted({"/" + os.path.dirname(p) for p in files
                           if re.search(r"\.so(\.|$)", p) and "/lib/python" not in p})
    return ImageConfig(
        entrypoint=(f"/{PREFIX}/bin/python3", "-m", "control.dns.server"),
        env=(f"PATH=/{PREFIX}/bin:/usr/bin:/bin", f"PYTHONHOME=/{PREFIX}",
             "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1",
             f"LD_LIBRARY_PATH={':'.join(library_dirs)}"),
        labels={"org.opencontainers.image.title": "steer-dns",
                "org.opencontainers.image.version": VERSION})


def _read(source, stripped):
    """The file's bytes; an ELF file without its debugging symbols when ``strip`` exists."""
    if stripped and shutil.which("strip"):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "stripped")
            if subprocess.run(["strip", "--strip-unneeded", "-o", out, source],
                              capture_output=True, stdin=subprocess.DEVNULL).returncode == 0:
                with open(out, "rb") as f:
                    return f.read()
    with open(source, "rb") as f:
        return f.read()


def layer(files):
    """The layer's entries: every file, its parent directories, python3, /etc and /tmp."""
    entries, dirs = [], set()
    for dest, source in sorted(files.items()):
        parts = dest.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
        data = _read(source, stripped=bool(re.search(r"\.so(\.|$)", dest)) or
                     dest.startswith(f"{PREFIX}/bin/"))
        executable = os.access(source, os.X_OK) and not dest.endswith((".py", ".json"))
        entries.append(regular_file(dest, data, mode=0o755 if executable else 0o644))
    dirs |= {"etc", "tmp"}
    entries += [directory(d, mode=0o1777 if d == "tmp" else 0o755) for d in sorted(dirs)]
    entries += [symlink(f"{PREFIX}/bin/python3", PYVER),
                regular_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
                             b"nobody:x:65534:65534:nobody:/:/bin/false\n"),
                regular_file("etc/group", b"root:x:0:\nnobody:x:65534:\n")]
    return entries
