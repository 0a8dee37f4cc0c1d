"""Events into a DataFrame: ring and perf buffers, 64-byte records, ours against BCC's callbacks
and against a C + libbpf reader.

Ours goes through the public API (``BpfProgram.events``), which reads the buffer in bulk with
:mod:`ebpf_nb.kernel` and decodes with numpy. BCC's is the loop a tutorial writes:
``open_ring_buffer``/``open_perf_buffer`` + ``table.event(data)`` + ``list.append`` per event,
then ``pandas.DataFrame(rows)``. C's is ``c/reader.c`` (see :mod:`benchmarks.c_reference` and the
README): the same program and workload, records copied into preallocated columns.

Two ways of offering load:
- *flow-controlled* (ring only): the producer emits a batch only while the ring is under half
  full (it watches the kernel's positions), so nothing is dropped and rows/s is the consumer's
  own speed, from the first record to the finished DataFrame;
- *full speed*: the producer emits as fast as the kernel lets it; rows/s is what got through,
  and drops must be exact: submitted = received + dropped (the program counts failed submits).
"""
from __future__ import annotations

import resource
import threading
import time

import numpy as np
import pandas as pd

from ebpf_nb.buffers import PERF_WAKEUP_EVENTS
from ebpf_nb.kernel.ringbuf import RingPositions

from . import c_reference
from .report import Result
from .workloads import perf_source, producer, read_stats, ring_source

RING_PAGES = 4096          # 16 MiB ring
PERF_PAGES = 64            # per CPU, as ebpf_nb's reader opens it
COLUMNS = ["seq", "ts", "pid", "cpu", "comm", "a", "b", "c"]


# --- ours: the public API ----------------------------------------------------------------------
def _ours(source: str, total: int, *, flow_control: bool) -> dict:
    from ebpf_nb.bcc_program import BpfProgram
    prog = BpfProgram(source, name="bench_events", attach=False)
    try:
        fn = prog._load("emit", "RAW_TRACEPOINT")
        layout = prog._layout("events")
        stats_fd = prog._layout("stats").fd
        room = None
        positions = None
        if flow_control:
            positions = RingPositions(layout.fd)
            half = positions.size // 2
            room = lambda: positions.used() < half
        run = producer(fn.fd, total, room=room)
        c0, t0 = _cpu(), time.perf_counter()
        df = prog.events("events", count=total, trigger=run)
        elapsed, cpu = time.perf_counter() - t0, _cpu() - c0
        if positions:
            positions.close()
        submitted, failed = read_stats(stats_fd)
        return _outcome(len(df), submitted, failed, elapsed, df.attrs.get("lost"),
                        ordered=bool(np.all(np.diff(df["seq"].to_numpy().astype(np.int64)) > 0))
                        if "seq" in df and flow_control else None, cpu=cpu)
    finally:
        prog.detach()


# --- plain BCC: a callback per event -----------------------------------------------------------
def _bcc(source: str, total: int, *, ring: bool, flow_control: bool,
         wakeup_events: int = 1) -> dict:
    from bcc import BPF
    b = BPF(text=source.encode())
    try:
        fn = b.load_func(b"emit", BPF.RAW_TRACEPOINT)
        table = b[b"events"]
        stats_fd = b[b"stats"].map_fd
        rows: list[tuple] = []
        lost = [0]

        def on_event(*args) -> None:
            data = args[1]
            e = b[b"events"].event(data)
            rows.append((e.seq, e.ts, e.pid, e.cpu, e.comm, e.a, e.b, e.c))

        room = None
        positions = None
        if ring:
            table.open_ring_buffer(on_event)
            poll = b.ring_buffer_poll
            if flow_control:
                positions = RingPositions(table.map_fd)
                half = positions.size // 2
                room = lambda: positions.used() < half
        else:
            table.open_perf_buffer(on_event, page_cnt=PERF_PAGES, wakeup_events=wakeup_events,
                                   lost_cb=lambda n: lost.__setitem__(0, lost[0] + n))
            poll = b.perf_buffer_poll
        run = producer(fn.fd, total, room=room)
        c0, t0 = _cpu(), time.perf_counter()
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        idle_since = None
        while True:  # until everything submitted is received or known dropped
            before = len(rows)
            poll(100)
            if not thread.is_alive():
                submitted, failed = read_stats(stats_fd)
                if len(rows) + failed >= submitted:
                    break
                if len(rows) == before:
                    idle_since = idle_since or time.perf_counter()
                    if time.perf_counter() - idle_since > 0.5:
                        break
        df = pd.DataFrame(rows, columns=COLUMNS)
        elapsed, cpu = time.perf_counter() - t0, _cpu() - c0
        if positions:
            positions.close()
        submitted, failed = read_stats(stats_fd)
        if not ring:  # close BCC's perf buffers while the map is still open
            for key in list(table._open_key_fds):
                del table[key]
        return _outcome(len(df), submitted, failed, elapsed, None if ring else lost[0],
                        ordered=bool(np.all(np.diff(df["seq"].to_numpy().astype(np.int64)) > 0))
                        if flow_control else None, cpu=cpu)
    finally:
        _quiet_cleanup(b)


