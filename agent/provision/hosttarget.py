"""Who to reach (``user@host[:port]``) and how keys are named: the pure parts of SSH."""

import base64
import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class HostTarget:
    """``user@host[:port]`` (IPv6 as ``user@[::1]:22``); the user defaults to root."""

    user: str
    host: str
    port: int = 22

    @classmethod
    def parse(cls, text):
        text = text.strip()
        user, at, rest = text.rpartition("@")
        if not at:
            user, rest = "root", text
        if not user or not rest:
            raise ValueError(f"{text!r} is not user@host[:port]")
        port = 22
        if rest.startswith("["):
            host, bracket, tail = rest[1:].partition("]")
            if not bracket or (tail and not tail.startswith(":")):
                raise ValueError(f"{text!r}: write an IPv6 host as [addr] or [addr]:port")
            port_text = tail[1:] if tail else ""
        elif rest.count(":") == 1:
            host, _, port_text = rest.partition(":")
        elif ":" in rest:
            raise ValueError(f"{text!r}: write an IPv6 host as user@[addr]:port")
        else:
            host, port_text = rest, ""
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ValueError(f"{text!r}: port {port_text!r} is not 1-65535")
            port = int(port_text)
        if not host:
            raise ValueError(f"{text!r} has no host")
        return cls(user, host, port)

    @property
    def known_hosts_name(self):
        """The name known_hosts files use: ``host`` on port 22, else ``[host]:port``."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def __str__(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}" + ("" if self.port == 22 else f":{self.port}")


def fingerprint(key_blob):
    """The SHA256 fingerprint of a public key blob, as OpenSSH prints it."""
    digest = base64.b64encode(hashlib.sha256(key_blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def same_fingerprint(given, key_blob):
    """Compare a fingerprint the admin typed (with or without ``SHA256:``) to a key."""
    given = given.strip()
    if not given.startswith("SHA256:"):
        given = "SHA256:" + given
    return given.rstrip("=") == fingerprint(key_blob)
