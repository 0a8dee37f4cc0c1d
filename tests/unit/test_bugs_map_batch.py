"""``kernel.maps._read_batched`` terminates when the kernel keeps answering ENOSPC (issue 14).

The kernel answers ENOSPC, copying nothing, when the next hash bucket holds more entries than the
room a batch call offers. The loop doubled the chunk and asked again, but the room is also capped
by what is left in the buffers: once a churning map had filled them nearly full, the room never
grew and the read never ended. These tests stand in a fake syscall for libbpf's."""
from __future__ import annotations

import ctypes as ct
import errno
import types

import numpy as np
import pytest

from ebpf_nb.kernel import maps as kmaps

INFO = kmaps.MapInfo(id=1, name="churn", map_type=1, key_size=4, value_size=8, max_entries=8,
                     flags=0)


def _use_syscall(monkeypatch, fn):
    monkeypatch.setattr(kmaps, "lib", lambda: types.SimpleNamespace(bpf_map_lookup_batch=fn))


def _write_entries(keys_ptr: int, values_ptr: int, first_key: int, n: int) -> None:
    for i in range(n):
        ct.memmove(keys_ptr + 4 * i, (first_key + i).to_bytes(4, "little"), 4)
        ct.memmove(values_ptr + 8 * i, (10 * (first_key + i)).to_bytes(8, "little"), 8)


@pytest.mark.timeout(20)
def test_a_syscall_that_always_answers_enospc_ends_in_a_clear_error(monkeypatch):
    calls = []

    def always_enospc(fd, in_batch, out_batch, keys, values, count, opts):
        calls.append(count._obj.value)
        count._obj.value = 0
        return -errno.ENOSPC

    _use_syscall(monkeypatch, always_enospc)
    with pytest.raises(OSError) as info:
        kmaps._read_batched(3, INFO, 8, chunk=8)
    assert info.value.errno == errno.ENOSPC
    assert "map 'churn'" in str(info.value) and "read it again" in str(info.value)
    assert len(calls) == kmaps.MAX_ENOSPC_RETRIES + 1
    assert calls[-1] == 8 << kmaps.MAX_ENOSPC_RETRIES  # the room offered doubled each time


@pytest.mark.timeout(20)
def test_a_bucket_larger_than_the_room_left_is_read_after_the_buffers_grow(monkeypatch):
    """First call: 7 of 8 slots filled. Then a bucket of 5 entries (churn moved them there)."""
    state = {"calls": 0}

    def churning(fd, in_batch, out_batch, keys, values, count, opts):
        state["calls"] += 1
        if in_batch is None:
            _write_entries(keys, values, 0, 7)
            count._obj.value = 7
            return 0
        if count._obj.value < 5:
            count._obj.value = 0
            return -errno.ENOSPC
        _write_entries(keys, values, 7, 5)
        count._obj.value = 5
        return -errno.ENOENT

    _use_syscall(monkeypatch, churning)
    keys, values = kmaps._read_batched(3, INFO, 8, chunk=8)
    assert keys.view(np.uint32).ravel().tolist() == list(range(12))
    assert values.view(np.uint64).ravel().tolist() == [10 * i for i in range(12)]
    assert state["calls"] <= 2 + kmaps.MAX_ENOSPC_RETRIES