def _quiet_cleanup(b) -> None:
    """BCC's PerfEventArray.__del__ raises KeyError for keys cleanup() already removed."""
    import gc
    import sys
    hook = sys.unraisablehook
    sys.unraisablehook = lambda _info: None
    try:
        b.cleanup()
        del b
        gc.collect()
    finally:
        sys.unraisablehook = hook


# --- perf with batched wakeups: our kernel reader directly vs BCC with the same setting --------
def _ours_perf_reader(source: str, total: int, wakeup_events: int) -> dict:
    """The same reading and decoding as ``events()`` (rows copied once into a ``RowStore``,
    numpy view -> columns -> DataFrame, small pages), with the perf reader opened with
    ``wakeup_events`` and read in a plain loop (no ``bounded_read``, no timestamps)."""
    from ebpf_nb import decode
    from ebpf_nb.bcc_program import BpfProgram
    from ebpf_nb.buffers import RowStore, _joined, string_column
    from ebpf_nb.kernel.maps import to_structured
    from ebpf_nb.kernel.pages import small_pages
    from ebpf_nb.kernel.perfbuf import PerfBufferReader
    prog = BpfProgram(source, name="bench_perf", attach=False)
    try:
        fn = prog._load("emit", "RAW_TRACEPOINT")
        layout = prog._layout("events")
        stats_fd = prog._layout("stats").fd
        dtype = layout.event_dtype
        reader = PerfBufferReader(layout.fd, PERF_PAGES, wakeup_events=wakeup_events)
        thread = threading.Thread(target=producer(fn.fd, total), daemon=True)
        c0, t0 = _cpu(), time.perf_counter()
        with small_pages():
            thread.start()
            store, cpus = RowStore(dtype.itemsize, expected=total), []
            while thread.is_alive() or reader.pending():
                rows, cpu, _lost = reader.read_array(dtype.itemsize, timeout=0.1,
                                                     out=store.free())
                if len(rows):
                    store.filled(len(rows))
                    cpus.append(cpu)
            data = decode.columns(to_structured(store.rows(), dtype), "value")
            data["cpu"] = _joined(cpus)
            df = pd.DataFrame({k: string_column(v) for k, v in data.items()}, copy=False)
        elapsed, cpu = time.perf_counter() - t0, _cpu() - c0
        reader.close()
        submitted, failed = read_stats(stats_fd)
        return _outcome(len(df), submitted, failed, elapsed, None, None, cpu=cpu)
    finally:
        prog.detach()


