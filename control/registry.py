"""Objects in the store: keys, resourceVersions, optimistic concurrency, lists, watches.

The only module of control/ that talks to the store, and only through
``store.client``. An object lives at ``/registry/<group>/<plural>/<ns>/<name>``
(the core group has no group segment; cluster-scoped kinds have no namespace) as
JSON without its resourceVersion: ``metadata.resourceVersion`` is the key's
mod_revision, so it can never disagree with the store. Every write is a txn that
compares the revision the caller read, which is how a stale update becomes a 409.

Values turn into store bytes only here, so encryption at rest hooks in here too:
given an ``encryption`` config (control/api/encryption.py; anything with
``transformer_for(group, plural)``), the resources it lists are encrypted on
every write and decrypted on every read, watches included.
"""

import base64
import binascii
import json
import logging

from control import errors
from store.client import Compacted, StoreError, Unavailable, prefix_end

PREFIX = b"/registry/"

log = logging.getLogger("steer.registry")


def resource_prefix(resource, namespace=None):
    """Key prefix of one resource, optionally within one namespace."""
    parts = [resource.group] if resource.group else []
    parts.append(resource.plural)
    if namespace:
        parts.append(namespace)
    return PREFIX + "/".join(parts).encode() + b"/"


def object_key(resource, namespace, name):
    if resource.namespaced:
        return resource_prefix(resource, namespace) + name.encode()
    return resource_prefix(resource) + name.encode()


def _decode(kv):
    obj = json.loads(kv["value"])
    obj.setdefault("metadata", {})["resourceVersion"] = str(kv["mod_revision"])
    return obj


def _encode(obj):
    stored = dict(obj)
    stored["metadata"] = {k: v for k, v in obj.get("metadata", {}).items()
                          if k != "resourceVersion"}
    return json.dumps(stored, separators=(",", ":"), sort_keys=True).encode()


def _revision(text, what="resourceVersion"):
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise errors.BadRequest(f"{what} {text!r} is not a valid resource version") from None
    if value < 0:
        raise errors.BadRequest(f"{what} {text!r} is not a valid resource version")
    return value


def _store_call(call, *args, **kwargs):
    """Run a store call, turning store failures into API errors."""
    try:
        return call(*args, **kwargs)
    except Compacted as exc:
        raise errors.Gone(f"too old resource version: {exc.message}") from None
    except Unavailable as exc:
        raise errors.ServiceUnavailable(f"the store is unavailable: {exc.message}",
                                        retry_after=1) from None
    except StoreError as exc:
        raise errors.ApiError(f"store error ({exc.code}): {exc.message}") from None


class CheckedStore:
    """The store's get and txn, with store failures turned into API errors.

    For keys that are not objects, such as the allocators' claims.
    """

    def __init__(self, store):
        self.store = store

    def get(self, *args, **kwargs):
        return _store_call(self.store.get, *args, **kwargs)

    def txn(self, *args, **kwargs):
        return _store_call(self.store.txn, *args, **kwargs)


class _DecryptedWatch:
    """A store watch whose events carry decrypted values (what watch_event reads)."""

    def __init__(self, watch, transformer):
        self._watch, self._transformer = watch, transformer

    def next_event(self, timeout=None):
        """The next event, decrypted; None on timeout or for an event no key decrypts.

        An undecryptable event is logged and skipped rather than ending the watch
        (and with it the watch cache every client shares); reading that object
        reports the same error.
        """
        event = self._watch.next_event(timeout=timeout)
        if event is None:
            return None
        event = dict(event)
        for field in ("kv", "prev_kv"):
            kv = event.get(field)
            if kv and kv.get("value"):
                try:
                    value = self._transformer.decrypt(kv["value"], kv["key"])
                except errors.ApiError as exc:
                    log.error("event=watch_decrypt_failed revision=%s error=%r",
                              kv.get("mod_revision"), exc.message)
                    return None
                event[field] = {**kv, "value": value}
        return event

    def __iter__(self):
        while True:
            yield self.next_event()

    def __getattr__(self, name):
        return getattr(self._watch, name)      # revision, cancel, ...


