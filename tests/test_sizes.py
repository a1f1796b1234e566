"""The one size parser (cache/sizes.py): Kubernetes quantities, M = 10**6 and Mi = 2**20."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlbuild.cache.sizes import parse_size
from mlbuild.remote.resources import memory_bytes

DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
UNITS = {"": 1, **DECIMAL, **BINARY}


def test_the_convention() -> None:
    assert parse_size("500M") == 500_000_000
    assert parse_size("500Mi") == 500 * 2**20 == 524_288_000
    assert parse_size("1.5GiB") == 3 * 2**29
    assert parse_size("10G") == parse_size("10g") == parse_size("10GB") == 10 * 10**9
    assert parse_size("1024") == parse_size(1024) == 1024
    assert parse_size("0") == 0  # `cache gc --max-size 0` empties the cache


@given(st.integers(0, 10**6), st.sampled_from(sorted(UNITS)), st.sampled_from(["", "B", "b"]), st.booleans(), st.booleans())
def test_whole_numbers_are_exact(n: int, unit: str, b: str, space: bool, case: bool) -> None:
    text = f"{n}{' ' if space else ''}{unit.upper() if case else unit}{b if unit or b != 'b' else ''}"
    assert parse_size(text) == n * UNITS[unit]


@given(st.integers(1, 10**6), st.sampled_from(["k", "M", "G", "T", "P", "E"]))
def test_binary_is_larger_than_decimal(n: int, unit: str) -> None:
    assert parse_size(f"{n}{unit}i") > parse_size(f"{n}{unit}")


@given(st.text(max_size=12))
def test_anything_else_is_a_value_error_or_a_size(text: str) -> None:
    try:
        value = parse_size(text)
    except ValueError as exc:
        assert "not a quantity like" in str(exc)
    else:
        assert isinstance(value, int) and value >= 0


@pytest.mark.parametrize("bad", ["lots", "-5M", "5X", "M", "5 M i", "1e3", ""])
def test_bad_sizes_name_what_was_being_read(bad: str) -> None:
    with pytest.raises(ValueError, match=f"bad memory {bad!r}"):
        parse_size(bad, "memory")


def test_memory_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        memory_bytes("0Mi")
    assert memory_bytes(None) is None and memory_bytes("4Gi") == 4 * 2**30
