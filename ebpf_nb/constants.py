"""The kernel's numbers the kit uses, defined once (``include/uapi/linux/bpf.h``).

Map and program types are :class:`~enum.IntEnum` members, so they compare equal to the plain
ints the kernel, BCC and libbpf hand back (``info.map_type == MapType.RINGBUF``). The sets below
say which map types share a behaviour; :func:`map_type_name` is the name the kit shows.
"""
from __future__ import annotations

from enum import IntEnum


class MapType(IntEnum):
    """``enum bpf_map_type``."""

    UNSPEC = 0
    HASH = 1
    ARRAY = 2
    PROG_ARRAY = 3
    PERF_EVENT_ARRAY = 4
    PERCPU_HASH = 5
    PERCPU_ARRAY = 6
    STACK_TRACE = 7
    CGROUP_ARRAY = 8
    LRU_HASH = 9
    LRU_PERCPU_HASH = 10
    LPM_TRIE = 11
    ARRAY_OF_MAPS = 12
    HASH_OF_MAPS = 13
    DEVMAP = 14
    SOCKMAP = 15
    CPUMAP = 16
    XSKMAP = 17
    SOCKHASH = 18
    CGROUP_STORAGE = 19
    REUSEPORT_SOCKARRAY = 20
    PERCPU_CGROUP_STORAGE = 21
    QUEUE = 22
    STACK = 23
    SK_STORAGE = 24
    DEVMAP_HASH = 25
    STRUCT_OPS = 26
    RINGBUF = 27
    INODE_STORAGE = 28
    TASK_STORAGE = 29
    BLOOM_FILTER = 30
    USER_RINGBUF = 31
    CGRP_STORAGE = 32
    ARENA = 33


class ProgType(IntEnum):
    """``enum bpf_prog_type``, as far as the kit tells program types apart."""

    KPROBE = 2
    TRACEPOINT = 5


# User space reads one value slot per possible CPU from these, each slot 8-aligned (round8).
PERCPU_MAP_TYPES = frozenset({MapType.PERCPU_HASH, MapType.PERCPU_ARRAY,
                              MapType.LRU_PERCPU_HASH, MapType.PERCPU_CGROUP_STORAGE})
# Event buffers: read with the kit's perf or ring reader, never by key.
BUFFER_MAP_TYPES = frozenset({MapType.PERF_EVENT_ARRAY, MapType.RINGBUF})
# No keys to walk: buffers, queues and filters are read with their own readers or pops, if at all.
KEYLESS_MAP_TYPES = BUFFER_MAP_TYPES | {MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER,
                                        MapType.USER_RINGBUF}
# Indexed by position from 0: their keys are u32 indexes and every index holds a value.
INDEXED_MAP_TYPES = frozenset({MapType.ARRAY, MapType.PERCPU_ARRAY})


def map_type_name(map_type: int) -> str:
    """``"percpu_hash"`` for 5; ``"type 99"`` for a number this kit does not know."""
    try:
        return MapType(map_type).name.lower()
    except ValueError:
        return f"type {map_type}"


def round8(n: int) -> int:
    """``n`` rounded up to 8: the kernel's alignment of per-CPU slots and ring buffer records."""
    return (n + 7) & ~7
