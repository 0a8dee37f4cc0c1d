"""Acquire loads, release stores and an acquire fence on shared memory, through GCC's libatomic.

The buffer readers share memory with the kernel: it writes records and then advances a position
(ring ``producer_pos``, perf ``data_head``); we read the records and then advance ours (ring
``consumer_pos``, perf ``data_tail``). On a weakly ordered CPU (arm64, ppc64le, riscv64) plain
loads and stores may be reordered around each other, so, as libbpf does (``ringbuf.c``:
``smp_load_acquire``/``smp_store_release``; perf's ``ring_buffer_read_head``/``_write_tail``):

- the kernel's position is read with :func:`load_acquire_u64` *before* anything it covers, so the
  records (ring: their headers) it published are seen;
- a ring record's header word is read with an acquire load before its payload
  (:func:`load_acquire_u32`, or plain loads of many headers followed by one
  :func:`acquire_fence`): the kernel clears the header's BUSY bit with a full barrier (``xchg``)
  after writing the payload, *after* it advanced ``producer_pos``, so the position alone does not
  make payloads visible;
- our position is written with :func:`store_release_u64` *after* every read of the records it
  gives back, so the kernel cannot overwrite a record we are still copying.

Each call is one ctypes call into libatomic's ``__atomic_load_N``/``__atomic_store_N``/
``atomic_thread_fence`` with ``__ATOMIC_ACQUIRE``/``__ATOMIC_RELEASE``: ``ldar``/``stlr``/
``dmb ishld`` on arm64, a plain ``mov`` (and no fence) on x86-64, whose stores and loads are
already ordered this way (TSO). On x86-64 the tests can therefore show that values round-trip
and that nothing is lost, duplicated or torn, but not that a reordering is prevented: x86-64
never makes one of these. The library is opened as a ``PyDLL`` (the GIL is kept: a load never
blocks); a call costs ~0.2 us, so the readers make a few per batch of records, not per record.
"""
from __future__ import annotations

import ctypes as ct
from collections.abc import Callable
from typing import Any

from .sharedlib import LazyLibrary

SONAME = "libatomic.so.1"
MISSING_HINT = "install it with `sudo make setup` (Debian/Ubuntu package: libatomic1)"
ATOMIC_ACQUIRE = 2  # GCC's __ATOMIC_ACQUIRE
ATOMIC_RELEASE = 3  # GCC's __ATOMIC_RELEASE

_Calls = tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any], Callable[..., Any]]


def _open_library() -> ct.CDLL:
    """dlopen libatomic.so.1 (the one place the kit does)."""
    return ct.PyDLL(SONAME)


def _declare(handle: ct.CDLL) -> _Calls:
    load8, load4 = handle.__atomic_load_8, handle.__atomic_load_4
    store8, fence = handle.__atomic_store_8, handle.atomic_thread_fence
    load8.restype, load8.argtypes = ct.c_uint64, [ct.c_void_p, ct.c_int]
    load4.restype, load4.argtypes = ct.c_uint32, [ct.c_void_p, ct.c_int]
    store8.restype, store8.argtypes = None, [ct.c_void_p, ct.c_uint64, ct.c_int]
    fence.restype, fence.argtypes = None, [ct.c_int]
    return load8, load4, store8, fence


LIBRARY = LazyLibrary("libatomic", SONAME, needed_for="the kit reads ring and perf buffers in the "
                      "order the kernel writes them with it", hint=MISSING_HINT,
                      opener=lambda: _open_library(), prepare=_declare)


def _functions() -> _Calls:
    """``(__atomic_load_8, __atomic_load_4, __atomic_store_8, atomic_thread_fence)`` with their
    prototypes, opened once; ``HostError`` if libatomic is missing."""
    return LIBRARY.get()


def _aligned(address: int, size: int) -> int:
    if not isinstance(address, int) or address <= 0 or address % size:
        raise ValueError(f"address must be a non-null {size}-byte aligned int, not {address!r}")
    return address


def load_acquire_u64(address: int) -> int:
    """The ``u64`` at ``address`` (8-aligned), loaded with acquire ordering."""
    return int(_functions()[0](_aligned(address, 8), ATOMIC_ACQUIRE))


def load_acquire_u32(address: int) -> int:
    """The ``u32`` at ``address`` (4-aligned), loaded with acquire ordering."""
    return int(_functions()[1](_aligned(address, 4), ATOMIC_ACQUIRE))


def store_release_u64(address: int, value: int) -> None:
    """Store ``value`` (``0 <= value < 2**64``) as the ``u64`` at ``address`` (8-aligned) with
    release ordering."""
    if not 0 <= value < 1 << 64:
        raise ValueError(f"value must fit in a u64, not {value!r}")
    _functions()[2](_aligned(address, 8), value, ATOMIC_RELEASE)


def acquire_fence() -> None:
    """Order every load before it before every load and store after it (C11
    ``atomic_thread_fence(memory_order_acquire)``): plain loads of flag words followed by this
    fence act as acquire loads of each of them."""
    _functions()[3](ATOMIC_ACQUIRE)
