"""Batched map reads from a bare fd return exactly what BCC's per-key ``items()`` returns."""
from __future__ import annotations

import ctypes as ct
import errno
import struct

import numpy as np
import pytest

from ebpf_nb.kernel import maps as kmaps
from ebpf_nb.kernel.cpus import possible_cpus
from ebpf_nb.kernel.testrun import test_run as run_prog

SOURCE = r"""
struct val { u64 count; u32 pid; char comm[12]; };
BPF_HASH(big, u32, struct val, 20000);
BPF_ARRAY(arr, u64, 64);
BPF_PERCPU_ARRAY(pcpu, u32, 4);
BPF_PERCPU_HASH(phash, u32, u64, 128);
BPF_STACK_TRACE(stacks, 16);
BPF_HASH(stack_ids, u32, int, 16);
BPF_PROG_ARRAY(progs, 4);
BPF_RINGBUF_OUTPUT(rb, 1);

int fill(struct bpf_raw_tracepoint_args *ctx) {
    u32 zero = 0, idx = ctx->args[0];
    u32 *p = pcpu.lookup(&idx);
    if (p) *p += 1 + bpf_get_smp_processor_id();
    u64 one = 1;
    u64 *h = phash.lookup(&idx);
    if (h) *h += 1; else phash.update(&idx, &one);
    int id = stacks.get_stackid(ctx, BPF_F_REUSE_STACKID);
    stack_ids.update(&zero, &id);
    return 0;
}
"""

VAL = np.dtype([("count", "<u8"), ("pid", "<u4"), ("comm", "S12")])


@pytest.fixture(scope="module")
def bpf():
    from bcc import BPF
    b = BPF(text=SOURCE)
    b.fill = b.load_func("fill", BPF.RAW_TRACEPOINT)
    yield b
    b.cleanup()


def _items_bytes(table) -> dict[bytes, bytes]:
    return {bytes(k): bytes(v) for k, v in table.items()}


def _rows(raw: kmaps.RawMap) -> dict[bytes, bytes]:
    return {raw.keys[i].tobytes(): raw.values[i].tobytes() for i in range(len(raw))}


def test_map_info_matches_declaration(bpf):
    info = kmaps.map_info(bpf[b"big"].map_fd)
    assert (info.type_name, info.key_size, info.value_size, info.max_entries) == \
        ("hash", 4, VAL.itemsize, 20000)
    assert info.name == "big" and info.id > 0


def test_hash_batched_read_equals_items(bpf):
    table = bpf[b"big"]
    n = 12345
    keys = np.arange(1, n + 1, dtype=np.uint32)
    values = np.zeros(n, dtype=VAL)
    values["count"] = keys.astype(np.uint64) * 7
    values["pid"] = keys % 1000
    values["comm"] = [f"task{i}".encode() for i in range(n)]
    stored = kmaps.update_batch(table.map_fd, keys.view(np.uint8).reshape(n, 4),
                                values.view(np.uint8).reshape(n, VAL.itemsize))
    assert stored == n
    raw = kmaps.read_map(table.map_fd)
    assert raw.batched and len(raw) == n
    assert raw.keys.shape == (n, 4) and raw.values.shape == (n, VAL.itemsize)
    assert _rows(raw) == _items_bytes(table)
    decoded = kmaps.to_structured(raw.values, VAL)
    got_keys = kmaps.to_structured(raw.keys, np.dtype(np.uint32))
    order = np.argsort(got_keys)
    assert np.array_equal(got_keys[order], keys)
    assert np.array_equal(decoded["count"][order], values["count"])
    assert decoded["comm"][order][3] == b"task3"


def test_small_chunks_give_the_same_rows(bpf):
    fd = bpf[b"big"].map_fd
    assert _rows(kmaps.read_map(fd, chunk=7)) == _rows(kmaps.read_map(fd))


def test_array_read_equals_items(bpf):
    table = bpf[b"arr"]
    for i in range(64):
        table[ct.c_int(i)] = ct.c_uint64(i * i)
    raw = kmaps.read_map(table.map_fd)
    assert len(raw) == 64
    assert _rows(raw) == _items_bytes(table)
    assert list(kmaps.to_structured(raw.values, np.dtype(np.uint64))) == [i * i for i in range(64)]


def test_percpu_values_are_padded_slots_per_possible_cpu(bpf):
    ncpus = len(possible_cpus())
    for cpu in range(ncpus):
        for _ in range(cpu + 2):
            run_prog(bpf.fill.fd, [1], cpu=cpu)
    raw = kmaps.read_map(bpf[b"pcpu"].map_fd)
    assert raw.ncpus == ncpus and raw.values.shape == (4, 8 * ncpus)
    per_cpu = kmaps.to_structured(raw.values, kmaps.percpu_dtype(np.dtype(np.uint32), ncpus))["v"]
    bcc_values = bpf[b"pcpu"][ct.c_int(1)]
    assert list(per_cpu[1]) == [int(v) for v in bcc_values]
    assert list(per_cpu[1]) == [(cpu + 2) * (1 + cpu) for cpu in range(ncpus)]

    hraw = kmaps.read_map(bpf[b"phash"].map_fd)
    assert len(hraw) == 1
    counts = kmaps.to_structured(hraw.values, kmaps.percpu_dtype(np.dtype(np.uint64), ncpus))["v"]
    assert list(counts[0]) == [cpu + 2 for cpu in range(ncpus)]


def test_stack_trace_map_falls_back_to_key_walk(bpf):
    run_prog(bpf.fill.fd, [0], cpu=0)
    stack_id = bpf[b"stack_ids"][ct.c_uint32(0)].value
    assert stack_id >= 0
    raw = kmaps.read_map(bpf[b"stacks"].map_fd)
    assert not raw.batched
    rows = _rows(raw)
    key = struct.pack("<I", stack_id)
    assert key in rows
    frames = np.frombuffer(rows[key], dtype=np.uint64)
    assert frames[0] != 0
    assert list(frames[frames != 0]) == list(bpf[b"stacks"].walk(stack_id))


def test_prog_array_reads_program_ids(bpf):
    progs = bpf[b"progs"]
    progs[ct.c_int(2)] = ct.c_int(bpf.fill.fd)
    raw = kmaps.read_map(progs.map_fd)
    assert len(raw) == 1
    assert kmaps.to_structured(raw.keys, np.dtype(np.uint32))[0] == 2
    assert kmaps.to_structured(raw.values, np.dtype(np.uint32))[0] == \
        kmaps.prog_id_of_fd(bpf.fill.fd)


def test_buffers_are_not_read_as_maps(bpf):
    with pytest.raises(OSError) as err:
        kmaps.read_map(bpf[b"rb"].map_fd)
    assert err.value.errno == errno.EINVAL


def test_lookup_update_delete(bpf):
    fd = bpf[b"arr"].map_fd
    key = struct.pack("<I", 5)
    kmaps.update(fd, key, struct.pack("<Q", 99))
    assert kmaps.lookup(fd, key) == struct.pack("<Q", 99)
    assert bpf[b"arr"][ct.c_int(5)].value == 99
    hfd = bpf[b"phash"].map_fd
    hkey = struct.pack("<I", 77)
    assert kmaps.lookup(hfd, hkey) is None
    assert kmaps.delete(hfd, hkey) is False
    kmaps.update(hfd, hkey, bytes(8 * len(possible_cpus())))
    assert kmaps.delete(hfd, hkey) is True
