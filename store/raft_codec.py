"""Encode what PySyncObj pickles (log entries, membership changes, dump state) as msgpack.

PySyncObj pickles every log entry and unpickles it on every member that applies
it, so a peer's bytes would reach ``pickle.loads``. ``store.pysyncobj_compat``
puts ``EntryCodec`` in place of PySyncObj's pickle module: new entries are a
0xC1 byte (never the start of a pickle, and unused by msgpack) and msgpack, and
decode to the tuples PySyncObj built (``use_list=False``). A node object becomes
its address; PySyncObj turns an address back into a node itself.

Entries written before this codec (an upgraded member's journal, an old dump)
are pickles. They are read by ``SafeUnpickler``, which resolves no global but
PySyncObj's node classes and the latin-1 bytes helper of protocol 2 pickles: a
pickle that names anything else (``os.system``...) fails to load instead of
running. Members on this codec cannot exchange entries with members before it.
"""

import io
import pickle

import msgpack

MAGIC = b"\xc1"


class UnsafePickle(pickle.UnpicklingError):
    """A legacy pickle named a global outside the short allow-list."""


def _latin1_bytes(text, encoding="latin1"):
    """Stand-in for ``_codecs.encode`` as protocol 2 pickles use it for bytes."""
    if encoding != "latin1" or not isinstance(text, str):
        raise UnsafePickle(f"_codecs.encode with {encoding!r} is not allowed")
    return text.encode("latin1")


class SafeUnpickler(pickle.Unpickler):
    """Unpickle plain data and the allowed classes only; any other global is refused."""

    allowed = {}          # (module, name) -> object, filled by pysyncobj_compat

    def find_class(self, module, name):
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise UnsafePickle(f"refusing to unpickle {module}.{name}: a log entry or dump "
                               f"may hold only plain data") from None


def safe_loads(data):
    return SafeUnpickler(io.BytesIO(data)).load()


class EntryCodec:
    """PySyncObj's ``pysyncobj.pickle`` interface (dumps/loads/to_bytes), in msgpack."""

    node_types = ()       # PySyncObj's node classes, encoded as their id (address)

    @classmethod
    def _plain(cls, obj):
        if isinstance(obj, cls.node_types):
            return obj.id
        if isinstance(obj, (list, tuple)):
            return [cls._plain(item) for item in obj]
        if isinstance(obj, (set, frozenset)):
            return sorted(cls._plain(item) for item in obj)
        if isinstance(obj, dict):
            return {key: cls._plain(value) for key, value in obj.items()}
        return obj

    @classmethod
    def dumps(cls, obj, protocol=None):
        return MAGIC + msgpack.packb(cls._plain(obj), use_bin_type=True)

    @staticmethod
    def loads(data):
        data = EntryCodec.to_bytes(data)
        if data[:1] == MAGIC:
            return msgpack.unpackb(memoryview(data)[1:], raw=False, use_list=False,
                                   strict_map_key=False)
        return safe_loads(data)

    @staticmethod
    def to_bytes(data):
        return data if isinstance(data, bytes) else bytes(data)
