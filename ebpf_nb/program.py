"""``Program``: what every loaded program offers a notebook, whichever backend built it.

A backend (BCC in :mod:`ebpf_nb.bcc_program`, CO-RE in :mod:`ebpf_nb.core`) compiles, loads and
attaches, and describes each map with a :class:`MapLayout` (its fd and the numpy dtypes of its
keys, values and events). Reading maps and buffers into DataFrames is shared, here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import decode, tracepipe
from .constants import (
    BUFFER_MAP_TYPES,
    INDEXED_MAP_TYPES,
    PERCPU_MAP_TYPES,
    MapType,
    map_type_name,
)
from .errors import UsageError
from .kernel import maps as kmaps
from .kernel.records import cstrings
from .key_order import key_order
from .oserrors import translating
from .reading import Trigger, read_cap, validate_bounds

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from .buffers import EventStream
    from .widgets import EventWatcher, MapWatcher


@dataclass
class MapLayout:
    """A map as a backend describes it: enough to read it with no backend code.

    ``kind`` refines the kernel type where the C declared more: ``"log2_histogram"`` or
    ``"linear_histogram"`` (BCC's BPF_HISTOGRAM), otherwise None. ``event_dtype`` is the record
    type of a perf or ring buffer (None when unknown).
    """

    name: str
    map_type: int
    fd: int
    key_dtype: np.dtype | None
    value_dtype: np.dtype | None
    max_entries: int
    kind: str | None = None
    event_dtype: np.dtype | None = None

    @property
    def type_name(self) -> str:
        return self.kind or map_type_name(self.map_type)


@dataclass(frozen=True)
class Attachment:
    """One attached probe: the spec asked for, the C function, and how it was done."""

    probe: str
    function: str
    how: str

    def __str__(self) -> str:
        return f"{self.probe} -> {self.function}" + (f" ({self.how})" if self.how else "")


class Program:
    """A loaded eBPF program: read its maps, buffers and the trace pipe as DataFrames.

    Subclasses implement :meth:`attach`, :meth:`_unload`, :meth:`_map_layouts` and may
    override :meth:`_symbolize`.
    """

    backend = "base"

    def __init__(self, name: str, source: str):
        self.name = name
        self.source = source
        self.attachments: list[Attachment] = []
        self.notes: list[str] = []          # what the cell output tells the student
        self.loaded = True
        self.unloaded_because = "was detached"  # what _require_loaded says once not loaded
        self._streams: list[Any] = []        # open EventStreams, closed on detach

    # --- to implement -------------------------------------------------------------------
    def attach(self) -> Program:
        raise NotImplementedError

    def _unload(self) -> None:
        raise NotImplementedError

    def _map_layouts(self) -> dict[str, MapLayout]:
        raise NotImplementedError

    def _symbolize(self, address: int, kernel: bool) -> str:
        return hex(address)

    # --- state --------------------------------------------------------------------------
    @property
    def attached(self) -> bool:
        return self.loaded and bool(self.attachments)

    def detach(self) -> None:
        """Detach every probe and unload the program and its maps (safe to call twice)."""
        if not self.loaded:
            return
        self.loaded = False
        self.attachments = []
        try:
            self._close_views()  # before the maps go: their threads read them
        finally:
            self._unload()  # whatever a view's close raised: it is raised after this

    def _close_views(self) -> None:
        """Close every live view and stream of this program; then raise the first error."""
        from .widgets import close_watchers
        first: Exception | None = None
        try:
            close_watchers(self)
        except Exception as err:  # noqa: BLE001 - re-raised below, after the streams
            first = err
        streams, self._streams = self._streams, []
        for stream in streams:
            try:
                stream.close()
            except Exception as err:  # noqa: BLE001 - re-raised below
                first = first or err
        if first is not None:
            raise first

    @property
    def maps(self) -> dict[str, str]:
        """Map name -> type, e.g. ``{"counter_table": "hash"}``."""
        self._require_loaded()
        return {name: layout.type_name for name, layout in self._map_layouts().items()}

    def _require_loaded(self) -> None:
        if not self.loaded:
            raise UsageError(f"program {self.name!r} {self.unloaded_because}",
                             hint="run its %%bpf cell again to load it.")

    def _layout(self, map_name: str) -> MapLayout:
        self._require_loaded()
        layouts = self._map_layouts()
        if map_name not in layouts:
            known = ", ".join(sorted(layouts)) or "none"
            raise UsageError(f"program {self.name!r} has no map named {map_name!r} "
                             f"(its maps: {known})")
        return layouts[map_name]

    # --- maps ---------------------------------------------------------------------------
    @translating
    def table(self, map_name: str, *, kind: str | None = None) -> pd.DataFrame:
        """The map's current contents as a DataFrame (see :mod:`ebpf_nb.decode` for columns).

        ``kind="log2_histogram"`` / ``"linear_histogram"`` reads an array as a histogram.
        """
        layout = self._layout(map_name)
        if layout.map_type in BUFFER_MAP_TYPES:
            raise UsageError(f"{map_name!r} is a {layout.type_name}: its contents are events",
                             hint=f"read it with {self.name}.events({map_name!r}, seconds=...)")
        if layout.map_type in (MapType.QUEUE, MapType.STACK):
            raise UsageError(f"{map_name!r} is a {layout.type_name}: user space can only pop it")
        raw = kmaps.read_map(layout.fd)
        kind = kind or layout.kind
        if layout.map_type == MapType.STACK_TRACE:
            df = self._stack_frame(raw)
        elif layout.map_type == MapType.PROG_ARRAY:
            df = self._prog_array_frame(raw)
        elif kind in ("log2_histogram", "linear_histogram"):
            df = histogram_frame(raw, layout, log2=kind == "log2_histogram")
        else:
            df = map_frame(raw, layout)
        df.attrs.update(map=map_name, map_type=layout.type_name, batched=raw.batched)
        return df

    def _stack_frame(self, raw: kmaps.RawMap) -> pd.DataFrame:
        stack_ids = kmaps.to_structured(raw.keys, np.dtype(np.uint32))
        frames_all = raw.values.view(np.uint64)
        rows = []
        for stack_id, addrs in zip(stack_ids, frames_all):
            addrs = [int(a) for a in addrs if a]
            kernel = bool(addrs) and addrs[0] >= 0xFFFF000000000000
            rows.append({"stack_id": int(stack_id), "depth": len(addrs),
                         "frames": [self._symbolize(a, kernel) for a in addrs]})
        return pd.DataFrame(rows, columns=["stack_id", "depth", "frames"])

    def _prog_array_frame(self, raw: kmaps.RawMap) -> pd.DataFrame:
        index = kmaps.to_structured(raw.keys, np.dtype(np.uint32))
        prog_ids = kmaps.to_structured(raw.values, np.dtype(np.uint32))
        names = self._program_names_by_id()
        return pd.DataFrame({"index": index.astype(int), "prog_id": prog_ids.astype(int),
                             "function": [names.get(int(i), "") for i in prog_ids]})

    def _program_names_by_id(self) -> dict[int, str]:
        return {}

    # --- events ---------------------------------------------------------------------------
    @translating
    def events(self, map_name: str, seconds: float | None = None, count: int | None = None,
               trigger: Trigger = None, *, max_rows: int | None = None,
               max_bytes: int | None = None) -> pd.DataFrame:
        """Events from a perf or ring buffer map, one row each, bounded by seconds/count.

        Columns: the event struct's fields, ``cpu`` (perf buffers) and ``timestamp`` (when user
        space received the batch). ``df.attrs["lost"]`` counts events the kernel dropped.

        A read keeps at most ``max_rows`` rows and ``max_bytes`` bytes of records (defaults
        :data:`ebpf_nb.reading.MAX_ROWS`, :data:`~ebpf_nb.reading.MAX_BYTES`); at the cap it
        stops, ``df.attrs["truncated"]`` is True (else False) and one line says so. The records
        it did not take are neither kept nor counted: this read's reader closes with them (an
        :meth:`event_stream` keeps them for its next read).
        """
        validate_bounds(seconds, count)
        read_cap(max_rows, max_bytes)
        layout, dtype = self._buffer(map_name)
        from .buffers import collect_events
        return collect_events(layout, dtype, seconds=seconds, count=count, trigger=trigger,
                              label=f"{self.name}.{map_name}", max_rows=max_rows,
                              max_bytes=max_bytes)

    @translating
    def event_stream(self, map_name: str, *, backlog: bool = False) -> EventStream:
        """An open reader on a buffer map whose successive ``read(seconds=...)`` calls see every
        event once (what a live view uses); closed by ``close()`` or when the program detaches."""
        from .buffers import EventStream
        layout, dtype = self._buffer(map_name)
        stream = EventStream(layout, dtype, label=f"{self.name}.{map_name}", backlog=backlog)
        self._streams.append(stream)
        return stream

    def _buffer(self, map_name: str) -> tuple[MapLayout, np.dtype]:
        layout = self._layout(map_name)
        if layout.map_type not in BUFFER_MAP_TYPES:
            raise UsageError(f"{map_name!r} is a {layout.type_name}, not a perf or ring buffer",
                             hint=f"read it with {self.name}.table({map_name!r})")
        dtype = layout.event_dtype
        if dtype is None:
            raise UsageError(f"the event type of {map_name!r} is unknown",
                             hint="submit a struct to it (e.g. output.perf_submit(ctx, &data, "
                                  "sizeof(data))) so the kit can learn its fields.")
        return layout, dtype

    # --- trace pipe -------------------------------------------------------------------------
    def trace(self, seconds: float | None = None, count: int | None = None,
              trigger: Trigger = None, *, backlog: bool = False, max_rows: int | None = None,
              max_bytes: int | None = None) -> pd.DataFrame:
        """Lines of the kernel trace pipe (``bpf_trace_printk``): task, pid, cpu, timestamp,
        message. The pipe is shared by every program on the machine: only lines written after
        the read began are returned; ``backlog=True`` adds those already waiting (from earlier
        cells or detached programs), marked in a ``backlog`` column. Capped as :meth:`events`
        is (``max_bytes``: of line text); lines past the cap stay in the pipe."""
        self._require_loaded()
        return tracepipe.read_trace(seconds=seconds, count=count, trigger=trigger,
                                    backlog=backlog, max_rows=max_rows, max_bytes=max_bytes)

    # --- pictures and live views -----------------------------------------------------------
    def plot(self, map_name: str, kind: str | None = None, **kw: Any) -> Axes:
        """Draw a map (histogram bars, top-N counts) or a buffer's events (``seconds=`` etc.
        go to :meth:`events`) with matplotlib; returns the Axes."""
        from .plots import plot_frame
        layout = self._layout(map_name)
        if layout.map_type in BUFFER_MAP_TYPES:
            read = {k: kw.pop(k) for k in ("seconds", "count", "trigger", "max_rows",
                                           "max_bytes") if k in kw}
            return plot_frame(self.events(map_name, **read), kind=kind or "timeline", **kw)
        return plot_frame(self.table(map_name), kind=kind, **kw)

    def watch(self, map_name: str, every: float = 1.0, **kw: Any) -> MapWatcher:
        """A live view of a map that refreshes on its own (see :mod:`ebpf_nb.widgets`)."""
        from .widgets import watch
        self._layout(map_name)
        return watch(self, map_name, every=every, **kw)

    def watch_events(self, map_name: str, every: float = 1.0, **kw: Any) -> EventWatcher:
        """A live view of a buffer's latest events, their rate and the drops."""
        from .widgets import watch_events
        self._layout(map_name)
        return watch_events(self, map_name, every=every, **kw)

    # --- display --------------------------------------------------------------------------
    def summary(self) -> str:
        state = "detached" if not self.loaded else ("attached" if self.attachments else "loaded")
        lines = [f"{self.name} ({self.backend}): {state}"]
        lines += [f"  probe  {a}" for a in self.attachments]
        if self.loaded:
            lines += [f"  map    {name}: {kind}" for name, kind in self.maps.items()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


# --- shared decoding ------------------------------------------------------------------------

def map_frame(raw: kmaps.RawMap, layout: MapLayout) -> pd.DataFrame:
    """Keys and values of a hash/array/LRU/per-CPU map as columns (hash rows sorted by key)."""
    key_dtype = layout.key_dtype or np.dtype((np.uint8, raw.key_size))
    value_dtype = layout.value_dtype or np.dtype((np.uint8, raw.value_size))
    keys = kmaps.to_structured(raw.keys, key_dtype)
    value_rows = raw.values
    in_order = bool(raw.map_type not in INDEXED_MAP_TYPES and keys.dtype.names is None
                    and len(keys))
    if in_order:
        order = key_order(keys)  # hash keys are unique: any sort gives the one order
        keys = kmaps.to_structured(_rows_in_order(raw.keys, order), key_dtype)
        value_rows = _rows_in_order(value_rows, order)
    data = decode.columns(keys, "key")
    if raw.map_type in PERCPU_MAP_TYPES:
        per_cpu = kmaps.to_structured(value_rows, kmaps.percpu_dtype(value_dtype, raw.ncpus))
        data.update(_percpu_columns(per_cpu["v"], value_dtype))
    else:
        values = kmaps.to_structured(value_rows, value_dtype)
        for col, vals in decode.columns(values, "value").items():
            data[col if col not in data else f"value_{col}"] = vals
    # Sorted, the columns are views of new arrays this frame alone holds: no second copy.
    # Unsorted, they are views of the read buffers: copied, as pandas does by default.
    return pd.DataFrame(data, copy=not in_order)


def _rows_in_order(rows: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The uint8 rows ``rows[order]``, each moved whole (one random access per row, where a
    column at a time would make one per field), into rows from the pool of freed blocks."""
    rows = np.ascontiguousarray(rows)
    width = rows.shape[1]
    whole = np.dtype((np.void, width))
    out = kmaps.rows_of(len(order), width)
    np.take(rows.view(whole).reshape(len(rows)), order, out=out.view(whole).reshape(len(order)),
            mode="clip")  # "clip": the indices are valid, and "raise" copies ``out`` first
    return out


def _percpu_columns(values: np.ndarray, dtype: np.dtype) -> dict[str, Any]:
    """(n, ncpus) values -> ``cpu0..cpuN`` + ``total`` (per field for struct values)."""
    out: dict[str, Any] = {}
    ncpus = values.shape[1] if values.ndim > 1 else 1
    if dtype.names is None:
        for cpu in range(ncpus):
            out[f"cpu{cpu}"] = values[:, cpu]
        out["total"] = values.sum(axis=1)
        return out
    for field in dtype.names:
        if field.startswith("__pad"):
            continue
        col = values[field]
        if col.ndim != 2 or col.dtype.names is not None:
            continue  # array and struct fields: no single number per CPU
        if col.dtype.kind == "S":  # char[]: one string per CPU, nothing to add up
            for cpu in range(ncpus):
                out[f"{field}_cpu{cpu}"] = cstrings(col[:, cpu])
            continue
        for cpu in range(ncpus):
            out[f"{field}_cpu{cpu}"] = col[:, cpu]
        out[f"{field}_total"] = col.sum(axis=1)
    return out


def histogram_frame(raw: kmaps.RawMap, layout: MapLayout, *, log2: bool) -> pd.DataFrame:
    """A BPF_HISTOGRAM: ``low``, ``high``, ``count`` per bucket from the first to the last
    non-empty one (log2: bucket ``s`` holds values in [2**(s-1), 2**s - 1])."""
    key_dtype = layout.key_dtype or np.dtype(np.int32)
    if key_dtype.names is not None:  # struct keys: bucket field is "slot" by BCC convention
        keys = kmaps.to_structured(raw.keys, key_dtype)
        slot_field = "slot" if "slot" in key_dtype.names else key_dtype.names[-1]
        slots = keys[slot_field].astype(np.int64)
    else:
        slots = kmaps.to_structured(raw.keys, key_dtype).astype(np.int64)
    counts = kmaps.to_structured(raw.values, layout.value_dtype or np.dtype(np.uint64))
    counts = counts.astype(np.int64)
    totals: dict[int, int] = {}
    for s, c in zip(slots.tolist(), counts.tolist()):
        totals[s] = totals.get(s, 0) + c
    nonzero = [s for s, c in totals.items() if c]
    columns = ["low", "high", "count"] if log2 else ["key", "count"]
    if not nonzero:
        df = pd.DataFrame({c: pd.Series(dtype="int64") for c in columns})
    else:
        buckets = range(min(nonzero), max(nonzero) + 1)
        if log2:
            df = pd.DataFrame({"low": [(1 << s) >> 1 for s in buckets],
                               "high": [(1 << s) - 1 if s else 0 for s in buckets],
                               "count": [totals.get(s, 0) for s in buckets]})
        else:
            df = pd.DataFrame({"key": list(buckets), "count": [totals.get(s, 0) for s in buckets]})
    df.attrs["kind"] = "log2_histogram" if log2 else "linear_histogram"
    return df
