"""LruDict keeps the most recently used entries up to its size."""

import pytest

from appliance.util.lru import LruDict


def test_the_least_recently_used_entry_goes_first() -> None:
    cache: LruDict[str, int] = LruDict(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert "b" not in cache
    assert cache.get("a") == 1 and cache.get("c") == 3
    assert len(cache) == 2


def test_falsy_values_are_kept_and_pop_forgets() -> None:
    cache: LruDict[str, str] = LruDict(4)
    cache.put("none", "")
    assert cache.get("none") == ""
    assert cache.get("missing") is None
    assert cache.pop("none") == ""
    assert "none" not in cache


def test_a_cache_needs_room() -> None:
    with pytest.raises(ValueError):
        LruDict(0)


def test_setdefault_keeps_the_first_value_and_evicts() -> None:
    cache: LruDict[str, int] = LruDict(2)
    assert cache.setdefault("a", 1) == 1
    assert cache.setdefault("a", 9) == 1
    cache.put("b", 2)
    cache.setdefault("c", 3)
    assert "a" not in cache and len(cache) == 2