def _cpu() -> float:
    """CPU seconds (user + system) this process has used, all threads: the producer's runs of
    the BPF program included, as in the C reference's figure."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _outcome(received: int, submitted: int, failed: int, elapsed: float, kernel_lost,
             ordered, *, cpu: float) -> dict:
    out = {"received": received, "submitted": submitted, "dropped": failed,
           "exact": received + failed == submitted, "seconds": elapsed, "cpu_seconds": cpu,
           "rows_per_s": received / elapsed if elapsed else 0.0}
    if kernel_lost is not None:
        out["kernel_lost"] = int(kernel_lost)
    if ordered is not None:
        out["in_order"] = ordered
    return out


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else 0.0


def _row(name: str, ours_fn, bcc_fn, c_fn, *, rounds: int, goal_c: float) -> Result:
    """Interleave C and ours ``rounds`` times (C first), BCC once after the first round; the
    row shows the medians, the notes the range of the per-round ebpf_nb/C ratios and C with
    columns it has not touched before timing (``c_cold``: what fresh memory costs)."""
    ours_runs, c_runs, cold_runs, bcc = [], [], [], None
    for i in range(rounds):
        c_runs.append(c_fn())
        ours_runs.append(ours_fn())
        cold_runs.append(c_fn(cold_columns=True))
        if i == 0:
            bcc = bcc_fn()
    ours_rate = _median([r["rows_per_s"] for r in ours_runs])
    c_rate = _median([r["rows_per_s"] for r in c_runs])
    per_round = [o["rows_per_s"] / c["rows_per_s"] for o, c in zip(ours_runs, c_runs)
                 if c["rows_per_s"]]
    exact = all(r["exact"] for r in ours_runs + c_runs) and bcc["exact"]
    vs_bcc = ours_rate / bcc["rows_per_s"] if bcc["rows_per_s"] else 0.0
    vs_c = ours_rate / c_rate if c_rate else 0.0
    extra = {"rows": ours_runs[0]["received"],
             "ours_range": f"{_fmt_rate(min(r['rows_per_s'] for r in ours_runs))}-"
                           f"{_fmt_rate(max(r['rows_per_s'] for r in ours_runs))}",
             "c_range": f"{_fmt_rate(min(r['rows_per_s'] for r in c_runs))}-"
                        f"{_fmt_rate(max(r['rows_per_s'] for r in c_runs))}",
             "vs_c_per_round": "/".join(f"{x:.0%}" for x in per_round),
             "c_cold": _fmt_rate(_median([r["rows_per_s"] for r in cold_runs])),
             "cpu_us_per_1k_rows_ours_c_bcc": "/".join(
                 f"{_median([r['cpu_seconds'] / max(r['received'], 1) for r in runs]) * 1e9:.0f}"
                 for runs in (ours_runs, c_runs, [bcc])),
             "drops_ours": max(r["dropped"] for r in ours_runs),
             "drops_c": max(r["dropped"] for r in c_runs), "drops_bcc": bcc["dropped"],
             "exact_all": exact}
    for key in ("kernel_lost", "in_order"):
        if key in ours_runs[0]:
            extra[f"{key}_ours"] = ours_runs[0][key]
    return Result(name, "rows/s", ours_rate, bcc["rows_per_s"], c=c_rate,
                  goal=f">={goal_c:.0%} of C, >=10x BCC, exact drops",
                  met=bool(vs_bcc >= 10 and vs_c >= goal_c and exact), extra=extra)


def _fmt_rate(x: float) -> str:
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.0f}k"


def run(quick: bool = False) -> list[Result]:
    results = []
    n_flow = 300_000 if quick else 2_000_000
    n_full = 300_000 if quick else 2_000_000
    n_perf = 100_000 if quick else 300_000
    n_perf64 = 300_000 if quick else 2_000_000
    rounds = 2 if quick else 3
    src = ring_source(RING_PAGES)
    psrc = perf_source()
    results.append(_row(
        f"ring buffer -> DataFrame, {n_flow // 1000}k events, flow-controlled",
        lambda: _ours(src, n_flow, flow_control=True),
        lambda: _bcc(src, n_flow, ring=True, flow_control=True),
        lambda **kw: c_reference.events(src, n_flow, ring=True, flow_control=True, **kw),
        rounds=rounds, goal_c=0.5))
    results.append(_row(
        f"ring buffer -> DataFrame, {n_full // 1000}k events at full speed",
        lambda: _ours(src, n_full, flow_control=False),
        lambda: _bcc(src, n_full, ring=True, flow_control=False),
        lambda **kw: c_reference.events(src, n_full, ring=True, flow_control=False, **kw),
        rounds=rounds, goal_c=0.5))
    results.append(_row(
        f"perf buffer -> DataFrame (events(), wakeup every {PERF_WAKEUP_EVENTS}; BCC every "
        f"event), {n_perf // 1000}k events at full speed",
        lambda: _ours(psrc, n_perf, flow_control=False),
        lambda: _bcc(psrc, n_perf, ring=False, flow_control=False),
        lambda **kw: c_reference.events(psrc, n_perf, ring=False,
                                        wakeup_events=PERF_WAKEUP_EVENTS, pages=PERF_PAGES, **kw),
        rounds=rounds, goal_c=0.8))
    results.append(_row(
        f"perf buffer (wakeup every 64 on all three, kernel reader) -> DataFrame, "
        f"{n_perf64 // 1000}k events at full speed",
        lambda: _ours_perf_reader(psrc, n_perf64, 64),
        lambda: _bcc(psrc, n_perf64, ring=False, flow_control=False, wakeup_events=64),
        lambda **kw: c_reference.events(psrc, n_perf64, ring=False, wakeup_events=64,
                                        pages=PERF_PAGES, **kw),
        rounds=rounds, goal_c=0.8))
    return results


if __name__ == "__main__":
    from .report import table
    print(table(run(quick=True)))
