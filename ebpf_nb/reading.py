"""Bounded reads: every read stops after ``seconds`` or ``count``, runs an optional ``trigger``
once reading has started, and keeps what it read when the student presses Ctrl-C (interrupt).

Every read also keeps at most :data:`MAX_ROWS` rows and :data:`MAX_BYTES` bytes of records (a
busy buffer brings millions of rows a second): at the cap it stops, marks the frame
``attrs["truncated"]`` and says so once (``max_rows=``/``max_bytes=`` change the cap per call)."""
from __future__ import annotations

import ctypes
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Union

import pandas as pd

from . import display
from .errors import TriggerStopped, UsageError

Trigger = Union[str, Callable[[], object], None]  # noqa: UP007 - a runtime alias

DEFAULT_SECONDS = 1.0        # neither seconds nor count nor trigger given
COUNT_TIMEOUT = 10.0         # count given alone: never wait longer than this
TRIGGER_TIMEOUT = 60.0       # trigger given alone: the longest it may run
DRAIN_SECONDS = 0.25         # after a trigger ends, keep reading this long for late events
DRAIN_QUIET = 0.02           # ... or, for readers that see each record at once, until quiet
KILL_GRACE = 0.5             # a trigger still running when the read ends: SIGTERM, then SIGKILL
TRIGGER_STOP_WAIT = 0.5      # a trigger function still running: how long it may take to stop
TRIGGER_OUTPUT_HEAD = 16 << 10   # a shell trigger's output kept: its first 16 KiB ...
TRIGGER_OUTPUT_TAIL = 48 << 10   # ... and its last 48 KiB; the rest is read and not stored
MAX_ROWS = 5_000_000         # a read keeps at most this many rows (events, trace lines) ...
MAX_BYTES = 512 << 20        # ... and this many bytes of records; max_rows=/max_bytes= per call


