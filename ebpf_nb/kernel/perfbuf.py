"""Perf buffer (``BPF_MAP_TYPE_PERF_EVENT_ARRAY``) reader: one perf ring per CPU, read in bulk.

For each online CPU the reader opens a ``PERF_COUNT_SW_BPF_OUTPUT`` software event with
``PERF_SAMPLE_RAW``, mmaps its ring (one metadata page + ``page_count`` data pages), and stores
the event fd in the map at that CPU's index, which is where ``bpf_perf_event_output(...,
BPF_F_CURRENT_CPU, ...)`` writes. epoll on all the event fds wakes the reader.

Records in a ring: ``struct perf_event_header {u32 type; u16 misc; u16 size}`` then, for
``PERF_RECORD_SAMPLE``, ``u32 raw_size`` and the raw bytes (the kernel pads them so the record is
8-aligned: ``raw_size`` includes that padding, as BCC's callbacks also see it). When the ring is
full the kernel counts the drop and, at the next record it can write, emits
``PERF_RECORD_LOST {u64 id; u64 lost}``; :attr:`PerfBufferReader.lost` sums those exactly. (A drop
is therefore reported only once that CPU writes again.)

Equal-sized samples, the common case, are checked and copied out with numpy in one go.

Ordering (:mod:`.atomics`, as perf's ``ring_buffer_read_head``/``ring_buffer_write_tail``):
``data_head`` is loaded with acquire before the records it covers are read (the kernel writes
them, then ``smp_wmb()``, then ``data_head``), ``data_tail`` is stored with release after the
last copy out of the ring.
"""
from __future__ import annotations

import ctypes as ct
import errno
import fcntl
import mmap
import os
import platform
import select
import struct
import time

import numpy as np

from ..constants import MapType
from .atomics import load_acquire_u64, store_release_u64
from .claims import ReaderClaim
from .closing import Closing
from .cpus import online_cpus
from .maps import delete, map_info_of_type, update
from .records import BULK_MIN, check_out, equal_run, gather, group_rows, one_record

PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_BPF_OUTPUT = 10
PERF_SAMPLE_RAW = 1 << 10
PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9
PERF_FLAG_FD_CLOEXEC = 1 << 3
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_DISABLE = 0x2401
_SYS_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "riscv64": 241, "ppc64le": 319,
                        "s390x": 331}
DATA_HEAD_OFFSET = 1024  # struct perf_event_mmap_page: data_head, then data_tail
SAMPLE_HEADER = 12  # perf_event_header + u32 raw size
_TYPE_AND_SIZE = np.uint64(0xFFFF_0000_FFFF_FFFF)  # perf_event_header as a u64, without misc
# Waiting: epoll in slices from 1 ms growing to 20 ms, checking the rings' heads after each, since
# with wakeup_events > 1 the last records of a burst (and a trickle) never wake the reader.
WAIT_SLICE_MIN = 0.001
WAIT_SLICE_MAX = 0.02


class PerfEventAttr(ct.Structure):
    """``struct perf_event_attr`` up to PERF_ATTR_SIZE_VER5 (112 bytes)."""
    _fields_ = [
        ("type", ct.c_uint32), ("size", ct.c_uint32), ("config", ct.c_uint64),
        ("sample_period", ct.c_uint64), ("sample_type", ct.c_uint64),
        ("read_format", ct.c_uint64), ("flags", ct.c_uint64), ("wakeup_events", ct.c_uint32),
        ("bp_type", ct.c_uint32), ("config1", ct.c_uint64), ("config2", ct.c_uint64),
        ("branch_sample_type", ct.c_uint64), ("sample_regs_user", ct.c_uint64),
        ("sample_stack_user", ct.c_uint32), ("clockid", ct.c_int32),
        ("sample_regs_intr", ct.c_uint64), ("aux_watermark", ct.c_uint32),
        ("sample_max_stack", ct.c_uint16), ("reserved", ct.c_uint16),
    ]


_libc = ct.CDLL(None, use_errno=True)


def perf_event_open_bpf_output(cpu: int, wakeup_events: int = 1) -> int:
    """A BPF-output software perf event on ``cpu`` (any process); returns its fd."""
    attr = PerfEventAttr(type=PERF_TYPE_SOFTWARE, size=ct.sizeof(PerfEventAttr),
                         config=PERF_COUNT_SW_BPF_OUTPUT, sample_period=1,
                         sample_type=PERF_SAMPLE_RAW, wakeup_events=max(wakeup_events, 1))
    nr = _SYS_PERF_EVENT_OPEN.get(platform.machine())
    if nr is None:
        raise OSError(errno.ENOSYS, f"perf_event_open: unknown syscall number on "
                                    f"{platform.machine()}")
    fd = _libc.syscall(ct.c_long(nr), ct.byref(attr), ct.c_int(-1), ct.c_int(cpu),
                       ct.c_int(-1), ct.c_ulong(PERF_FLAG_FD_CLOEXEC))
    if fd < 0:
        code = ct.get_errno()
        raise OSError(code, f"perf_event_open on CPU {cpu}: {os.strerror(code)}")
    return fd


