"""``BPF_PROG_TEST_RUN``: run a loaded program once, on demand, with a given context.

The deterministic way to make a program emit events (tests and benchmarks): a raw tracepoint
program gets its ``args[]`` from ``ctx`` and may loop (``bpf_loop``) to emit many records per run.
"""
from __future__ import annotations

import ctypes as ct

import numpy as np

from .libbpf import BpfTestRunOpts, check, lib

BPF_F_TEST_RUN_ON_CPU = 1


def test_run(prog_fd: int, args: tuple[int, ...] | list[int] = (), *, cpu: int | None = None,
             ctx: bytes | None = None) -> int:
    """Run the program behind ``prog_fd`` once and return its return value.

    ``args`` become a raw tracepoint's ``ctx->args[]`` (u64 each); ``ctx`` passes raw bytes
    instead. ``cpu`` runs it on that CPU (raw tracepoint programs only).
    """
    if ctx is None:
        ctx = np.asarray(args, dtype=np.uint64).tobytes()
    buf = ct.create_string_buffer(ctx, len(ctx)) if ctx else None
    opts = BpfTestRunOpts(sz=ct.sizeof(BpfTestRunOpts))
    if buf is not None:
        opts.ctx_in = ct.cast(buf, ct.c_void_p)
        opts.ctx_size_in = len(ctx)
    if cpu is not None:
        opts.flags = BPF_F_TEST_RUN_ON_CPU
        opts.cpu = cpu
    check(lib().bpf_prog_test_run_opts(prog_fd, ct.byref(opts)), "BPF_PROG_TEST_RUN")
    return opts.retval


test_run.__test__ = False  # type: ignore[attr-defined]  # not a pytest test, even when imported
