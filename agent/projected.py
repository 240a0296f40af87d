"""Answer a projected volume's sources: configMap, secret, downwardAPI, serviceAccountToken.

As kubelet's projected volume plugin: every source adds files to one directory.
The serviceAccountToken source is answered through the TokenRequest API
(``POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token``, bound to the
pod), which ``token(pod, source)`` calls (kubelet.ApiAdapter.request_token);
the token is renewed when the volume is refreshed. Returns {relative path:
(bytes, mode or None)}; paths are checked where the files are written
(volumes.write_files).
"""

import base64

from agent.env import ConfigError, field_value


def object_files(kind, source, get, namespace):
    """Return {path: (bytes, mode)} of a ConfigMap's or Secret's keys (``items`` only if given)."""
    obj = get(kind, namespace, source.get("name"))
    if obj is None:
        if source.get("optional"):
            return {}
        raise ConfigError(f'{kind.lower()} "{source.get("name")}" not found')
    if kind == "Secret":
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    else:
        data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    items = source.get("items")
    if not items:
        return {key: (value, None) for key, value in data.items()}
    files = {}
    for item in items:
        key = item.get("key")
        if key not in data:
            if source.get("optional"):
                continue
            raise ConfigError(f"configured key {key} not found in the {kind}")
        files[item.get("path") or key] = (data[key], item.get("mode"))
    return files


def downward_files(pod, items, host_ip=""):
    """Return {path: (bytes, mode)} for a downwardAPI source's fieldRef items."""
    files = {}
    for item in items or ():
        ref = item.get("fieldRef")
        if not ref:
            raise ConfigError(f"downwardAPI item {item.get('path')}: only fieldRef is supported")
        value = field_value(pod, ref.get("fieldPath", ""), host_ip)
        files[item.get("path")] = (str(value).encode(), item.get("mode"))
    return files


def project_sources(pod, sources, get, token=None, host_ip=""):
    """Return the files of a projected volume's ``sources`` for ``pod``."""
    namespace = (pod.get("metadata") or {}).get("namespace")
    files = {}
    for source in sources:
        if source.get("configMap") is not None:
            files.update(object_files("ConfigMap", source["configMap"], get, namespace))
        elif source.get("secret") is not None:
            files.update(object_files("Secret", source["secret"], get, namespace))
        elif source.get("downwardAPI") is not None:
            files.update(downward_files(pod, source["downwardAPI"].get("items"), host_ip))
        elif source.get("serviceAccountToken") is not None:
            wanted = source["serviceAccountToken"]
            if token is None:
                raise ConfigError("serviceAccountToken projection: this agent cannot request "
                                  "tokens")
            files[wanted.get("path") or "token"] = (token(pod, wanted).encode(), None)
    return files


def token_request_body(pod, source):
    """Return the TokenRequest a projected serviceAccountToken source asks for, bound to pod."""
    meta = pod.get("metadata") or {}
    spec = {"expirationSeconds": int(source.get("expirationSeconds") or 3600),
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": meta.get("name"),
                               "uid": meta.get("uid")}}
    if source.get("audience"):
        spec["audiences"] = [source["audience"]]
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
