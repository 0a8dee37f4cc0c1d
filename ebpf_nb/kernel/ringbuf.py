"""Ring buffer (``BPF_MAP_TYPE_RINGBUF``) reader: mmap + epoll, records out in bulk.

Layout (kernel/bpf/ringbuf.c): page 0 holds ``consumer_pos`` (mapped read-write), page 1 holds
``producer_pos`` and is followed by the data area mapped twice in a row (read-only), so any
record, even one that wraps, is contiguous in memory. Each record starts with an 8-byte header:
``u32 len`` (bit 31 BUSY: still being written, bit 30 DISCARD: skip it) and ``u32 pg_off``; a
record takes ``round_up(len + 8, 8)`` bytes.

When all records have the same length (one C struct per event, the common case), the reader
checks every header at once with numpy and copies the payloads out as one ``(n, size)`` uint8
matrix: no Python work per record. Other records are walked one by one.

Drops: when the buffer is full ``bpf_ringbuf_output``/``reserve`` fail in the BPF program and
the kernel counts nothing, so :attr:`RingBufferReader.lost` is always 0; a program that wants its
drops counted must count failed submits itself (e.g. in an array map).

Ordering (:mod:`.atomics`, as libbpf's ``ringbuf_process_ring``): ``producer_pos`` is loaded
with acquire once per read; the first header of each run of records with an acquire load, the
rest of the run's headers with plain numpy loads followed by one acquire fence before the
payloads are copied (the kernel advances ``producer_pos`` at reserve time, with BUSY set, and
clears BUSY after writing the payload, so each header, not the position, publishes its
payload); ``consumer_pos`` is stored with release once, after the last payload is copied.
:meth:`RingBufferReader.pending` and :class:`RingPositions` read the positions plainly: they
only say whether (or how much) to read, and no record is read on their word.

It can read a ring buffer created by BCC's ``BPF_RINGBUF_OUTPUT`` as long as BCC's own reader
(``open_ring_buffer``) is not used on the same map.
"""
from __future__ import annotations

import mmap
import os
import select

import numpy as np

from ..constants import MapType, round8
from .atomics import load_acquire_u32, load_acquire_u64, store_release_u64
from .claims import ReaderClaim
from .closing import Closing
from .maps import map_info_of_type
from .records import (
    BULK_MAX,
    BULK_MIN,
    check_out,
    equal_run,
    gather,
    group_rows,
    one_record,
)

BUSY = 1 << 31
DISCARD = 1 << 30
HEADER = 8


