"""Materialise a pod's volumes under its directory and lay out each container's root.

The process runtime has no mount namespaces, so a volume cannot appear at its
``mountPath`` on the host without affecting every other process there. Instead
each container gets a private directory (its "root", ``<pod>/roots/<container>``)
in which every mountPath is a symlink to the volume's directory; the container
runs with that root as its working directory (or workingDir inside it) and finds
it in ``$STEER_ROOT``. So ``cat $STEER_ROOT/etc/config/key`` (or ``cat
etc/config/key`` from the working directory) reads a ConfigMap mounted at
/etc/config. The cri runtime bind-mounts the same directories at their real
mountPath instead (``container_mounts``).

Every name and path of the pod goes through agent/paths.py: nothing is written
or removed outside the pod's directory (or its tmpfs directory for secrets),
whatever the object says. A persistentVolumeClaim is mounted as the hostPath of
its bound PersistentVolume (``claim_host_path``). Secret volumes, and projected volumes (which may hold
a token), are written under ``secret_dir`` (a tmpfs, see paths.tmpfs_dir) when
the agent has one. A hostPath is handed to the container as it is and never
removed.
"""

import logging
import os

from agent import paths
from agent.env import ConfigError
from agent.projected import downward_files, object_files, project_sources
from agent.runtime.base import Mount

log = logging.getLogger(__name__)

#: Volume files' mode when the source names none (Kubernetes' 0644, in a 0700 directory).
DEFAULT_MODE = 0o644
#: Where local-path persistent volumes live on a node (--storage-root), and the Node
#: annotation that tells the provisioner (control/controllers/persistentvolume/localpath.py).
STORAGE_ROOT = "/var/lib/steersman/storage"
STORAGE_ROOT_ANNOTATION = "steersman.io/local-path-root"


def write_private(path, data, mode=0o600):
    """Write ``data`` to ``path`` through a temporary file created 0600, then set ``mode``."""
    tmp = path + ".tmp"
    if os.path.islink(tmp):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def write_files(target, files, default_mode, dir_mode=0o700):
    """Write {relative path: (bytes, mode or None)} into ``target``, each kept inside it.

    ``dir_mode`` is the mode of ``target`` and the directories made in it: 0700
    for host processes, 0755 when containers of any user mount it (the pod's own
    directory, 0700, still keeps the host's other users out).
    """
    os.makedirs(target, mode=dir_mode, exist_ok=True)
    os.chmod(target, dir_mode)
    # The directory is only the pod's: files keep their (often 0644) mode, as kubelet's.
    for rel, (data, mode) in files.items():
        path = paths.join_under(target, rel, "volume item path")
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            os.makedirs(parent, mode=dir_mode, exist_ok=True)
            os.chmod(parent, dir_mode)
        if not paths.is_within(parent, target):
            raise paths.UnsafePath(f"volume item path {rel!r} resolves outside its volume")
        write_private(path, data, default_mode if mode is None else mode)


def has_projected(pod):
    """True if the pod has volumes whose files change with their source (or expire)."""
    return any("configMap" in v or "secret" in v or "projected" in v
               for v in (pod.get("spec") or {}).get("volumes") or ())


def _host_path(volume):
    host = volume["hostPath"].get("path")
    kind = volume["hostPath"].get("type") or ""
    if not host or not os.path.isabs(host) or ".." in host.split("/"):
        raise paths.UnsafePath(f"hostPath {host!r} must be an absolute path without '..'")
    # The process runtime mounts nothing: the container is given the host path as it is.
    if kind == "DirectoryOrCreate" and not os.path.exists(host):
        os.makedirs(host, exist_ok=True)
    elif kind == "FileOrCreate" and not os.path.exists(host):
        open(host, "a").close()
    elif kind in ("Directory", "File") and not os.path.exists(host):
        raise ConfigError(f"hostPath type check failed: {host} does not exist")
    return host


