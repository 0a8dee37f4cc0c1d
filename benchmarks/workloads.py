"""The BPF programs the benchmarks load, and the producers that make them emit events."""
from __future__ import annotations

import ctypes as ct
import threading
import time
from collections.abc import Callable

from ebpf_nb.kernel.testrun import test_run

BATCH = 2048  # records one program run emits (the loop bound the verifier accepts)

EVENT_STRUCT = r"""
struct event {              /* 64 bytes */
    u64 seq;
    u64 ts;
    u32 pid;
    u32 cpu;
    char comm[16];
    u64 a;
    u64 b;
    u64 c;
};
BPF_ARRAY(stats, u64, 2);   /* [0] records submitted, [1] submits that failed (buffer full) */
"""

EMIT_BODY = r"""
int emit(struct bpf_raw_tracepoint_args *ctx) {
    u32 n = ctx->args[0];
    u64 base = ctx->args[1], failed = 0;
    struct event e = {};
    e.pid = bpf_get_current_pid_tgid() >> 32;
    e.cpu = bpf_get_smp_processor_id();
    e.ts = bpf_ktime_get_ns();
    bpf_get_current_comm(&e.comm, sizeof(e.comm));
    for (u32 i = 0; i < %(batch)d; i++) {
        if (i >= n) break;
        e.seq = base + i;
        e.a = i;
        failed += %(submit)s != 0;
    }
    u32 k0 = 0, k1 = 1;
    u64 *s = stats.lookup(&k0);
    if (s) __sync_fetch_and_add(s, n < %(batch)d ? n : %(batch)d);
    u64 *f = stats.lookup(&k1);
    if (f) __sync_fetch_and_add(f, failed);
    return 0;
}
"""


def ring_source(pages: int) -> str:
    return (EVENT_STRUCT + f"BPF_RINGBUF_OUTPUT(events, {pages});\n"
            + EMIT_BODY % {"batch": BATCH, "submit": "events.ringbuf_output(&e, sizeof(e), 0)"})


def perf_source() -> str:
    return (EVENT_STRUCT + "BPF_PERF_OUTPUT(events);\n"
            + EMIT_BODY % {"batch": BATCH, "submit": "events.perf_submit(ctx, &e, sizeof(e))"})


MAP_SOURCE = r"""
struct flow { u64 packets; u64 bytes; };
BPF_HASH(flows, u32, struct flow, %(entries)d);
int noop(struct bpf_raw_tracepoint_args *ctx) { return 0; }
"""

STARTUP_SOURCE = r"""
struct event { u32 pid; char comm[16]; };
BPF_HASH(counts, u32, u64);
BPF_RINGBUF_OUTPUT(events, 8);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    counts.increment(pid);
    struct event e = {.pid = pid};
    bpf_get_current_comm(&e.comm, sizeof(e.comm));
    events.ringbuf_output(&e, sizeof(e), 0);
    return 0;
}
"""


def read_stats(stats_fd: int) -> tuple[int, int]:
    """(submitted, failed) from the program's stats array."""
    from ebpf_nb.kernel.maps import lookup
    values = [int.from_bytes(lookup(stats_fd, ct.c_uint32(i).value.to_bytes(4, "little")) or
                             b"\0" * 8, "little") for i in (0, 1)]
    return values[0], values[1]


def producer(prog_fd: int, total: int, *, rate: float | None = None,
             room: Callable[[], bool] | None = None,
             stop: threading.Event | None = None) -> Callable[[], int]:
    """A function that makes the program emit ``total`` records, in runs of BATCH.

    ``rate``: offered records/s (paced against the clock); ``room``: flow control, emit a batch
    only while it says there is room (a busy check, not a sleep); ``stop`` ends it early.
    Returns the number of records it asked for.
    """
    def run() -> int:
        sent = 0
        start = time.perf_counter()
        while sent < total and not (stop is not None and stop.is_set()):
            if room is not None and not room():
                time.sleep(0.0002)  # let the consumer catch up (pacing, not synchronisation)
                continue
            if rate is not None:
                ahead = sent / rate - (time.perf_counter() - start)
                if ahead > 0:
                    time.sleep(min(ahead, 0.01))  # pacing the offered load, not synchronising
                    continue
            n = min(BATCH, total - sent)
            test_run(prog_fd, [n, sent])
            sent += n
        return sent
    return run
