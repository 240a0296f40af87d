"""Build a container's CRI ContainerConfig, as kubelet's generateContainerConfig.

Pure: the worker's ContainerConfig (command and args apart, env resolved,
volume mounts with host paths) and the pod's files (its /etc/hosts, the
termination-log file) go in, a protobuf message comes out. Kubernetes' rules
applied here: command/args replace the image's ENTRYPOINT/CMD and the runtime
merges them; container securityContext fields override the pod's; limits map
to cgroup settings (cpu quota over a 100 ms period, shares from the request).
"""

from agent.containers import cpu_millis, memory_bytes
from agent.env import ConfigError
from agent.runtime.cri import api_pb2
from agent.runtime.cri import labels as labelmod
from agent.runtime.cri.sandbox import namespace_options, supplemental_groups

CPU_PERIOD = 100_000            # microseconds (kubelet's quotaPeriod)
MIN_QUOTA = 1_000               # kubelet's minQuotaPeriod
MIN_SHARES, SHARES_PER_CPU = 2, 1024
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
HOSTS_PATH = "/etc/hosts"


def cpu_shares(millis):
    """kubelet's milliCPUToShares: 1024 per cpu, at least 2 (also for no request)."""
    if not millis:
        return MIN_SHARES
    return max(MIN_SHARES, millis * SHARES_PER_CPU // 1000)


def cpu_quota(millis):
    """kubelet's milliCPUToQuota over a 100 ms period (0: no limit)."""
    if not millis:
        return 0
    return max(MIN_QUOTA, millis * CPU_PERIOD // 1000)


def resources(spec):
    """LinuxContainerResources from resources.limits and requests."""
    res = spec.get("resources") or {}
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    cpu_limit = cpu_millis(limits.get("cpu"))
    cpu_request = cpu_millis(requests.get("cpu")) or cpu_limit
    out = api_pb2.LinuxContainerResources(cpu_shares=cpu_shares(cpu_request))
    if cpu_limit:
        out.cpu_period, out.cpu_quota = CPU_PERIOD, cpu_quota(cpu_limit)
    memory = memory_bytes(limits.get("memory"))
    if memory:
        out.memory_limit_in_bytes = memory
    return out


def effective_context(pod, spec):
    """The container's securityContext over the pod's (runAs*, the fields both have)."""
    pod_context = (pod.get("spec") or {}).get("securityContext") or {}
    merged = {k: pod_context[k] for k in ("runAsUser", "runAsGroup", "runAsNonRoot",
                                          "seccompProfile") if pod_context.get(k) is not None}
    merged.update({k: v for k, v in (spec.get("securityContext") or {}).items()
                   if v is not None})
    return merged


def _capability_names(names):
    # Kubernetes names capabilities without the CAP_ prefix; containerd adds it.
    return [n[4:] if n.upper().startswith("CAP_") else n for n in names or ()]


def check_non_root(context, image_user, pod_ref, name):
    """Refuse (ConfigError) a runAsNonRoot container that would run as root, as kubelet."""
    if not context.get("runAsNonRoot"):
        return
    where = f"(pod: {pod_ref}, container: {name})"
    if context.get("runAsUser") is not None:
        if int(context["runAsUser"]) == 0:
            raise ConfigError(f"container's runAsUser breaks non-root policy {where}")
        return
    uid, username = image_user if image_user else (None, "")
    if uid is None and username and not username.split(":")[0].isdigit():
        raise ConfigError(f"container has runAsNonRoot and image has non-numeric user "
                          f"({username}), cannot verify user is non-root {where}")
    if uid is None and username:
        uid = int(username.split(":")[0])
    if not uid:
        raise ConfigError(f"container has runAsNonRoot and image will run as root {where}")


def security_context(pod, spec, image_user=None):
    """LinuxContainerSecurityContext; ``image_user`` is (uid or None, username) of the image."""
    context = effective_context(pod, spec)
    capabilities = context.get("capabilities") or {}
    out = api_pb2.LinuxContainerSecurityContext(
        capabilities=api_pb2.Capability(
            add_capabilities=_capability_names(capabilities.get("add")),
            drop_capabilities=_capability_names(capabilities.get("drop"))),
        privileged=bool(context.get("privileged")),
        namespace_options=namespace_options(pod),
        readonly_rootfs=bool(context.get("readOnlyRootFilesystem")),
        supplemental_groups=supplemental_groups(pod),
        # kubelet: no_new_privs only when allowPrivilegeEscalation is false on purpose.
        no_new_privs=context.get("allowPrivilegeEscalation") is False)
    if context.get("runAsUser") is not None:
        out.run_as_user.value = int(context["runAsUser"])
    if context.get("runAsGroup") is not None:
        if context.get("runAsUser") is None:
            # containerd refuses a group without a user: take the image's numeric user.
            uid = image_user[0] if image_user else None
            if uid is None:
                raise ConfigError("runAsGroup needs runAsUser (the image's user is not a "
                                  "number): set securityContext.runAsUser too")
            out.run_as_user.value = int(uid)
        out.run_as_group.value = int(context["runAsGroup"])
    return out


def termination_path(spec):
    return spec.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH


def mounts(config, hosts_file=None, termination_file=None):
    """The volume mounts, then /etc/hosts and the termination log unless a volume takes them."""
    out = [api_pb2.Mount(container_path=m.container_path, host_path=m.host_path,
                         readonly=m.read_only) for m in config.mounts]
    taken = {m.container_path.rstrip("/") for m in config.mounts}
    if hosts_file and HOSTS_PATH not in taken:
        out.append(api_pb2.Mount(container_path=HOSTS_PATH, host_path=hosts_file))
    path = termination_path(config.spec or {})
    if termination_file and path not in taken:
        out.append(api_pb2.Mount(container_path=path, host_path=termination_file))
    return out


def log_path(name, attempt):
    """A container's log file, relative to the sandbox's log directory (kubelet's layout)."""
    return f"{name}/{attempt}.log"


def build(config, *, node, image_user=None, hosts_file=None, termination_file=None,
          sandbox_id=""):
    """The CRI ContainerConfig for ``config`` (agent.runtime.base.ContainerConfig)."""
    pod, spec = config.pod, config.spec or {}
    context = effective_context(pod, spec)
    check_non_root(context, image_user, config.pod_key, config.name)
    annotations = labelmod.container_annotations(
        config.attempt, config.init, config.log_path,
        termination_path(spec) if termination_file else "", termination_file or "",
        spec.get("terminationMessagePolicy") or "File", sandbox_id)
    return api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=config.name, attempt=config.attempt),
        image=api_pb2.ImageSpec(image=config.image),
        command=list(config.command), args=list(config.args),
        working_dir=config.workdir or "",
        envs=[api_pb2.KeyValue(key=k, value=str(v)) for k, v in config.env.items()],
        mounts=mounts(config, hosts_file, termination_file),
        labels=labelmod.container_labels(pod, config.name, node),
        annotations=annotations, log_path=log_path(config.name, config.attempt),
        stdin=bool(spec.get("stdin")), stdin_once=bool(spec.get("stdinOnce")),
        tty=bool(spec.get("tty")),
        linux=api_pb2.LinuxContainerConfig(resources=resources(spec),
                                           security_context=security_context(pod, spec,
                                                                             image_user)))
