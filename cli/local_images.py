"""Build the local cluster's and the tests' images on this machine, with no internet.

Three images, each written as an OCI layout by ``cli.oci_layout`` (reproducible: the
same inputs give the same digests) and turned into a docker-archive tar by skopeo,
which `ctr images import` loads under the archive's name:

    steer.local/pause:3.9     /pause, a static C program (cli/images/pause.c), user 65535
    steer.local/busybox:1.35  busybox-static with a symlink per applet in /bin, Cmd sh
    steer.local/hello:1       busybox + /hello/serve.sh (an httpd saying "hello from POD")

Builds are cached in ``$STEER_IMAGE_CACHE`` (default ~/.cache/steersman/images, 0700)
under the image's config digest, which covers every byte of its layers: an image is
rebuilt only when an input changed. Concurrent builders (parallel test workers) take
a lock file per image and publish with rename, so a reader never sees half a build.
"""

import fcntl
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import tarfile
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass

from cli import oci_layout
from cli.errors import CommandError
from cli.oci_layout import ImageConfig, directory, regular_file, symlink

PAUSE_IMAGE = "steer.local/pause:3.9"
BUSYBOX_IMAGE = "steer.local/busybox:1.35"
HELLO_IMAGE = "steer.local/hello:1"

CRI_NAMESPACE = "k8s.io"
BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")
IMAGES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "images")
_TOOL_TIMEOUT = 300


class ImageError(CommandError):
    """An image could not be built or imported; the message says what to do."""


@dataclass(frozen=True)
class ImageArchive:
    """A built image: its name, its docker-archive tar (``path``) and its OCI layout."""

    name: str
    path: str
    oci_dir: str = ""
    digest: str = ""          # the manifest digest in the OCI layout
    image_id: str = ""        # the config digest: CRI's image id once imported

    def __fspath__(self):
        return self.path


def cache_dir(env=None):
    """The image cache directory (made, 0700): $STEER_IMAGE_CACHE or ~/.cache/steersman/images."""
    env = os.environ if env is None else env
    path = env.get("STEER_IMAGE_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "steersman", "images")
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)
    return path


def _cache(cache):
    """The given cache directory (made ready), or the default one when None."""
    return cache_dir(None if cache is None else {"STEER_IMAGE_CACHE": os.fspath(cache)})


# -- the three images ---------------------------------------------------------------
def build_pause(cache=None):
    """The pod sandbox image (steer.local/pause:3.9) as an ImageArchive."""
    cache = _cache(cache)
    binary = _pause_binary(cache)
    layer = [regular_file("pause", binary, mode=0o755)]
    config = ImageConfig(entrypoint=("/pause",), user="65535:65535")
    return _build(cache, PAUSE_IMAGE, [layer], config, ["pause: /pause (cli/images/pause.c)"])


def build_busybox(cache=None):
    """steer.local/busybox:1.35: busybox-static, its applets in /bin, passwd and group, /tmp."""
    cache = _cache(cache)
    config = ImageConfig(cmd=("sh",))
    return _build(cache, BUSYBOX_IMAGE, [busybox_layer()], config, ["busybox-static"])


def build_hello(cache=None):
    """steer.local/hello:1: the busybox layer plus /hello/serve.sh (httpd on $PORT, 8080)."""
    cache = _cache(cache)
    with open(os.path.join(IMAGES_DIR, "hello-serve.sh"), "rb") as f:
        script = f.read()
    hello = [directory("hello"), regular_file("hello/serve.sh", script, mode=0o755),
             directory("www", mode=0o1777)]
    config = ImageConfig(cmd=("/hello/serve.sh",))
    return _build(cache, HELLO_IMAGE, [busybox_layer(), hello], config,
                  ["busybox-static", "hello: /hello/serve.sh"])


#: The names common.md gives the two images every containerd test imports.
pause_image_archive = build_pause
busybox_image_archive = build_busybox


