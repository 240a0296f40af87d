"""Kubernetes quantities parse as apimachinery's resource.Quantity does."""

from fractions import Fraction

import pytest

from control.objects.quantity import QuantityError, milli_value, parse_quantity, value


@pytest.mark.parametrize("text, expected", [
    ("0", 0), ("1", 1), ("0.5", Fraction(1, 2)), (".5", Fraction(1, 2)), ("5.", 5),
    ("100m", Fraction(1, 10)), ("1500m", Fraction(3, 2)), ("250u", Fraction(1, 4000)),
    ("3n", Fraction(3, 10**9)), ("500k", 500_000), ("1M", 10**6), ("1G", 10**9),
    ("2T", 2 * 10**12), ("1P", 10**15), ("1E", 10**18),
    ("1Ki", 1024), ("128Mi", 128 * 2**20), ("1Gi", 2**30), ("1.5Gi", 3 * 2**29),
    ("1Ti", 2**40), ("1Pi", 2**50), ("1Ei", 2**60),
    ("1e3", 1000), ("1E3", 1000), ("12e-1", Fraction(6, 5)), ("1e+2", 100),
    ("+2", 2), ("-100m", Fraction(-1, 10)), (" 2 ", 2), (3, 3), (0.25, Fraction(1, 4)),
])
def test_parse(text, expected):
    assert parse_quantity(text) == expected


@pytest.mark.parametrize("text", ["", "m", "1.2.3", "1 Mi", "1mi", "1KiB", "abc", "1K",
                                  "--1", "1e", None, True, [1]])
def test_rejects(text):
    with pytest.raises(QuantityError):
        parse_quantity(text)


@pytest.mark.parametrize("text, millis", [("100m", 100), ("1", 1000), ("0.5", 500),
                                          ("2", 2000), ("1n", 1), ("1.0001", 1001)])
def test_milli_value_rounds_up(text, millis):
    assert milli_value(text) == millis


@pytest.mark.parametrize("text, units", [("1Ki", 1024), ("0.5", 1), ("100m", 1),
                                         ("4Gi", 4 * 2**30), ("110", 110)])
def test_value_rounds_up(text, units):
    assert value(text) == units
