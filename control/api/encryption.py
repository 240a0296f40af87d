"""Encrypt objects at rest, as kube-apiserver's --encryption-provider-config does.

The configuration file is Kubernetes' own (apiserver.config.k8s.io/v1
EncryptionConfiguration)::

    apiVersion: apiserver.config.k8s.io/v1
    kind: EncryptionConfiguration
    resources:
      - resources: [secrets]
        providers:
          - secretbox: {keys: [{name: key2, secret: <32 bytes, base64>}]}
          - aesgcm: {keys: [{name: key1, secret: <16, 24 or 32 bytes, base64>}]}
          - identity: {}

For each listed resource the first provider's first key encrypts every write, and
every key of every provider decrypts: a stored value carries the prefix
``k8s:enc:<provider>:v1:<key name>:`` saying which. ``identity`` writes and reads
plain values (no prefix), so listing it last lets a cluster that stored secrets
before encryption was turned on still read them. Rotation is Kubernetes': add the
new key first (old keys stay listed), restart the API servers, re-write every
object (``kubectl get secrets -A -o json | kubectl replace -f -``), then drop the
old key. aesgcm takes a random 96-bit nonce per write, so its key should be
rotated before about 200,000 writes; secretbox (XSalsa20-Poly1305, 192-bit nonce)
has no such limit and is what `steer up` uses. aesgcm binds each value to its
store key (authenticated data), so a value copied under another name fails to
decrypt.
"""

import base64
import binascii
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

from control import errors
from control.api import configfile

API_VERSIONS = ("apiserver.config.k8s.io/v1",)
KIND = "EncryptionConfiguration"
PREFIX = b"k8s:enc:"
_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_UNSUPPORTED = ("aescbc", "kms")


class ConfigError(ValueError):
    """The encryption configuration file is not one the API server can use."""


class EncryptionError(errors.ApiError):
    """A stored value cannot be decrypted (a 500 naming the key and what to check)."""


class _AesGcm:
    name = "aesgcm"
    sizes = (16, 24, 32)

    def __init__(self, secret):
        self.aead = AESGCM(secret)

    def seal(self, data, context):
        nonce = os.urandom(12)
        return nonce + self.aead.encrypt(nonce, data, context)

    def open(self, data, context):
        try:
            return self.aead.decrypt(data[:12], data[12:], context)
        except InvalidTag:
            return None


class _SecretBox:
    name = "secretbox"
    sizes = (32,)

    def __init__(self, secret):
        self.box = SecretBox(secret)

    def seal(self, data, context):
        return bytes(self.box.encrypt(data))

    def open(self, data, context):
        try:
            return self.box.decrypt(data)
        except (CryptoError, ValueError):
            return None


_CIPHERS = {c.name: c for c in (_AesGcm, _SecretBox)}


class _Key:
    """One named key of one provider, with the prefix its values carry."""

    def __init__(self, cipher, name):
        self.cipher, self.name = cipher, name
        self.prefix = PREFIX + f"{cipher.name}:v1:{name}:".encode()


class Transformer:
    """Encrypt values for the store with the first provider; decrypt with any."""

    def __init__(self, keys, identity):
        #: The providers' keys in order; None in place of identity when it comes first.
        self.keys = keys
        self.identity = identity

    @property
    def writer(self):
        return self.keys[0] if self.keys else None

    def encrypt(self, data, context):
        """Return ``data`` as it is stored under the store key ``context``."""
        key = self.writer
        if key is None:
            return data
        return key.prefix + key.cipher.seal(data, context)

    def decrypt(self, data, context):
        """Return the plain value stored under ``context``; EncryptionError if impossible."""
        data = bytes(data)
        where = context.decode(errors="replace")
        if not data.startswith(PREFIX):
            if self.identity:
                return data
            raise EncryptionError(
                f"{where} is stored unencrypted and the encryption configuration lists no "
                "identity provider to read it: add `- identity: {}` as its last provider")
        for key in self.keys:
            if key is not None and data.startswith(key.prefix):
                plain = key.cipher.open(data[len(key.prefix):], context)
                if plain is None:
                    raise EncryptionError(
                        f"{where} cannot be decrypted with {key.cipher.name} key "
                        f"{key.name!r}: the configured key is not the one it was written "
                        "with, or the stored value was altered")
                return plain
        label = data[len(PREFIX):].split(b":", 3)
        named = ":".join(part.decode(errors="replace") for part in label[:3])
        raise EncryptionError(
            f"{where} was encrypted with {named!r}, a provider key the encryption "
            "configuration does not list (was a key removed before every object was "
            "re-written?)")


