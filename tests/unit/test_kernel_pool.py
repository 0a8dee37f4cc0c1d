"""ebpf_nb.kernel.blockpool: a freed block is written again by a later read, never while an
array (a DataFrame's column) still refers to it."""
from __future__ import annotations

import gc

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
