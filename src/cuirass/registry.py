"""Named plug-ins (signals, defenses): a class registers under its `name`, config picks it by name."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

T = TypeVar("T", bound=type[Any])


class Registry(dict[str, T], Generic[T]):
    """A name -> class map whose `register` is the class decorator; a name can be taken once."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, cls: T) -> T:
        if cls.name in self:
            raise ValueError(f"{self.kind} {cls.name!r} registered twice")
        self[cls.name] = cls
        return cls
