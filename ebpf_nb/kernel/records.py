"""Shared by the buffer readers: turning split records into ``(n, size)`` uint8 matrices."""
from __future__ import annotations

import numpy as np

BULK_MIN = 8  # fewer equal records than this are cheaper to split one by one than with numpy


def payload_rows(block: np.ndarray, n: int, offset: int, length: int, width: int) -> np.ndarray:
    """The payloads of the first ``n`` equal-sized records of ``block`` (one record per row,
    payload at ``offset``, ``length`` bytes) as ``(n, width)`` rows: cut or zero-padded."""
    if width <= length:
        return block[:n, offset:offset + width].copy()
    rows = np.zeros((n, width), dtype=np.uint8)
    rows[:, :length] = block[:n, offset:offset + length]
    return rows


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


_MIX = np.uint64(0x9E3779B97F4A7C15)


def cstrings(values: np.ndarray) -> np.ndarray:
    """C ``char[N]`` fields -> an object array of ``str``, each cut at its first NUL.

    ``values`` is an ``S<N>`` array or ``(n, N)`` uint8 rows. Each *distinct* string is decoded
    once (event streams repeat the same few ``comm`` values), so a million rows cost a few numpy
    passes instead of a million Python calls. Exact: rows are grouped by their bytes up to the
    NUL, and the grouping is checked before it is used.
    """
    n = len(values)
    if n == 0:
        return np.empty(0, dtype=object)
    raw = np.ascontiguousarray(values).view(np.uint8).reshape(n, -1)
    width = raw.shape[1]
    padded = np.zeros((n, -(-width // 8) * 8), dtype=np.uint8)
    padded[:, :width] = raw
    padded *= ~np.logical_or.accumulate(padded == 0, axis=1)  # forget bytes after a NUL
    words = padded.view(np.uint64)
    key = words[:, 0].copy()
    for j in range(1, words.shape[1]):
        key = key * _MIX ^ words[:, j]
    import pandas as pd
    codes, uniques = pd.factorize(key)
    first = np.empty(len(uniques), dtype=np.int64)
    first[codes[::-1]] = np.arange(n - 1, -1, -1)
    if not np.array_equal(words, words[first][codes]):  # a hash collision: decode row by row
        first, codes = np.arange(n), np.arange(n)
    texts = [padded[i].tobytes().split(b"\0", 1)[0].decode("utf-8", "replace") for i in first]
    out = np.empty(len(texts), dtype=object)
    out[:] = texts
    return out[codes]