def claim_host_path(volume, namespace, get, for_containers=False):
    """The host directory of a persistentVolumeClaim volume: claim -> bound PV -> hostPath.

    As kubelet, a claim that is not Bound (or whose volume is not its own) is a
    mount failure the pod worker retries; only hostPath and local volumes can be
    mounted on a node. The directory is created when missing (local-path volumes
    are DirectoryOrCreate), 0777 for containers as k3s makes them.
    """
    claim_name = (volume.get("persistentVolumeClaim") or {}).get("claimName")
    claim = get("PersistentVolumeClaim", namespace, claim_name) if claim_name else None
    if claim is None:
        raise ConfigError(f'persistentvolumeclaim "{claim_name}" not found')
    pv_name = (claim.get("spec") or {}).get("volumeName")
    if (claim.get("status") or {}).get("phase") != "Bound" or not pv_name:
        raise ConfigError(f'persistentvolumeclaim "{claim_name}" is not bound')
    pv = get("PersistentVolume", None, pv_name)
    ref = ((pv or {}).get("spec") or {}).get("claimRef") or {}
    if pv is None or ref.get("uid") != claim["metadata"].get("uid"):
        raise ConfigError(f'persistentvolume "{pv_name}" is not bound to claim '
                          f'"{claim_name}"')
    spec = pv["spec"]
    if "hostPath" in spec:
        source = dict(spec["hostPath"])
    elif "local" in spec:
        source = {"path": (spec["local"] or {}).get("path"), "type": "Directory"}
    else:
        raise ConfigError(f'persistentvolume "{pv_name}" has no volume source this node '
                          "can mount (hostPath or local)")
    created = not os.path.exists(source.get("path") or "")
    host = _host_path({"hostPath": source})
    if created and source.get("type") == "DirectoryOrCreate":
        os.chmod(host, 0o777 if for_containers else 0o700)
    return host


def _mode(source):
    """Return a source's defaultMode (Kubernetes' 0644 when unset)."""
    mode = source.get("defaultMode")
    return DEFAULT_MODE if mode is None else mode


def materialise(pod, pod_dir, get, secret_dir=None, token=None, host_ip="",
                for_containers=False):
    """Create every volume of ``pod``; return volume name -> host path.

    ``get(kind, namespace, name)`` reads ConfigMaps and Secrets; ``token(pod,
    source)`` answers a projected serviceAccountToken (see agent/projected.py);
    ``secret_dir`` is the pod's tmpfs directory for secrets (None: the pod's own).
    ``for_containers``: the volumes are bind-mounted into containers that may run
    as any user, so they get Kubernetes' modes (emptyDir 0777, others 0755) and
    the pod's fsGroup.
    """
    dir_mode = 0o755 if for_containers else 0o700
    fs_group = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup") \
        if for_containers else None
    namespace = pod["metadata"].get("namespace")
    volumes_dir = paths.make_private_dir(os.path.join(pod_dir, "volumes"))
    private_dir = secret_dir or volumes_dir
    result = {}
    for volume in (pod.get("spec") or {}).get("volumes") or ():
        name = paths.check_name(volume.get("name"), "volume")
        if "hostPath" in volume:
            result[name] = _host_path(volume)
            continue
        if "persistentVolumeClaim" in volume:
            result[name] = claim_host_path(volume, namespace, get, for_containers)
            continue
        if "secret" in volume or "projected" in volume:
            # Made only for a pod that has secrets: nothing else of it goes to tmpfs.
            target = paths.join_under(paths.make_private_dir(private_dir), name, "volume name")
        else:
            target = paths.join_under(volumes_dir, name, "volume name")
        if "configMap" in volume or "secret" in volume:
            kind = "ConfigMap" if "configMap" in volume else "Secret"
            source = volume["configMap" if kind == "ConfigMap" else "secret"] or {}
            ref = {**source, "name": source.get("name") or source.get("secretName")}
            files = object_files(kind, ref, get, namespace)
            write_files(target, files, _mode(source), dir_mode)
        elif "downwardAPI" in volume:
            source = volume["downwardAPI"] or {}
            write_files(target, downward_files(pod, source.get("items"), host_ip), _mode(source),
                        dir_mode)
        elif "projected" in volume:
            source = volume["projected"] or {}
            files = project_sources(pod, source.get("sources") or (), get, token, host_ip)
            write_files(target, files, _mode(source), dir_mode)
        else:
            if "emptyDir" not in volume:
                log.info("volume=%s pod=%s msg=unsupported volume type, given an empty "
                         "directory", name, pod["metadata"].get("name"))
            paths.make_private_dir(target)
            if for_containers:
                os.chmod(target, 0o777)     # kubelet's emptyDir mode
        if fs_group is not None:
            _give_group(target, int(fs_group))
        result[name] = target
    return result


