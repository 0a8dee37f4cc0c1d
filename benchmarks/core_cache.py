"""CO-RE cells: the first run (vmlinux.h + clang + load + attach) against re-running an
unchanged cell (object from the cache: load + attach only), in a fresh cache directory.

``run()`` returns seconds for each phase; ``python -m benchmarks.core_cache`` prints them.
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid

SOURCE = """#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, u32);
    __type(value, u64);
} counts SEC(".maps");

static __attribute__((noinline)) u32 parent_of(struct task_struct *task)
{
    return BPF_CORE_READ(task, real_parent, tgid);
}

SEC("tp/sched/sched_process_exec")
int on_exec(void *ctx)
{
    u32 ppid = parent_of((void *)bpf_get_current_task());
    u64 one = 1, *n = bpf_map_lookup_elem(&counts, &ppid);
    if (n)
        __sync_fetch_and_add(n, 1);
    else
        bpf_map_update_elem(&counts, &ppid, &one, BPF_ANY);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
// BENCH_TAG
"""


def _timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def run(reruns: int = 5) -> dict:
    """Seconds: cold first run, first run of a new cell with vmlinux.h cached, and the median
    re-run of an unchanged cell; plus the compile-only share and the speed-up."""
    from ebpf_nb.core import CoreProgram
    from ebpf_nb.core.compile import compile_cell
    from ebpf_nb.core.vmlinux import vmlinux_include_dir

    saved = os.environ.get("EBPF_NB_CACHE")
    with tempfile.TemporaryDirectory(prefix="ebpf_nb-bench-") as cache:
        os.environ["EBPF_NB_CACHE"] = cache
        try:
            vmlinux_s, _ = _timed(vmlinux_include_dir)
            os.remove(os.path.join(vmlinux_include_dir(), "vmlinux.h"))  # cold again

            source = SOURCE.replace("BENCH_TAG", uuid.uuid4().hex)
            cold_s, prog = _timed(lambda: CoreProgram(source, "bench"))
            assert not prog.cache_hit
            prog.detach()

            other = SOURCE.replace("BENCH_TAG", uuid.uuid4().hex)
            compile_s, _ = _timed(lambda: compile_cell(other))
            warm_s, prog = _timed(lambda: CoreProgram(SOURCE.replace("BENCH_TAG", uuid.uuid4().hex),
                                                      "bench"))
            prog.detach()

            times = []
            for _ in range(reruns):
                seconds, prog = _timed(lambda: CoreProgram(source, "bench"))
                assert prog.cache_hit
                prog.detach()
                times.append(seconds)
        finally:
            if saved is None:
                os.environ.pop("EBPF_NB_CACHE", None)
            else:
                os.environ["EBPF_NB_CACHE"] = saved
    rerun_s = statistics.median(times)
    return {
        "vmlinux_h_s": round(vmlinux_s, 4),
        "compile_only_s": round(compile_s, 4),
        "first_run_cold_s": round(cold_s, 4),
        "first_run_vmlinux_cached_s": round(warm_s, 4),
        "rerun_unchanged_s": round(rerun_s, 4),
        "rerun_min_s": round(min(times), 4),
        "speedup_vs_first_run": round(warm_s / rerun_s, 1),
        "reruns": reruns,
    }


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key:28} {value}")
