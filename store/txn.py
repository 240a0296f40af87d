"""Validate command shapes and evaluate txn compares, without touching any state.

Everything here either returns a normalised copy of its input or raises
``CommandError``; the machine only mutates state once validation has passed, so a
bad command can never leave it half applied.
"""

import operator

from store.mvcc import CREATE, LEASE, MOD, VALUE, VERSION, in_bounds, key_bounds

MAX_VALUE_BYTES = 1 << 20

_TARGETS = {"value": VALUE, "version": VERSION, "create": CREATE, "mod": MOD, "lease": LEASE}
_RESULTS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt}


class CommandError(Exception):
    """Carry an error result (code, message, extra fields) out of validation."""

    def __init__(self, code: str, message: str, **extra) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra

    def result(self) -> dict:
        """Return the error result dict of the spec."""
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


def invalid(message: str) -> CommandError:
    """Make an ``invalid`` error."""
    return CommandError("invalid", message)


def is_int(value) -> bool:
    """Tell whether ``value`` is an int; bools are refused because True == 1 hides bugs."""
    return isinstance(value, int) and not isinstance(value, bool)


def require_int(fields: dict, name: str, where: str, minimum: int = 0, default=None) -> int:
    """Return ``fields[name]`` if it is an int >= ``minimum``, else raise ``invalid``."""
    value = fields.get(name, default)
    if not is_int(value) or value < minimum:
        raise invalid(f"{where}: '{name}' must be an int >= {minimum}, got {value!r}")
    return value


def require_bytes(fields: dict, name: str, where: str, optional: bool = False):
    """Return ``fields[name]`` if it is bytes (or None when optional), else raise."""
    value = fields.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, bytes):
        kind = "bytes or None" if optional else "bytes"
        raise invalid(f"{where}: '{name}' must be {kind}, got {type(value).__name__}; "
                      f"encode text keys and values with .encode()")
    return value


def require_bool(fields: dict, name: str, where: str) -> bool:
    """Return ``fields[name]`` (default False) if it is a bool, else raise ``invalid``."""
    value = fields.get(name, False)
    if not isinstance(value, bool):
        raise invalid(f"{where}: '{name}' must be True or False, got {value!r}")
    return value


def require_str(fields: dict, name: str, where: str) -> str:
    """Return ``fields[name]`` if it is a str, else raise ``invalid``."""
    value = fields.get(name)
    if not isinstance(value, str):
        raise invalid(f"{where}: '{name}' must be a str, got {value!r}")
    return value


def check_range_args(key, range_end, limit, keys_only, count_only, where: str) -> dict:
    """Validate the arguments of a range and return them as a dict."""
    fields = {"key": key, "range_end": range_end, "limit": limit,
              "keys_only": keys_only, "count_only": count_only}
    return {
        "op": "range",
        "key": require_bytes(fields, "key", where),
        "range_end": require_bytes(fields, "range_end", where, optional=True),
        "limit": require_int(fields, "limit", where),
        "keys_only": require_bool(fields, "keys_only", where),
        "count_only": require_bool(fields, "count_only", where),
    }


def _check_put(op: dict, where: str) -> dict:
    key = require_bytes(op, "key", where)
    if not key:
        raise invalid(f"{where}: 'key' must not be empty; etcd refuses empty keys too")
    value = require_bytes(op, "value", where)
    if len(value) > MAX_VALUE_BYTES:
        raise CommandError("value_too_large",
                           f"{where}: value of {len(value)} bytes is over the "
                           f"{MAX_VALUE_BYTES}-byte limit; store large data elsewhere")
    return {"op": "put", "key": key, "value": value,
            "lease": require_int(op, "lease", where, default=0),
            "prev_kv": require_bool(op, "prev_kv", where)}


def _check_delete(op: dict, where: str) -> dict:
    return {"op": "delete", "key": require_bytes(op, "key", where),
            "range_end": require_bytes(op, "range_end", where, optional=True),
            "prev_kv": require_bool(op, "prev_kv", where)}


def _check_range(op: dict, where: str) -> dict:
    return check_range_args(op.get("key"), op.get("range_end"), op.get("limit", 0),
                            op.get("keys_only", False), op.get("count_only", False), where)


_OP_CHECKS = {"put": _check_put, "delete": _check_delete, "range": _check_range}


def check_op(op, where: str) -> dict:
    """Validate one txn op and return it with every default filled in."""
    if not isinstance(op, dict):
        raise invalid(f"{where}: an op must be a dict like {{'op': 'put', ...}}, got {op!r}")
    name = op.get("op")
    if not isinstance(name, str):
        raise invalid(f"{where}: 'op' must be a str naming the op, got {name!r}")
    check = _OP_CHECKS.get(name)
    if check is None:
        raise CommandError("unknown_op", f"{where}: unknown op {name!r}; "
                           f"use one of {sorted(_OP_CHECKS)}")
    return check(op, where)


def check_compare(compare, where: str) -> dict:
    """Validate one compare and return a normalised copy."""
    if not isinstance(compare, dict):
        raise invalid(f"{where}: a compare must be a dict, got {compare!r}")
    target, result = compare.get("target"), compare.get("result")
    if target not in _TARGETS:
        raise invalid(f"{where}: 'target' must be one of {sorted(_TARGETS)}, got {target!r}")
    if result not in _RESULTS:
        raise invalid(f"{where}: 'result' must be one of {sorted(_RESULTS)}, got {result!r}")
    key = require_bytes(compare, "key", where)
    if target == "value":
        value = require_bytes(compare, "value", where)
    else:
        value = require_int(compare, "value", where, minimum=-(1 << 63))
    return {"key": key, "target": target, "result": result, "value": value}


def _check_list(command: dict, name: str) -> list:
    value = command.get(name, [])
    if not isinstance(value, list):
        raise invalid(f"txn: '{name}' must be a list, got {type(value).__name__}")
    return value


def check_txn(command: dict) -> tuple[list, list, list]:
    """Validate a whole txn (both branches) and return (compares, success, failure)."""
    compares = [check_compare(c, f"txn compare[{i}]")
                for i, c in enumerate(_check_list(command, "compare"))]
    branches = []
    for name in ("success", "failure"):
        ops = [check_op(op, f"txn {name}[{i}]")
               for i, op in enumerate(_check_list(command, name))]
        check_single_write(ops, name)
        branches.append(ops)
    return compares, branches[0], branches[1]


def check_single_write(ops: list, branch: str) -> None:
    """Refuse a branch that writes a key twice, as etcd does.

    Like etcd, two puts of one key and a put inside a deleted range are refused;
    overlapping deletes are allowed (the second simply finds nothing left).
    """
    put_keys = set()
    for op in ops:
        if op["op"] == "put":
            if op["key"] in put_keys:
                raise invalid(f"txn {branch}: duplicate key given in txn request: "
                              f"{op['key']!r} is put twice; merge the puts into one")
            put_keys.add(op["key"])
    for op in ops:
        if op["op"] == "delete":
            low, high = key_bounds(op["key"], op["range_end"])
            clash = sorted(k for k in put_keys if in_bounds(k, low, high))
            if clash:
                raise invalid(f"txn {branch}: duplicate key given in txn request: "
                              f"{clash[0]!r} is both put and deleted; drop one of the ops")


def compare_holds(compare: dict, current: tuple | None) -> bool:
    """Evaluate a compare against the key's current version (None if missing)."""
    target = compare["target"]
    if current is None:
        if target == "value":
            return False  # etcd: a value compare on a missing key is always false
        actual = 0
    else:
        actual = current[_TARGETS[target]]
    return _RESULTS[compare["result"]](actual, compare["value"])