class Registry:
    """Create, read, update, delete, list and watch objects of any resource."""

    def __init__(self, store, encryption=None):
        self.store = store
        self.encryption = encryption

    def _transformer(self, resource):
        if self.encryption is None:
            return None
        return self.encryption.transformer_for(resource.group, resource.plural)

    def _encode(self, resource, key, obj):
        """The bytes stored for ``obj`` at ``key`` (encrypted if its resource is).

        A custom object is kept in its CRD's storage version (conversion None: only
        the apiVersion changes) and read back in the version asked for.
        """
        if resource.custom is not None:
            obj = {**obj, "apiVersion": resource.custom.storage_api_version}
        data = _encode(obj)
        transformer = self._transformer(resource)
        return transformer.encrypt(data, key) if transformer else data

    def _decode(self, resource, kv):
        transformer = self._transformer(resource)
        if transformer:
            kv = {**kv, "value": transformer.decrypt(kv["value"], kv["key"])}
        obj = _decode(kv)
        if resource.custom is not None:
            obj["apiVersion"] = resource.api_version
        return obj

    def checked_store(self):
        """Return the store itself, for keys that are not objects (with API errors)."""
        return CheckedStore(self.store)

    def get(self, resource, namespace, name):
        result = _store_call(self.store.get, object_key(resource, namespace, name))
        if not result["kvs"]:
            raise errors.not_found(resource, name)
        return self._decode(resource, result["kvs"][0])

    def create(self, resource, obj):
        """Store a new object; AlreadyExists if the name is taken."""
        meta = obj["metadata"]
        key = object_key(resource, meta.get("namespace"), meta["name"])
        result = _store_call(self.store.txn,
                             compare=[{"key": key, "target": "create", "result": "==", "value": 0}],
                             success=[{"op": "put", "key": key,
                                       "value": self._encode(resource, key, obj)}])
        if not result["succeeded"]:
            raise errors.AlreadyExists(f'{resource.qualified} "{meta["name"]}" already exists',
                                       name=meta["name"], kind=resource.plural, group=resource.group)
        return self._with_revision(obj, result["revision"])

    def update(self, resource, obj):
        """Replace an object if it still has the resourceVersion the caller read."""
        meta = obj["metadata"]
        key = object_key(resource, meta.get("namespace"), meta["name"])
        expected = _revision(meta.get("resourceVersion"))
        result = _store_call(
            self.store.txn,
            compare=[{"key": key, "target": "mod", "result": "==", "value": expected}],
            success=[{"op": "put", "key": key, "value": self._encode(resource, key, obj)}],
            failure=[{"op": "range", "key": key}])
        if not result["succeeded"]:
            current = result["responses"][0]["kvs"]
            if not current:
                raise errors.not_found(resource, meta["name"])
            raise self._conflict(resource, meta["name"])
        return self._with_revision(obj, result["revision"])

    def delete(self, resource, namespace, name, expected_revision=None):
        """Delete an object (at a revision, if given); return it as it was last stored."""
        key = object_key(resource, namespace, name)
        compare = []
        if expected_revision is not None:
            compare = [{"key": key, "target": "mod", "result": "==", "value": expected_revision}]
        result = _store_call(self.store.txn, compare=compare,
                             success=[{"op": "delete", "key": key, "prev_kv": True}],
                             failure=[{"op": "range", "key": key}])
        if not result["succeeded"]:
            if not result["responses"][0]["kvs"]:
                raise errors.not_found(resource, name)
            raise self._conflict(resource, name)
        previous = result["responses"][0]["prev_kvs"]
        if not previous:
            raise errors.not_found(resource, name)
        return self._decode(resource, previous[0])

    def list(self, resource, namespace=None, limit=0, continue_token=None, revision=0):
        """List objects; return (items, list revision, continue token or None)."""
        start = resource_prefix(resource, namespace)
        end = prefix_end(start)
        if continue_token:
            revision, start = self._parse_continue(continue_token, start, end)
        result = _store_call(self.store.get, start, range_end=end, revision=revision,
                             limit=limit + 1 if limit else 0)
        kvs = result["kvs"]
        list_revision = result["revision"]
        token = None
        if limit and len(kvs) > limit:
            kvs = kvs[:limit]
            token = self._make_continue(list_revision, kvs[-1]["key"] + b"\0")
        return [self._decode(resource, kv) for kv in kvs], list_revision, token

    def ready(self, timeout):
        """Raise unless the store answers a status request within ``timeout`` seconds."""
        self.store.status(timeout=timeout)

    def watch(self, resource, namespace=None, since=0):
        """Open a store watch on a resource; see ``watch_events`` to read it."""
        start = resource_prefix(resource, namespace)
        watch = _store_call(self.store.watch, start, range_end=prefix_end(start),
                            start_revision=since + 1 if since else 0, prev_kv=True)
        transformer = self._transformer(resource)
        return _DecryptedWatch(watch, transformer) if transformer else watch

    # -- helpers --------------------------------------------------------------------
    @staticmethod
    def _with_revision(obj, revision):
        obj = dict(obj)
        obj["metadata"] = {**obj["metadata"], "resourceVersion": str(revision)}
        return obj

    @staticmethod
    def _conflict(resource, name):
        return errors.Conflict(
            f'Operation cannot be fulfilled on {resource.qualified} "{name}": the object has '
            "been modified; please apply your changes to the latest version and try again",
            name=name, kind=resource.plural, group=resource.group)

    @staticmethod
    def _make_continue(revision, next_key):
        token = {"rv": revision, "start": base64.b64encode(next_key).decode()}
        return base64.urlsafe_b64encode(json.dumps(token).encode()).decode()

    @staticmethod
    def _parse_continue(token, start, end):
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode()))
            key = base64.b64decode(data["start"])
            revision = int(data["rv"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise errors.BadRequest("invalid continue token: use the one the last list "
                                    "returned, unchanged") from None
        if not start <= key < end:
            raise errors.BadRequest("the continue token belongs to a different list")
        return revision, key


def watch_event(event):
    """Translate a store event into a Kubernetes watch event (type, object)."""
    kv = event["kv"]
    if event["type"] == "delete":
        previous = event.get("prev_kv")
        obj = _decode(previous) if previous else {"metadata": {}}
        obj["metadata"]["resourceVersion"] = str(kv["mod_revision"])
        return "DELETED", obj
    kind = "ADDED" if kv["create_revision"] == kv["mod_revision"] else "MODIFIED"
    return kind, _decode(kv)
