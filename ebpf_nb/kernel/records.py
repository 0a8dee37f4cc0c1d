"""Shared by the buffer readers: turning split records into ``(n, size)`` uint8 matrices."""
from __future__ import annotations

import time

import numpy as np

from .atomics import acquire_fence

BULK_MIN = 8  # fewer equal records than this are cheaper to split one by one than with numpy
# More than this many records are checked and copied a piece at a time, so that the copy reads
# the bytes the header check has just brought into the CPU cache (~300 KiB of 72-byte records).
BULK_MAX = 4096

# A reader that finds only a little data (under GATHER_BYTES) lets the rest of the burst arrive
# for GATHER_SECONDS before it reads: a burst is then taken in a few large batches rather than
# a wakeup and a Python pass every few records (the ring buffer wakes its reader at each record
# once it has caught up). 200 us is nothing to a person watching; a trickle is shown as before.
GATHER_BYTES = 64 << 10
GATHER_SECONDS = 0.0002


def gather(pending_bytes: int) -> None:
    """Sleep :data:`GATHER_SECONDS` when some, but under :data:`GATHER_BYTES`, is waiting."""
    if 0 < pending_bytes < GATHER_BYTES:
        time.sleep(GATHER_SECONDS)


def payload_rows(block: np.ndarray, n: int, offset: int, length: int, width: int,
                 out: np.ndarray | None = None) -> np.ndarray:
    """The payloads of the first ``n`` equal-sized records of ``block`` (one record per row,
    payload at ``offset``, ``length`` bytes) as ``(n, width)`` rows: cut or zero-padded.
    Written into ``out`` (``(n, width)`` uint8) when given, else into a new array."""
    if out is None:
        if width <= length:
            return block[:n, offset:offset + width].copy()
        out = np.empty((n, width), dtype=np.uint8)
    if width <= length:
        out[:] = block[:n, offset:offset + width]
    else:
        out[:, :length] = block[:n, offset:offset + length]
        out[:, length:] = 0
    return out


