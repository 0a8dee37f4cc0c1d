"""Perf and ring buffer events into a DataFrame: consume in bulk, decode with numpy.

Ring buffers are read straight from their mmap'ed pages (:mod:`ebpf_nb.kernel.ringbuf`), perf
buffers through our own per-CPU perf rings (:mod:`ebpf_nb.kernel.perfbuf`); no Python call runs
per event. Drops are counted where the kernel counts them (perf buffers); ring buffers count none:
a program learns of a drop from ``bpf_ringbuf_reserve``/``ringbuf_output`` failing.

An :class:`EventStream` keeps its reader open, so successive reads (a live view refreshing)
see every event exactly once; ``Program.events()`` is one read of a short-lived stream.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from . import decode, display
from .constants import MapType
from .errors import UsageError
from .kernel import maps as kmaps
from .kernel.blockpool import POOL
from .kernel.closing import Closing
from .kernel.pages import small_pages
from .kernel.perfbuf import PerfBufferReader
from .kernel.ringbuf import RingBufferReader
from .oserrors import translating
from .reading import (
    DRAIN_QUIET,
    ReadCap,
    Trigger,
    bounded_read,
    finish_frame,
    read_cap,
    truncation_notice,
)

# Wake the reader every 64 perf events rather than every one: at one wakeup per event the
# kernel, not the reader, caps a perf buffer (~13 us per output here). The reader looks at the
# rings' heads at least every 20 ms (``PerfBufferReader.wait``), so records that have not reached
# the wakeup count (a read's last ones, a sparse stream) are still delivered within 20 ms.
PERF_WAKEUP_EVENTS = 64


class RowStore:
    """Where a read's records go: blocks of rows the readers copy into directly (each record is
    copied once), growing by doubling; ``expected`` rows (a read's count) are one block, up to
    :data:`MAX_BLOCK_BYTES`. Blocks come from :data:`ebpf_nb.kernel.blockpool.POOL` (memory of
    freed DataFrames, written again without page faults); unfilled rows of a new large block use
    no RAM (pages never written)."""

    FIRST_BLOCK_BYTES = 4 << 20
    MAX_BLOCK_BYTES = 256 << 20

    def __init__(self, size: int, expected: int | None = None):
        self.size = size
        self._max_rows = max(self.MAX_BLOCK_BYTES // max(size, 1), 1)
        first = expected if expected else self.FIRST_BLOCK_BYTES // max(size, 1)
        self._blocks: list[np.ndarray] = []
        self._current = self._block(min(max(first, 1), self._max_rows))
        self._used = 0

    def free(self) -> np.ndarray:
        """The unfilled rows of the current block (a new, twice larger block when it is full)."""
        if self._used == len(self._current):
            self._blocks.append(self._current)
            grown = min(2 * len(self._current), self._max_rows)
            self._current = self._block(grown)
            self._used = 0
        return self._current[self._used:]

    def filled(self, n: int) -> None:
        """``n`` more rows of :meth:`free` hold records."""
        self._used += n

    def rows(self) -> np.ndarray:
        """All records as one ``(n, size)`` matrix (no copy when they fit one block that is at
        least half full)."""
        last = self._current[:self._used]
        if not self._blocks:
            return last if 2 * self._used >= len(self._current) else last.copy()
        parts = [*self._blocks, last]
        return np.concatenate(parts, out=self._block(sum(len(p) for p in parts)))

    def _block(self, rows: int) -> np.ndarray:
        return kmaps.rows_of(rows, self.size)


class EventStream(Closing):
    """An open reader on one perf or ring buffer map, decoded with ``dtype``.

    ``backlog=False`` (the default) drops ring-buffer records already waiting when the stream
    opens, so that, as with perf buffers, a read shows what happened while it was open.
    """

    def __init__(self, layout, dtype: np.dtype, *, label: str, backlog: bool = False):
        self.layout = layout
        self.dtype = dtype
        self.label = label
        self.is_ring = layout.map_type == MapType.RINGBUF
        self.reader = (RingBufferReader(layout.fd) if self.is_ring else
                       PerfBufferReader(layout.fd, wakeup_events=PERF_WAKEUP_EVENTS))
        self.t0 = time.time()
        self.lost_total = 0
        self.received_total = 0
        self.closed = False
        if self.is_ring and not backlog:
            self.reader.read_array(dtype.itemsize, timeout=0.0)

    @translating
    def read(self, *, seconds: float | None = None, count: int | None = None,
             trigger: Trigger = None, max_rows: int | None = None,
             max_bytes: int | None = None) -> pd.DataFrame:
        """Events that arrive within the bounds, one row each (see ``Program.events``). At the
        cap (``max_rows``/``max_bytes``) the read stops; records it did not take stay in the
        buffer for this stream's next read."""
        cap = read_cap(max_rows, max_bytes)
        if cap.rows_for(self.dtype.itemsize) == 0:
            raise UsageError(f"max_bytes={cap.nbytes} is less than one event of {self.label} "
                             f"({self.dtype.itemsize} bytes)")
        with small_pages():  # the rows, strings and columns are fresh memory (see .kernel.pages)
            return self._read(seconds, count, trigger, cap)

    def _read(self, seconds: float | None, count: int | None, trigger: Trigger,
              cap: ReadCap) -> pd.DataFrame:
        limit = cap.rows_for(self.dtype.itemsize)
        wanted = limit if count is None else min(count, limit)  # the rows this read may keep
        store = RowStore(self.dtype.itemsize, expected=None if count is None else wanted)
        cpus: list[np.ndarray] = []
        stamps: list[tuple[int, float]] = []  # (rows, seconds since the stream opened)
        lost = received = 0

        def poll(timeout: float) -> int:
            nonlocal lost, received
            left = wanted - received
            if left <= 0:
                return 0
            size = self.dtype.itemsize
            if self.is_ring:
                rows = self.reader.read_array(size, timeout=timeout, max_records=left,
                                              out=store.free())
            else:
                rows, cpu, dropped = self.reader.read_array(size, timeout=timeout,
                                                            max_records=left, out=store.free())
                lost += dropped
                if len(rows):
                    cpus.append(cpu)
            received += len(rows)
            if len(rows):
                store.filled(len(rows))
                stamps.append((len(rows), time.time() - self.t0))
            return len(rows)

        progress = _progress(self.label, seconds, count)
        outcome = None
        try:
            outcome = bounded_read(poll, seconds=seconds, count=count, trigger=trigger,
                                   progress=(lambda n: progress.update(n, lost)) if progress
                                   else None, drain_quiet=DRAIN_QUIET,
                                   full=lambda: received >= limit)
        finally:
            if progress:
                progress.close(interrupted=bool(outcome and outcome.interrupted))
        self.lost_total += lost
        self.received_total += received
        df = self._frame(store.rows(), cpus, stamps)
        df.attrs.update(lost=int(lost), buffer="ringbuf" if self.is_ring else "perf",
                        map=self.layout.name, drops_counted=not self.is_ring)
        if lost:
            display.notice(f"{self.label}: the kernel dropped {lost} events (the buffer was "
                           "full); read more often or make the buffer bigger")
        if outcome.truncated:
            display.notice(truncation_notice(self.label, received,
                                             cap.which(received, self.dtype.itemsize)))
        return finish_frame(df, outcome)

    def _frame(self, rows: np.ndarray, cpus: list[np.ndarray],
               stamps: list[tuple[int, float]]) -> pd.DataFrame:
        records = kmaps.to_structured(rows, self.dtype)
        data = decode.columns(records, "value")
        if not self.is_ring:
            data["cpu"] = _joined(cpus) if cpus else np.empty(0, dtype=np.int32)
        data["timestamp"] = _timestamps(stamps)
        # The columns are views of ``rows``: the records are copied once, from the kernel's
        # ring into ``rows``, and not again per column.
        return pd.DataFrame({name: string_column(values) for name, values in data.items()},
                            copy=False)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.reader.close()


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """``np.concatenate(parts)`` into a block of the pool (memory written without faults)."""
    total = sum(len(p) for p in parts)
    dtype = parts[0].dtype
    return np.concatenate(parts, out=POOL.take(total * dtype.itemsize).view(dtype))


def _timestamps(stamps: list[tuple[int, float]]) -> np.ndarray:
    """Each poll's time, once per row it brought, in a block of the pool."""
    out = POOL.take(8 * sum(n for n, _ in stamps)).view(np.float64)
    at = 0  # a read polls at most every millisecond: a loop over its polls is cheap
    for n, t in stamps:
        out[at:at + n] = t
        at += n
    return out


def _default_string_array():
    """The constructor of pandas' default string column when it can take an object array of
    ``str`` as it is (pandas >= 3 without pyarrow: ``StringArray``), else ``None``."""
    dtype = pd.Series(np.array([""], dtype=object)).dtype
    array = getattr(pd.arrays, "StringArray", None)
    if (isinstance(dtype, pd.StringDtype) and dtype.storage == "python"
            and hasattr(array, "_simple_new")):
        return lambda values: array._simple_new(values, dtype)
    return None


_STRING_ARRAY = _default_string_array()


def string_column(values):
    """An object array of ``str`` (:func:`ebpf_nb.kernel.records.cstrings`) as the column pandas
    would make of it, without its copy and check of every row (each value is a ``str``): pandas
    3's ``str`` dtype; other columns, and every column with pandas 2, unchanged."""
    if _STRING_ARRAY is None or not isinstance(values, np.ndarray) or values.dtype != object:
        return values
    return _STRING_ARRAY(values)


def collect_events(layout, dtype: np.dtype, *, seconds: float | None, count: int | None,
                   trigger: Trigger, label: str, max_rows: int | None = None,
                   max_bytes: int | None = None) -> pd.DataFrame:
    """One bounded read of a buffer map through a short-lived :class:`EventStream` (records
    left past the cap go with its reader: a perf ring closes, a ring buffer's next reader
    skips what waits)."""
    with EventStream(layout, dtype, label=label) as stream:
        return stream.read(seconds=seconds, count=count, trigger=trigger, max_rows=max_rows,
                           max_bytes=max_bytes)


def _progress(label: str, seconds: float | None, count: int | None):
    """A progress reporter for long reads (None for short ones or when unavailable)."""
    if seconds is None or seconds < 3:
        return None
    return display.progress(label, seconds=seconds, count=count)
