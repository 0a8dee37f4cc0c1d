"""Row blocks that come back: a freed DataFrame's memory, written into by the next read.

The first write to a page costs a fault; on the VM the benchmarks run on, 2-8 us per 4 KiB page
(a 2M-row ring read writes 128 MiB: 32k pages, 70-280 ms, more than copying the records). A read
takes its row blocks from a :class:`BlockPool`; once no array refers to a block any more (its
DataFrame was freed) the block goes back to the pool, whose idle blocks the next read of a
similar size writes into without a fault. A block is handed out again only after every view of
it is gone (a finalizer on the buffer object each view keeps alive), so two DataFrames never
share memory. Idle blocks are ``MADV_FREE``: the kernel may take their pages back when memory
runs short, and at most :attr:`BlockPool.limit` bytes of them are kept.
"""
from __future__ import annotations

import ctypes
import mmap
import threading
import weakref

import numpy as np

POOL_BYTES = 256 << 20  # idle blocks kept at most (one 2M-row read of 128-byte records)
MIN_BLOCK = 1 << 20     # smaller blocks come from numpy's allocator (its own caches are fine)


class BlockPool:
    """Anonymous private mappings handed out as uint8 arrays, taken back when unreferenced."""

    def __init__(self, limit: int = POOL_BYTES):
        self.limit = limit
        self._idle: list[mmap.mmap] = []  # oldest first
        self._lock = threading.RLock()  # a finalizer may run inside take() (a GC pass)
        self.reused = 0  # blocks handed out again (for tests and benchmarks)

    def take(self, nbytes: int) -> np.ndarray:
        """A writable 1-D uint8 array of ``nbytes`` (its contents undefined)."""
        if nbytes < MIN_BLOCK:
            return np.empty(nbytes, dtype=np.uint8)
        block = self._fitting(nbytes)
        if block is None:
            block = mmap.mmap(-1, -(-nbytes // mmap.PAGESIZE) * mmap.PAGESIZE,
                              flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        view = (ctypes.c_ubyte * nbytes).from_buffer(block)
        # (ignores: typeshed calls finalize.atexit a slot, not the property it is; the stubs
        # make a ctypes array a buffer only from Python 3.12 on)
        weakref.finalize(view, self._give_back, block).atexit = False  # type: ignore[misc]
        return np.frombuffer(view, dtype=np.uint8)  # type: ignore[call-overload]

    def idle_bytes(self) -> int:
        with self._lock:
            return sum(len(block) for block in self._idle)

    def clear(self) -> None:
        """Forget the idle blocks (their memory is unmapped once nothing refers to them)."""
        with self._lock:
            self._idle.clear()

    def _fitting(self, nbytes: int) -> mmap.mmap | None:
        """The smallest idle block of ``nbytes`` to ``2 * nbytes`` (a bigger one would keep its
        whole size alive for a smaller DataFrame), taken out of the pool."""
        with self._lock:
            fits = [b for b in self._idle if nbytes <= len(b) <= 2 * nbytes]
            if not fits:
                return None
            block = min(fits, key=len)
            self._idle.remove(block)
            self.reused += 1
            return block

    def _give_back(self, block: mmap.mmap) -> None:
        """Called when the last array on ``block`` is gone: keep it idle, within the limit."""
        if block.closed:
            return
        try:
            block.madvise(mmap.MADV_FREE)  # reclaimable, and cheap to write again if not
        except (AttributeError, OSError):
            pass
        with self._lock:
            self._idle.append(block)
            while self._idle and sum(len(b) for b in self._idle) > self.limit:
                self._idle.pop(0)  # unmapped when the mmap object goes


POOL = BlockPool()
