"""The exported raw map helpers refuse keys and values of the wrong size (issue 14).

The kernel copies exactly the map's key and value sizes: a short key or value made it read past
the caller's buffer, a short ``value_size`` made ``lookup`` let it write past its own."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from ebpf_nb.errors import UsageError
from ebpf_nb.kernel import maps as kmaps
from ebpf_nb.kernel.cpus import possible_cpus

SOURCE = """
BPF_HASH(sized, u32, u64, 16);
BPF_PERCPU_ARRAY(slots, u64, 4);
"""


@pytest.fixture(scope="module")
def maps():
    from bcc import BPF
    b = BPF(text=SOURCE)
    yield b[b"sized"].map_fd, b[b"slots"].map_fd
    b.cleanup()


KEY, VALUE = struct.pack("<I", 7), struct.pack("<Q", 42)


def test_lookup_with_a_short_value_buffer_is_refused(maps):
    fd, _ = maps
    kmaps.update(fd, KEY, VALUE)
    with pytest.raises(UsageError) as info:
        kmaps.lookup(fd, KEY, value_size=4)
    assert info.value.message == "map 'sized': the value is 4 bytes, the map's values are 8 bytes"
    assert info.value.hint == "pass exactly 8 bytes"
    assert kmaps.lookup(fd, KEY) == VALUE and kmaps.lookup(fd, KEY, value_size=8) == VALUE


@pytest.mark.parametrize("call", [
    lambda fd: kmaps.update(fd, b"\x07\x00", VALUE),
    lambda fd: kmaps.lookup(fd, b"\x07\x00"),
    lambda fd: kmaps.delete(fd, b"\x07\x00"),
], ids=["update", "lookup", "delete"])
def test_a_short_key_is_refused(maps, call):
    fd, _ = maps
    with pytest.raises(UsageError, match="map 'sized': the key is 2 bytes, the map's keys are 4"):
        call(fd)


def test_a_short_value_is_refused_and_nothing_is_stored(maps):
    fd, _ = maps
    key = struct.pack("<I", 9)
    with pytest.raises(UsageError, match="the value is 4 bytes, the map's values are 8 bytes"):
        kmaps.update(fd, key, b"\x01\x02\x03\x04")
    assert kmaps.lookup(fd, key) is None


def test_a_per_cpu_value_needs_every_cpus_slot(maps):
    _, fd = maps
    ncpus = len(possible_cpus())
    with pytest.raises(UsageError) as info:
        kmaps.update(fd, struct.pack("<I", 1), VALUE)  # one CPU's slot only
    assert f"({ncpus} CPUs x 8-byte slots)" in info.value.message
    kmaps.update(fd, struct.pack("<I", 1), VALUE * ncpus)
    assert kmaps.lookup(fd, struct.pack("<I", 1)) == VALUE * ncpus


def test_update_batch_rows_of_the_wrong_size_are_refused(maps):
    fd, _ = maps
    keys = np.arange(3, dtype=np.uint16)  # 2-byte keys for a map of 4-byte keys
    values = np.zeros(3, dtype=np.uint64)
    with pytest.raises(UsageError, match="3 keys of 6 bytes in all, the map's keys are 4 bytes"):
        kmaps.update_batch(fd, keys, values)
    with pytest.raises(UsageError, match="values are 8 bytes each"):
        kmaps.update_batch(fd, keys.astype(np.uint32), values.astype(np.uint32))
    assert kmaps.update_batch(fd, keys.astype(np.uint32), values) == 3
