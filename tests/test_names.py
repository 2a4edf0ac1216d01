"""The registry behaviour every stage shares (each stage's tests check its own registry uses it)."""

from dataclasses import dataclass

import pytest

from selector.names import Registry


@dataclass(frozen=True)
class Thing:
    name: str


def test_names_are_registered_once_and_lookups_are_strict():
    things = Registry("thing", reserved=("all",))
    first = things.add(Thing("a"))
    things.add(Thing("b"))
    assert things.find("a") is first and things.find(" b ") is things["b"] and list(things) == ["a", "b"]
    for name in ("a", "", "all"):
        with pytest.raises(ValueError, match=f"thing name '{name}' is empty, reserved or already registered"):
            things.add(Thing(name))
    assert things.find("a") is first  # the failed registration replaced nothing
    for name in ("c", "", "  ", None):
        with pytest.raises(ValueError, match=r"unknown thing .*; valid: a, b\."):
            things.find(name)
