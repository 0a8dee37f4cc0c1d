"""ebpf_nb.kernel.atomics: acquire loads and release stores through libatomic, on real memory.

These check the values (every bit of a u64, a u32 beside other words, memory shared through a
MAP_SHARED mapping as the buffer readers use it) and the refusals. They cannot check the ordering
itself: this machine is x86-64, where plain loads and stores are already ordered the way acquire
and release ask, so no test here could see a reordering the calls prevent.
"""
from __future__ import annotations

import mmap

import numpy as np
import pytest

from ebpf_nb.errors import HostError
from ebpf_nb.kernel import atomics

PATTERNS = [0, 1, 0xFFFF_FFFF, 1 << 32, 0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF,
            0x0123_4567_89AB_CDEF]


@pytest.mark.parametrize("value", PATTERNS)
def test_u64_round_trips_through_memory_both_ways(value):
    words = np.zeros(3, dtype=np.uint64)
    address = words.ctypes.data + 8
    atomics.store_release_u64(address, value)
    assert int(words[1]) == value and int(words[0]) == int(words[2]) == 0  # neighbours untouched
    words[1] = np.uint64(value ^ 0x5555_5555_5555_5555)
    assert atomics.load_acquire_u64(address) == value ^ 0x5555_5555_5555_5555


def test_u32_reads_only_its_own_word():
    words = np.array([0xDEAD_BEEF, 0x8000_0001, 0xFFFF_FFFF], dtype=np.uint32)
    base = words.ctypes.data
    assert [atomics.load_acquire_u32(base + 4 * i) for i in range(3)] == \
        [0xDEAD_BEEF, 0x8000_0001, 0xFFFF_FFFF]


def test_shared_mapping_seen_through_a_second_mapping():
    """Written through one MAP_SHARED mapping of a file, read through another (as our position
    stores reach the kernel's view of the page), and back."""
    import tempfile

    with tempfile.TemporaryFile() as f:
        f.truncate(mmap.PAGESIZE)
        one = mmap.mmap(f.fileno(), mmap.PAGESIZE, mmap.MAP_SHARED)
        two = mmap.mmap(f.fileno(), mmap.PAGESIZE, mmap.MAP_SHARED)
        a = np.frombuffer(one, dtype=np.uint64)
        b = np.frombuffer(two, dtype=np.uint64)
        atomics.store_release_u64(a.ctypes.data + 64, 0xFEED_FACE_CAFE_BEEF)
        assert atomics.load_acquire_u64(b.ctypes.data + 64) == 0xFEED_FACE_CAFE_BEEF
        b[9] = 42
        assert atomics.load_acquire_u64(a.ctypes.data + 72) == 42
        del a, b
        one.close()
        two.close()


def test_acquire_fence_runs():
    atomics.acquire_fence()


@pytest.mark.parametrize("fn, size", [(atomics.load_acquire_u64, 8),
                                      (atomics.load_acquire_u32, 4)])
def test_misaligned_or_null_addresses_are_refused(fn, size):
    words = np.zeros(4, dtype=np.uint64)
    for bad in (words.ctypes.data + size // 2, words.ctypes.data + 1, 0, -8):
        with pytest.raises(ValueError, match=f"{size}-byte aligned"):
            fn(bad)


def test_a_4_aligned_address_is_not_enough_for_u64():
    words = np.zeros(4, dtype=np.uint64)
    assert atomics.load_acquire_u32(words.ctypes.data + 4) == 0
    with pytest.raises(ValueError, match="8-byte aligned"):
        atomics.load_acquire_u64(words.ctypes.data + 4)
    with pytest.raises(ValueError, match="8-byte aligned"):
        atomics.store_release_u64(words.ctypes.data + 4, 1)


@pytest.mark.parametrize("value", [-1, 1 << 64, 1 << 70])
def test_values_wider_than_u64_are_refused_and_nothing_is_written(value):
    words = np.full(1, 7, dtype=np.uint64)
    with pytest.raises(ValueError, match="fit in a u64"):
        atomics.store_release_u64(words.ctypes.data, value)
    assert int(words[0]) == 7


def test_missing_libatomic_is_one_host_error(monkeypatch):
    def missing():
        raise OSError("libatomic.so.1: cannot open shared object file: No such file or directory")

    monkeypatch.setattr(atomics.LIBRARY, "_value", None)
    monkeypatch.setattr(atomics, "_open_library", missing)
    with pytest.raises(HostError) as info:
        atomics.load_acquire_u64(np.zeros(1, dtype=np.uint64).ctypes.data)
    assert not isinstance(info.value, OSError)
    assert "libatomic.so.1" in str(info.value) and "sudo make setup" in str(info.value)
    assert "libatomic1" in str(info.value)


def test_library_opened_once(library_opens):
    opened = library_opens(atomics)
    words = np.zeros(1, dtype=np.uint64)
    atomics.store_release_u64(words.ctypes.data, 3)
    assert atomics.load_acquire_u64(words.ctypes.data) == 3
    atomics.acquire_fence()
    assert len(opened) == 1
