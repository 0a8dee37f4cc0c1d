"""One reader per buffer map in this process: a second one is refused with a clear error.

Two readers on one map corrupt each other. A perf reader stores its own event fd in every CPU's
slot of the map, so a second reader takes the slots over (and empties them when it closes): the
first silently receives nothing more. Two ring readers both store ``consumer_pos``, which can
move it backwards (records read twice) or into the middle of a record.

Maps are told apart by their kernel id: a reader holds a duplicate of the map's fd, so the map,
and with it its id, lives as long as the reader. Other processes (and BCC's own
``open_perf_buffer``/``open_ring_buffer``) are not seen.
"""
from __future__ import annotations

import threading

from ..errors import UsageError
from .maps import MapInfo

_lock = threading.Lock()
_readers: dict[int, str] = {}  # map id -> the kind of reader that has it ("perf", "ring")

_WHY = {
    "perf": "a second perf reader would take over the map's per-CPU slots and the first "
            "would stop receiving events",
    "ring": "two ring readers would move the consumer position under each other "
            "(events read twice, or a reader stuck mid-record)",
}


class ReaderClaim:
    """The right to read one buffer map; :meth:`release` it when the reader closes."""

    def __init__(self, info: MapInfo, kind: str):
        with _lock:
            if info.id in _readers:
                raise UsageError(
                    f"map {info.name!r} already has an open {_readers[info.id]} reader: "
                    f"{_WHY[kind]}",
                    hint="close the first reader (the stream's close(), or the live view's "
                         "close()) before opening another, or keep reading from it")
            _readers[info.id] = kind
        self.map_id: int | None = info.id

    def release(self) -> None:
        """Let another reader open the map; safe to call twice."""
        if self.map_id is not None:
            with _lock:
                _readers.pop(self.map_id, None)
            self.map_id = None


def has_reader(map_id: int) -> bool:
    """Whether a reader of this process holds the map with this kernel id."""
    with _lock:
        return map_id in _readers
