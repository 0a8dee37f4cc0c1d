"""The kernel's trace pipe (``bpf_trace_printk`` output) read without blocking forever.

The pipe is one per machine and keeps what nobody has read yet: lines written by an earlier
cell, or by a program that is detached now, wait there until someone reads them. A read returns
only the lines written after it began; ``backlog=True`` also returns the waiting ones, marked."""
from __future__ import annotations

import errno
import os
import re
import select
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import display, host
from .errors import HostError
from .kernel.closing import Closing
from .reading import ReadCap, Trigger, bounded_read, finish_frame, read_cap, truncation_notice

# "   python3-2234    [001] ...21   102.061518: bpf_trace_printk: Hello World!"
_LINE = re.compile(
    r"^\s*(?P<task>.*?)-(?P<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>[^\s\d][^\s]*)\s+)?(?P<timestamp>\d+\.\d+):\s+(?P<event>[^:]+):\s?(?P<message>.*)$")
COLUMNS = ["task", "pid", "cpu", "timestamp", "message"]
DRAIN_SECONDS = 0.5  # at most this long reading what was waiting (a busy program never stops)


@dataclass(frozen=True)
class TraceLine:
    task: str
    pid: int
    cpu: int
    timestamp: float
    message: str


def parse_line(line: str) -> TraceLine | None:
    """One trace pipe line -> :class:`TraceLine` (None for lines that are not events)."""
    m = _LINE.match(line.rstrip("\n"))
    if not m:
        return None
    return TraceLine(m["task"].strip(), int(m["pid"]), int(m["cpu"]), float(m["timestamp"]),
                     m["message"])


class TracePipe(Closing):
    """A non-blocking reader of ``trace_pipe``; use as a context manager."""

    def __init__(self, path: Path | None = None):
        self.path = path or host.require_tracefs() / "trace_pipe"
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as err:
            if err.errno == errno.EBUSY:
                raise HostError("the trace pipe is already being read by another process "
                                "(another notebook's trace(), a `cat trace_pipe`, a BCC tool)",
                                hint="stop that reader, then try again; only one may read it "
                                     "at a time. Maps and buffers have no such limit.") from None
            raise
        self._partial = b""
        self.lines: list[TraceLine] = []
        self.cap = ReadCap()
        self.kept_bytes = 0  # of the lines in :attr:`lines`

    @property
    def full(self) -> bool:
        """Whether :attr:`lines` holds as much as :attr:`cap` allows (reading then stops)."""
        return len(self.lines) >= self.cap.rows or self.kept_bytes >= self.cap.nbytes

    def poll(self, timeout: float) -> int:
        """Read what is ready within ``timeout`` seconds; return how many lines were added.
        Once :attr:`full` it reads nothing more; the lines of its last chunk past the cap are
        dropped, the pipe keeps the rest."""
        if self.full:
            return 0
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return 0
        added = 0
        while not self.full:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            data = self._partial + chunk
            *complete, self._partial = data.split(b"\n")
            for raw in complete:
                parsed = parse_line(raw.decode("utf-8", "replace"))
                if parsed and not self.full:
                    self.lines.append(parsed)
                    self.kept_bytes += len(raw) + 1
                    added += 1
        return added

    def drain(self, seconds: float = DRAIN_SECONDS) -> list[TraceLine]:
        """Take what is already waiting in the pipe (for at most ``seconds``) and return it."""
        deadline = time.monotonic() + seconds
        while self.poll(0.0) and time.monotonic() < deadline:
            pass
        waiting, self.lines = self.lines, []
        self.kept_bytes = 0
        return waiting

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def read_trace(*, seconds: float | None = None, count: int | None = None, trigger: Trigger = None,
               backlog: bool = False, path: Path | None = None, max_rows: int | None = None,
               max_bytes: int | None = None) -> pd.DataFrame:
    """Trace pipe lines as a DataFrame (task, pid, cpu, timestamp, message), bounded.

    Only lines written after the read began are returned (``count`` counts those); with
    ``backlog=True`` the lines that were already waiting come first, and a ``backlog`` column
    says which is which. ``attrs["backlog_lines"]`` tells how many were waiting either way.
    At most ``max_rows`` new lines and ``max_bytes`` bytes of their text are kept (defaults in
    :mod:`ebpf_nb.reading`): then the read stops and ``attrs["truncated"]`` is True."""
    cap = read_cap(max_rows, max_bytes)
    with TracePipe(path) as pipe:
        waiting = pipe.drain()
        pipe.cap = cap
        outcome = bounded_read(pipe.poll, seconds=seconds, count=count, trigger=trigger,
                               full=lambda: pipe.full)
        lines = pipe.lines[:count] if count else pipe.lines
        if outcome.truncated:
            limit = (f"max_rows={cap.rows:,}" if len(lines) >= cap.rows
                     else f"max_bytes={cap.nbytes:,}")
            display.notice(truncation_notice("trace", len(lines), limit))
    df = pd.DataFrame([vars(ln) for ln in lines], columns=COLUMNS)
    if backlog:
        old = pd.DataFrame([vars(ln) for ln in waiting], columns=COLUMNS)
        df = pd.concat([old.assign(backlog=True), df.assign(backlog=False)], ignore_index=True)
    df = finish_frame(df, outcome)
    df.attrs["backlog_lines"] = len(waiting)
    return df