@dataclass(frozen=True)
class ReadCap:
    """The most one read keeps: ``rows`` rows and ``nbytes`` bytes of records."""

    rows: int = MAX_ROWS
    nbytes: int = MAX_BYTES

    def rows_for(self, record_size: int) -> int:
        """How many records of ``record_size`` bytes fit under both limits."""
        return min(self.rows, self.nbytes // max(record_size, 1))

    def which(self, rows: int, record_size: int) -> str:
        """The limit a read that stopped at ``rows`` rows hit, as the keyword that sets it."""
        if rows >= self.rows:
            return f"max_rows={self.rows:,}"
        return f"max_bytes={self.nbytes:,} ({record_size} bytes a row)"


def read_cap(max_rows: int | None = None, max_bytes: int | None = None) -> ReadCap:
    """A :class:`ReadCap` from a call's keywords (None: the default); :class:`UsageError` for
    anything but a positive whole number."""
    for name, value in (("max_rows", max_rows), ("max_bytes", max_bytes)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value <= 0):
            raise UsageError(f"{name} must be a positive whole number, not {value!r}")
    return ReadCap(MAX_ROWS if max_rows is None else max_rows,
                   MAX_BYTES if max_bytes is None else max_bytes)


def truncation_notice(label: str, rows: int, limit: str) -> str:
    """The one line a student sees when a read stopped at its cap."""
    return (f"{label}: the read stopped at {rows:,} rows ({limit}); for more pass a bigger "
            "max_rows=/max_bytes=, or read less: fewer seconds, or count=N")


@dataclass
class ReadOutcome:
    """How a bounded read ended."""

    elapsed: float = 0.0
    interrupted: bool = False
    stopped_by: str = "seconds"  # "seconds", "count", "trigger", "interrupt", "timeout", "cap"
    truncated: bool = False      # stopped at the read's cap (max_rows/max_bytes)
    trigger_returncode: int | None = None
    trigger_output: str = ""
    trigger_output_cut: int = 0          # bytes of it read and not kept (see OutputKeeper)
    trigger_running: bool = False        # a trigger function that could not be stopped
    trigger_error: BaseException | None = field(default=None, repr=False)


class OutputKeeper:
    """Keeps the first ``head`` and last ``tail`` bytes of a stream fed in chunks, and counts
    the rest (which is dropped): a trigger may print gigabytes (``yes | head -c 10G``)."""

    def __init__(self, head: int = TRIGGER_OUTPUT_HEAD, tail: int = TRIGGER_OUTPUT_TAIL):
        self.head_limit, self.tail_limit = head, tail
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail += chunk[-self.tail_limit:] if self.tail_limit else b""
        if len(self.tail) > self.tail_limit:
            del self.tail[:len(self.tail) - self.tail_limit]

    @property
    def cut(self) -> int:
        """Bytes read and not kept."""
        return self.total - len(self.head) - len(self.tail)

    def text(self) -> str:
        """What was kept, decoded; a cut is marked where it was made."""
        if not self.cut:  # one decode: a character may straddle head and tail
            return (self.head + self.tail).decode("utf-8", "replace")
        head = self.head.decode("utf-8", "replace")
        tail = self.tail.decode("utf-8", "replace")
        return (f"{head}\n[... {self.cut:,} bytes of the trigger's output not kept: the first "
                f"{len(self.head):,} and last {len(self.tail):,} are ...]\n{tail}")


class _TriggerRunner:
    """Runs a shell command or a callable in a thread so reading goes on meanwhile."""

    def __init__(self, trigger: Trigger):
        self.trigger = trigger
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self.kept = OutputKeeper()
        self.stopping = threading.Event()
        self.in_function = False   # a trigger function is running (it may be stopped)
        self.stopped = False       # it was stopped by TriggerStopped
        self.still_running = False  # it could not be stopped: blocked in a C call
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="ebpf_nb-trigger", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            self._call()
        except TriggerStopped:  # arrived just as the trigger function returned
            self.stopped = True

    def _call(self) -> None:
        try:
            if isinstance(self.trigger, str):
                self.proc = subprocess.Popen(self.trigger, shell=True,
                                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True)
                self._collect(self.proc)
                self.returncode = self.proc.wait()
            else:
                self.in_function = True
                try:
                    self.trigger()  # type: ignore[misc]
                finally:
                    self.in_function = False
        except TriggerStopped:
            self.stopped = True
        except BaseException as err:  # noqa: BLE001 - reported to the user after the read
            self.error = err

    def _collect(self, proc: subprocess.Popen[bytes]) -> None:
        """Read the trigger's output until it ends, keeping a bounded part (:class:`OutputKeeper`);
        stop waiting for it once the read is stopping and the shell has ended (a child that left
        the process group may hold the pipe open)."""
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        try:
            while True:
                ready, _, _ = select.select([fd], [], [], 0.1)
                if ready:
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        break
                    self.kept.add(chunk)
                elif self.stopping.is_set() and proc.poll() is not None:
                    break
        finally:
            proc.stdout.close()

    @property
    def output(self) -> str:
        return self.kept.text()

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()

    def stop(self) -> None:
        """End whatever is left of the trigger. A shell trigger's whole process group (its
        children too) gets SIGTERM, then, after :data:`KILL_GRACE` seconds, SIGKILL. A trigger
        function still running gets :class:`~ebpf_nb.errors.TriggerStopped` raised in its
        thread; one blocked in a C call (a long ``time.sleep``, a blocking read) cannot take it
        until that call returns: the read returns after :data:`TRIGGER_STOP_WAIT` anyway, and
        one line says the function is still running."""
        self.stopping.set()
        if self.proc is not None:
            end_process_group(self.proc.pid, KILL_GRACE)
            self.thread.join(timeout=5)
            return
        if not self.thread.is_alive():
            return
        if self.in_function:
            raise_in_thread(self.thread, TriggerStopped)
        self.thread.join(timeout=TRIGGER_STOP_WAIT)
        if self.thread.is_alive():
            self.still_running = True
            name = getattr(self.trigger, "__name__", "trigger")
            display.notice(f"the trigger function {name}() is still running (in a call Python "
                           "cannot interrupt) and cannot be stopped from outside; it stops once "
                           "that call returns")


def raise_in_thread(thread: threading.Thread, exc_type: type[BaseException]) -> bool:
    """Make ``exc_type`` raise in ``thread`` at its next Python instruction; whether the
    thread was found (``PyThreadState_SetAsyncExc``)."""
    if thread.ident is None:
        return False
    found = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident),
                                                       ctypes.py_object(exc_type))
    return bool(found == 1)


