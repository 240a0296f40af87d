"""Parse Kubernetes resource quantities ("100m", "1.5", "128Mi", "1G", "1e3").

A quantity is a signed decimal number followed by a suffix: a binary SI suffix
(Ki, Mi, Gi, Ti, Pi, Ei), a decimal SI suffix (n, u, m, "", k, M, G, T, P, E) or a
decimal exponent (e3, E-2). Values are kept exact as ``Fraction`` so that "0.1"
plus "0.2" is "0.3"; ``milli_value`` and ``value`` round up, as apimachinery's
``MilliValue`` and ``Value`` do, so a request is never under-counted.
"""

import functools
import math
import re
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": 1,
            "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
# apimachinery's grammar: <sign><digits>[.<digits>]<suffix>, where a number may
# also be ".5" or "5." and the suffix may be an exponent.
_QUANTITY = re.compile(r"([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
                       r"(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?")


#: Bounds of a number this server computes with (far beyond any real resource amount).
MAX_DIGITS, MAX_EXPONENT = 256, 256


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


class QuantityTooLarge(QuantityError):
    """A quantity beyond MAX_DIGITS or MAX_EXPONENT (the schema's pattern accepts it)."""


def parse_quantity(text):
    """Return the exact value of a quantity string (or an int/float) as a Fraction."""
    if isinstance(text, bool):
        raise QuantityError(f"quantities must be strings or numbers, not {text!r}")
    if isinstance(text, (int, float)):
        # JSON may carry a bare number, which the API server accepts as a quantity.
        return Fraction(text)
    if not isinstance(text, str):
        raise QuantityError(f"quantities must be strings or numbers, not {text!r}")
    return _parse_string(text)


@functools.lru_cache(maxsize=4096)
def _parse_string(text):
    # Cached: a scheduler parses the same few request strings for every node it weighs.
    match = _QUANTITY.fullmatch(text.strip())
    if not match:
        raise QuantityError(f"quantities must match the regular expression "
                            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {text!r}")
    sign, number, suffix = match.groups()
    suffix = suffix or ""
    exponent = suffix not in _BINARY and suffix not in _DECIMAL
    if len(number) > MAX_DIGITS or (exponent and abs(int(suffix[1:])) > MAX_EXPONENT):
        # 10**999999999 would take minutes to compute: a hostile body must not.
        raise QuantityTooLarge(f"quantity too large or too precise: at most {MAX_DIGITS} digits "
                            f"and an exponent within +-{MAX_EXPONENT}: {text[:40]!r}")
    value = Fraction(number if not number.endswith(".") else number[:-1])
    if suffix in _BINARY:
        value *= _BINARY[suffix]
    elif suffix in _DECIMAL:
        value *= _DECIMAL[suffix]
    else:
        value *= Fraction(10) ** int(suffix[1:])
    return -value if sign == "-" else value


def milli_value(text):
    """Return a quantity in thousandths, rounded up (cpu "100m" -> 100, "1" -> 1000)."""
    return math.ceil(parse_quantity(text) * 1000)


def value(text):
    """Return a quantity as an integer, rounded up (memory "1Ki" -> 1024, "0.5" -> 1)."""
    return math.ceil(parse_quantity(text))
