"""Live views of a running program: a map or an event stream that refreshes on its own.

``watch(program, MAP)`` shows a table of the top rows and a chart, refreshed every ``every``
seconds from a background thread; ``watch_events(program, MAP)`` shows the latest events, their
rate and the drop count. Both have start/stop buttons, a refresh-rate box and a status line that
notes failed reads; they stop when the program is detached or the view is closed, and ``close()``
joins their thread.

Threads update the widgets by setting trait values, the way ipywidgets supports (each change is a
comm message, and ipykernel's IOPub socket is thread-safe); the chart is a PNG in an ``Image``
widget drawn on a bare matplotlib ``Figure`` (no pyplot state is touched off the main thread).

Without a frontend that can show widgets the views degrade to text: one snapshot, shown as the
returned object's plain-text repr (``print(w)`` works too), and no thread. Detection, in order:
the ``text=`` argument, then :mod:`ebpf_nb.frontend`: the environment variable ``EBPF_NB_DISPLAY`` (``text`` or ``widgets``);
no IPython kernel (plain Python, terminal IPython) -> text; a widget frontend has opened
ipywidgets' control comm -> widgets; else the request being executed allows stdin -> widgets
(JupyterLab, Notebook and VS Code allow it; nbclient, nbconvert and papermill do not) -> text.
"""

from __future__ import annotations

import html
import importlib
import io
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from . import map_kinds, plots
from .frontend import has_widget_frontend

if TYPE_CHECKING:
    from .buffers import EventStream

__all__ = [
    "EventWatcher",
    "MapWatcher",
    "close_watchers",
    "has_widget_frontend",
    "watch",
    "watch_events",
]

_JOIN_SECONDS = 2.0
_MIN_EVERY = 0.1
_live: weakref.WeakSet[_Watcher] = weakref.WeakSet()


class WatchedProgram(Protocol):
    """What the views need from a program (``ebpf_nb.program.Program`` has it)."""

    @property
    def attached(self) -> bool: ...

    def table(self, name: str) -> pd.DataFrame: ...

    def events(self, name: str, seconds: float | None = None,
               count: int | None = None) -> pd.DataFrame: ...


def close_watchers(program: object | None = None) -> int:
    """Close every live view (of ``program`` only, when given); returns how many were closed.

    A view whose ``close`` raises does not keep the others open: the first error is raised
    once every view has been asked to close."""
    closing = [w for w in list(_live) if program is None or w.program is program]
    first: Exception | None = None
    for watcher in closing:
        try:
            watcher.close()
        except Exception as err:  # noqa: BLE001 - re-raised below, after the other views
            first = first or err
    if first is not None:
        raise first
    return len(closing)


_render_lock = threading.Lock()


def _import_matplotlib() -> None:
    """Import what ``_png`` needs in the calling (main) thread: a first import of matplotlib
    inside a view's thread would race the notebook's own ``%matplotlib`` import."""
    importlib.import_module("matplotlib.figure")
    importlib.import_module("matplotlib.backends.backend_agg")