def busybox_layer(binary_path=None):
    """The entries of the busybox layer: the static binary, one symlink per applet, /etc."""
    binary_path = binary_path or find_static_busybox()
    with open(binary_path, "rb") as f:
        binary = f.read()
    applets = subprocess.run([binary_path, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    entries = [directory("bin"), regular_file("bin/busybox", binary, mode=0o755)]
    entries += [symlink(f"bin/{name}", "busybox") for name in sorted(set(applets))
                if name != "busybox" and "/" not in name]
    entries += [
        directory("etc"),
        regular_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
                     b"nobody:x:65534:65534:nobody:/home:/bin/false\n"),
        regular_file("etc/group", b"root:x:0:\nnobody:x:65534:\n"),
        directory("home"), directory("root", mode=0o700), directory("tmp", mode=0o1777),
        directory("usr"), directory("var"),
    ]
    return entries


def find_static_busybox():
    """The path of a statically linked busybox (Debian busybox-static), or ImageError."""
    for path in BUSYBOX_PATHS:
        if os.path.isfile(path) and is_static_elf(path):
            return path
    raise ImageError("no statically linked busybox found (looked at "
                     f"{', '.join(BUSYBOX_PATHS)}): install it with "
                     "`apt-get install busybox-static`")


def is_static_elf(path):
    """True if ``path`` is an ELF executable with no program interpreter (static)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[5] != 1:      # little endian only
            return False
        if head[4] == 2:
            phoff, = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
        else:
            phoff, = struct.unpack_from("<I", head, 28)
            phentsize, phnum = struct.unpack_from("<HH", head, 42)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    types = [struct.unpack_from("<I", table, i * phentsize)[0] for i in range(phnum)]
    return 3 not in types                               # PT_INTERP


def _pause_binary(cache):
    """The static pause binary, compiled once per source text and cached."""
    with open(os.path.join(IMAGES_DIR, "pause.c"), "rb") as f:
        source = f.read()
    key = hashlib.sha256(source + oci_layout.machine_architecture().encode()).hexdigest()[:16]
    target = os.path.join(cache, f"pause-bin-{key}")
    if os.path.exists(target):
        with open(target, "rb") as f:
            return f.read()
    if not shutil.which("gcc"):
        raise ImageError("gcc is not installed, and it compiles the pause image: "
                         "install it with `apt-get install gcc libc6-dev`")
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        out = os.path.join(tmp, "pause")
        _run(["gcc", "-static", "-O2", "-s", "-o", out,
              os.path.join(IMAGES_DIR, "pause.c")], "compile the pause binary")
        os.replace(out, target)
    with open(target, "rb") as f:
        return f.read()


# -- build, cache, convert ----------------------------------------------------------
def _build(cache, name, layers, config, history):
    tars = [oci_layout.layer_tar(entries) for entries in layers]
    config_blob = oci_layout.image_config_json(tars, config, history=history)
    key = hashlib.sha256(config_blob).hexdigest()[:16]
    repository, tag = split_name(name)
    base = os.path.join(cache, f"{repository.rsplit('/', 1)[-1]}-{tag}-{key}")
    archive = base + ".tar"
    with _lock(base + ".lock"):
        if not os.path.isdir(base):
            tmp = tempfile.mkdtemp(dir=cache, prefix=".layout-")
            try:
                oci_layout.write_layout(tmp, tag, tars, config_blob)
                os.rename(tmp, base)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        digest = _manifest_digest(base)
        if not os.path.exists(archive):
            to_docker_archive(base, tag, name, archive)
    return ImageArchive(name, archive, base, digest, oci_layout.sha256_digest(config_blob))


def _manifest_digest(layout):
    with open(os.path.join(layout, "index.json")) as f:
        return json.load(f)["manifests"][0]["digest"]


def split_name(name):
    """'steer.local/pause:3.9' -> ('steer.local/pause', '3.9')."""
    repository, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:
        return name, "latest"
    return repository, tag


def to_docker_archive(layout, tag, name, archive):
    """Convert the OCI layout to a docker-archive tar tagged ``name`` (skopeo)."""
    for path in (layout, archive):
        if ":" in path:
            raise ImageError(f"{path} contains ':', which skopeo cannot parse in a path: "
                             "set STEER_IMAGE_CACHE to a directory without one")
    require_tool("skopeo")
    with tempfile.TemporaryDirectory(dir=os.path.dirname(archive)) as tmp:
        out = os.path.join(tmp, "image.tar")
        _run(["skopeo", "copy", "--quiet", f"oci:{layout}:{tag}",
              f"docker-archive:{out}:{name}"], f"convert {name} to a docker archive")
        os.chmod(out, 0o644)
        os.replace(out, archive)


# -- archives --------------------------------------------------------------------------
def archive_kind(path):
    """'docker-archive' or 'oci-archive' (skopeo's transport names), or ImageError."""
    names = _archive_members(path)
    if "manifest.json" in names:
        return "docker-archive"
    if "oci-layout" in names and "index.json" in names:
        return "oci-archive"
    raise ImageError(f"{path} is not an image archive: it has neither a manifest.json "
                     "(docker save, docker-archive) nor oci-layout and index.json (OCI)")


def archive_image_names(path):
    """The image names an archive carries (RepoTags, or the OCI index's ref names)."""
    kind = archive_kind(path)
    with tarfile.open(path, "r:*") as tar:
        if kind == "docker-archive":
            manifest = json.load(tar.extractfile(_member(tar, "manifest.json")))
            return [tag for image in manifest for tag in image.get("RepoTags") or []]
        index = json.load(tar.extractfile(_member(tar, "index.json")))
    return [(m.get("annotations") or {}).get(oci_layout.REF_NAME) or ""
            for m in index.get("manifests") or []]


def _archive_members(path):
    try:
        with tarfile.open(path, "r:*") as tar:
            return {os.path.normpath(m.name) for m in tar.getmembers()}
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except (tarfile.TarError, OSError) as exc:
        raise ImageError(f"{path} is not an image archive: it is not a tar file ({type(exc).__name__})") from None


def _member(tar, name):
    for member in tar.getmembers():
        if os.path.normpath(member.name) == name:
            return member
    raise ImageError(f"{tar.name} has no {name}")


# -- importing into containerd ------------------------------------------------------
def import_archive(socket_path, tar_path, *, namespace=CRI_NAMESPACE, snapshotter="overlayfs",
                   base_name=""):
    """Load an image archive into the containerd at ``socket_path``; return the names it added.

    The images are unpacked into ``snapshotter`` (the CRI plugin's), so a pod can use
    them at once; the CRI plugin sees images of the ``k8s.io`` namespace. ``base_name``
    names the images of an OCI archive whose ref names are only tags.
    """
    socket_path = str(socket_path).removeprefix("unix://")
    tar_path = os.fspath(tar_path)
    require_tool("ctr", "containerd")
    if not os.path.exists(socket_path):
        raise ImageError(f"no containerd socket at {socket_path}: is containerd running?")
    options = ["--base-name", base_name] if base_name else []
    out = _run(["ctr", "--address", socket_path, "--namespace", namespace, "images",
                "import", "--snapshotter", snapshotter, *options, tar_path],
               f"import {tar_path} into the containerd at {socket_path}")
    return re.findall(r"^unpacking (\S+) \(sha256:", out, flags=re.MULTILINE)


def list_images(socket_path, *, namespace=CRI_NAMESPACE):
    """[(name, size text)] of the images in one containerd (`ctr images ls`)."""
    socket_path = str(socket_path).removeprefix("unix://")
    require_tool("ctr", "containerd")
    out = _run(["ctr", "--address", socket_path, "--namespace", namespace, "images", "ls"],
               f"list the images of the containerd at {socket_path}")
    rows = []
    for line in out.splitlines()[1:]:
        # REF TYPE DIGEST SIZE PLATFORMS LABELS, where SIZE is two words ("1.2 MiB").
        match = re.match(r"(\S+)\s+\S+\s+sha256:\S+\s+(\S+ \S+)", line)
        if match and not match.group(1).startswith("sha256:"):   # CRI's id aliases
            rows.append((match.group(1), match.group(2)))
    return rows


# -- helpers -------------------------------------------------------------------------
_PACKAGES = {"skopeo": "skopeo", "ctr": "containerd", "gcc": "gcc libc6-dev"}


def require_tool(tool, package=None):
    if not shutil.which(tool):
        package = package or _PACKAGES.get(tool, tool)
        raise ImageError(f"{tool} is not installed: install it with `apt-get install {package}`")


def _run(argv, doing):
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=_TOOL_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ImageError(f"could not {doing}: {argv[0]} did not finish in "
                         f"{_TOOL_TIMEOUT} s") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise ImageError(f"could not {doing}: {argv[0]} exited {proc.returncode}: "
                         f"{detail[-1] if detail else 'no output'}")
    return proc.stdout


@contextmanager
def _lock(path):
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