def end_process_group(pgid: int, grace: float) -> None:
    """SIGTERM to every process of group ``pgid``; SIGKILL to those still running after
    ``grace`` seconds; return once none is running (a zombie has ended: only its exit status
    waits for its parent). SIGKILL cannot be ignored: the second wait is the kernel's time."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 1.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        if _group_ends_within(pgid, wait):
            return


def _group_ends_within(pgid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while running_in_group(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def running_in_group(pgid: int) -> list[int]:
    """Pids of the processes of group ``pgid`` that have not ended (from /proc)."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:  # ended while we looked
            continue
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            pids.append(int(entry.name))
    return pids


def validate_bounds(seconds: float | None, count: int | None) -> None:
    """Raise :class:`UsageError` for a negative or zero bound."""
    if seconds is not None and not seconds > 0:
        raise UsageError(f"seconds must be a positive number, not {seconds!r}")
    if count is not None and (not isinstance(count, int) or count <= 0):
        raise UsageError(f"count must be a positive whole number, not {count!r}")


def bounded_read(poll: Callable[[float], int], *, seconds: float | None = None,
                 count: int | None = None, trigger: Trigger = None,
                 progress: Callable[[int], None] | None = None,
                 drain_quiet: float | None = None,
                 full: Callable[[], bool] | None = None) -> ReadOutcome:
    """Call ``poll(timeout)`` (which consumes what is ready and returns how many items it got)
    until the bounds are met. The trigger starts after the first poll has armed the reader.
    ``full()`` true (the reader has kept as much as its cap allows) ends the read at once:
    ``stopped_by="cap"``, ``truncated=True`` (``count`` reached first is not a truncation).

    After a trigger ends (no ``seconds``) reading goes on for :data:`DRAIN_SECONDS`, or, with
    ``drain_quiet``, only until nothing has arrived for that long: for readers whose ``poll``
    returns as soon as a record is in the buffer (the event readers)."""
    validate_bounds(seconds, count)
    if trigger is not None and not (isinstance(trigger, str) or callable(trigger)):
        raise UsageError("trigger must be a shell command (str) or a function")
    if seconds is None and count is None and trigger is None:
        seconds = DEFAULT_SECONDS
    limit = seconds if seconds is not None else (TRIGGER_TIMEOUT if trigger is not None
                                                 else COUNT_TIMEOUT)
    outcome = ReadOutcome()
    start = time.monotonic()
    deadline = start + limit
    runner = _TriggerRunner(trigger) if trigger is not None else None
    total = 0
    drain_until: float | None = None
    last_data = start
    try:
        total += poll(0.0)
        if runner:
            runner.start()
        while True:
            now = time.monotonic()
            if count is not None and total >= count:
                outcome.stopped_by = "count"
                break
            if full is not None and full():
                outcome.stopped_by = "cap"
                outcome.truncated = True
                break
            if now >= deadline:
                outcome.stopped_by = "seconds" if seconds is not None else "timeout"
                break
            if runner and seconds is None and runner.done:
                if drain_until is None:
                    drain_until = now + DRAIN_SECONDS
                    last_data = now
                elif now >= drain_until or (drain_quiet is not None
                                            and now - last_data >= drain_quiet):
                    outcome.stopped_by = "trigger"
                    break
            wait = min(0.1 if drain_until is None or drain_quiet is None else drain_quiet,
                       max(0.0, deadline - now))
            got = poll(wait)
            if got:
                total += got
                last_data = time.monotonic()
            if progress:
                progress(total)
    except KeyboardInterrupt:
        outcome.interrupted = True
        outcome.stopped_by = "interrupt"
    finally:
        if runner:
            runner.stop()
            outcome.trigger_returncode = runner.returncode
            outcome.trigger_output = runner.output
            outcome.trigger_output_cut = runner.kept.cut
            outcome.trigger_running = runner.still_running
            outcome.trigger_error = runner.error
        outcome.elapsed = time.monotonic() - start
    return outcome


def finish_frame(df: pd.DataFrame, outcome: ReadOutcome) -> pd.DataFrame:
    """Attach how the read ended to ``df.attrs``; re-raise a trigger function's exception."""
    df.attrs.update(interrupted=outcome.interrupted, stopped_by=outcome.stopped_by,
                    truncated=outcome.truncated,
                    elapsed=round(outcome.elapsed, 3),
                    trigger_returncode=outcome.trigger_returncode,
                    trigger_output=outcome.trigger_output,
                    trigger_output_cut=outcome.trigger_output_cut,
                    trigger_running=outcome.trigger_running)
    if outcome.trigger_error is not None and not isinstance(outcome.trigger_error, KeyboardInterrupt):
        raise outcome.trigger_error
    return df