class _Ring:
    """One CPU's perf ring: copies out what lies between data_tail and data_head."""

    def __init__(self, cpu: int, fd: int, page_count: int):
        self.cpu = cpu
        self.fd = fd
        page = mmap.PAGESIZE
        self.size = page_count * page
        self.map = mmap.mmap(fd, page + self.size, mmap.MAP_SHARED,
                             mmap.PROT_READ | mmap.PROT_WRITE)
        self.head_tail = np.frombuffer(self.map, dtype=np.uint64, count=2,
                                       offset=DATA_HEAD_OFFSET)
        self.data = np.frombuffer(self.map, dtype=np.uint8, offset=page)
        self.head_at = self.head_tail.ctypes.data  # data_head, then data_tail (for .atomics)
        self.tail_at = self.head_at + 8

    def pending(self) -> int:
        return int(self.head_tail[0]) - int(self.head_tail[1])

    def take(self) -> tuple[np.ndarray, int]:
        """The unread bytes and the head they end at (:meth:`release` what is used): a view of
        the ring (valid until :meth:`release`), or a copy when they wrap around its end."""
        head = load_acquire_u64(self.head_at)  # the records up to it are written
        tail = int(self.head_tail[1])  # only this reader writes it
        if head == tail:
            return np.empty(0, dtype=np.uint8), tail
        start = tail % self.size
        length = head - tail
        end = start + length
        if end <= self.size:
            chunk = self.data[start:end]
        else:
            chunk = np.concatenate([self.data[start:], self.data[:end - self.size]])
        return chunk, head

    def release(self, tail: int) -> None:
        """Give the bytes up to ``tail`` back to the kernel, after every copy out of them."""
        store_release_u64(self.tail_at, tail)

    def close(self) -> None:
        del self.head_tail, self.data, self.head_at, self.tail_at
        self.map.close()
        os.close(self.fd)


