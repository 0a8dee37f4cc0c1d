"""Whole-map reads into numpy from a map fd: batched lookups where the kernel has them.

:func:`read_map` returns every (key, value) pair as two uint8 matrices, filled by
``BPF_MAP_LOOKUP_BATCH`` straight into preallocated numpy buffers (one syscall per few thousand
entries), or by ``get_next_key`` + ``lookup`` for map types without batch operations (stack
trace maps, prog arrays, map-in-map...). :func:`to_structured` views those rows through a numpy
dtype, ready for :mod:`ebpf_nb.decode`. Per-CPU values come as ``ncpus`` slots of
``round_up(value_size, 8)`` bytes, as the kernel copies them.

Values read from user space are what the kernel gives user space: a prog array holds program
ids, a map-in-map holds map ids.
"""
from __future__ import annotations

import ctypes as ct
import errno
from dataclasses import dataclass

import numpy as np

from ..constants import KEYLESS_MAP_TYPES, PERCPU_MAP_TYPES, MapType, map_type_name, round8
from ..errors import UsageError
from .blockpool import POOL
from .cpus import possible_cpus
from .libbpf import ENOTSUPP, BpfMapBatchOpts, BpfMapInfo, check, lib

_BATCH_UNSUPPORTED = (ENOTSUPP, errno.EOPNOTSUPP, errno.EINVAL)


@dataclass(frozen=True)
class MapInfo:
    """What ``BPF_OBJ_GET_INFO_BY_FD`` says about a map."""

    id: int
    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int

    @property
    def type_name(self) -> str:
        return map_type_name(self.map_type)

    @property
    def percpu(self) -> bool:
        return self.map_type in PERCPU_MAP_TYPES


@dataclass
class RawMap:
    """All entries of a map as raw bytes: row ``i`` of ``keys`` goes with row ``i`` of ``values``.

    For per-CPU maps each value row is ``ncpus`` slots of ``round_up(value_size, 8)`` bytes.
    ``batched`` tells whether the kernel's batch lookup was used.
    """

    keys: np.ndarray
    values: np.ndarray
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    ncpus: int
    batched: bool = False

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def slot_size(self) -> int:
        """Bytes per CPU slot in a value row (the value size itself for non-per-CPU maps)."""
        return round8(self.value_size) if self.map_type in PERCPU_MAP_TYPES else self.value_size


def map_info(fd: int) -> MapInfo:
    """Type, sizes, max_entries, name and id of the map behind ``fd``."""
    info = BpfMapInfo()
    size = ct.c_uint32(ct.sizeof(info))
    check(lib().bpf_obj_get_info_by_fd(fd, ct.byref(info), ct.byref(size)),
          f"BPF_OBJ_GET_INFO_BY_FD on fd {fd}")
    return MapInfo(id=info.id, name=info.name.decode(errors="replace"), map_type=info.type,
                   key_size=info.key_size, value_size=info.value_size,
                   max_entries=info.max_entries, flags=info.map_flags)


def map_info_of_type(fd: int, map_type: MapType) -> MapInfo:
    """:func:`map_info`, or ``ValueError`` unless the map behind ``fd`` is a ``map_type``."""
    info = map_info(fd)
    if info.map_type != map_type:
        raise ValueError(f"map {info.name!r} is a {info.type_name}, not a "
                         f"{map_type_name(map_type)}")
    return info


def value_size_total(info: MapInfo) -> int:
    """Bytes user space reads per value: per-CPU maps return one 8-aligned slot per CPU."""
    if info.percpu:
        return round8(info.value_size) * len(possible_cpus())
    return info.value_size


def _ptr(arr: np.ndarray, offset: int = 0) -> int:
    return arr.ctypes.data + offset


def read_map(fd: int, *, chunk: int | None = None) -> RawMap:
    """Every entry of the map behind ``fd`` as numpy uint8 rows (batched where possible).

    ``chunk``: entries asked per ``BPF_MAP_LOOKUP_BATCH`` call (default: the whole map in one
    call, which is fastest; the kernel copies bucket by bucket either way)."""
    info = map_info(fd)
    if info.map_type in KEYLESS_MAP_TYPES:
        raise OSError(errno.EINVAL, f"map {info.name!r} is a {info.type_name}: it has no entries "
                                    "to read by key (use its buffer reader)")
    vsize = value_size_total(info)
    ncpus = len(possible_cpus()) if info.percpu else 1
    try:
        keys, values = _read_batched(fd, info, vsize, chunk or max(info.max_entries, 1))
        batched = True
    except OSError as err:
        if err.errno not in _BATCH_UNSUPPORTED:
            raise
        keys, values = _read_by_key(fd, info, vsize)
        batched = False
    return RawMap(keys=keys, values=values, map_type=info.map_type, key_size=info.key_size,
                  value_size=info.value_size, max_entries=info.max_entries, ncpus=ncpus,
                  batched=batched)


