"""ebpf_nb.kernel.blockpool: a freed block is written again by a later read, never while an
array (a DataFrame's column) still refers to it."""
from __future__ import annotations

import ctypes
import gc
from types import SimpleNamespace

import numpy as np
import pytest

from ebpf_nb.kernel.blockpool import MIN_BLOCK, BlockPool

MB = 1 << 20


def _addr(arr: np.ndarray) -> int:
    return arr.__array_interface__["data"][0]


def test_a_freed_block_is_handed_out_again():
    pool = BlockPool()
    a = pool.take(4 * MB)
    a[:] = 7
    where = _addr(a)
    del a
    b = pool.take(4 * MB)
    assert _addr(b) == where and pool.reused == 1
    assert b.flags.writeable and b.shape == (4 * MB,)


def test_a_block_with_a_live_view_is_never_handed_out():
    pool = BlockPool()
    a = pool.take(4 * MB).reshape(-1, 64)
    column = a.view(np.uint64)[:, 1]  # what a DataFrame keeps of a read: views of its block
    column[:] = 42
    del a
    gc.collect()
    b = pool.take(4 * MB)
    assert not np.shares_memory(b, column) and pool.reused == 0
    b[:] = 0xFF
    assert (column == 42).all()
    del column
    c = pool.take(4 * MB)
    assert pool.reused == 1 and not np.shares_memory(c, b)


def test_only_blocks_of_a_similar_size_are_reused_and_idle_memory_is_bounded():
    pool = BlockPool(limit=10 * MB)
    big = pool.take(8 * MB)
    del big
    small = pool.take(2 * MB)  # an idle 8 MiB block would keep 8 MiB alive for 2 MiB of rows
    assert pool.reused == 0 and pool.idle_bytes() == 8 * MB
    del small
    assert pool.idle_bytes() == 10 * MB
    blocks = [pool.take(4 * MB) for _ in range(3)]
    del blocks
    assert pool.idle_bytes() <= 10 * MB
    assert pool.take(MIN_BLOCK - 1).base is None  # small arrays: numpy's own allocator


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


@pytest.mark.kernel
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


@pytest.mark.parametrize("polls", [1, 2, 300])
def test_timestamps_and_cpus_are_what_repeat_and_concatenate_give(polls):
    from ebpf_nb.buffers import _joined, _timestamps
    rng = np.random.default_rng(polls)
    counts = rng.integers(1, 2 * MIN_BLOCK // 8 // polls + 2, polls)
    stamps = [(int(n), 0.25 * i) for i, n in enumerate(counts)]
    expected = np.repeat([t for _, t in stamps], counts)
    got = _timestamps(stamps)
    assert got.dtype == np.float64 and np.array_equal(got, expected)
    cpus = [np.full(int(n), i % 3, dtype=np.int32) for i, n in enumerate(counts)]
    joined = _joined(cpus)
    assert joined.dtype == np.int32 and np.array_equal(joined, np.concatenate(cpus))
