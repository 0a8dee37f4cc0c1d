"""The first read in a fresh process against later ones, and the peak memory of a big read.

Each measurement runs in a child process of its own (``python -m benchmarks.bench_footprint
first|memory``), so that nothing earlier in the run has warmed pandas or the allocator:

- *first read*: five flow-controlled ring reads of 300k events through ``events()`` in one fresh
  process; the first one's time against the median of the other four (goal: within 2x);
- *memory*: one flow-controlled ring read of 2M events; the growth of the peak RSS during the read
  (``VmHWM``, reset through ``/proc/self/clear_refs`` once the program is compiled) against the
  finished DataFrame's ``memory_usage()`` (goal: within 2x; ``deep=True``, which counts the
  shared ``str`` of every row again, is shown too).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

from .report import Result

FIRST_N = 300_000
MEMORY_N = 2_000_000


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _flow_read(prog, total: int):
    """One flow-controlled ``events()`` read of ``total`` records; returns (seconds, df)."""
    from ebpf_nb.kernel.ringbuf import RingPositions

    from .workloads import producer
    fn = prog._load("emit", "RAW_TRACEPOINT")
    positions = RingPositions(prog._layout("events").fd)
    half = positions.size // 2
    try:
        run = producer(fn.fd, total, room=lambda: positions.used() < half)
        t0 = time.perf_counter()
        df = prog.events("events", count=total, trigger=run)
        return time.perf_counter() - t0, df
    finally:
        positions.close()


def _child(which: str) -> dict:
    from ebpf_nb.bcc_program import BpfProgram

    from .bench_events import RING_PAGES
    from .workloads import ring_source
    prog = BpfProgram(ring_source(RING_PAGES), name="bench_footprint", attach=False)
    try:
        if which == "first":
            times = []
            for _ in range(5):
                seconds, df = _flow_read(prog, FIRST_N)
                assert len(df) == FIRST_N, len(df)
                times.append(seconds)
                del df
            return {"times": times}
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS: the compile before this is not the read's
        base = _status_kib("VmRSS")
        seconds, df = _flow_read(prog, MEMORY_N)
        peak = _status_kib("VmHWM")
        return {"rows": len(df), "seconds": seconds, "peak_growth_mib": (peak - base) / 1024,
                # shallow: a str column as its pointers (its rows share a few str objects);
                # deep counts every row's str object again, shared or not
                "frame_mib": float(df.memory_usage(deep=False).sum()) / 2**20,
                "frame_deep_mib": float(df.memory_usage(deep=True).sum()) / 2**20}
    finally:
        prog.detach()


def _in_child(which: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_footprint", which],
                          capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"bench_footprint {which} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> list[Result]:
    first = _in_child("first")["times"]
    later = sorted(first[1:])[len(first[1:]) // 2]
    results = [Result(f"first events() read in a fresh process ({FIRST_N // 1000}k ring events)"
                      " vs the median of the next four", "ms", first[0] * 1e3, None,
                      higher_is_better=False, compare=False, goal="first <= 2x later",
                      met=first[0] <= 2 * later,
                      extra={"later_ms": later * 1e3, "first_over_later": first[0] / later,
                             "all_ms": "/".join(f"{t * 1e3:.0f}" for t in first)})]
    if not quick:
        mem = _in_child("memory")
        results.append(Result(
            f"peak RSS growth of a {MEMORY_N // 1_000_000}M-row ring read vs its DataFrame",
            "MiB", mem["peak_growth_mib"], None, higher_is_better=False,
            compare=False, goal="peak <= 2x DataFrame",
            met=mem["peak_growth_mib"] <= 2 * mem["frame_mib"] and mem["rows"] == MEMORY_N,
            extra={"frame_mib": mem["frame_mib"], "frame_deep_mib": mem["frame_deep_mib"],
                   "peak_over_frame": mem["peak_growth_mib"] / mem["frame_mib"],
                   "rows": mem["rows"], "read_s": mem["seconds"]}))
    return results


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1])))
