"""Turn a pod's imagePullSecrets into the registry credentials a pull may use.

As kubelet's docker keyring: each kubernetes.io/dockerconfigjson secret (key
``.dockerconfigjson``, ``{"auths": {...}}``) or kubernetes.io/dockercfg secret
(key ``.dockercfg``, the ``{...}`` directly) maps a registry location to a login.
A location may be a URL (``https://index.docker.io/v1/``), a host with port, a
host with a path prefix, or a ``*.`` glob; more specific locations are tried
first, and every match is a candidate the puller tries in turn. Docker Hub's old
names stand for docker.io. The secrets a pod names but that do not exist are
reported (FailedToRetrieveImagePullSecret) and the pull goes on without them.
"""

import base64
import dataclasses
import fnmatch
import json

from agent import imageref

DOCKER_CONFIG_JSON_TYPE = "kubernetes.io/dockerconfigjson"
DOCKER_CONFIG_JSON_KEY = ".dockerconfigjson"
DOCKERCFG_TYPE = "kubernetes.io/dockercfg"
DOCKERCFG_KEY = ".dockercfg"


class PullSecretError(ValueError):
    """A pull secret's docker config cannot be read; the pull fails with this message."""


@dataclasses.dataclass(frozen=True)
class Credential:
    """One login for a registry; ``auth_config`` is what CRI's PullImage takes."""
    location: str = dataclasses.field(compare=False)
    username: str
    password: str

    def auth_config(self, ref):
        """CRI AuthConfig fields for pulling ``ref``; containerd sends the login only to
        the host in server_address, so it cannot leak to another registry."""
        return {"username": self.username, "password": self.password,
                "server_address": f"https://{ref.endpoint_host}"}


def pull_secrets_for(pod, lookup, recorder=None):
    """The Secret objects the pod's spec.imagePullSecrets name, in order; warn about missing ones."""
    namespace = (pod.get("metadata") or {}).get("namespace")
    found, missing = [], []
    for item in (pod.get("spec") or {}).get("imagePullSecrets") or ():
        name = (item or {}).get("name")
        if not name:
            continue
        secret = lookup("Secret", namespace, name)
        if secret is None:
            missing.append(f"{namespace}/{name}")
        else:
            found.append(secret)
    if missing and recorder is not None:
        recorder.event(pod, "Warning", "FailedToRetrieveImagePullSecret",
                       f"Unable to retrieve some image pull secrets ({', '.join(missing)}); "
                       "attempting to pull the image may not succeed.")
    return found


def _secret_bytes(secret, key):
    data = (secret.get("data") or {}).get(key)
    if data:
        return base64.b64decode(data)
    text = (secret.get("stringData") or {}).get(key)
    return text.encode() if text else b""


def _docker_config(secret):
    """The secret's location -> entry map, or {} when it is not a docker config secret."""
    kind, name = secret.get("type"), (secret.get("metadata") or {}).get("name")
    if kind == DOCKER_CONFIG_JSON_TYPE:
        raw, key = _secret_bytes(secret, DOCKER_CONFIG_JSON_KEY), DOCKER_CONFIG_JSON_KEY
    elif kind == DOCKERCFG_TYPE:
        raw, key = _secret_bytes(secret, DOCKERCFG_KEY), DOCKERCFG_KEY
    else:
        return {}
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise PullSecretError(f"pull secret {name}: {key} is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise PullSecretError(f"pull secret {name}: {key} is not a JSON object")
    entries = parsed.get("auths", {}) if key == DOCKER_CONFIG_JSON_KEY else parsed
    if not isinstance(entries, dict):
        raise PullSecretError(f"pull secret {name}: {key} auths is not a JSON object")
    return entries


def _login(location, entry, secret_name):
    """Username and password of a docker config entry; ``auth`` (base64 user:pass) wins."""
    if not isinstance(entry, dict):
        raise PullSecretError(f"pull secret {secret_name}: entry {location} is not an object")
    username, password = entry.get("username") or "", entry.get("password") or ""
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(entry["auth"]).decode("utf-8")
        except ValueError:
            raise PullSecretError(f"pull secret {secret_name}: auth of {location} is not "
                                  "base64") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise PullSecretError(f"pull secret {secret_name}: auth of {location} is not "
                                  "base64 of user:password")
    return username, password


def location_key(location):
    """A docker config location without scheme and without Docker's /v1/ or /v2/ path."""
    value = location
    for scheme in ("https://", "http://"):
        if value.startswith(scheme):
            value = value[len(scheme):]
    host, sep, path = value.partition("/")
    path = sep + path
    if path.startswith(("/v1/", "/v2/")):
        path = path[3:]
    path = path.rstrip("/") if path != "/" else ""
    return host + path


def _split_host_port(host):
    name, sep, port = host.rpartition(":")
    return (name, port) if sep and port.isdigit() else (host, "")


def location_matches(key, repository):
    """True if a location key (host glob, optional port and path prefix) covers ``repository``."""
    key_host, _, key_path = key.partition("/")
    repo_host, _, repo_path = repository.partition("/")
    key_name, key_port = _split_host_port(key_host)
    repo_name, repo_port = _split_host_port(repo_host)
    if key_port != repo_port:
        return False
    key_parts, repo_parts = key_name.lower().split("."), repo_name.lower().split(".")
    if len(key_parts) != len(repo_parts):
        return False
    if not all(fnmatch.fnmatchcase(part, pattern) for pattern, part in zip(key_parts, repo_parts)):
        return False
    return not key_path or repo_path == key_path or repo_path.startswith(key_path + "/")


def credentials_for(image, secrets):
    """Every Credential of ``secrets`` that applies to ``image``, most specific first."""
    ref = imageref.parse(image)
    by_key = {}
    for secret in secrets:
        secret_name = (secret.get("metadata") or {}).get("name")
        for location, entry in _docker_config(secret).items():
            username, password = _login(location, entry, secret_name)
            credential = Credential(location, username, password)
            bucket = by_key.setdefault(location_key(location), [])
            if credential not in bucket:
                bucket.append(credential)
    found = []
    for key in sorted(by_key, reverse=True):
        if location_matches(key, ref.name):
            found.extend(by_key[key])
    if not found and ref.domain == imageref.DOCKER_HUB:
        for alias in sorted(imageref.DOCKER_HUB_ALIASES):
            found.extend(by_key.get(alias, ()))
    return found
