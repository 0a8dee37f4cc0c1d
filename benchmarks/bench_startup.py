"""Cell to attached: a ``%%bpf`` cell against ``BPF(text=...)`` for the same program.

Both compile the C with BCC, load it and attach a tracepoint; the cell also captures fd 2,
plans the attachment, registers the program (a re-run detaches the previous one) and prints
its summary. Runs alternate in ABBA order and the medians count. The CO-RE re-run figure comes from
:mod:`benchmarks.core_cache` when that module is there.
"""
from __future__ import annotations

import contextlib
import io
import statistics
import time

from .report import Result
from .workloads import STARTUP_SOURCE


def _cell_seconds(shell) -> float:
    with contextlib.redirect_stdout(io.StringIO()):  # a re-run would detach the old one first:
        shell.run_line_magic("bpf_detach", "--all")  # do that outside the timing, as for BCC
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        shell.run_cell_magic("bpf", "bench_startup", STARTUP_SOURCE)
    elapsed = time.perf_counter() - t0
    prog = shell.user_ns["bench_startup"]
    assert prog.attached, "the cell did not attach"
    return elapsed


def _bcc_seconds() -> float:
    from bcc import BPF
    t0 = time.perf_counter()
    b = BPF(text=STARTUP_SOURCE.encode())  # TRACEPOINT_PROBE attaches in the constructor
    elapsed = time.perf_counter() - t0
    assert b.num_open_tracepoints() == 1
    b.cleanup()
    return elapsed


def run(quick: bool = False) -> list[Result]:
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "ebpf_nb.magics")
    repeat = 4 if quick else 8
    ours, bcc = [], []
    _bcc_seconds()  # warm both paths once (imports, header lookups)
    _cell_seconds(shell)
    for i in range(repeat):  # ABBA order: the run after a detach pays for the kernel's cleanup
        if i % 2:
            bcc.append(_bcc_seconds())
            ours.append(_cell_seconds(shell))
        else:
            ours.append(_cell_seconds(shell))
            bcc.append(_bcc_seconds())
    with contextlib.redirect_stdout(io.StringIO()):
        shell.run_line_magic("bpf_detach", "--all")
    t_ours, t_bcc = statistics.median(ours), statistics.median(bcc)
    overhead = t_ours / t_bcc - 1
    results = [Result("%%bpf cell -> attached (compile+load+attach)", "ms", t_ours * 1e3,
                      t_bcc * 1e3, higher_is_better=False, goal="adds <10%",
                      met=overhead < 0.10,
                      extra={"overhead_pct": round(overhead * 100, 1), "runs": repeat,
                             "min_ours_ms": min(ours) * 1e3, "min_bcc_ms": min(bcc) * 1e3})]
    results.extend(_core_rerun(quick))
    return results


def _core_rerun(quick: bool) -> list[Result]:
    try:
        from . import core_cache
    except ImportError:
        return []
    try:
        out = core_cache.run(reruns=3 if quick else 5)
    except Exception as err:  # noqa: BLE001 - report, do not hide the rest of the benchmarks
        return [Result("CO-RE cell re-run (unchanged) vs first run", "ms", None, None,
                       goal="skips the compile", met=False, extra={"error": str(err)[:80]})]
    rerun, first = out["rerun_unchanged_s"], out["first_run_vmlinux_cached_s"]
    compile_s = out["compile_only_s"]
    return [Result("CO-RE cell re-run (unchanged) vs its first run", "ms", rerun * 1e3,
                   first * 1e3, higher_is_better=False, goal="skips the compile",
                   met=rerun < 0.5 * first,
                   extra={"compile_ms": compile_s * 1e3, "cold_first_ms":
                          out["first_run_cold_s"] * 1e3, "column_bcc": "first run"})]


if __name__ == "__main__":
    from .report import table
    print(table(run(quick=True)))
