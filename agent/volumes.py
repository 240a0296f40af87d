"""Materialise a pod's volumes under its directory and lay out each container's root.

The process runtime has no mount namespaces, so a volume cannot appear at its
``mountPath`` on the host without affecting every other process there. Instead
each container gets a private directory (its "root", ``<pod>/roots/<container>``)
in which every mountPath is a symlink to the volume's directory; the container
runs with that root as its working directory (or workingDir inside it) and finds
it in ``$STEER_ROOT``. So ``cat $STEER_ROOT/etc/config/key`` (or ``cat
etc/config/key`` from the working directory) reads a ConfigMap mounted at
/etc/config. The runc runtime will bind-mount the same directories for real.
"""

import base64
import logging
import os
import shutil

from agent.env import ConfigError

log = logging.getLogger(__name__)


def _write_atomically(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _project(target, data, items, mode):
    """Write key files of a ConfigMap/Secret (only ``items`` when given) into ``target``."""
    os.makedirs(target, exist_ok=True)
    wanted = {item["key"]: item.get("path") or item["key"] for item in items or ()} or \
        {key: key for key in data}
    for key, rel in wanted.items():
        if key not in data:
            raise ConfigError(f"configured key {key} not found in the volume source")
        path = os.path.join(target, os.path.normpath(rel).lstrip("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _write_atomically(path, data[key])
        os.chmod(path, mode)


def has_projected(pod):
    """True if the pod has configMap or secret volumes (which change with their source)."""
    return any("configMap" in v or "secret" in v
               for v in (pod.get("spec") or {}).get("volumes") or ())


def materialise(pod, pod_dir, get):
    """Create every volume of ``pod`` under ``pod_dir``/volumes; return name -> host path."""
    namespace = pod["metadata"].get("namespace")
    paths = {}
    for volume in (pod.get("spec") or {}).get("volumes") or ():
        name = volume["name"]
        target = os.path.join(pod_dir, "volumes", name)
        if "hostPath" in volume:
            host = volume["hostPath"].get("path")
            kind = volume["hostPath"].get("type") or ""
            if kind in ("DirectoryOrCreate",) and not os.path.exists(host):
                os.makedirs(host, exist_ok=True)
            elif kind == "FileOrCreate" and not os.path.exists(host):
                open(host, "a").close()
            elif kind in ("Directory", "File") and not os.path.exists(host):
                raise ConfigError(f"hostPath type check failed: {host} does not exist")
            paths[name] = host
            continue
        if "configMap" in volume or "secret" in volume:
            kind = "ConfigMap" if "configMap" in volume else "Secret"
            source = volume["configMap" if kind == "ConfigMap" else "secret"] or {}
            obj_name = source.get("name") or source.get("secretName")
            obj = get(kind, namespace, obj_name)
            if obj is None:
                if source.get("optional"):
                    os.makedirs(target, exist_ok=True)
                    paths[name] = target
                    continue
                raise ConfigError(f'{kind.lower()} "{obj_name}" not found')
            if kind == "Secret":
                data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
            else:
                data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
                data.update({k: base64.b64decode(v)
                             for k, v in (obj.get("binaryData") or {}).items()})
            _project(target, data, source.get("items"), source.get("defaultMode") or 0o644)
            paths[name] = target
            continue
        if "emptyDir" not in volume:
            log.info("volume=%s pod=%s msg=unsupported volume type, given an empty directory",
                     name, pod["metadata"].get("name"))
        os.makedirs(target, exist_ok=True)
        paths[name] = target
    return paths


def container_root(pod_dir, container, volume_paths):
    """Lay out the container's root (mountPaths as symlinks); return (root, workdir)."""
    root = os.path.join(pod_dir, "roots", container["name"])
    os.makedirs(root, exist_ok=True)
    for mount in container.get("volumeMounts") or ():
        source = volume_paths.get(mount.get("name"))
        if source is None:
            raise ConfigError(f"volumeMount {mount.get('name')} names no volume of the pod")
        if mount.get("subPath"):
            source = os.path.join(source, mount["subPath"])
        link = os.path.join(root, os.path.normpath(mount["mountPath"]).lstrip("/"))
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if os.path.islink(link) and os.readlink(link) == source:
            continue
        if os.path.lexists(link):
            os.remove(link) if os.path.islink(link) or os.path.isfile(link) \
                else shutil.rmtree(link)
        os.symlink(source, link)
    workdir = root
    if container.get("workingDir"):
        workdir = os.path.join(root, os.path.normpath(container["workingDir"]).lstrip("/"))
        os.makedirs(workdir, exist_ok=True)
    return root, workdir
