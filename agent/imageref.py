"""Parse image references as the docker reference grammar does, to know where a pull goes.

The kubelet needs three facts about ``container.image``: whether it parses at all
(InvalidImageName), which tag it pulls (for the default pull policy and the
``:latest`` it appends), and the normalized repository name
(``docker.io/library/busybox``) that pull secrets are matched against. A first
path component is a registry host only if it holds a "." or ":" or is
"localhost"; otherwise the image lives on Docker Hub, whose one-component names
sit under ``library/``.
"""

import dataclasses
import re

DOCKER_HUB = "docker.io"
#: Older names of Docker Hub that references and docker configs still use.
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
#: The host containerd actually contacts for docker.io references.
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
DEFAULT_TAG = "latest"
MAX_NAME_LENGTH = 255

_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?")
_PATH = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
_TAG = re.compile(r"\w[\w.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")


class InvalidReference(ValueError):
    """The image is not a valid reference (kubelet: InvalidImageName)."""


@dataclasses.dataclass(frozen=True)
class Reference:
    """A parsed reference; ``domain`` and ``path`` are normalized (docker.io/library/...)."""
    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self):
        """The normalized repository: ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def endpoint_host(self):
        """The registry host a pull contacts (Docker Hub's API lives elsewhere)."""
        return DOCKER_HUB_ENDPOINT if self.domain == DOCKER_HUB else self.domain

    def __str__(self):
        text = self.name
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text


def _split_domain(remainder):
    """Split off a registry host as docker's ParseNormalizedNamed decides it."""
    first, sep, rest = remainder.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        return first, rest
    return DOCKER_HUB, remainder


def parse(image):
    """Parse ``image``; raise InvalidReference with the reason when it does not parse."""
    if not isinstance(image, str) or not image:
        raise InvalidReference(f"couldn't parse image name {image!r}: invalid reference format")
    remainder, digest = image, ""
    if "@" in remainder:
        remainder, digest = remainder.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise InvalidReference(f'couldn\'t parse image name "{image}": invalid reference format')
    domain, path = _split_domain(remainder)
    tag = ""
    colon = path.rfind(":")
    if colon != -1:
        path, tag = path[:colon], path[colon + 1:]
        if not _TAG.fullmatch(tag):
            raise InvalidReference(f'couldn\'t parse image name "{image}": invalid reference format')
    if domain != DOCKER_HUB and not _DOMAIN.fullmatch(domain):
        raise InvalidReference(f'couldn\'t parse image name "{image}": invalid reference format')
    if path.lower() != path:
        raise InvalidReference(f'couldn\'t parse image name "{image}": invalid reference format: '
                               "repository name must be lowercase")
    if not _PATH.fullmatch(path):
        raise InvalidReference(f'couldn\'t parse image name "{image}": invalid reference format')
    if domain in ("index.docker.io",):
        domain = DOCKER_HUB
    if domain == DOCKER_HUB and "/" not in path:
        path = "library/" + path
    if len(f"{domain}/{path}") > MAX_NAME_LENGTH:
        raise InvalidReference(f'couldn\'t parse image name "{image}": repository name must not '
                               f"be more than {MAX_NAME_LENGTH} characters")
    return Reference(domain, path, tag, digest)


def pulled_tag(image):
    """The tag a pull of ``image`` fetches: its own, ``latest`` without tag and digest, else ""."""
    ref = parse(image)
    if ref.tag:
        return ref.tag
    return "" if ref.digest else DEFAULT_TAG


def with_default_tag(image):
    """``image`` with ``:latest`` appended when it has neither tag nor digest.

    As the kubelet does: the name itself stays as written (no docker.io/ prefix),
    so the runtime resolves short names its own way.
    """
    ref = parse(image)
    if not ref.tag and not ref.digest:
        return f"{image}:{DEFAULT_TAG}"
    return image


def pull_policy(container):
    """The container's imagePullPolicy, defaulted as the API server does when absent."""
    policy = container.get("imagePullPolicy")
    if policy:
        return policy
    try:
        tag = pulled_tag(container.get("image"))
    except InvalidReference:
        return "IfNotPresent"
    return "Always" if tag == DEFAULT_TAG else "IfNotPresent"