def _png(draw: Callable[[Any], object], size: tuple[float, float] = (5.0, 3.0)) -> bytes:
    """Draw on a bare Agg figure (no pyplot state) and return the PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with _render_lock:  # views share matplotlib's caches: one drawing at a time
        figure = Figure(figsize=size, dpi=80, layout="tight")
        FigureCanvasAgg(figure)
        draw(figure.subplots())
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _table_html(df: pd.DataFrame) -> str:
    return df.to_html(index=False, border=0, classes="ebpf-nb-table", max_cols=12)


class _Watcher:
    """The thread, the controls and the status line shared by both views."""

    kind = "view"

    def __init__(self, program: WatchedProgram, map_name: str, *, every: float = 1.0,
                 text: bool | None = None, start: bool = True) -> None:
        if every < _MIN_EVERY:
            from .errors import UsageError

            raise UsageError(f"every must be at least {_MIN_EVERY} s, not {every}")
        self.program = program
        self.map_name = map_name
        self.text_mode = (not has_widget_frontend()) if text is None else bool(text)
        self.refreshes = 0
        self.failures = 0
        self.last_error: str | None = None
        self.chart_error: str | None = None
        self.stopped_because: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._every = float(every)
        self.box: Any = None  # the ipywidgets VBox; none in text mode
        if not self.text_mode:
            _import_matplotlib()
            self._build_widgets(every)
        _live.add(self)
        on_detach = getattr(program, "on_detach", None)  # a Program closes its views on detach
        self._forget_detach = on_detach(self._close_on_detach) if on_detach else None
        if self.text_mode:
            self.refresh()
        elif start:
            self.start()

    # --- widgets -----------------------------------------------------------------------------
    def _build_widgets(self, every: float) -> None:
        import ipywidgets as w

        self.title = w.HTML(f"<b>{html.escape(self.map_name)}</b> &middot; {self.kind}")
        self.start_button = w.Button(description="Start", icon="play", layout={"width": "90px"})
        self.stop_button = w.Button(description="Stop", icon="stop", layout={"width": "90px"})
        self.close_button = w.Button(description="Close", icon="times", layout={"width": "90px"})
        self.every_box = w.BoundedFloatText(value=every, min=_MIN_EVERY, max=3600.0, step=0.5,
                                            description="every (s)", layout={"width": "170px"})
        self.status = w.HTML("not started")
        self.table = w.HTML("")
        self.chart = w.Image(format="png", layout={"max_width": "420px"})
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.close_button.on_click(lambda _: self.close())
        controls = w.HBox([self.start_button, self.stop_button, self.every_box, self.close_button])
        body = w.HBox([self.table, self.chart], layout={"align_items": "flex-start"})
        self.box = w.VBox([self.title, controls, body, self.status])
        self._widgets = [self.title, self.start_button, self.stop_button, self.close_button,
                         self.every_box, self.status, self.table, self.chart, controls, body,
                         self.box]
        self._sync_buttons()

    def _sync_buttons(self, running: bool | None = None) -> None:
        if self.box is None:
            return
        running = self.running if running is None else running
        self.start_button.disabled = running or self._closed
        self.stop_button.disabled = not running

    @property
    def every(self) -> float:
        """Seconds between refreshes; the student can change it in the view while it runs."""
        if self.box is not None:
            self._every = float(self.every_box.value)
        return max(_MIN_EVERY, self._every)

    @every.setter
    def every(self, seconds: float) -> None:
        self._every = float(seconds)
        if self.box is not None:
            self.every_box.value = seconds

    # --- thread ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Refresh in a background thread until stopped, closed, or the program is detached."""
        if self._closed or self.text_mode or self.running:
            return
        self._stop.clear()
        self.stopped_because = None
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"ebpf_nb-{self.kind}-{self.map_name}")
        self._thread.start()
        self._sync_buttons()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop refreshing; returns True when the thread has ended within ``timeout``."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.every + _JOIN_SECONDS if timeout is None else timeout)
        self._sync_buttons()
        if self.stopped_because is None:
            self.stopped_because = "stopped"
            self._set_status()
        return thread is None or not thread.is_alive()

    def close(self) -> None:
        """Stop the thread and close the widgets (their frontend views disappear)."""
        if self._closed:
            return
        self.stop()
        self._closed = True
        _live.discard(self)
        if self._forget_detach is not None:
            self._forget_detach()
        for widget in getattr(self, "_widgets", []):
            widget.close()

    def _close_on_detach(self) -> None:
        self.close()  # looked up on each call: whatever ``close`` is by then

    def _should_stop(self) -> str | None:
        if self._stop.is_set():
            return "stopped"
        if not getattr(self.program, "attached", True):
            return "program detached"
        if self.box is not None and self.box.comm is None:  # closed elsewhere (Widget.close_all)
            return "view closed"
        return None

    def _run(self) -> None:
        while (reason := self._should_stop()) is None:
            self.refresh()
            if self._wait_between_reads():
                self._stop.wait(self.every)
        self.stopped_because = reason
        self._set_status()
        self._sync_buttons(running=False)

    def _wait_between_reads(self) -> bool:
        return True

    # --- one refresh -------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Read once and update the view; a failed read is counted and noted, never raised."""
        with self._lock:
            try:
                self._read_and_show()
            except Exception as err:  # noqa: BLE001 - a live view must survive a bad read
                self.failures += 1
                self.last_error = f"{type(err).__name__}: {err}"
                self._set_status()
                return False
            self.refreshes += 1
            self.last_error = None
            self._set_status()
            return True

    def _read_and_show(self) -> None:
        raise NotImplementedError

    def _show_chart(self, draw: Callable[[Any], object]) -> None:
        """Redraw the chart; a chart that cannot be drawn is noted and leaves the table live."""
        try:
            self.chart.value = _png(draw)
        except Exception as err:  # noqa: BLE001 - the table is still worth showing
            self.chart_error = f"{type(err).__name__}: {err}"
        else:
            self.chart_error = None

    def _summary(self) -> str:
        return ""

    def status_text(self) -> str:
        parts = [f"{self.refreshes} refreshes"]
        if summary := self._summary():
            parts.insert(0, summary)
        if self.failures:
            parts.append(f"{self.failures} failed reads")
        if self.last_error:
            parts.append(f"last read failed: {self.last_error}")
        if self.chart_error:
            parts.append(f"chart failed: {self.chart_error}")
        if self.stopped_because:
            parts.append(self.stopped_because)
        elif self.running:
            parts.append(f"every {self.every:g} s")
        return " · ".join(parts)

    def _set_status(self) -> None:
        if self.box is None:
            return
        stamp = time.strftime("%H:%M:%S")
        colour = "firebrick" if self.last_error or self.chart_error else "gray"
        self.status.value = (f"<span style='color:{colour}'>{stamp} · "
                             f"{html.escape(self.status_text())}</span>")

    # --- display -----------------------------------------------------------------------------
    def snapshot(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        if self.text_mode:
            return self.snapshot()
        return f"<{type(self).__name__} {self.map_name!r}: {self.status_text()}>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        if self.text_mode or self._closed:
            return {"text/plain": repr(self)}
        bundle: dict[str, Any] = self.box._repr_mimebundle_(**kwargs)  # ipywidgets: untyped
        return bundle


def top_rows(df: pd.DataFrame, top: int) -> pd.DataFrame:
    """The rows a live table shows: as the frame's map kind says (``map_kinds.MapKind.top_rows``:
    non-empty buckets of a histogram, non-zero slots of an array, else the largest values)."""
    return map_kinds.row_picker(df, plots.frame_kind(df))(df, top)


class MapWatcher(_Watcher):
    """A live table of a map's top rows and its chart (see ``plots.plot_frame``)."""

    kind = "map"

    def __init__(self, program: WatchedProgram, map_name: str, every: float = 1.0,
                 top: int = 10, *, text: bool | None = None, start: bool = True,
                 **plot_kw: Any) -> None:
        self.top = top
        self.plot_kw = plot_kw
        self.frame: pd.DataFrame | None = None
        self.rows: pd.DataFrame | None = None
        super().__init__(program, map_name, every=every, text=text, start=start)

    def _read_and_show(self) -> None:
        frame = self.program.table(self.map_name)
        rows = top_rows(frame, self.top)
        self.frame, self.rows = frame, rows
        if self.text_mode:
            return
        self.table.value = _table_html(rows)
        kw = dict(self.plot_kw)
        if plots.frame_kind(frame) == "counts" and "kind" not in kw:
            kw.setdefault("top", self.top)
        self._show_chart(lambda ax: plots.plot_frame(frame, ax=ax, **kw))

    def _summary(self) -> str:
        return "" if self.frame is None else f"{len(self.frame)} entries"

    def snapshot(self) -> str:
        head = f"{self.map_name} ({self.status_text()})"
        if self.rows is None:
            return head
        return f"{head}\n{self.rows.to_string(index=False)}"


class EventWatcher(_Watcher):
    """A live view of an event stream: the latest rows, events per second, events lost.

    One event stream stays open across refreshes (``program.event_stream``), so no event
    falls between two reads; each refresh reads it for ``every`` seconds in the thread.
    """

    kind = "events"

    def __init__(self, program: WatchedProgram, map_name: str, every: float = 1.0,
                 rows: int = 10, *, history: int = 60, text: bool | None = None,
                 start: bool = True) -> None:
        self.keep_rows = rows
        self.latest: pd.DataFrame = pd.DataFrame()
        self.total_rows = 0
        self.lost = 0
        self.rate = 0.0
        self.rates: deque[float] = deque(maxlen=history)
        self.stream: EventStream | None = None
        super().__init__(program, map_name, every=every, text=text, start=start)

    def _read_events(self, seconds: float) -> pd.DataFrame:
        opener = getattr(self.program, "event_stream", None)
        if opener is None:  # a program object without streams: one read per refresh
            return self.program.events(self.map_name, seconds=seconds)
        if self.stream is None:
            self.stream = opener(self.map_name)
        return self.stream.read(seconds=seconds)

    def close(self) -> None:
        super().close()
        if self.stream is not None:
            self.stream.close()
            self.stream = None

    def _wait_between_reads(self) -> bool:
        return self.last_error is not None  # a successful read already took `every` seconds

    def _read_and_show(self) -> None:
        seconds = self.every
        started = time.monotonic()
        frame = self._read_events(seconds)
        elapsed = max(time.monotonic() - started, 1e-6)
        self.total_rows += len(frame)
        self.lost += int(frame.attrs.get("lost", 0) or 0)
        self.rate = len(frame) / elapsed
        self.rates.append(self.rate)
        if len(frame):
            self.latest = pd.concat([self.latest, frame], ignore_index=True).tail(self.keep_rows)
        if self.text_mode:
            return
        self.table.value = _table_html(self.latest)
        rates = list(self.rates)
        self._show_chart(lambda ax: _draw_rates(ax, rates, seconds, self.lost))

    def _summary(self) -> str:
        return f"{self.rate:.1f} events/s · {self.total_rows} events · {self.lost} lost"

    def snapshot(self) -> str:
        head = f"{self.map_name} ({self.status_text()})"
        if self.latest.empty:
            return head
        return f"{head}\n{self.latest.to_string(index=False)}"


def _draw_rates(ax: Any, rates: list[float], every: float, lost: int) -> None:
    xs = [-(len(rates) - 1 - i) * every for i in range(len(rates))]
    ax.plot(xs, rates, marker="o", markersize=3)
    ax.set_xlabel("seconds ago")
    ax.set_ylabel("events / s")
    ax.set_ylim(bottom=0)
    if lost:
        ax.set_title(f"{lost} lost", color="firebrick", loc="right", fontsize=9)


def watch(program: WatchedProgram, map_name: str, **kw: Any) -> MapWatcher:
    """A live view of ``map_name`` (``every=1.0``, ``top=10``, ``text=None``, plot keywords)."""
    return MapWatcher(program, map_name, **kw)


def watch_events(program: WatchedProgram, map_name: str, **kw: Any) -> EventWatcher:
    """A live view of the event buffer ``map_name`` (``every=1.0``, ``rows=10``, ``text=None``)."""
    return EventWatcher(program, map_name, **kw)
