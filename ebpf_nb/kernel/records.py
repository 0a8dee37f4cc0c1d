"""Shared by the buffer readers: turning split records into ``(n, size)`` uint8 matrices."""
from __future__ import annotations

import numpy as np

BULK_MIN = 8  # fewer equal records than this are cheaper to split one by one than with numpy


def group_rows(parts: list, size: int) -> list[np.ndarray]:
    """Keep matrices as they are; turn each run of single ``bytes`` records into one matrix
    (records cut or zero-padded to ``size``), preserving order."""
    out: list[np.ndarray] = []
    singles: list[bytes] = []
    for part in parts:
        if isinstance(part, bytes):
            singles.append(part[:size].ljust(size, b"\0"))
            continue
        if singles:
            out.append(stack(singles, size))
            singles = []
        out.append(part)
    if singles:
        out.append(stack(singles, size))
    return out


def stack(records: list[bytes], size: int) -> np.ndarray:
    """Equal-sized byte strings -> a writable ``(n, size)`` uint8 matrix."""
    return np.frombuffer(b"".join(records), dtype=np.uint8).reshape(len(records), size).copy()
