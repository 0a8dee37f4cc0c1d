"""Sustained load: 100k events/s offered for 60 s to a live ``watch_events`` consumer.

The producer paces BPF_PROG_TEST_RUN batches against the clock (the offered rate), the consumer
is :class:`ebpf_nb.widgets.EventWatcher` refreshing once a second (text mode: the same reads
the widget does, one bounded ``events(seconds=1)`` each, keeping only the latest rows). Plain
BCC's consumer is ``ring_buffer_poll`` with a callback that counts and keeps the latest rows.
Reported: peak RSS growth over the run (sampled every 50 ms), drops the program counted, and
unexplained losses (submitted - received - dropped), which must be zero.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from .report import Result
from .workloads import producer, read_stats, ring_source

RATE = 100_000
PAGES = 4096  # a 16 MiB ring: 1.6 s of slack at 100k events/s of 72 bytes


class RssSampler:
    """Peak resident set size of this process while running (from /proc/self/statm)."""

    def __init__(self, every: float = 0.05):
        import os
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.every = every
        self.base = self.now()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, self.now())

    def __enter__(self) -> RssSampler:  # noqa: PYI034
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.base) / 2**20


def _offer(fn_fd: int, seconds: float, poll: Callable[[], object], *,
           more: Callable[[], object] = lambda: False,
           drain: Callable[[], object] = lambda: None) -> tuple[float, RssSampler]:
    """Offer RATE events/s for ``seconds`` from a thread, calling ``poll`` meanwhile (and on
    while ``more()``), then ``drain``: the seconds it took and the RSS sampled meanwhile."""
    thread = threading.Thread(target=producer(fn_fd, int(RATE * seconds), rate=RATE),
                              daemon=True)
    with RssSampler() as rss:
        t0 = time.perf_counter()
        thread.start()
        while thread.is_alive() or more():
            poll()
        elapsed = time.perf_counter() - t0
        drain()
    return elapsed, rss


def _ours(seconds: float) -> dict:
    from ebpf_nb.bcc_program import BpfProgram
    from ebpf_nb.widgets import EventWatcher
    prog = BpfProgram(ring_source(PAGES), name="bench_sustained", attach=False)
    try:
        fn = prog._load("emit", "RAW_TRACEPOINT")
        stats_fd = prog._layout("stats").fd
        watcher = EventWatcher(prog, "events", every=1.0, rows=10, text=True)
        # what arrived during the last read stays in the ring: drained by one more refresh
        elapsed, rss = _offer(fn.fd, seconds, watcher.refresh, drain=watcher.refresh)
        watcher.close()
        submitted, failed = read_stats(stats_fd)
        return _outcome(watcher.total_rows, submitted, failed, elapsed, rss,
                        errors=watcher.failures)
    finally:
        prog.detach()


def _ours_stream(seconds: float) -> dict:
    """One RingBufferReader kept open; each batch decoded with numpy into a DataFrame, only the
    latest rows kept (what a streaming watcher built on ebpf_nb.kernel does)."""
    import numpy as np
    import pandas as pd

    from ebpf_nb import decode
    from ebpf_nb.bcc_program import BpfProgram
    from ebpf_nb.kernel.maps import to_structured
    from ebpf_nb.kernel.ringbuf import RingBufferReader
    prog = BpfProgram(ring_source(PAGES), name="bench_stream", attach=False)
    try:
        fn = prog._load("emit", "RAW_TRACEPOINT")
        stats_fd = prog._layout("stats").fd
        layout = prog._layout("events")
        dtype = layout.event_dtype
        reader = RingBufferReader(layout.fd)
        received = 0
        latest = pd.DataFrame()

        def poll() -> None:
            nonlocal received, latest
            rows = reader.read_array(dtype.itemsize, timeout=0.1)
            if len(rows):
                frame = pd.DataFrame(decode.columns(to_structured(rows, dtype), "value"))
                received += len(frame)
                latest = frame.tail(10)
        elapsed, rss = _offer(fn.fd, seconds, poll, more=reader.pending)
        reader.close()
        del latest, np
        submitted, failed = read_stats(stats_fd)
        return _outcome(received, submitted, failed, elapsed, rss, errors=0)
    finally:
        prog.detach()


def _bcc(seconds: float) -> dict:
    from bcc import BPF
    b = BPF(text=ring_source(PAGES).encode())
    try:
        fn = b.load_func(b"emit", BPF.RAW_TRACEPOINT)
        stats_fd = b[b"stats"].map_fd
        latest: deque = deque(maxlen=10)
        count = [0]

        def on_event(_ctx, data, _size) -> None:
            e = b[b"events"].event(data)
            latest.append((e.seq, e.ts, e.pid, e.cpu, e.comm, e.a, e.b, e.c))
            count[0] += 1

        b[b"events"].open_ring_buffer(on_event)
        elapsed, rss = _offer(fn.fd, seconds, lambda: b.ring_buffer_poll(100),
                              drain=b.ring_buffer_consume)
        submitted, failed = read_stats(stats_fd)
        return _outcome(count[0], submitted, failed, elapsed, rss, errors=0)
    finally:
        b.cleanup()


def _outcome(received: int, submitted: int, failed: int, elapsed: float, rss: RssSampler,
             errors: int) -> dict:
    return {"received": received, "submitted": submitted, "dropped": failed,
            "unexplained": submitted - received - failed, "offered_per_s": submitted / elapsed,
            "rss_growth_mib": rss.growth_mib, "peak_rss_mib": rss.peak / 2**20,
            "read_errors": errors}


def run(quick: bool = False) -> list[Result]:
    seconds = 5.0 if quick else 60.0
    bcc = _bcc(seconds)
    results = []
    for label, ours in (("watch_events, 1 s refreshes", _ours(seconds)),
                        ("one kernel reader, numpy batches", _ours_stream(seconds))):
        met = ours["unexplained"] == 0 and ours["dropped"] == 0 and ours["rss_growth_mib"] < 64
        results.append(Result(
            f"sustained {RATE // 1000}k events/s x {seconds:.0f} s, ring, {label}",
            "MiB RSS growth", ours["rss_growth_mib"], bcc["rss_growth_mib"],
            higher_is_better=False, compare=False, goal="bounded RSS, 0 unexplained drops",
            met=met,
            extra={"offered": ours["offered_per_s"], "received": ours["received"],
                   "drops_ours": ours["dropped"], "drops_bcc": bcc["dropped"],
                   "unexplained_ours": ours["unexplained"],
                   "unexplained_bcc": bcc["unexplained"], "received_bcc": bcc["received"],
                   "read_errors": ours["read_errors"]}))
    return results


if __name__ == "__main__":
    from .report import table
    print(table(run(quick=True)))
