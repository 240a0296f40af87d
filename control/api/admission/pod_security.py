"""PodSecurity admission: pods must meet the Pod Security Standards' baseline.

As Kubernetes' Pod Security Admission enforces the level a namespace's label
``pod-security.kubernetes.io/enforce`` names: ``privileged`` allows everything;
any other level (or no label: this cluster's default is baseline) refuses what
the baseline forbids - host namespaces, privileged containers, capabilities
beyond the default set, hostPath volumes, host ports, Unconfined seccomp and
unmasked /proc - with Kubernetes' message (403):

    pods "x" is forbidden: violates PodSecurity "baseline:latest": host namespaces
    (hostNetwork=true), hostPort (container "web" uses hostPort 8080)

Only pods are enforced (not their templates), on create and on updates that change
the spec. Namespaces in EXEMPT_NAMESPACES are not checked (the cluster's own
add-ons run there). ``restricted`` is enforced as baseline for now.
"""

from control import errors
from control.objects import kinds

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
VERSION_LABEL = "pod-security.kubernetes.io/enforce-version"
PRIVILEGED = "privileged"
DEFAULT_LEVEL = "baseline"
EXEMPT_NAMESPACES = ("kube-system",)
#: The capabilities a container may add under baseline (the container runtimes' defaults).
BASELINE_CAPABILITIES = frozenset((
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"))


def _quote(names):
    return ", ".join(f'"{name}"' for name in names)


def _plural(count, one, many):
    return one if count == 1 else many


def _containers(spec):
    return [c for key in ("initContainers", "containers", "ephemeralContainers")
            for c in spec.get(key) or () if isinstance(c, dict)]


def _security(container):
    return container.get("securityContext") or {}


def check_host_namespaces(spec):
    found = [f"{key}=true" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)]
    return ("host namespaces", ", ".join(found)) if found else None


def check_privileged(spec):
    names = [c.get("name") for c in _containers(spec) if _security(c).get("privileged")]
    if not names:
        return None
    return ("privileged", f"{_plural(len(names), 'container', 'containers')} {_quote(names)} "
                          "must not set securityContext.privileged=true")


def check_capabilities(spec):
    names, caps = [], []
    for container in _containers(spec):
        added = (_security(container).get("capabilities") or {}).get("add") or ()
        bad = [cap for cap in added if cap not in BASELINE_CAPABILITIES]
        if bad:
            names.append(container.get("name"))
            caps += [cap for cap in bad if cap not in caps]
    if not names:
        return None
    return ("non-default capabilities",
            f"{_plural(len(names), 'container', 'containers')} {_quote(names)} must not include "
            f"{_quote(caps)} in securityContext.capabilities.add")


def check_host_path_volumes(spec):
    names = [v.get("name") for v in spec.get("volumes") or ()
             if isinstance(v, dict) and v.get("hostPath") is not None]
    if not names:
        return None
    return ("hostPath volumes", f"{_plural(len(names), 'volume', 'volumes')} {_quote(names)}")


def check_host_ports(spec):
    names, ports = [], []
    for container in _containers(spec):
        used = [str(p["hostPort"]) for p in container.get("ports") or ()
                if isinstance(p, dict) and p.get("hostPort")]
        if used:
            names.append(container.get("name"))
            ports += used
    if not names:
        return None
    many = len(names) != 1
    return ("hostPort", f"{'containers' if many else 'container'} {_quote(names)} "
                        f"{'use' if many else 'uses'} "
                        f"{_plural(len(ports), 'hostPort', 'hostPorts')} {', '.join(ports)}")


def check_seccomp(spec):
    unconfined = lambda ctx: ((ctx or {}).get("seccompProfile") or {}).get("type") \
        == "Unconfined"     # noqa: E731
    details = []
    if unconfined(spec.get("securityContext")):
        details.append('pod must not set securityContext.seccompProfile.type to "Unconfined"')
    names = [c.get("name") for c in _containers(spec) if unconfined(_security(c))]
    if names:
        details.append(f"{_plural(len(names), 'container', 'containers')} {_quote(names)} must "
                       'not set securityContext.seccompProfile.type to "Unconfined"')
    return ("seccompProfile", "; ".join(details)) if details else None


def check_proc_mount(spec):
    names = [c.get("name") for c in _containers(spec)
             if _security(c).get("procMount") not in (None, "", "Default")]
    if not names:
        return None
    return ("procMount", f"{_plural(len(names), 'container', 'containers')} {_quote(names)} "
                         'must not set securityContext.procMount to "Unmasked"')


#: Kubernetes' baseline checks, in the order its messages list them.
BASELINE_CHECKS = (check_host_namespaces, check_privileged, check_capabilities,
                   check_host_path_volumes, check_host_ports, check_seccomp, check_proc_mount)


def baseline_violations(spec):
    """Return (reason, detail) for every baseline check ``spec`` fails."""
    return [found for check in BASELINE_CHECKS if (found := check(spec or {})) is not None]


def message(violations, level=DEFAULT_LEVEL, version="latest"):
    """Return Kubernetes' 'violates PodSecurity' text for the violations."""
    parts = ", ".join(f"{reason} ({detail})" for reason, detail in violations)
    return f'violates PodSecurity "{level}:{version}": {parts}'


class PodSecurityAdmission:
    """Refuse pods the namespace's enforce level does not allow."""

    def __init__(self, service, exempt_namespaces=EXEMPT_NAMESPACES):
        self.service = service
        self.exempt = frozenset(exempt_namespaces)

    def _level(self, namespace):
        try:
            ns = self.service.registry.get(kinds.NAMESPACES, None, namespace)
        except errors.NotFound:
            return DEFAULT_LEVEL, "latest"
        labels = ns["metadata"].get("labels") or {}
        return labels.get(ENFORCE_LABEL) or DEFAULT_LEVEL, labels.get(VERSION_LABEL) or "latest"

    def validate(self, attrs):
        if attrs.resource is not kinds.PODS or attrs.subresource or \
                attrs.namespace in self.exempt:
            return
        spec = attrs.obj.get("spec") or {}
        if attrs.operation == "UPDATE" and attrs.old is not None and \
                (attrs.old.get("spec") or {}) == spec:
            return          # metadata or status only: nothing to judge again
        level, version = self._level(attrs.namespace)
        if level == PRIVILEGED:
            return
        violations = baseline_violations(spec)
        if violations:
            name = attrs.obj["metadata"].get("name", "")
            raise errors.Forbidden(f'pods "{name}" is forbidden: '
                                   f"{message(violations, level, version)}", name=name,
                                   kind="pods")
