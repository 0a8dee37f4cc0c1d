"""A system library the kit opens through ctypes: once, on first use, under a lock; a missing
one is one :class:`HostError` saying what the kit needs it for and how to install it."""
from __future__ import annotations

import ctypes as ct
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from ..errors import HostError

T = TypeVar("T")


class LazyLibrary(Generic[T]):
    """``get()`` -> ``prepare(opener())``, computed once (``prepare`` declares the prototypes)."""

    def __init__(self, name: str, soname: str, *, needed_for: str, hint: str,
                 opener: Callable[[], ct.CDLL], prepare: Callable[[ct.CDLL], T]):
        self.name, self.soname, self.needed_for, self.hint = name, soname, needed_for, hint
        self._opener, self._prepare = opener, prepare
        self._lock = threading.Lock()
        self._value: T | None = None

    def get(self) -> T:
        value = self._value
        if value is not None:
            return value
        with self._lock:
            if self._value is None:
                try:
                    handle = self._opener()
                except OSError as err:
                    raise HostError(f"{self.name} ({self.soname}) is not installed: "
                                    f"{self.needed_for}", hint=self.hint) from err
                self._value = self._prepare(handle)
            return self._value