def equal_run(block: np.ndarray, heads: np.ndarray, head: int, offset: int, length: int,
              width: int, out: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """The leading records of ``block`` (one per row) whose header ``heads[i]`` is ``head``, as
    :func:`payload_rows` gives them (into ``out[:n]`` when given), and how many there are.

    The headers are read (plain loads) before an acquire fence, the payloads after it: a ring
    buffer header whose BUSY bit is seen clear then publishes its payload (see :mod:`.atomics`)."""
    bad = np.flatnonzero(heads != head)
    n = int(bad[0]) if len(bad) else len(block)
    acquire_fence()
    return payload_rows(block, n, offset, length, width, None if out is None else out[:n]), n


def one_record(buf: np.ndarray, start: int, length: int,
               out: np.ndarray | None = None) -> bytes | np.ndarray:
    """The ``length`` bytes at ``start`` of ``buf``: as ``bytes``, or copied into row ``out[0]``
    (cut or zero-padded) and returned as a 1-row matrix."""
    payload = bytes(buf[start:start + length])
    return payload if out is None else put_row(out[0], payload)


def check_out(out: np.ndarray, record_size: int) -> None:
    """Raise ``ValueError`` unless ``out`` is a writable ``(k, record_size)`` uint8 array."""
    if (not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.ndim != 2
            or out.shape[1] != record_size or not out.flags.writeable):
        raise ValueError(f"out must be a writable (k, {record_size}) uint8 array, not "
                         f"{getattr(out, 'shape', type(out).__name__)} "
                         f"{getattr(out, 'dtype', '')}".rstrip())


def put_row(out: np.ndarray, payload: bytes) -> np.ndarray:
    """Copy one record into the row ``out`` (cut or zero-padded); returns it as a 1-row matrix."""
    width = min(len(payload), len(out))
    out[:width] = np.frombuffer(payload, dtype=np.uint8, count=width)
    out[width:] = 0
    return out.reshape(1, -1)


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


RUN_CHUNK = 1 << 16  # rows compared with their predecessor per numpy pass (fits in cache)


def cstrings(values: np.ndarray) -> np.ndarray:
    """C ``char[N]`` fields -> an object array of ``str``, each cut at its first NUL.

    ``values`` is an ``S<N>`` array (a struct field is read in place, not copied) or ``(n, N)``
    uint8 rows. Event streams repeat the same few ``comm`` values, often many rows in a row: runs
    of equal raw bytes are found first (each row against the one before, word by word), then the
    first rows of the runs are grouped by their raw bytes (a hash of the 8-byte words, checked
    exactly), and each *distinct* value is cut at its NUL and decoded once. Every row of a group
    refers to the same ``str``.
    """
    n = len(values)
    if n == 0:
        return np.empty(0, dtype=object)
    raw = _byte_rows(values)
    words = _words(raw)
    starts = _run_starts(words)
    if starts is None:  # hardly any runs: group the rows themselves
        return _distinct(raw, words)
    firsts = np.ascontiguousarray(raw[starts])
    return np.repeat(_distinct(firsts, _words(firsts)), np.diff(starts, append=n))


def _run_starts(words: np.ndarray) -> np.ndarray | None:
    """The rows that differ from the row before them (row 0 included), or ``None`` as soon as
    more than a quarter of the rows looked at do (runs would not pay for themselves)."""
    n, width = words.shape
    found = [np.zeros(1, dtype=np.intp)]
    count = 1
    for lo in range(1, n, RUN_CHUNK):
        hi = min(lo + RUN_CHUNK, n)
        differs = words[lo:hi, 0] != words[lo - 1:hi - 1, 0]
        for j in range(1, width):
            differs |= words[lo:hi, j] != words[lo - 1:hi - 1, j]
        at = np.flatnonzero(differs)
        if len(at):
            count += len(at)
            if 4 * count > hi:
                return None
            found.append(at + lo)
    return found[0] if len(found) == 1 else np.concatenate(found)


def _distinct(raw: np.ndarray, words: np.ndarray) -> np.ndarray:
    """:func:`cstrings` of ``(n, width)`` rows ``raw`` (``words``: the same as uint64 words),
    each distinct value decoded once (see :func:`cstrings`)."""
    n = len(raw)
    key = words[:, 0].copy()
    for j in range(1, words.shape[1]):
        key *= _MIX
        key ^= words[:, j]
    import pandas as pd
    codes, uniques = pd.factorize(key)
    first = _first_rows(codes, len(uniques))
    if not _same_rows(words, first, codes, scratch=key):  # a hash collision: row by row
        first, codes = np.arange(n), np.arange(n)
    texts = [raw[i].tobytes().split(b"\0", 1)[0].decode("utf-8", "replace") for i in first]
    out = np.empty(len(texts), dtype=object)
    out[:] = texts
    return out[codes]


def _byte_rows(values: np.ndarray) -> np.ndarray:
    """``(n, width)`` uint8 rows of the values: a view of a 1-D ``S<N>`` array (strided when it
    is a struct field), a contiguous copy otherwise (e.g. ``char[4][16]``: one row of 64)."""
    if values.dtype.kind == "S" and values.ndim == 1:
        return values[:, None].view(np.uint8)
    return np.ascontiguousarray(values).view(np.uint8).reshape(len(values), -1)


def _words(raw: np.ndarray) -> np.ndarray:
    """``(n, width)`` uint8 rows as ``(n, ceil(width / 8))`` uint64 words (zero-padded): a view
    when ``width`` is a multiple of 8."""
    n, width = raw.shape
    if width % 8 == 0 and raw.strides[1] == 1:
        return raw.view(np.uint64)
    padded = np.zeros((n, -(-width // 8) * 8), dtype=np.uint8)
    padded[:, :width] = raw
    return padded.view(np.uint64)


def _first_rows(codes: np.ndarray, groups: int) -> np.ndarray:
    """For each group code, the index of its first row."""
    if groups <= 16:  # the usual few comm values: a pass each, no index array
        return np.array([int(np.argmax(codes == g)) for g in range(groups)], dtype=np.int64)
    first = np.empty(groups, dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)
    return first


def _same_rows(words: np.ndarray, first: np.ndarray, codes: np.ndarray,
               scratch: np.ndarray) -> bool:
    """Whether every row equals the first row of its group, word by word (``scratch``: an
    ``(n,)`` uint64 array to reuse)."""
    for j in range(words.shape[1]):
        np.take(words[first, j], codes, out=scratch, mode="clip")
        if not np.array_equal(words[:, j], scratch):
            return False
    return True
