"""Named plug-ins (signals, defenses): a class registers under its `name`, config picks it by name."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T", bound=type[Any])


class Registry(dict[str, T], Generic[T]):
    """A name -> class map whose `register` is the class decorator; a name can be taken once.

    `names`, when given, are the only names a class may take (e.g. the actions of `cuirass.actions`), so
    the registry cannot drift from the one list of names."""

    def __init__(self, kind: str, names: Iterable[str] | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.names = None if names is None else tuple(names)

    def register(self, cls: T) -> T:
        if cls.name in self:
            raise ValueError(f"{self.kind} {cls.name!r} registered twice")
        if self.names is not None and cls.name not in self.names:
            raise ValueError(f"{self.kind} {cls.name!r} is not one of the names it may take: {', '.join(self.names)}")
        self[cls.name] = cls
        return cls
