"""Map contents into DataFrames: one builder per map kind (see :mod:`ebpf_nb.map_kinds`).

Every builder takes the raw rows of one read (:class:`ebpf_nb.kernel.maps.RawMap`), the map's
:class:`~ebpf_nb.program.MapLayout` and the program that owns it (for names of addresses and
programs), and returns the frame ``Program.table()`` shows.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from . import decode
from .constants import INDEXED_MAP_TYPES, PERCPU_MAP_TYPES
from .kernel import maps as kmaps
from .kernel.records import cstrings
from .key_order import key_order

if TYPE_CHECKING:
    from .program import MapLayout


class Names(Protocol):
    """What builders ask of the program: the names of addresses and of programs."""

    def _symbolize(self, address: int, kernel: bool) -> str: ...

    def _program_names_by_id(self) -> dict[int, str]: ...


def keyed_frame(raw: kmaps.RawMap, layout: MapLayout, names: Names) -> pd.DataFrame:
    """A hash, array, LRU, per-CPU or storage map: :func:`map_frame`."""
    return map_frame(raw, layout)


def log2_histogram_frame(raw: kmaps.RawMap, layout: MapLayout, names: Names) -> pd.DataFrame:
    """A map declared as a log2 histogram: :func:`histogram_frame` with ``log2=True``."""
    return histogram_frame(raw, layout, log2=True)


def linear_histogram_frame(raw: kmaps.RawMap, layout: MapLayout, names: Names) -> pd.DataFrame:
    """A map declared as a linear histogram: :func:`histogram_frame` with ``log2=False``."""
    return histogram_frame(raw, layout, log2=False)


def stack_frame(raw: kmaps.RawMap, layout: MapLayout, names: Names) -> pd.DataFrame:
    """A stack trace map: ``stack_id``, ``depth`` and the symbolized ``frames`` of each stack."""
    stack_ids = kmaps.to_structured(raw.keys, np.dtype(np.uint32))
    frames_all = raw.values.view(np.uint64)
    rows = []
    for stack_id, addrs in zip(stack_ids, frames_all):
        addrs = [int(a) for a in addrs if a]
        kernel = bool(addrs) and addrs[0] >= 0xFFFF000000000000
        rows.append({"stack_id": int(stack_id), "depth": len(addrs),
                     "frames": [names._symbolize(a, kernel) for a in addrs]})
    return pd.DataFrame(rows, columns=["stack_id", "depth", "frames"])


def prog_array_frame(raw: kmaps.RawMap, layout: MapLayout, names: Names) -> pd.DataFrame:
    """A program array: ``index``, ``prog_id`` and the ``function`` loaded there."""
    index = kmaps.to_structured(raw.keys, np.dtype(np.uint32))
    prog_ids = kmaps.to_structured(raw.values, np.dtype(np.uint32))
    by_id = names._program_names_by_id()
    return pd.DataFrame({"index": index.astype(int), "prog_id": prog_ids.astype(int),
                         "function": [by_id.get(int(i), "") for i in prog_ids]})


def map_frame(raw: kmaps.RawMap, layout: MapLayout) -> pd.DataFrame:
    """Keys and values of a hash/array/LRU/per-CPU map as columns (hash rows sorted by key)."""
    key_dtype = layout.key_dtype or np.dtype((np.uint8, raw.key_size))
    value_dtype = layout.value_dtype or np.dtype((np.uint8, raw.value_size))
    keys = kmaps.to_structured(raw.keys, key_dtype)
    value_rows = raw.values
    in_order = bool(raw.map_type not in INDEXED_MAP_TYPES and keys.dtype.names is None
                    and len(keys))
    if in_order:
        order = key_order(keys)  # hash keys are unique: any sort gives the one order
        keys = kmaps.to_structured(_rows_in_order(raw.keys, order), key_dtype)
        value_rows = _rows_in_order(value_rows, order)
    data = decode.columns(keys, "key")
    if raw.map_type in PERCPU_MAP_TYPES:
        per_cpu = kmaps.to_structured(value_rows, kmaps.percpu_dtype(value_dtype, raw.ncpus))
        data.update(_percpu_columns(per_cpu["v"], value_dtype))
    else:
        values = kmaps.to_structured(value_rows, value_dtype)
        for col, vals in decode.columns(values, "value").items():
            data[col if col not in data else f"value_{col}"] = vals
    # Sorted, the columns are views of new arrays this frame alone holds: no second copy.
    # Unsorted, they are views of the read buffers: copied, as pandas does by default.
    return pd.DataFrame(data, copy=not in_order)


def _rows_in_order(rows: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The uint8 rows ``rows[order]``, each moved whole (one random access per row, where a
    column at a time would make one per field), into rows from the pool of freed blocks."""
    rows = np.ascontiguousarray(rows)
    width = rows.shape[1]
    whole = np.dtype((np.void, width))
    out = kmaps.rows_of(len(order), width)
    np.take(rows.view(whole).reshape(len(rows)), order, out=out.view(whole).reshape(len(order)),
            mode="clip")  # "clip": the indices are valid, and "raise" copies ``out`` first
    return out


