"""Components by name: the one registry behaviour every stage's registry shares."""

from __future__ import annotations

from typing import Generic, TypeVar

Spec = TypeVar("Spec")


class Registry(dict, Generic[Spec]):
    """Specs by their ``name``: registering a name twice, an empty or a reserved one raises, and so
    does looking up an unknown or empty name — listing the valid ones. Registration order is the
    order names are listed (and searched) in."""

    def __init__(self, kind: str, reserved: tuple[str, ...] = ()):
        super().__init__()
        self.kind, self.reserved = kind, reserved

    def add(self, spec: Spec) -> Spec:
        name = getattr(spec, "name", "")
        if not name or name in self.reserved or name in self:
            raise ValueError(f"{self.kind} name {name!r} is empty, reserved or already registered.")
        self[name] = spec
        return spec

    def find(self, name: str) -> Spec:
        key = name.strip() if isinstance(name, str) else name
        if not key or key not in self:
            raise ValueError(f"unknown {self.kind} {name!r}; valid: {', '.join(self)}.")
        return self[key]
