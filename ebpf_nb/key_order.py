"""The order that sorts a map's keys: a stable LSD radix sort on 16-bit digits, in numpy.

:func:`key_order` returns what ``np.argsort(keys, kind="stable")`` returns (for hash keys,
which are unique, what any sort returns), 3-5x faster for integer keys: numpy's stable sort of
16-bit integers is a radix sort, so an integer key is sorted one 16-bit digit at a time, from
the lowest, and digits equal in every key are skipped (a u32 pid key below 65536 costs one
pass). Array keys (``u8[6]``, or raw bytes when the type is unknown) sort element by element,
the first element first; other keys (``char[N]`` strings, floats) fall back to ``np.argsort``.
"""
from __future__ import annotations

import numpy as np

_DIGIT = {1: (np.uint8, np.int8), 2: (np.uint16, np.int16), 4: (np.uint16, np.int16),
          8: (np.uint16, np.int16)}


def key_order(keys: np.ndarray) -> np.ndarray:
    """Indices that sort ``keys`` ascending, stable: equal keys keep their order.

    ``keys`` is 1-D (one key per row) or n-D (one array key per row, compared element by
    element, the first element most significant)."""
    if keys.ndim > 1:
        columns = keys.reshape(len(keys), -1)
        order = None
        for j in range(columns.shape[1] - 1, -1, -1):  # least significant element first
            order = _sorted_by(columns[:, j], order)
        return order if order is not None else np.arange(len(keys))
    return _sorted_by(keys, None)


def _sorted_by(keys: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """``order`` (``None``: the rows as they are) stably re-sorted by ``keys``."""
    if not _radix_sortable(keys.dtype):
        column = keys if order is None else keys[order]
        step = np.argsort(column, kind="stable")
        return step if order is None else order[step]
    for digit in _digits(keys):
        if order is not None:
            digit = digit[order]
        step = np.argsort(digit, kind="stable")  # a radix sort for 8- and 16-bit integers
        order = step if order is None else order[step]
    return order if order is not None else np.arange(len(keys))


def _radix_sortable(dtype: np.dtype) -> bool:
    return dtype.kind in "iu" and dtype.itemsize in _DIGIT and dtype.isnative


def _digits(keys: np.ndarray) -> list[np.ndarray]:
    """The 8- or 16-bit digits of integer keys that differ between keys, least significant
    first (views, no copies). Every key lies between the smallest and the largest, so the
    digits above the highest bit in which those two differ are the same in all keys and are
    left out. The top digit of a signed key is signed, so that negative keys sort first."""
    if len(keys) == 0:
        return []
    unsigned, signed = _DIGIT[keys.dtype.itemsize]
    bits = 8 * np.dtype(unsigned).itemsize
    count = keys.dtype.itemsize * 8 // bits
    bias = 1 << (keys.dtype.itemsize * 8 - 1) if keys.dtype.kind == "i" else 0
    differ = (int(keys.min()) + bias) ^ (int(keys.max()) + bias)  # order-keeping as unsigned
    needed = -(-differ.bit_length() // bits)
    if count == 1:
        digits = [keys.view(unsigned)]
    else:
        parts = keys.reshape(-1, 1).view(unsigned)  # (n, count) digits in memory order
        if not np.little_endian:
            parts = parts[:, ::-1]
        digits = [parts[:, j] for j in range(count)]
    if keys.dtype.kind == "i":
        digits[-1] = digits[-1].view(signed)
    return digits[:needed]