class PerfBufferReader(Closing):
    """Own a perf event array map's entries and read all CPUs' rings in bulk."""

    def __init__(self, map_fd: int, page_count: int = 64, *, wakeup_events: int = 1):
        if page_count <= 0 or page_count & (page_count - 1):
            raise ValueError("page_count must be a power of two")
        info = map_info_of_type(map_fd, MapType.PERF_EVENT_ARRAY)
        self.name = info.name
        self._rings: list[_Ring] = []
        self._map_fd = -1
        self._claim = ReaderClaim(info, "perf")  # one reader per map (see .claims)
        self.lost = 0
        self.received = 0
        try:
            self._map_fd = os.dup(map_fd)
            self._epoll = select.epoll()
            for cpu in online_cpus():
                if cpu >= info.max_entries:
                    continue
                fd = perf_event_open_bpf_output(cpu, wakeup_events)
                try:
                    ring = _Ring(cpu, fd, page_count)
                except OSError:
                    os.close(fd)
                    raise
                self._rings.append(ring)
                fcntl.ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)
                update(self._map_fd, struct.pack("<I", cpu), struct.pack("<I", fd))
                self._epoll.register(fd, select.EPOLLIN)
        except BaseException:
            self.close()
            raise

    @property
    def cpus(self) -> list[int]:
        return [ring.cpu for ring in self._rings]

    def pending(self) -> int:
        """Unread bytes over all CPUs."""
        return sum(ring.pending() for ring in self._rings)

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for data on any CPU; ``True`` as soon as some is there.

        Records that have not reached ``wakeup_events`` wake nobody, so this polls in short
        slices (:data:`WAIT_SLICE_MIN` to :data:`WAIT_SLICE_MAX`) and looks at the rings' heads
        after each: the tail of a burst is seen within a millisecond or so, a trickle within
        20 ms, and an idle wait costs about 50 wakeups a second. A little data is read after
        letting more of its burst arrive (:func:`.records.gather`)."""
        if self.pending():
            gather(self.pending())
            return True
        deadline = time.monotonic() + max(timeout, 0)
        step = WAIT_SLICE_MIN
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._epoll.poll(min(step, left))
            if self.pending():
                gather(self.pending())
                return True
            step = min(step * 2, WAIT_SLICE_MAX)

    def read(self, timeout: float = 0.0) -> tuple[list[tuple[int, bytes]], int]:
        """``([(cpu, raw bytes), ...], lost)``: the samples now in the rings (waiting up to
        ``timeout`` seconds for the first) and the drops reported since the last read."""
        records: list[tuple[int, bytes]] = []
        lost_before = self.lost
        if self.wait(timeout):
            for ring in self._rings:
                for part in self._drain(ring, None, -1):
                    if isinstance(part, bytes):
                        records.append((ring.cpu, part))
                    else:
                        records.extend((ring.cpu, row.tobytes()) for row in part)
        return records, self.lost - lost_before

    def read_array(self, record_size: int, timeout: float = 0.0,
                   max_records: int | None = None, out: np.ndarray | None = None,
                   ) -> tuple[np.ndarray, np.ndarray, int]:
        """``(records, cpus, lost)``: samples as one ``(n, record_size)`` uint8 matrix (raw
        data cut or zero-padded to ``record_size``), CPU by CPU, each row's CPU, and the drops
        reported since the last read. At most ``max_records`` rows; the rest stay in the rings.

        ``out``: a ``(k, record_size)`` uint8 array to copy the samples into (at most ``k``);
        the records are then ``out[:n]``, copied once only."""
        lost_before = self.lost
        chunks: list[np.ndarray] = []
        cpus: list[np.ndarray] = []
        left = -1 if max_records is None else max_records
        if out is not None:
            check_out(out, record_size)
            left = len(out) if left < 0 else min(left, len(out))
        filled = 0
        if left != 0 and self.wait(timeout):
            for ring in self._rings:
                dest = None if out is None else out[filled:]
                for rows in group_rows(self._drain(ring, record_size, left, dest), record_size):
                    filled += len(rows)
                    chunks.append(rows)
                    cpus.append(np.full(len(rows), ring.cpu, dtype=np.int32))
                    if left > 0:
                        left -= len(rows)
                if left == 0:
                    break
        if out is not None:
            data = out[:filled]
        elif chunks:
            data = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
        else:
            data = np.empty((0, record_size), dtype=np.uint8)
        cpu = np.concatenate(cpus) if cpus else np.empty(0, dtype=np.int32)
        return data, cpu, self.lost - lost_before

    def _drain(self, ring: _Ring, record_size: int | None, limit: int,
               out: np.ndarray | None = None) -> list:
        """Parse one ring's unread records (at most ``limit`` samples unless -1; into ``out``
        when given); release them."""
        tail = int(ring.head_tail[1])
        chunk, _head = ring.take()
        parts, used = self._parse(chunk, record_size, limit, out)
        if used:
            ring.release(tail + used)
        return parts

    def _parse(self, buf: np.ndarray, record_size: int | None, limit: int,
               dest: np.ndarray | None = None) -> tuple[list, int]:
        """Split a ring's bytes into sample matrices / single samples (views of ``dest`` when
        given) and count LOST records; returns the parts and how many bytes were consumed."""
        out: list = []
        filled = 0
        pos, end = 0, len(buf)
        while pos + 8 <= end and limit != 0:
            rtype, _misc, size = struct.unpack_from("<IHH", buf, pos)  # type: ignore[arg-type]
            if size < 8 or pos + size > end:
                break  # malformed or truncated: stop (never happens with a sane kernel)
            if rtype == PERF_RECORD_SAMPLE:
                (raw,) = struct.unpack_from("<I", buf, pos + 8)  # type: ignore[arg-type]
                n_max = (end - pos) // size
                if limit > 0:
                    n_max = min(n_max, limit)
                width = raw if record_size is None else record_size
                rest = None if dest is None else dest[filled:]
                if n_max >= BULK_MIN and size % 8 == 0:  # the kernel pads records to 8
                    block = buf[pos:pos + n_max * size].reshape(n_max, size)
                    heads = block.view(np.uint64)[:, 0] & _TYPE_AND_SIZE  # misc ignored
                    # (cpumode bits in misc may differ from record to record)
                    rows, n = equal_run(block, heads, heads[0], SAMPLE_HEADER, raw, width, rest)
                    out.append(rows)
                else:
                    n = 1
                    out.append(one_record(buf, pos + SAMPLE_HEADER, raw, rest))
                filled += n
                self.received += n
                if limit > 0:
                    limit -= n
                pos += n * size
                continue
            if rtype == PERF_RECORD_LOST:
                (_id, lost) = struct.unpack_from("<QQ", buf, pos + 8)  # type: ignore[arg-type]
                self.lost += lost
            pos += size
        return out, pos

    def close(self) -> None:
        """Remove the map entries, disable and close the events, unmap, and let another reader
        open the map; safe to call twice."""
        rings, self._rings = self._rings, []
        for ring in rings:
            try:
                delete(self._map_fd, struct.pack("<I", ring.cpu))
            except OSError:
                pass
            try:
                fcntl.ioctl(ring.fd, PERF_EVENT_IOC_DISABLE, 0)
            except OSError:
                pass
            ring.close()
        if self._map_fd >= 0:
            if hasattr(self, "_epoll"):
                self._epoll.close()
            os.close(self._map_fd)
            self._map_fd = -1
        if hasattr(self, "_claim"):
            self._claim.release()