class RingBufferReader(Closing):
    """Consume a BPF ring buffer map given its fd (the fd is duplicated, the map kept alive)."""

    lost = 0  # the kernel does not count ring buffer drops; see the module docstring

    def __init__(self, fd: int):
        info = map_info_of_type(fd, MapType.RINGBUF)
        self.name = info.name
        self.size = info.max_entries  # data area size, a power of two
        self._mask = self.size - 1
        self._fd = -1
        self._claim = ReaderClaim(info, "ring")  # one reader per map (see .claims)
        self.received = 0
        try:
            self._fd = os.dup(fd)
            page = mmap.PAGESIZE
            self._consumer_map = mmap.mmap(self._fd, page, mmap.MAP_SHARED,
                                           mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
            self._producer_map = mmap.mmap(self._fd, page + 2 * self.size, mmap.MAP_SHARED,
                                           mmap.PROT_READ, offset=page)
            self._consumer = np.frombuffer(self._consumer_map, dtype=np.uint64, count=1)
            self._producer = np.frombuffer(self._producer_map, dtype=np.uint64, count=1)
            self._data = np.frombuffer(self._producer_map, dtype=np.uint8, offset=page)
            self._consumer_at = self._consumer.ctypes.data  # addresses for .atomics
            self._producer_at = self._producer.ctypes.data
            self._data_at = self._data.ctypes.data
            self._epoll = select.epoll()
            self._epoll.register(self._fd, select.EPOLLIN)
        except BaseException:
            self.close()
            raise

    # --- waiting -------------------------------------------------------------------------
    def pending(self) -> int:
        """Bytes between the consumer and producer positions (records not read yet)."""
        return int(self._producer[0]) - int(self._consumer[0])

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for data; ``True`` if some is there (a little data:
        after letting more of its burst arrive, see :func:`.records.gather`)."""
        if not self.pending():
            self._epoll.poll(max(timeout, 0))
        gather(self.pending())
        return self.pending() > 0

    # --- reading -------------------------------------------------------------------------
    def read(self, timeout: float = 0.0, max_records: int | None = None) -> list[bytes]:
        """Records as ``bytes``, waiting up to ``timeout`` seconds if none are there yet."""
        out: list[bytes] = []
        if self.wait(timeout):
            for chunk in self._consume(None, max_records):
                if isinstance(chunk, bytes):
                    out.append(chunk)
                else:
                    out.extend(row.tobytes() for row in chunk)
        return out

    def read_array(self, record_size: int, timeout: float = 0.0,
                   max_records: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Records as one ``(n, record_size)`` uint8 matrix (longer records are cut, shorter
        ones zero-padded), waiting up to ``timeout`` seconds if none are there yet.

        ``out``: a ``(k, record_size)`` uint8 array to copy the records into (at most ``k``);
        the result is then ``out[:n]``, and the records are copied once only."""
        if out is not None:
            check_out(out, record_size)
            limit = len(out) if max_records is None else min(max_records, len(out))
            if limit <= 0 or not self.wait(timeout):
                return out[:0]
            return out[:sum(len(c) for c in self._consume(record_size, limit, out))]
        if not self.wait(timeout):
            return np.empty((0, record_size), dtype=np.uint8)
        chunks = group_rows(self._consume(record_size, max_records), record_size)
        if not chunks:
            return np.empty((0, record_size), dtype=np.uint8)
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)

    def _consume(self, record_size: int | None, max_records: int | None,
                 out: np.ndarray | None = None):
        """Return ``(k, size)`` matrices of equal-length records, or single ``bytes`` records
        (with ``out``: views of ``out``, filled from row 0); advance ``consumer_pos`` past
        everything returned (and discarded)."""
        cons = first = int(self._consumer[0])  # only this reader writes it
        prod = load_acquire_u64(self._producer_at)  # the headers up to it are written
        left = max_records if max_records is not None else -1
        data = self._data
        chunks: list[np.ndarray | bytes] = []
        filled = 0
        while cons < prod and left != 0:
            start = cons & self._mask
            word = load_acquire_u32(self._data_at + start)  # BUSY clear: the payload is there
            if word & BUSY:
                break
            length = word & ~(BUSY | DISCARD) & 0xFFFFFFFF
            stride = round8(length + HEADER)
            if word & DISCARD:
                cons += stride
                continue
            # How many records in a row have exactly this header word?
            n_max = min((prod - cons) // stride, BULK_MAX)
            if left > 0:
                n_max = min(n_max, left)
            rest = None if out is None else out[filled:]
            if n_max >= BULK_MIN:
                block = data[start:start + n_max * stride].reshape(n_max, stride)
                heads = block.view(np.uint32)[:, 0]  # a strided view: no copy
                # (equal_run fences after checking them, before copying the payloads)
                width = length if record_size is None else record_size
                rows, n = equal_run(block, heads, word, HEADER, length, width, rest)
                chunks.append(rows)
            else:
                n = 1
                chunks.append(one_record(data, start + HEADER, length, rest))
            filled += n
            cons += n * stride
            self.received += n
            if left > 0:
                left -= n
        if cons != first:  # after the last copy out of the ring: the kernel may reuse the space
            store_release_u64(self._consumer_at, cons)
        return chunks

    def close(self) -> None:
        """Unmap and close, and let another reader open the map; safe to call twice."""
        if getattr(self, "_fd", -1) >= 0:
            for view in ("_consumer", "_producer", "_data",  # a map with views cannot close
                         "_consumer_at", "_producer_at", "_data_at"):  # (nor be read after)
                self.__dict__.pop(view, None)
            for name in ("_epoll", "_consumer_map", "_producer_map"):
                if name in self.__dict__:
                    self.__dict__[name].close()
            os.close(self._fd)
            self._fd = -1
        if hasattr(self, "_claim"):
            self._claim.release()

    def fileno(self) -> int:
        return self._fd


class RingPositions:
    """Read-only view of a ring buffer's consumer and producer positions, for watching how full
    it is while another reader (ours or BCC's) consumes it; consumes nothing itself."""

    def __init__(self, fd: int):
        info = map_info_of_type(fd, MapType.RINGBUF)
        self.size = info.max_entries
        page = mmap.PAGESIZE
        self._consumer_map = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ, offset=0)
        self._producer_map = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        self._consumer = np.frombuffer(self._consumer_map, dtype=np.uint64, count=1)
        self._producer = np.frombuffer(self._producer_map, dtype=np.uint64, count=1)

    def used(self) -> int:
        """Bytes written by the kernel and not yet consumed."""
        return int(self._producer[0]) - int(self._consumer[0])

    def close(self) -> None:
        del self._consumer, self._producer
        self._consumer_map.close()
        self._producer_map.close()
