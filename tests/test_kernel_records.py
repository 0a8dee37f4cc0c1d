"""Record splitting of the perf reader on synthetic ring bytes (no kernel needed)."""
from __future__ import annotations

import struct

import numpy as np

from ebpf_nb.kernel.perfbuf import PERF_RECORD_LOST, PERF_RECORD_SAMPLE, PerfBufferReader
from ebpf_nb.kernel.records import group_rows


def sample(payload: bytes, misc: int = 0) -> bytes:
    raw = payload + b"\0" * ((-(len(payload) + 4)) % 8)  # the kernel pads raw data to 8
    return struct.pack("<IHHI", PERF_RECORD_SAMPLE, misc, 12 + len(raw), len(raw)) + raw


def lost(n: int) -> bytes:
    return struct.pack("<IHHQQ", PERF_RECORD_LOST, 0, 24, 1, n)


def parser() -> PerfBufferReader:
    reader = PerfBufferReader.__new__(PerfBufferReader)
    reader.lost = 0
    reader.received = 0
    return reader


def split(buf: bytes, record_size: int | None = None, limit: int = -1):
    reader = parser()
    parts, used = reader._parse(np.frombuffer(buf, dtype=np.uint8), record_size, limit)
    if record_size is not None:
        return [r.tobytes() for m in group_rows(parts, record_size) for r in m], used, reader
    rows: list[bytes] = []
    for part in parts:
        rows.extend([part] if isinstance(part, bytes) else [r.tobytes() for r in part])
    return rows, used, reader


def test_equal_samples_split_in_one_block():
    payloads = [struct.pack("<Q", i) * 8 for i in range(100)]
    rows, used, reader = split(b"".join(sample(p) for p in payloads), 64)
    assert rows == payloads and reader.received == 100 and used == 100 * 80


def test_lost_records_between_samples_are_summed():
    buf = sample(b"a" * 64) + lost(5) + sample(b"b" * 64) + sample(b"c" * 64) + lost(7)
    rows, used, reader = split(buf, 64)
    assert rows == [b"a" * 64, b"b" * 64, b"c" * 64]
    assert reader.lost == 12 and used == len(buf)


def test_mixed_sizes_and_misc_bits_keep_order():
    buf = sample(b"x" * 64) + sample(b"y" * 20) + sample(b"z" * 64, misc=2) + sample(b"w" * 64)
    rows, _, _ = split(buf)
    assert [r.rstrip(b"\0") for r in rows] == [b"x" * 64, b"y" * 20, b"z" * 64, b"w" * 64]
    padded, _, _ = split(buf, 64)
    assert padded[1] == b"y" * 20 + b"\0" * 44


def test_limit_stops_mid_block_and_reports_bytes_used():
    buf = b"".join(sample(bytes([i]) * 64) for i in range(10))
    rows, used, reader = split(buf, 64, limit=4)
    assert len(rows) == 4 and used == 4 * 80 and reader.received == 4


def test_group_rows_keeps_order_between_blocks_and_singles():
    block = np.full((2, 4), 7, dtype=np.uint8)
    rows = group_rows([b"ab", block, b"abcdef"], 4)
    assert [r.tobytes() for m in rows for r in m] == [b"ab\0\0", bytes([7] * 4),
                                                       bytes([7] * 4), b"abcd"]
    assert all(m.flags.writeable for m in rows)


def test_truncated_tail_is_left_for_later():
    buf = sample(b"q" * 64) + sample(b"r" * 64)[:30]
    rows, used, _ = split(buf, 64)
    assert [r[:64] for r in rows] == [b"q" * 64] and used == 80


def test_cstrings_equal_the_row_by_row_decoding():
    from ebpf_nb.kernel.records import cstrings
    names = [b"bash", b"python3", b"", b"kworker/0:1-events", b"caf\xc3\xa9", b"x\0junk"]
    rng = np.random.default_rng(7)
    values = np.array(names, dtype="S16")[rng.integers(0, len(names), 5000)]
    expected = [v.split(b"\0", 1)[0].decode("utf-8", "replace") for v in values.tolist()]
    assert list(cstrings(values)) == expected
    rows = values.view(np.uint8).reshape(len(values), 16)
    assert list(cstrings(rows)) == expected
    assert list(cstrings(np.array([b"abc"], dtype="S3"))) == ["abc"]  # width not a multiple of 8
    assert cstrings(np.empty(0, dtype="S4")).shape == (0,)
