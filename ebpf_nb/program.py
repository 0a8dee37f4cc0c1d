"""``Program``: what every loaded program offers a notebook, whichever backend built it.

A backend (BCC in :mod:`ebpf_nb.bcc_program`, CO-RE in :mod:`ebpf_nb.core`) compiles, loads and
attaches, and describes each map with a :class:`MapLayout` (its fd and the numpy dtypes of its
keys, values and events). Reading maps and buffers into DataFrames is shared, here.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import map_kinds, tracepipe
from .constants import BUFFER_MAP_TYPES, map_type_name
from .errors import UsageError
from .kernel import maps as kmaps
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
        self._on_detach: list[Callable[[], object]] = []  # see on_detach

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

    @property
    def state(self) -> str:
        """``"attached"``, ``"loaded"`` (in the kernel, attached to nothing) or ``"detached"``:
        the one place the program's state is named (summary, ``%bpf_list``, the cell's reply)."""
        if not self.loaded:
            return "detached"
        return "attached" if self.attachments else "loaded"

    def state_text(self) -> str:
        """The state as a sentence's start, with what to do next when there is something."""
        return "loaded (not attached: call .attach())" if self.state == "loaded" else self.state

    def detach(self) -> None:
        """Detach every probe and unload the program and its maps (safe to call twice).

        The :meth:`on_detach` callbacks run first, in the order they were registered, all of
        them; the program is unloaded even when one raises, and the first error is raised after."""
        if not self.loaded:
            return
        self.loaded = False
        self.attachments = []
        try:
            self._run_detach_callbacks()  # before the maps go: views' threads read them
        finally:
            self._unload()

    def on_detach(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Call ``callback()`` when this program is detached (streams and live views close
        themselves so); returns a function that cancels it."""
        self._on_detach.append(callback)

        def cancel() -> None:
            if callback in self._on_detach:
                self._on_detach.remove(callback)
        return cancel

    def _run_detach_callbacks(self) -> None:
        callbacks, self._on_detach = self._on_detach, []
        first: Exception | None = None
        for callback in callbacks:
            try:
                callback()
            except Exception as err:  # noqa: BLE001 - re-raised below, after the others
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
        row = map_kinds.kind_of(layout.map_type, declared=kind or layout.kind)
        if row.frame is None:
            words = {"map": map_name, "type": layout.type_name, "program": self.name}
            hint = row.refusal_hint.format(**words) if row.refusal_hint else None
            raise UsageError(row.refusal.format(**words), hint=hint)
        raw = kmaps.read_map(layout.fd)
        df = row.frame(raw, layout, self)
        df.attrs.update(map=map_name, map_type=layout.type_name, batched=raw.batched)
        return df

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
        self.on_detach(stream.close)
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
        row = map_kinds.kind_of(layout.map_type, declared=layout.kind)
        if row.events:
            read = {k: kw.pop(k) for k in ("seconds", "count", "trigger", "max_rows",
                                           "max_bytes") if k in kw}
            return plot_frame(self.events(map_name, **read), kind=kind or row.plot, **kw)
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
        lines = [f"{self.name} ({self.backend}): {self.state_text()}"]
        lines += [f"  probe  {a}" for a in self.attachments]
        if self.loaded:
            lines += [f"  map    {name}: {kind}" for name, kind in self.maps.items()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()
