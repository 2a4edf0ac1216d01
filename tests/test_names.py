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


def _registries():
    from selector.stages import clusterers
    from selector.stages.clustering import CLUSTERERS, ClustererSpec, OwnPredict
    from selector.stages.encoders import ENCODERS, EncoderSpec
    from selector.stages.objective import OBJECTIVES, ObjectiveSpec
    from selector.stages.reduction import REDUCERS, ReducerSpec

    return {
        "clusterer": (CLUSTERERS, lambda name: ClustererSpec(name, clusterers.KMeansClusterer.build, clusterers.KMeansClusterer.suggest,
                                                             OwnPredict())),
        "reducer": (REDUCERS, lambda name: ReducerSpec(name, REDUCERS["pca"].build, REDUCERS["pca"].suggest)),
        "objective": (OBJECTIVES, lambda name: ObjectiveSpec(name, lambda *a: None, "")),
        "encoder": (ENCODERS, lambda name: EncoderSpec(name, "images", ENCODERS["raw"].build, ENCODERS["raw"].config)),
    }


@pytest.mark.parametrize("kind", ["clusterer", "reducer", "objective", "encoder"])
def test_every_stage_registry_refuses_a_second_name_and_lists_the_valid_ones(kind):
    """One check over the stages' real registries (each is a ``Registry``): a name is registered once,
    and an unknown or empty name is answered with every valid one."""
    registry, make = _registries()[kind]
    before = dict(registry)
    for name in (next(iter(registry)), ""):
        with pytest.raises(ValueError, match="is empty, reserved or already registered"):
            registry.add(make(name))
    assert dict(registry) == before
    for name in ("no-such-name", "", None):
        with pytest.raises(ValueError, match=rf"unknown {kind} .*; valid: {', '.join(registry)}\."):
            registry.find(name)
