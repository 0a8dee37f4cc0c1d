"""fd-level access to the kernel's BPF objects, with no BCC object needed.

Everything here works from a map or program file descriptor alone, so the BCC backend and the
CO-RE (libbpf) backend share it: batched map reads (:mod:`.maps`), the ring buffer reader
(:mod:`.ringbuf`), the perf buffer reader (:mod:`.perfbuf`), CPU lists (:mod:`.cpus`), fast
``char[]`` decoding (:mod:`.records`) and ``BPF_PROG_TEST_RUN`` (:mod:`.testrun`) for
generating events deterministically.
"""
from __future__ import annotations

from .cpus import online_cpus, possible_cpus
from .maps import (
    MapInfo,
    RawMap,
    delete,
    lookup,
    map_info,
    percpu_dtype,
    prog_id_of_fd,
    read_map,
    to_structured,
    update,
    update_batch,
)
from .perfbuf import PerfBufferReader
from .records import cstrings
from .ringbuf import RingBufferReader, RingPositions
from .testrun import test_run

__all__ = [
    "MapInfo",
    "PerfBufferReader",
    "RawMap",
    "RingBufferReader",
    "RingPositions",
    "cstrings",
    "delete",
    "lookup",
    "map_info",
    "online_cpus",
    "percpu_dtype",
    "possible_cpus",
    "prog_id_of_fd",
    "read_map",
    "test_run",
    "to_structured",
    "update",
    "update_batch",
]
