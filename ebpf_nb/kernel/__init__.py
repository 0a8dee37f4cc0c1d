"""fd-level access to the kernel's BPF objects, with no BCC object needed.

Everything here works from a map or program file descriptor alone, so the BCC backend and the
CO-RE (libbpf) backend share it: batched map reads (:mod:`.maps`), the ring buffer reader
(:mod:`.ringbuf`), the perf buffer reader (:mod:`.perfbuf`), CPU lists (:mod:`.cpus`) and
``BPF_PROG_TEST_RUN`` (:mod:`.testrun`) for generating events deterministically.
"""
from __future__ import annotations

from .cpus import online_cpus, possible_cpus
from .maps import MapInfo, RawMap, delete, lookup, map_info, read_map, to_structured, update
from .perfbuf import PerfBufferReader
from .ringbuf import RingBufferReader
from .testrun import test_run

__all__ = [
    "MapInfo",
    "PerfBufferReader",
    "RawMap",
    "RingBufferReader",
    "delete",
    "lookup",
    "map_info",
    "online_cpus",
    "possible_cpus",
    "read_map",
    "test_run",
    "to_structured",
    "update",
]
