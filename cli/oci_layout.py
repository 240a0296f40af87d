"""Write OCI image layouts reproducibly: the same inputs give the same digests, byte for byte.

A layer is described as a list of entries (directories, files, symlinks) and written
as a tar whose every header is fixed (mtime, owner ids, no user or group names), in
path order, then gzip'd with a fixed header. Image tools (umoci, docker build) stamp
the time of the build into layers and configs, so their image IDs change on every
build; a cache keyed by digest and tests that compare digests need them stable.

The layout on disk (image-spec v1.0):

    oci-layout                      {"imageLayoutVersion": "1.0.0"}
    index.json                      one manifest, annotated with its tag
    blobs/sha256/<hex>              the config, the compressed layers, the manifest
"""

import gzip
import hashlib
import io
import json
import os
import platform
import tarfile
from dataclasses import dataclass, field

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"

#: Every timestamp in a layer or config: the image's content alone decides its digest.
FIXED_MTIME = 0
FIXED_CREATED = "1970-01-01T00:00:00Z"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# platform.machine() -> the GOARCH name OCI configs use (and containerd matches on).
_ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
                  "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def machine_architecture(machine=None):
    """The OCI architecture name of this machine (amd64, arm64, ...)."""
    machine = machine or platform.machine()
    try:
        return _ARCHITECTURES[machine]
    except KeyError:
        raise ValueError(f"no OCI architecture name known for machine type {machine!r}; "
                         f"known: {', '.join(sorted(set(_ARCHITECTURES)))}") from None


def sha256_digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One member of a layer: path is relative to the root (no leading slash)."""

    path: str
    kind: str                 # "dir", "file" or "symlink"
    mode: int = 0o755
    data: bytes = b""
    target: str = ""
    uid: int = 0
    gid: int = 0


def directory(path, mode=0o755, uid=0, gid=0):
    return Entry(path.strip("/"), "dir", mode, uid=uid, gid=gid)


def regular_file(path, data, mode=0o644, uid=0, gid=0):
    return Entry(path.strip("/"), "file", mode, data=bytes(data), uid=uid, gid=gid)


def symlink(path, target):
    return Entry(path.strip("/"), "symlink", 0o777, target=target)


_TAR_TYPES = {"dir": tarfile.DIRTYPE, "file": tarfile.REGTYPE, "symlink": tarfile.SYMTYPE}


def layer_tar(entries):
    """The uncompressed tar of ``entries``, sorted by path, every header fixed."""
    seen = set()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(entries, key=lambda e: e.path):
            if entry.path in seen:
                raise ValueError(f"layer lists {entry.path!r} twice")
            seen.add(entry.path)
            info = tarfile.TarInfo(entry.path + ("/" if entry.kind == "dir" else ""))
            info.type = _TAR_TYPES[entry.kind]
            info.mode = entry.mode
            info.uid, info.gid = entry.uid, entry.gid
            info.uname = info.gname = ""
            info.mtime = FIXED_MTIME
            if entry.kind == "symlink":
                info.linkname = entry.target
            if entry.kind == "file":
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                tar.addfile(info)
    return buffer.getvalue()


def gzip_fixed(data):
    """gzip with a fixed header (no name, mtime 0), so equal input gives equal output."""
    return gzip.compress(data, compresslevel=6, mtime=0)


@dataclass(frozen=True)
class ImageConfig:
    """The runtime defaults of an image (the `config` object of an OCI image config)."""

    entrypoint: tuple = ()
    cmd: tuple = ()
    env: tuple = (DEFAULT_PATH,)
    user: str = ""
    working_dir: str = ""
    labels: dict = field(default_factory=dict)

    def as_json(self):
        out = {"Env": list(self.env)}
        if self.entrypoint:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd:
            out["Cmd"] = list(self.cmd)
        if self.user:
            out["User"] = self.user
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.labels:
            out["Labels"] = dict(sorted(self.labels.items()))
        return out


def _canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def image_config_json(layers, config, architecture=None, history=None):
    """The image config blob for uncompressed ``layers`` (its digest is the image ID)."""
    history = history or [f"layer {n}" for n in range(len(layers))]
    document = {
        "architecture": architecture or machine_architecture(),
        "os": "linux",
        "created": FIXED_CREATED,
        "config": config.as_json(),
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(t) for t in layers]},
        "history": [{"created": FIXED_CREATED, "created_by": h} for h in history],
    }
    return _canonical(document)


@dataclass(frozen=True)
class Layout:
    """A written layout: where, its tag, and its manifest's and config's digests."""

    path: str
    tag: str
    manifest_digest: str
    config_digest: str


def write_layout(path, tag, layers, config_blob):
    """Write an OCI layout of one image at ``path`` (a new or empty directory).

    ``layers`` are uncompressed tars (see ``layer_tar``) and ``config_blob`` their
    ``image_config_json``; the layers are stored gzip'd.
    """
    blobs = os.path.join(path, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)

    def put(data, media_type):
        digest = sha256_digest(data)
        with open(os.path.join(blobs, digest.split(":", 1)[1]), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": put(config_blob, CONFIG_TYPE),
        "layers": [put(gzip_fixed(layer), LAYER_TYPE) for layer in layers],
    }
    manifest_descriptor = put(_canonical(manifest), MANIFEST_TYPE)
    manifest_descriptor["annotations"] = {REF_NAME: tag}
    index = {"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": [manifest_descriptor]}
    with open(os.path.join(path, "index.json"), "wb") as f:
        f.write(_canonical(index))
    with open(os.path.join(path, "oci-layout"), "wb") as f:
        f.write(_canonical({"imageLayoutVersion": "1.0.0"}))
    return Layout(path, tag, manifest_descriptor["digest"], manifest["config"]["digest"])


def layout_tag(path):
    """The tag (ref name) of the only image in the layout at ``path``, or None."""
    with open(os.path.join(path, "index.json")) as f:
        manifests = json.load(f).get("manifests") or []
    names = [(m.get("annotations") or {}).get(REF_NAME) for m in manifests]
    return names[0] if len(names) == 1 else None
