"""Resource lists as quota arithmetic sees them: add, subtract, mask, compare, print.

A resource list maps a resource name ("pods", "requests.cpu") to an ``Amount``:
an exact value and whether it prints in binary units, as apimachinery's Quantity
keeps its format. Printing follows Quantity.String(): "500m", "2", "1k",
"128Mi"; a sum takes a binary format from any binary part ("64Mi" + "64Mi" is
"128Mi"), as Kubernetes keeps the format of the quantity first added.
"""

import dataclasses
import math
from fractions import Fraction

from control.objects.quantity import parse_quantity

_DECIMAL_SUFFIXES = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T",
                     15: "P", 18: "E"}
_BINARY_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_BINARY_MARKS = ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei")


def _decimal_text(value):
    """DecimalSI text of ``value``, rounded up to a nano unit as apimachinery rounds."""
    nanos = math.ceil(value * 10**9)
    if nanos == 0:
        return "0"
    mantissa, exponent = nanos, -9
    while mantissa % 10 == 0:
        mantissa, exponent = mantissa // 10, exponent + 1
    while exponent % 3:
        mantissa, exponent = mantissa * 10, exponent - 1
    while exponent > 18:
        mantissa, exponent = mantissa * 1000, exponent - 3
    return f"{mantissa}{_DECIMAL_SUFFIXES[exponent]}"


def format_quantity(value, binary=False):
    """Return Quantity.String() of ``value`` in its format (DecimalSI or BinarySI)."""
    value = Fraction(value)
    if binary and value.denominator == 1 and abs(value) >= 1024:
        number, power = int(value), 0
        while number % 1024 == 0 and power < len(_BINARY_SUFFIXES) - 1:
            number, power = number // 1024, power + 1
        return f"{number}{_BINARY_SUFFIXES[power]}"
    return _decimal_text(value)


@dataclasses.dataclass(frozen=True)
class Amount:
    """One quantity of a resource list: its exact value and its print format."""
    value: Fraction
    binary: bool = False

    @classmethod
    def parse(cls, text):
        """Parse a quantity string (QuantityError if it is not one)."""
        binary = isinstance(text, str) and text.strip().endswith(_BINARY_MARKS)
        return cls(parse_quantity(text), binary)

    def __add__(self, other):
        return Amount(self.value + other.value, self.binary or other.binary)

    def __sub__(self, other):
        return Amount(self.value - other.value, self.binary or other.binary)

    def __str__(self):
        return format_quantity(self.value, self.binary)


ZERO = Amount(Fraction(0))


def parse_list(mapping):
    """Return a resource list from an API map of quantity strings (bad ones are skipped)."""
    result = {}
    for name, text in (mapping or {}).items():
        try:
            result[name] = Amount.parse(text)
        except ValueError:
            continue        # validation refuses these; a stored one is not counted
    return result


def to_api(resources):
    """Return the API map (name -> quantity string) of a resource list."""
    return {name: str(amount) for name, amount in sorted(resources.items())}


def add(left, right):
    """Return left + right, key by key."""
    result = dict(left)
    for name, amount in right.items():
        result[name] = result[name] + amount if name in result else amount
    return result


def subtract_non_negative(left, right):
    """Return left - right, key by key, no value below zero (quota.SubtractWithNonNegativeResult)."""
    result = {}
    for name, amount in left.items():
        diff = amount - right[name] if name in right else amount
        result[name] = diff if diff.value > 0 else Amount(Fraction(0), amount.binary)
    return result


def remove_zeros(resources):
    """Return the entries whose value is not zero."""
    return {name: amount for name, amount in resources.items() if amount.value != 0}


def mask(resources, names):
    """Return only the entries named in ``names``."""
    return {name: amount for name, amount in resources.items() if name in names}


def exceeded(used, hard):
    """Return the names whose ``used`` value is above ``hard`` (only names in both)."""
    return sorted(name for name, amount in used.items()
                  if name in hard and amount.value > hard[name].value)


def pretty(resources):
    """Return "a=1,b=2" sorted by name, as the quota admission plugin prints lists."""
    return ",".join(f"{name}={resources[name]}" for name in sorted(resources))


def equal(left, right):
    """Return whether two resource lists hold the same names and values."""
    return (left.keys() == right.keys()
            and all(left[name].value == right[name].value for name in left))
