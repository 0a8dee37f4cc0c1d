"""Numpy structured arrays -> DataFrame columns.

Decoding is two steps so both can be tested alone: :func:`ebpf_nb.kernel.maps.to_structured`
views raw rows through a numpy dtype (no copy, no Python call per row); :func:`columns` turns a
structured array into named columns: ``char[]`` becomes ``str``, nested structs are flattened
to ``outer_inner``, padding fields are dropped, other arrays become one list per row.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .kernel.records import cstrings


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
            out[col] = cstrings(arr)  # each distinct string decoded once
        elif arr.ndim > 1:
            out[col] = list(arr)
        else:
            out[col] = arr
        return
    for field in dt.names:
        if field.startswith("__pad"):
            continue
        _flatten(arr[field], name, f"{prefix}{field}_", out)