# Entries that churn while a hash map is read can keep a bucket larger than the room left; each
# ENOSPC doubles the room asked for (and the buffers when needed), this many times at the most.
MAX_ENOSPC_RETRIES = 8


def _read_batched(fd: int, info: MapInfo, vsize: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    capacity = max(info.max_entries, 1)
    keys, values = rows_of(capacity, info.key_size), rows_of(capacity, vsize)
    # The batch token is opaque: a bucket index for hashes, a key for arrays.
    token = np.zeros(max(info.key_size, 8), dtype=np.uint8)
    opts = BpfMapBatchOpts(sz=ct.sizeof(BpfMapBatchOpts))
    fn = lib().bpf_map_lookup_batch
    total, first, retries = 0, True, 0
    count = ct.c_uint32()
    while True:
        if total == len(keys):  # more entries than max_entries said: grow and go on
            keys, values = _grown(keys), _grown(values)
        asked = count.value = min(chunk, len(keys) - total)
        ret = fn(fd, None if first else _ptr(token), _ptr(token),
                 _ptr(keys, total * info.key_size), _ptr(values, total * vsize),
                 ct.byref(count), ct.byref(opts))
        if ret < 0 and -ret == errno.ENOSPC and count.value == 0:
            # A hash bucket larger than the room asked for: ask again with twice the room.
            retries += 1
            if retries > MAX_ENOSPC_RETRIES:
                raise OSError(errno.ENOSPC, f"BPF_MAP_LOOKUP_BATCH on map {info.name!r}: a hash "
                              f"bucket did not fit in room for {asked} entries "
                              f"after {MAX_ENOSPC_RETRIES} doublings (entries are added "
                              "faster than they can be read): read it again")
            if chunk >= len(keys) - total:
                keys, values = _grown(keys), _grown(values)
            chunk *= 2
            continue
        total += count.value
        first = False
        if ret < 0:
            if -ret == errno.ENOENT:
                break
            check(ret, f"BPF_MAP_LOOKUP_BATCH on map {info.name!r}")
    return keys[:total], values[:total]


def rows_of(count: int, width: int) -> np.ndarray:
    """An uninitialised ``(count, width)`` uint8 matrix, from the pool of freed blocks when it
    is large (see :mod:`.blockpool`: a fresh page costs a fault when the kernel first writes
    it, and a 1M-entry map's read writes 20 MiB)."""
    return POOL.take(count * width).reshape(count, width)


def _grown(rows: np.ndarray) -> np.ndarray:
    """``rows`` with as many again appended (uninitialised: the kernel fills them)."""
    return np.concatenate([rows, np.empty_like(rows)])


def _read_by_key(fd: int, info: MapInfo, vsize: int) -> tuple[np.ndarray, np.ndarray]:
    handle = lib()
    key_list: list[bytes] = []
    value_list: list[bytes] = []
    key = ct.create_string_buffer(max(info.key_size, 1))
    next_key = ct.create_string_buffer(max(info.key_size, 1))
    value = ct.create_string_buffer(max(vsize, 1))
    prev = None
    while True:
        ret = handle.bpf_map_get_next_key(fd, prev, next_key)
        if ret < 0:
            if -ret == errno.ENOENT:
                break
            check(ret, f"BPF_MAP_GET_NEXT_KEY on map {info.name!r}")
        ct.memmove(key, next_key, info.key_size)
        prev = key
        ret = handle.bpf_map_lookup_elem(fd, key, value)
        if ret < 0:
            if -ret == errno.ENOENT:  # deleted between the two calls, or an empty slot
                continue
            check(ret, f"BPF_MAP_LOOKUP_ELEM on map {info.name!r}")
        key_list.append(key.raw[:info.key_size])
        value_list.append(value.raw[:vsize])
    keys = np.frombuffer(b"".join(key_list), dtype=np.uint8).reshape(len(key_list), info.key_size)
    values = np.frombuffer(b"".join(value_list), dtype=np.uint8).reshape(len(value_list), vsize)
    return keys.copy(), values.copy()


def to_structured(rows: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """View uint8 rows of ``dtype.itemsize`` bytes as a 1-D structured (or scalar) array.

    Rows wider than the dtype are cut (e.g. per-CPU slots are read with a ``(dtype, ncpus)``
    sub-array dtype instead); narrower rows are an error.
    """
    dtype = np.dtype(dtype)
    if rows.ndim != 2:
        raise ValueError("expected a 2-D uint8 array of rows")
    if rows.shape[1] < dtype.itemsize:
        raise ValueError(f"rows of {rows.shape[1]} bytes are narrower than dtype "
                         f"{dtype} ({dtype.itemsize} bytes)")
    if rows.shape[1] != dtype.itemsize:
        rows = rows[:, :dtype.itemsize]
    rows = np.ascontiguousarray(rows)
    if dtype.subdtype is not None:  # e.g. (slot, (ncpus,)) or (uint8, (16,)): keep the shape
        base, shape = dtype.subdtype
        return rows.view(base).reshape((len(rows),) + shape)
    return rows.view(dtype).reshape(len(rows))


def percpu_dtype(value_dtype: np.dtype, ncpus: int) -> np.dtype:
    """The dtype of one per-CPU value row: ``ncpus`` slots, each padded to 8 bytes."""
    value_dtype = np.dtype(value_dtype)
    slot = np.dtype({"names": ["v"], "formats": [value_dtype], "offsets": [0],
                     "itemsize": round8(value_dtype.itemsize)})
    return np.dtype((slot, (ncpus,)))


def prog_id_of_fd(fd: int) -> int:
    """The kernel id of the program behind ``fd`` (what a prog array shows user space)."""
    info = (ct.c_uint32 * 2)()  # struct bpf_prog_info starts with u32 type, u32 id
    size = ct.c_uint32(ct.sizeof(info))
    check(lib().bpf_obj_get_info_by_fd(fd, ct.byref(info), ct.byref(size)),
          f"BPF_OBJ_GET_INFO_BY_FD on fd {fd}")
    return int(info[1])


def _require_size(info: MapInfo, what: str, got: int, want: int) -> None:
    """A buffer of the wrong size would let the kernel read or write past it: refuse it."""
    if got != want:
        per_cpu = (f" ({len(possible_cpus())} CPUs x {round8(info.value_size)}-byte slots)"
                   if what == "value" and info.percpu else "")
        raise UsageError(f"map {info.name!r}: the {what} is {got} bytes, the map's {what}s are "
                         f"{want} bytes{per_cpu}", hint=f"pass exactly {want} bytes")


def _require_rows(info: MapInfo, what: str, rows: np.ndarray, want: int) -> None:
    if rows.nbytes != len(rows) * want:
        raise UsageError(f"map {info.name!r}: {len(rows)} {what}s of {rows.nbytes} bytes in all, "
                         f"the map's {what}s are {want} bytes each",
                         hint=f"pass one row of exactly {want} bytes per entry")


def lookup(fd: int, key: bytes, value_size: int | None = None) -> bytes | None:
    """The value stored under ``key`` (raw bytes), or ``None`` if there is none.

    ``key`` must be the map's key size; ``value_size``, if given, its value size (per-CPU maps:
    every CPU's slot), else :class:`~ebpf_nb.errors.UsageError`."""
    info = map_info(fd)
    _require_size(info, "key", len(key), info.key_size)
    want = value_size_total(info)
    if value_size is not None:
        _require_size(info, "value", value_size, want)
    value = ct.create_string_buffer(max(want, 1))
    ret = lib().bpf_map_lookup_elem(fd, key, value)
    if ret < 0:
        if -ret == errno.ENOENT:
            return None
        check(ret, "BPF_MAP_LOOKUP_ELEM")
    return value.raw[:want]


def update(fd: int, key: bytes, value: bytes, flags: int = 0) -> None:
    """Store ``value`` under ``key`` (``flags``: 0 any, 1 BPF_NOEXIST, 2 BPF_EXIST).

    Both must be exactly the map's sizes (per-CPU maps: every CPU's slot)."""
    info = map_info(fd)
    _require_size(info, "key", len(key), info.key_size)
    _require_size(info, "value", len(value), value_size_total(info))
    check(lib().bpf_map_update_elem(fd, key, value, flags), "BPF_MAP_UPDATE_ELEM")


def update_batch(fd: int, keys: np.ndarray, values: np.ndarray) -> int:
    """Store many entries at once (``BPF_MAP_UPDATE_BATCH``); returns how many were stored.

    Row ``i`` of ``keys`` and of ``values`` is one entry, of exactly the map's sizes."""
    keys = np.ascontiguousarray(keys)
    values = np.ascontiguousarray(values)
    if len(keys) != len(values):
        raise UsageError(f"update_batch: {len(keys)} keys but {len(values)} values",
                         hint="pass one value row per key row")
    info = map_info(fd)
    _require_rows(info, "key", keys, info.key_size)
    _require_rows(info, "value", values, value_size_total(info))
    count = ct.c_uint32(len(keys))
    opts = BpfMapBatchOpts(sz=ct.sizeof(BpfMapBatchOpts))
    check(lib().bpf_map_update_batch(fd, _ptr(keys), _ptr(values), ct.byref(count),
                                     ct.byref(opts)), "BPF_MAP_UPDATE_BATCH")
    return count.value


def delete(fd: int, key: bytes) -> bool:
    """Delete ``key`` (exactly the map's key size); ``False`` if it was not there."""
    info = map_info(fd)
    _require_size(info, "key", len(key), info.key_size)
    ret = lib().bpf_map_delete_elem(fd, key)
    if ret < 0:
        if -ret == errno.ENOENT:
            return False
        check(ret, "BPF_MAP_DELETE_ELEM")
    return True
