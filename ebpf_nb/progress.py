"""Progress of a long bounded read: elapsed time, rows received, events lost.

The reading loop calls ``make_progress(label, seconds=..., count=...)`` once, then
``update(rows, lost)`` as often as it likes (each poll: redraws are throttled to 4 per second and
nothing is shown for reads shorter than half a second), then ``close()``. In a notebook with a
widget frontend it draws an ipywidgets bar; on a terminal one line rewritten in place on stderr;
anywhere else, off the main thread (a live view's reads), or when disabled, nothing.

Disable it with ``ebpf_nb.progress.enabled = False`` or the environment variable
``EBPF_NB_PROGRESS=0``; ``EBPF_NB_PROGRESS=line`` or ``=widget`` forces a form.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO

__all__ = ["LineProgress", "NullProgress", "Progress", "WidgetProgress", "enabled",
           "make_progress"]

enabled = True
"""Set to False to turn progress off for every read of this process."""

REDRAW_SECONDS = 0.25
SHOW_AFTER_SECONDS = 0.5


class Progress(Protocol):
    """What a reading loop talks to."""

    def update(self, rows: int, lost: int = 0) -> None: ...

    def close(self, *, interrupted: bool = False) -> None: ...


class NullProgress:
    """Shows nothing."""

    def update(self, rows: int, lost: int = 0) -> None:
        pass

    def close(self, *, interrupted: bool = False) -> None:
        pass


class _Throttled:
    """Keeps the latest numbers on every update; draws only when a redraw is due."""

    def __init__(self, label: str, *, seconds: float | None, count: int | None,
                 clock: Callable[[], float] = time.monotonic,
                 interval: float = REDRAW_SECONDS, delay: float = SHOW_AFTER_SECONDS) -> None:
        self.label = label
        self.seconds = seconds
        self.count = count
        self.rows = 0
        self.lost = 0
        self.draws = 0
        self.shown = False
        self.closed = False
        self._clock = clock
        self._interval = interval
        self._delay = delay
        self._started = clock()
        self._last_draw = float("-inf")

    @property
    def elapsed(self) -> float:
        return self._clock() - self._started

    def update(self, rows: int, lost: int = 0) -> None:
        self.rows, self.lost = rows, lost
        now = self._clock()
        too_soon = now - self._started < self._delay or now - self._last_draw < self._interval
        if self.closed or too_soon:
            return
        self._last_draw = now
        self.draws += 1
        self.shown = True
        self._draw(now - self._started, final=False)

    def close(self, *, interrupted: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        if self.shown:
            self.draws += 1
            self._draw(self.elapsed, final=True, interrupted=interrupted)

    def fraction(self, elapsed: float) -> float | None:
        """How far the read is to its first bound, in [0, 1]; None when unbounded."""
        parts = []
        if self.seconds:
            parts.append(elapsed / self.seconds)
        if self.count:
            parts.append(self.rows / self.count)
        return min(1.0, max(parts)) if parts else None

    def text(self, elapsed: float, *, final: bool = False, interrupted: bool = False) -> str:
        clock = f"{elapsed:.1f}/{self.seconds:g} s" if self.seconds and not final \
            else f"{elapsed:.1f} s"
        rows = f"{self.rows:,}/{self.count:,} rows" if self.count else f"{self.rows:,} rows"
        end = " · interrupted" if interrupted else " · done" if final else ""
        return f"{self.label}: {clock} · {rows} · {self.lost:,} lost{end}"

    def _draw(self, elapsed: float, *, final: bool, interrupted: bool = False) -> None:
        raise NotImplementedError


class LineProgress(_Throttled):
    """One line on a terminal, rewritten in place with a carriage return."""

    def __init__(self, label: str, *, stream: TextIO, **kw: Any) -> None:
        super().__init__(label, **kw)
        self._stream = stream
        self._width = 0

    def _draw(self, elapsed: float, *, final: bool, interrupted: bool = False) -> None:
        line = self.text(elapsed, final=final, interrupted=interrupted)
        fraction = self.fraction(elapsed)
        if fraction is not None and not final:
            line = f"[{'#' * round(fraction * 20):<20}] {line}"
        padding = " " * max(0, self._width - len(line))
        self._width = len(line)
        self._stream.write(f"\r{line}{padding}" + ("\n" if final else ""))
        self._stream.flush()


class WidgetProgress(_Throttled):
    """An ipywidgets bar and a line of text, displayed on the first redraw."""

    def __init__(self, label: str, **kw: Any) -> None:
        import ipywidgets as w

        super().__init__(label, **kw)
        bounded = bool(self.seconds or self.count)
        self.bar = w.FloatProgress(min=0.0, max=1.0, value=0.0,
                                   layout={"width": "200px", "display": "" if bounded else "none"})
        self.note = w.HTML("")
        self.box = w.HBox([self.bar, self.note])

    def _draw(self, elapsed: float, *, final: bool, interrupted: bool = False) -> None:
        if self.draws == 1:
            from IPython.display import display

            display(self.box)
        fraction = self.fraction(elapsed)
        if final:
            self.bar.value = self.bar.value if interrupted else 1.0
            self.bar.bar_style = "warning" if interrupted else "success"
        elif fraction is not None:
            self.bar.value = fraction
        self.note.value = self.text(elapsed, final=final, interrupted=interrupted)


def _choose(stream: TextIO) -> str:
    forced = os.environ.get("EBPF_NB_PROGRESS", "").strip().lower()
    if forced in ("0", "off", "no", "false", "none"):
        return "none"
    if forced in ("line", "widget"):
        return forced
    from .frontend import has_widget_frontend

    if has_widget_frontend():
        return "widget"
    isatty = getattr(stream, "isatty", None)
    return "line" if isatty is not None and isatty() else "none"


def make_progress(label: str, *, seconds: float | None, count: int | None,
                  mode: str | None = None, stream: TextIO | None = None,
                  clock: Callable[[], float] = time.monotonic) -> Progress:
    """A progress reporter for a read bounded by ``seconds`` and/or ``count``.

    ``mode`` forces ``"widget"``, ``"line"`` or ``"none"``; by default it is chosen as the module
    docstring says. ``stream`` (default ``sys.stderr``) receives the line form.
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        return NullProgress()
    out = stream if stream is not None else sys.stderr
    chosen = mode or _choose(out)
    if chosen == "widget":
        return WidgetProgress(label, seconds=seconds, count=count, clock=clock)
    if chosen == "line":
        return LineProgress(label, stream=out, seconds=seconds, count=count, clock=clock)
    if chosen == "none":
        return NullProgress()
    from .errors import UsageError

    raise UsageError(f"progress mode must be 'widget', 'line' or 'none', not {mode!r}")
