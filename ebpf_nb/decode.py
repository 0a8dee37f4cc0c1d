"""Raw bytes -> numpy structured arrays -> DataFrame columns.

Decoding is two steps so both can be tested alone: :func:`as_records` views raw rows through a
numpy dtype (no copy, no Python call per row); :func:`columns` turns a structured array into
named columns: ``char[]`` becomes ``str``, nested structs are flattened to ``outer_inner``,
padding fields are dropped, other arrays become one list per row.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .kernel.records import cstrings


def ctypes_dtype(ctype: Any) -> np.dtype:
    """The numpy dtype of a ctypes type (BCC describes keys, values and events with ctypes)."""
    return np.dtype(ctype)


def as_records(raw: np.ndarray | bytes, dtype: np.dtype) -> np.ndarray:
    """View contiguous raw bytes (n * itemsize) as ``n`` records of ``dtype``."""
    buf = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, (bytes, bytearray, memoryview)) \
        else np.ascontiguousarray(raw, dtype=np.uint8).reshape(-1)
    if buf.size % dtype.itemsize:
        raise ValueError(f"{buf.size} bytes is not a whole number of {dtype.itemsize}-byte records")
    return buf.view(dtype)


def _strings(values: np.ndarray) -> np.ndarray:
    """Fixed-size byte strings (``S1`` arrays or ``S<n>``) -> Python str, cut at the first NUL
    (each distinct string decoded once: event streams repeat a few ``comm`` values)."""
    return cstrings(values)


def columns(records: np.ndarray, name: str = "value") -> dict[str, Any]:
    """Named columns from a (structured or scalar) numpy array.

    A scalar dtype gives one column ``name``; a struct gives one column per field (padding
    fields ``__pad*`` dropped).
    """
    out: dict[str, Any] = {}
    _flatten(records, name, "", out)
    return out


def _flatten(arr: np.ndarray, name: str, prefix: str, out: dict[str, Any]) -> None:
    dt = arr.dtype
    if dt.names is None:
        col = prefix.rstrip("_") or name
        if dt.kind == "S":
            out[col] = _strings(arr)
        elif arr.ndim > 1:
            out[col] = list(arr)
        else:
            out[col] = arr
        return
    for field in dt.names:
        if field.startswith("__pad"):
            continue
        _flatten(arr[field], name, f"{prefix}{field}_", out)


def frame(parts: list[tuple[np.ndarray, str]], **extra: Any) -> pd.DataFrame:
    """A DataFrame from several (records, scalar-name) parts, plus extra columns."""
    data: dict[str, Any] = {}
    for records, name in parts:
        for col, values in columns(records, name).items():
            data[col if col not in data else f"{name}_{col}"] = values
    data.update(extra)
    return pd.DataFrame(data)
