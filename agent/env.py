"""Resolve a container's environment and command as kubelet does.

``env`` entries are resolved in order, and a value may refer to earlier ones as
``$(NAME)``; ``$$`` escapes a dollar; an undefined reference stays as written.
command and args are expanded with the final environment. ``valueFrom`` reads
ConfigMaps and Secrets through ``get(kind, namespace, name)`` (which returns the
object or None); a missing non-optional source is a ``ConfigError``, which the
pod reports as CreateContainerConfigError.
"""

import base64
import re


class ConfigError(Exception):
    """The container cannot be configured (a missing ConfigMap, Secret or key)."""


_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text, variables):
    """Expand $(VAR) in ``text`` from ``variables``; $$ gives $; unknown refs stay."""
    def repl(match):
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return variables[name] if name in variables else match.group(0)
    return _REF.sub(repl, text)


def field_value(pod, path, host_ip):
    """Value of a downward-API fieldRef (metadata.name, status.podIP, spec.nodeName, ...)."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    simple = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
              "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName"),
              "spec.serviceAccountName": spec.get("serviceAccountName"),
              "status.hostIP": host_ip, "status.podIP": status.get("podIP") or host_ip,
              "status.hostIPs": host_ip, "status.podIPs": status.get("podIP") or host_ip}
    if path in simple:
        return simple[path] or ""
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return (meta.get(match.group(1)) or {}).get(match.group(2), "")
    raise ConfigError(f"unsupported fieldRef fieldPath {path!r}")


def _source_value(get, kind, namespace, ref):
    obj = get(kind, namespace, ref.get("name"))
    optional = bool(ref.get("optional"))
    if obj is None:
        if optional:
            return None
        raise ConfigError(f'{kind.lower()} "{ref.get("name")}" not found')
    key = ref.get("key")
    if kind == "Secret":
        data = obj.get("data") or {}
        if key in data:
            return base64.b64decode(data[key]).decode("utf-8", "replace")
        value = (obj.get("stringData") or {}).get(key)
    else:
        value = (obj.get("data") or {}).get(key)
        if value is None and key in (obj.get("binaryData") or {}):
            value = base64.b64decode(obj["binaryData"][key]).decode("utf-8", "replace")
    if value is None and not optional:
        raise ConfigError(f"couldn't find key {key} in {kind} {namespace}/{ref.get('name')}")
    return value


def resolve_env(pod, container, get, host_ip, extra=None):
    """Return the container's environment as an ordered dict (envFrom first, then env)."""
    namespace = (pod.get("metadata") or {}).get("namespace")
    result = dict(extra or {})
    for source in container.get("envFrom") or ():
        prefix = source.get("prefix") or ""
        for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(field)
            if not ref:
                continue
            obj = get(kind, namespace, ref.get("name"))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind.lower()} "{ref.get("name")}" not found')
            for key, value in (obj.get("data") or {}).items():
                if kind == "Secret":
                    value = base64.b64decode(value).decode("utf-8", "replace")
                result[prefix + key] = value
    for item in container.get("env") or ():
        name = item.get("name")
        if "valueFrom" in item and item["valueFrom"]:
            source = item["valueFrom"]
            if "fieldRef" in source:
                value = field_value(pod, source["fieldRef"].get("fieldPath", ""), host_ip)
            elif "configMapKeyRef" in source:
                value = _source_value(get, "ConfigMap", namespace, source["configMapKeyRef"])
            elif "secretKeyRef" in source:
                value = _source_value(get, "Secret", namespace, source["secretKeyRef"])
            elif "resourceFieldRef" in source:
                value = ""          # limits are not exposed through env yet
            else:
                raise ConfigError(f"env {name}: unsupported valueFrom")
            if value is None:
                continue
        else:
            value = expand(item.get("value") or "", result)
        result[name] = value
    return result


#: Services of the default namespace every pod gets variables for (kubelet's masterServices).
MASTER_SERVICES = ("kubernetes",)


def service_env(services, namespace, enable_service_links=True):
    """The Services' variables kubelet gives a pod's containers (its getServiceEnvVarMap).

    ``services`` are those of the pod's namespace and of ``default``. The master
    Service `kubernetes` always counts; the others only with enableServiceLinks
    (default true), and a Service of the pod's own namespace wins over a master
    one of the same name. Headless Services and those without a ClusterIP give none.
    """
    chosen = {}
    for svc in services:
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        if spec.get("clusterIP") in (None, "", "None") or not spec.get("ports"):
            continue
        name, ns = meta.get("name"), meta.get("namespace")
        if ns == "default" and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)
        elif ns == namespace and enable_service_links:
            chosen[name] = svc
    result = {}
    for name in sorted(chosen):
        result.update(_variables_of(chosen[name]))
    return result


def _variable_name(text):
    return text.upper().replace("-", "_")


def _variables_of(svc):
    """{NAME}_SERVICE_HOST/_PORT[_PORTNAME] and Docker's link variables of one Service."""
    spec, prefix = svc["spec"], _variable_name(svc["metadata"]["name"])
    ip, ports = spec["clusterIP"], spec["ports"]
    out = {f"{prefix}_SERVICE_HOST": ip, f"{prefix}_SERVICE_PORT": str(ports[0]["port"])}
    for port in ports:
        if port.get("name"):
            out[f"{prefix}_SERVICE_PORT_{_variable_name(port['name'])}"] = str(port["port"])
    host = f"[{ip}]" if ":" in ip else ip
    for index, port in enumerate(ports):
        protocol = (port.get("protocol") or "TCP").upper()
        url = f"{protocol.lower()}://{host}:{port['port']}"
        if index == 0:
            out[f"{prefix}_PORT"] = url
        base = f"{prefix}_PORT_{port['port']}_{protocol}"
        out.update({base: url, f"{base}_PROTO": protocol.lower(),
                    f"{base}_PORT": str(port["port"]), f"{base}_ADDR": ip})
    return out


def command_line(container, env):
    """The argv to run: command (or the image's, which the process runtime lacks) + args."""
    command = [expand(part, env) for part in container.get("command") or ()]
    args = [expand(part, env) for part in container.get("args") or ()]
    argv = command + args
    if not argv:
        raise ConfigError(f"container {container.get('name')} has no command: the process "
                          "runtime runs no images, so command (or args) must be set")
    return argv
