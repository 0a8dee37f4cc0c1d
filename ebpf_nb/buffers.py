"""Perf and ring buffer events into a DataFrame: consume in bulk, decode with numpy.

Ring buffers are read straight from their mmap'ed pages (:mod:`ebpf_nb.kernel.ringbuf`), perf
buffers through our own per-CPU perf events (:mod:`ebpf_nb.kernel.perfbuf`); no Python call runs
per event. Drops are counted where the kernel counts them (perf buffers); ring buffers count none:
a program learns of a drop from ``bpf_ringbuf_reserve``/``ringbuf_output`` failing.
"""
from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from . import decode
from .kernel import maps as kmaps
from .kernel.perfbuf import PerfBufferReader
from .kernel.ringbuf import RingBufferReader
from .reading import Trigger, bounded_read
from .tracepipe import finish_frame

RINGBUF_TYPE = 27


def collect_events(layout, dtype: np.dtype, *, seconds: float | None, count: int | None,
                   trigger: Trigger, label: str) -> pd.DataFrame:
    """Read events of ``dtype`` from the buffer map ``layout`` within the bounds."""
    chunks: list[np.ndarray] = []
    cpus: list[np.ndarray] = []
    stamps: list[np.ndarray] = []
    size = dtype.itemsize
    t0 = time.time()
    is_ring = layout.map_type == RINGBUF_TYPE
    reader = RingBufferReader(layout.fd) if is_ring else PerfBufferReader(layout.fd)
    lost = 0
    if is_ring:  # like a perf buffer, show only what happens while reading
        reader.read_array(size, timeout=0.0)

    received = 0

    def poll(timeout: float) -> int:
        nonlocal lost, received
        left = None if count is None else max(count - received, 0)
        if left == 0:
            return 0
        if is_ring:
            rows = reader.read_array(size, timeout=timeout, max_records=left)
            cpu = None
        else:
            rows, cpu, dropped = reader.read_array(size, timeout=timeout, max_records=left)
            lost += dropped
        received += len(rows)
        if len(rows):
            chunks.append(rows)
            stamps.append(np.full(len(rows), time.time() - t0))
            if cpu is not None:
                cpus.append(cpu)
        return len(rows)

    progress = _progress(label, seconds, count)
    outcome = None
    try:
        outcome = bounded_read(poll, seconds=seconds, count=count, trigger=trigger,
                               progress=(lambda n: progress.update(n, lost)) if progress else None)
    finally:
        reader.close()
        if progress:
            progress.close(interrupted=bool(outcome and outcome.interrupted))
    rows = np.concatenate(chunks) if chunks else np.empty((0, size), dtype=np.uint8)
    records = kmaps.to_structured(rows, dtype) if len(rows) else np.empty(0, dtype=dtype)
    data = decode.columns(records, "value")
    if not is_ring:
        data["cpu"] = np.concatenate(cpus) if cpus else np.empty(0, dtype=np.int32)
    data["timestamp"] = np.concatenate(stamps) if stamps else np.empty(0)
    df = pd.DataFrame(data)
    df.attrs.update(lost=int(lost), buffer="ringbuf" if is_ring else "perf",
                    map=layout.name, drops_counted=not is_ring)
    if lost:
        print(f"{label}: the kernel dropped {lost} events (the buffer was full); "
              "read more often or make the buffer bigger", file=sys.stderr)
    return finish_frame(df, outcome)


def _progress(label: str, seconds: float | None, count: int | None):
    """A progress reporter for long reads (None for short ones or when unavailable)."""
    if seconds is None or seconds < 3:
        return None
    try:
        from .progress import make_progress
    except ImportError:
        return None
    return make_progress(label, seconds=seconds, count=count)