def _give_group(target, gid):
    """Hand a volume to the pod's fsGroup: group-owned, setgid directories, as kubelet."""
    for base, _dirs, files in os.walk(target):
        os.chown(base, -1, gid, follow_symlinks=False)
        mode = os.stat(base).st_mode
        group_bits = 0o070 if mode & 0o002 else 0o050     # an emptyDir stays writable
        os.chmod(base, mode | 0o2000 | group_bits)
        for name in files:
            path = os.path.join(base, name)
            if not os.path.islink(path):
                os.chown(path, -1, gid, follow_symlinks=False)
                os.chmod(path, os.stat(path).st_mode | 0o040)


def container_mounts(spec, volume_paths):
    """The bind mounts of a container's volumeMounts (image runtimes); a list of Mount.

    A subPath is resolved inside its volume (never through a link out of it) and
    created as a directory when missing, as kubelet does.
    """
    mounts = []
    for mount in spec.get("volumeMounts") or ():
        source = volume_paths.get(mount.get("name"))
        if source is None:
            raise ConfigError(f"volumeMount {mount.get('name')} names no volume of the pod")
        target = mount.get("mountPath")
        if not isinstance(target, str) or not target.startswith("/") or \
                ".." in target.split("/"):
            raise paths.UnsafePath(f"mountPath {target!r} must be an absolute path "
                                   "without '..'")
        if mount.get("subPath"):
            source = paths.join_under(source, mount["subPath"], "subPath")
            if not os.path.lexists(source):
                os.makedirs(source, mode=0o755, exist_ok=True)
                if not paths.is_within(source, volume_paths[mount["name"]]):
                    raise paths.UnsafePath(f"subPath {mount['subPath']!r} resolves outside "
                                           "its volume")
        mounts.append(Mount(target, source, bool(mount.get("readOnly"))))
    return mounts


def container_root(pod_dir, container, volume_paths, secret_dir=None):
    """Lay out the container's root (mountPaths as symlinks); return (root, workdir).

    A mountPath nested in another mount puts its link inside that volume, and a
    workingDir may lie in a volume: both must stay inside the pod's directories
    (``pod_dir``, ``secret_dir``); a workingDir in a hostPath must already exist.
    """
    name = paths.check_name(container.get("name"), "container")
    pod_dirs = (pod_dir,) + ((secret_dir,) if secret_dir else ())
    roots = paths.make_private_dir(os.path.join(pod_dir, "roots"))
    root = paths.join_under(roots, name, "container name")
    os.makedirs(root, mode=0o700, exist_ok=True)
    for mount in container.get("volumeMounts") or ():
        source = volume_paths.get(mount.get("name"))
        if source is None:
            raise ConfigError(f"volumeMount {mount.get('name')} names no volume of the pod")
        if mount.get("subPath"):
            # Resolved inside the volume: a link in it must not lead the mount elsewhere.
            source = paths.join_under(source, mount["subPath"], "subPath")
        link = paths.entry_under(root, mount.get("mountPath"), "mountPath", also=pod_dirs)
        parent = os.path.dirname(link)
        if not os.path.isdir(parent):
            os.makedirs(parent, mode=0o700, exist_ok=True)
            if not paths.is_within(parent, *pod_dirs):
                raise paths.UnsafePath(f"mountPath {mount.get('mountPath')!r} resolves "
                                       "outside the pod's directory")
        if os.path.islink(link) and os.readlink(link) == source:
            continue
        paths.remove_entry(link, *pod_dirs)
        os.symlink(source, link)
    workdir = root
    if container.get("workingDir"):
        workdir = paths.lexical_join(root, container["workingDir"], "workingDir")
        if paths.is_within(workdir, *pod_dirs):
            os.makedirs(workdir, mode=0o700, exist_ok=True)
            return root, workdir
        hosts = [p for p in volume_paths.values() if not paths.is_within(p, *pod_dirs)]
        if not (hosts and paths.is_within(workdir, *hosts) and os.path.isdir(workdir)):
            raise paths.UnsafePath(f"workingDir {container['workingDir']!r} resolves outside "
                                   "the pod's directory")
    return root, workdir
