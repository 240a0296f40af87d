"""Turn one container of a pod into the ContainerConfig its runtime starts.

Two shapes, one per kind of runtime: a host process gets one argv (command and
args joined, $(VAR) expanded) and runs in the container's root of symlinks
(volumes.container_root); an image runtime gets command and args apart (they
replace the image's ENTRYPOINT and CMD, and the runtime merges them with the
image's config), the workingDir as written, and the volumes as bind mounts at
their mountPath. Both raise env.ConfigError for what the pod reports as
CreateContainerConfigError.
"""

import os

from agent import env as envmod
from agent import volumes
from agent.containers import cpu_millis, memory_bytes
from agent.runtime.base import ContainerConfig


class PodFiles:
    """Where a pod's files are: its directory, its volumes, its tmpfs directory."""

    def __init__(self, pod, pod_dir, volume_paths, secret_dir=None):
        self.pod, self.pod_dir = pod, pod_dir
        self.volume_paths, self.secret_dir = volume_paths, secret_dir
        meta = pod["metadata"]
        self.uid, self.key = meta["uid"], f"{meta['namespace']}/{meta['name']}"

    def log_path(self, name, attempt):
        return os.path.join(self.pod_dir, "logs", name, f"{attempt}.log")


def _limits(spec):
    limits = (spec.get("resources") or {}).get("limits") or {}
    return {"memory_limit": memory_bytes(limits.get("memory")),
            "cpu_limit_millis": cpu_millis(limits.get("cpu"))}


def process_config(files, spec, attempt, env, image, init=False):
    """A host process: one argv, the container's root of symlinks as its directory."""
    root, workdir = volumes.container_root(files.pod_dir, spec, files.volume_paths,
                                           files.secret_dir)
    env["STEER_ROOT"] = root
    argv = envmod.command_line(spec, env)
    return ContainerConfig(files.uid, files.key, spec["name"], attempt, argv, env, workdir,
                           files.log_path(spec["name"], attempt), image=image, init=init,
                           **_limits(spec))


def image_config(files, spec, attempt, env, image, init=False):
    """An image: command and args apart, workingDir as written, volumes as mounts."""
    def expanded(key):
        return [envmod.expand(part, env) for part in spec.get(key) or ()]
    return ContainerConfig(files.uid, files.key, spec["name"], attempt, expanded("command"), env,
                           spec.get("workingDir") or "", files.log_path(spec["name"], attempt),
                           image=image, init=init, args=expanded("args"),
                           mounts=volumes.container_mounts(spec, files.volume_paths),
                           pod=files.pod, spec=spec, pod_dir=files.pod_dir, **_limits(spec))