class EncryptionConfig:
    """The parsed configuration: which resources are encrypted, and how."""

    def __init__(self, entries):
        #: [(resource names, Transformer)] in the file's order; the first match wins.
        self.entries = entries

    def transformer_for(self, group, plural):
        """The Transformer of a resource (core group: ""), or None if it is stored plain."""
        name = f"{plural}.{group}" if group else plural
        for names, transformer in self.entries:
            for pattern in names:
                if _matches(pattern, name, group):
                    return transformer
        return None


def _matches(pattern, name, group):
    if pattern == "*.*":
        return True
    if pattern.startswith("*."):
        return pattern[2:] == group
    return pattern == name


def load(path):
    """Read an EncryptionConfiguration file; ConfigError says what is wrong."""
    return parse(configfile.read_document(path, ConfigError), path)


def parse(document, where="the encryption configuration"):
    """Build an EncryptionConfig from a decoded EncryptionConfiguration document."""
    if not isinstance(document, dict) or document.get("kind") != KIND:
        raise ConfigError(f"{where}: want kind {KIND}")
    if document.get("apiVersion") not in API_VERSIONS:
        raise ConfigError(f"{where}: want apiVersion {API_VERSIONS[0]}")
    entries, seen = [], set()
    for i, entry in enumerate(document.get("resources") or []):
        field = f"{where}: resources[{i}]"
        names = entry.get("resources") if isinstance(entry, dict) else None
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(f"{field}.resources: want a list of resource names")
        for name in names:
            if name in seen:
                raise ConfigError(f"{field}.resources: {name!r} is listed twice")
            seen.add(name)
        entries.append((list(names), _transformer(entry.get("providers"), f"{field}.providers")))
    if not entries:
        raise ConfigError(f"{where}: resources is empty")
    return EncryptionConfig(entries)


def _transformer(providers, field):
    if not isinstance(providers, list) or not providers:
        raise ConfigError(f"{field}: want a list of providers")
    keys, identity, prefixes = [], False, set()
    for i, provider in enumerate(providers):
        if not isinstance(provider, dict) or len(provider) != 1:
            raise ConfigError(f"{field}[{i}]: want exactly one of aesgcm, secretbox, identity")
        (kind, body), = provider.items()
        if kind == "identity":
            identity = True
            if not keys:
                keys.append(None)       # identity first: writes stay plain
            continue
        if kind in _UNSUPPORTED:
            raise ConfigError(f"{field}[{i}]: {kind} is not supported: use secretbox or aesgcm")
        if kind not in _CIPHERS:
            raise ConfigError(f"{field}[{i}]: unknown provider {kind!r}")
        for key in _keys(_CIPHERS[kind], body, f"{field}[{i}].{kind}.keys"):
            if key.prefix in prefixes:
                raise ConfigError(f"{field}[{i}]: key {key.name!r} of {kind} is listed twice")
            prefixes.add(key.prefix)
            keys.append(key)
    return Transformer(keys, identity)


def _keys(cipher, body, field):
    listed = body.get("keys") if isinstance(body, dict) else None
    if not isinstance(listed, list) or not listed:
        raise ConfigError(f"{field}: want at least one key")
    keys = []
    for j, item in enumerate(listed):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not _KEY_NAME.match(name):
            raise ConfigError(f"{field}[{j}].name: want a name of letters, digits, '.', '_', '-'")
        try:
            secret = base64.b64decode(str(item.get("secret", "")), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{field}[{j}].secret: not base64") from None
        if len(secret) not in cipher.sizes:
            sizes = " or ".join(str(s) for s in cipher.sizes)
            raise ConfigError(f"{field}[{j}].secret: {cipher.name} wants {sizes} bytes, "
                              f"got {len(secret)}")
        keys.append(_Key(cipher(secret), name))
    return keys

