"""Event reads take their blocks from the pool and never share memory between frames."""
from __future__ import annotations

import ctypes
import gc
from types import SimpleNamespace

import numpy as np

from ebpf_nb.kernel.blockpool import MIN_BLOCK


def _addr(arr: np.ndarray) -> int:
    return arr.__array_interface__["data"][0]


SOURCE = r"""
BPF_RINGBUF_OUTPUT(events, 1024);
int emit(struct bpf_raw_tracepoint_args *ctx) {
    u64 base = ctx->args[0];
    for (u64 i = 0; i < 512; i++) {
        u64 v = base + i;
        events.ringbuf_output(&v, sizeof(v), 0);
    }
    return 0;
}
"""


def test_two_reads_dataframes_never_share_memory_and_a_freed_one_is_reused():
    from bcc import BPF

    from ebpf_nb.buffers import EventStream
    from ebpf_nb.constants import MapType
    from ebpf_nb.kernel import blockpool
    from ebpf_nb.kernel.testrun import test_run
    n = 300 * 512
    assert n * 8 >= MIN_BLOCK
    b = BPF(text=SOURCE.encode())
    try:
        fn = b.load_func(b"emit", BPF.RAW_TRACEPOINT)
        layout = SimpleNamespace(map_type=MapType.RINGBUF, fd=b[b"events"].map_fd, name="events")
        dtype = np.dtype([("seq", "<u8")])

        def read(first: int):
            with EventStream(layout, dtype, label="pool") as stream:
                return stream.read(count=n, trigger=lambda: [test_run(fn.fd, [first + k])
                                                             for k in range(0, n, 512)])

        one = read(0)
        two = read(10**9)
        assert not np.shares_memory(one["seq"].to_numpy(), two["seq"].to_numpy())
        freed = {_addr(one[c].to_numpy()) for c in ("seq", "timestamp")}  # its two blocks
        reused = blockpool.POOL.reused
        del one
        gc.collect()
        idle = {ctypes.addressof((ctypes.c_ubyte * 1).from_buffer(block))
                for block in blockpool.POOL._idle}
        assert freed <= idle  # one's two blocks are back (with a read's scratch blocks, if any)
        three = read(2 * 10**9)
        assert blockpool.POOL.reused >= reused + 2
        assert {_addr(three[c].to_numpy()) for c in ("seq", "timestamp")} <= idle
        assert not np.shares_memory(two["seq"].to_numpy(), three["seq"].to_numpy())
        assert (two["seq"].to_numpy() == np.arange(n) + 10**9).all()  # untouched by read three
        assert (three["seq"].to_numpy() == np.arange(n) + 2 * 10**9).all()
    finally:
        b.cleanup()