def _percpu_columns(values: np.ndarray, dtype: np.dtype) -> dict[str, Any]:
    """(n, ncpus) values -> ``cpu0..cpuN`` + ``total`` (per field for struct values)."""
    out: dict[str, Any] = {}
    ncpus = values.shape[1] if values.ndim > 1 else 1
    if dtype.names is None:
        for cpu in range(ncpus):
            out[f"cpu{cpu}"] = values[:, cpu]
        out["total"] = values.sum(axis=1)
        return out
    for field in dtype.names:
        if field.startswith("__pad"):
            continue
        col = values[field]
        if col.ndim != 2 or col.dtype.names is not None:
            continue  # array and struct fields: no single number per CPU
        if col.dtype.kind == "S":  # char[]: one string per CPU, nothing to add up
            for cpu in range(ncpus):
                out[f"{field}_cpu{cpu}"] = cstrings(col[:, cpu])
            continue
        for cpu in range(ncpus):
            out[f"{field}_cpu{cpu}"] = col[:, cpu]
        out[f"{field}_total"] = col.sum(axis=1)
    return out


def histogram_frame(raw: kmaps.RawMap, layout: MapLayout, *, log2: bool) -> pd.DataFrame:
    """A BPF_HISTOGRAM: ``low``, ``high``, ``count`` per bucket from the first to the last
    non-empty one (log2: bucket ``s`` holds values in [2**(s-1), 2**s - 1])."""
    key_dtype = layout.key_dtype or np.dtype(np.int32)
    if key_dtype.names is not None:  # struct keys: bucket field is "slot" by BCC convention
        keys = kmaps.to_structured(raw.keys, key_dtype)
        slot_field = "slot" if "slot" in key_dtype.names else key_dtype.names[-1]
        slots = keys[slot_field].astype(np.int64)
    else:
        slots = kmaps.to_structured(raw.keys, key_dtype).astype(np.int64)
    counts = kmaps.to_structured(raw.values, layout.value_dtype or np.dtype(np.uint64))
    counts = counts.astype(np.int64)
    totals: dict[int, int] = {}
    for s, c in zip(slots.tolist(), counts.tolist()):
        totals[s] = totals.get(s, 0) + c
    nonzero = [s for s, c in totals.items() if c]
    columns = ["low", "high", "count"] if log2 else ["key", "count"]
    if not nonzero:
        df = pd.DataFrame({c: pd.Series(dtype="int64") for c in columns})
    else:
        buckets = range(min(nonzero), max(nonzero) + 1)
        if log2:
            df = pd.DataFrame({"low": [(1 << s) >> 1 for s in buckets],
                               "high": [(1 << s) - 1 if s else 0 for s in buckets],
                               "count": [totals.get(s, 0) for s in buckets]})
        else:
            df = pd.DataFrame({"key": list(buckets), "count": [totals.get(s, 0) for s in buckets]})
    df.attrs["kind"] = "log2_histogram" if log2 else "linear_histogram"
    return df
