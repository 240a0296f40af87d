"""Hold an informer's objects by key, with secondary indexes (client-go's Indexer).

Keys are ``namespace/name``, or ``name`` for cluster-scoped objects. Only the
informer writes (the underscored methods); everyone else reads, and must treat
what they read as frozen: the objects are shared, not copies.
"""

import threading


class Store:
    """A thread-safe map of key -> object with secondary indexes (client-go's Indexer)."""

    def __init__(self):
        self._lock = threading.RLock()
        self._items = {}
        self._index_funcs = {}
        self._indices = {}       # index name -> value -> set of keys

    def add_index(self, name, func):
        """Index objects by ``func(obj)``: a value, a list of values, or None.

        Objects already held are indexed at once, so a controller may add the
        index it needs to an informer another controller shares.
        """
        with self._lock:
            self._index_funcs[name] = func
            self._indices[name] = {}
            for key, obj in self._items.items():
                for value in self._values(name, obj):
                    self._indices[name].setdefault(value, set()).add(key)

    def has_index(self, name):
        with self._lock:
            return name in self._index_funcs

    def get(self, key):
        """The cached object for ``namespace/name`` (or ``name``), or None. Do not mutate."""
        with self._lock:
            return self._items.get(key)

    def list(self):
        with self._lock:
            return list(self._items.values())

    def keys(self):
        with self._lock:
            return list(self._items)

    def by_index(self, name, value):
        """Objects whose index ``name`` includes ``value``."""
        with self._lock:
            if name not in self._indices:
                raise KeyError(f"no index named {name!r}")
            return [self._items[k] for k in sorted(self._indices[name].get(value, ()))]

    def __len__(self):
        with self._lock:
            return len(self._items)

    # -- used by the informer -----------------------------------------------------
    def _put(self, key, obj):
        with self._lock:
            old = self._items.get(key)
            if old is not None:
                self._unindex(key, old)
            self._items[key] = obj
            self._index(key, obj)
            return old

    def _delete(self, key):
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._unindex(key, old)
            return old

    def _replace(self, items):
        """Swap in a new set of objects; return the old map."""
        with self._lock:
            old = self._items
            self._items = {}
            self._indices = {name: {} for name in self._index_funcs}
            for key, obj in items.items():
                self._items[key] = obj
                self._index(key, obj)
            return old

    def _values(self, name, obj):
        value = self._index_funcs[name](obj)
        if value is None:
            return ()
        return (value,) if isinstance(value, str) or not hasattr(value, "__iter__") else value

    def _index(self, key, obj):
        for name in self._index_funcs:
            for value in self._values(name, obj):
                self._indices[name].setdefault(value, set()).add(key)

    def _unindex(self, key, obj):
        for name in self._index_funcs:
            for value in self._values(name, obj):
                keys = self._indices[name].get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self._indices[name][value]


def namespace_index(obj):
    """The usual index: objects by namespace (client-go's MetaNamespaceIndexFunc)."""
    return obj.get("metadata", {}).get("namespace", "")
