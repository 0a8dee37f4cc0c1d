"""Named programs of a session: a re-run replaces, ``detach_all`` releases everything.

Plain Python with no IPython: the magics keep one :class:`Registry`; scripts may keep their own.
"""
from __future__ import annotations

import atexit
import weakref
from collections.abc import Callable, Iterator

from .program import Program

_live: weakref.WeakSet[Registry] = weakref.WeakSet()


class Registry:
    """Programs by name. ``replace`` detaches the old program of that name first."""

    def __init__(self) -> None:
        self._programs: dict[str, Program] = {}
        _live.add(self)

    def replace(self, name: str, build: Callable[[], Program]) -> Program:
        """Detach the program called ``name`` (if any), then build and register the new one."""
        self.detach(name)
        program = build()
        self._programs[name] = program
        return program

    def detach(self, name: str) -> bool:
        """Detach and forget ``name``; False when there was no such program."""
        program = self._programs.pop(name, None)
        if program is None:
            return False
        program.detach()
        return True

    def detach_all(self) -> list[str]:
        """Detach every program; return their names."""
        names = list(self._programs)
        for name in names:
            self.detach(name)
        return names

    def get(self, name: str) -> Program | None:
        return self._programs.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._programs

    def __iter__(self) -> Iterator[Program]:
        return iter(list(self._programs.values()))

    def __len__(self) -> int:
        return len(self._programs)


@atexit.register
def _detach_everything() -> None:
    for registry in list(_live):
        registry.detach_all()
