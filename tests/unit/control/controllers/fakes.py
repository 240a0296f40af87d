"""Fakes for controller unit tests: a recording RestClient, filled caches, a clock."""

import itertools
import threading

from control.client import AlreadyExists, NotFound, Store, namespace_index, object_key


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class FakeInformer:
    """An informer whose cache is filled by the test; handlers are kept for calling."""

    def __init__(self, objects=()):
        self.store = Store()
        self.store.add_index("namespace", namespace_index)
        self.handlers = []
        for obj in objects:
            self.store._put(object_key(obj), obj)

    def add_handler(self, on_add=None, on_update=None, on_delete=None):
        self.handlers.append((on_add, on_update, on_delete))

    def has_synced(self):
        return True

    def add_index(self, name, func):
        self.store.add_index(name, func)

    def put(self, obj):
        """Cache ``obj`` and call the add or update handlers, as the informer would."""
        old = self.store._put(object_key(obj), obj)
        for on_add, on_update, _ in self.handlers:
            if old is None:
                on_add(obj)
            else:
                on_update(old, obj)

    def remove(self, obj):
        self.store._delete(object_key(obj))
        for _, _, on_delete in self.handlers:
            on_delete(obj)


class FakeRest:
    """Record every write as (verb, resource plural, namespace, name or body, ...).

    ``fail`` maps a verb to a function (the call's arguments) -> exception or None.
    ``objects`` answers ``get``.
    """

    def __init__(self, objects=(), fail=None):
        self.actions = []
        self.objects = {(o["kind"], object_key(o)): o for o in objects}
        self.fail = fail or {}
        self._lock = threading.Lock()
        self._names = itertools.count()

    def _check(self, verb, *args):
        func = self.fail.get(verb)
        exc = func(*args) if func else None
        if exc is not None:
            raise exc

    def get(self, resource, namespace, name):
        obj = self.objects.get((resource.kind, f"{namespace}/{name}"))
        if obj is None:
            raise NotFound(404, "NotFound", name)
        return obj

    def create(self, resource, namespace, body):
        with self._lock:
            self._check("create", body)
            n = next(self._names)
            meta = dict(body["metadata"])
            meta.setdefault("name", meta.get("generateName", "x-") + f"{n:05d}")
            meta.update(uid=f"uid-{meta['name']}", resourceVersion="1", namespace=namespace)
            obj = {**body, "metadata": meta}
            self.actions.append(("create", resource.plural, namespace, obj))
            return obj

    def delete(self, resource, namespace, name, **kwargs):
        with self._lock:
            self._check("delete", name)
            self.actions.append(("delete", resource.plural, namespace, name))

    def patch(self, resource, namespace, name, patch, patch_type="merge", subresource=None):
        with self._lock:
            self._check("patch", name, patch)
            self.actions.append(("patch", resource.plural, namespace, name, patch))
            return None

    def update_status(self, resource, namespace, body):
        with self._lock:
            self._check("update_status", body)
            self.actions.append(("update_status", resource.plural, namespace, body))
            return body

    def verbs(self):
        return [a[0] for a in self.actions]

    def of(self, verb):
        return [a for a in self.actions if a[0] == verb]


def conflict(*args):
    return AlreadyExists(409, "AlreadyExists", "taken")
