"""Record splitting of the perf reader on synthetic ring bytes, ``char[]`` decoding, the row store
and the end of an event read (no kernel needed)."""
from __future__ import annotations

import struct

import numpy as np
import pytest

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


def test_cstrings_group_raw_bytes_and_stay_exact():
    from ebpf_nb.kernel import records
    rows = np.zeros((6, 16), dtype=np.uint8)
    for i, raw in enumerate([b"sh\0aaaa", b"sh\0bbbb", b"sh", b"\xff\xfeok", b"a" * 16, b"sh"]):
        rows[i, :len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    got = records.cstrings(rows)
    assert list(got) == ["sh", "sh", "sh", "\ufffd\ufffdok", "a" * 16, "sh"]  # no NUL: all 16
    assert got[2] is got[5]  # one str object per distinct value, not one per row
    ev = np.zeros(4, dtype=[("pid", "<u4"), ("comm", "S16"), ("x", "<u8")])  # a strided field
    ev["comm"] = [b"bash", b"python3", b"bash", b""]
    assert list(records.cstrings(ev["comm"])) == ["bash", "python3", "bash", ""]


def test_cstrings_falls_back_row_by_row_on_a_hash_collision(monkeypatch):
    from ebpf_nb.kernel import records
    monkeypatch.setattr(records, "_MIX", np.uint64(0))  # key = first word ^ second word
    a = b"abcdefgh" + b"12345678"
    b = b"12345678" + b"abcdefgh"  # same xor of its words: collides with a
    values = np.array([a, b, a, b"zz"], dtype="S16")
    assert list(records.cstrings(values)) == [a.decode(), b.decode(), a.decode(), "zz"]


def _decoded(values: np.ndarray) -> list[str]:
    return [v.split(b"\0", 1)[0].decode("utf-8", "replace") for v in values.tolist()]


@pytest.mark.parametrize("chunk", [7, 64, 1 << 16])
def test_cstrings_runs_are_exact_across_chunks_and_words(monkeypatch, chunk):
    """Runs of equal rows (found row against row, RUN_CHUNK rows per pass): values that differ
    only in their second 8-byte word, runs ending on and across chunk edges, a strided field."""
    from ebpf_nb.kernel import records
    monkeypatch.setattr(records, "RUN_CHUNK", chunk)
    names = np.array([b"kworker/0:1", b"kworker/0:2", b"bash", b"", b"kworker/0:1"], dtype="S16")
    lengths = [1, 6, 7, 8, 50, 13, 64, 65, 1, 200]
    picks = np.repeat(np.arange(len(lengths)) % len(names), lengths)
    ev = np.zeros(len(picks), dtype=[("pid", "<u4"), ("comm", "S16"), ("x", "<u8")])
    ev["comm"] = names[picks]
    got = records.cstrings(ev["comm"])
    assert list(got) == _decoded(ev["comm"])
    assert got[0] is got[-1]  # one str per distinct value, across runs
    assert list(records.cstrings(ev["comm"][:1])) == ["kworker/0:1"]


def test_cstrings_without_runs_group_the_rows_themselves(monkeypatch):
    from ebpf_nb.kernel import records
    values = np.array([b"a", b"b"] * 500, dtype="S16")  # a new run on every row
    calls = []
    real = records._distinct
    monkeypatch.setattr(records, "_distinct", lambda raw, words: calls.append(len(raw))
                        or real(raw, words))
    assert list(records.cstrings(values)) == ["a", "b"] * 500
    assert calls == [1000]  # the runs were given up, all rows grouped at once
    calls.clear()
    assert list(records.cstrings(np.repeat(values[:4], 250))) == _decoded(np.repeat(values[:4],
                                                                                   250))
    assert calls == [4]  # four runs: only their first rows are grouped


def test_cstrings_runs_fall_back_row_by_row_on_a_hash_collision(monkeypatch):
    from ebpf_nb.kernel import records
    monkeypatch.setattr(records, "_MIX", np.uint64(0))
    a, b = b"abcdefgh" + b"12345678", b"12345678" + b"abcdefgh"
    values = np.array([a] * 100 + [b] * 100 + [a] * 100, dtype="S16")
    assert list(records.cstrings(values)) == [a.decode()] * 100 + [b.decode()] * 100 + [
        a.decode()] * 100


def test_string_columns_are_what_pandas_makes_of_them_without_a_copy():
    import pandas as pd

    from ebpf_nb.buffers import string_column
    from ebpf_nb.kernel.records import cstrings
    values = cstrings(np.array([b"bash", b"", b"caf\xc3\xa9"] * 3, dtype="S16"))
    ours = pd.DataFrame({"comm": string_column(values), "n": np.arange(9)}, copy=False)
    theirs = pd.DataFrame({"comm": values, "n": np.arange(9)})
    pd.testing.assert_frame_equal(ours, theirs)
    assert type(ours["comm"].array) is type(theirs["comm"].array)
    assert ours["comm"].dtype == theirs["comm"].dtype
    assert list(ours.comm.value_counts().items()) == list(theirs.comm.value_counts().items())
    assert (ours.comm == "café").sum() == 3 and ours.comm.str.len().tolist() == [4, 0, 4] * 3
    if isinstance(theirs["comm"].dtype, pd.StringDtype) and theirs["comm"].dtype.storage == (
            "python"):  # pandas 3: the str column holds cstrings' array itself
        assert np.shares_memory(ours["comm"].array._ndarray, values)
    numbers = np.arange(3)
    assert string_column(numbers) is numbers


def test_row_store_grows_and_keeps_order():
    from ebpf_nb.buffers import RowStore
    store = RowStore(8, expected=3)
    written = 0
    for chunk in (2, 1, 3, 5, 6):  # blocks of 3, 6, 12: three blocks
        for _ in range(chunk):
            free = store.free()
            free[0] = written
            store.filled(1)
            written += 1
    rows = store.rows()
    assert rows.shape == (written, 8) and list(rows[:, 0]) == list(range(written))
    one = RowStore(8, expected=100)
    one.free()[:10] = 7
    one.filled(10)
    small = one.rows()
    assert small.shape == (10, 8) and small.base is None  # mostly empty block: trimmed copy
    full = RowStore(8, expected=10)
    full.free()[:10] = 1
    full.filled(10)
    assert full.rows().base is not None  # a full block is returned as it is (no copy)
    assert RowStore(8).rows().shape == (0, 8)
    huge = RowStore(4096, expected=10**9)  # a student's count=10**9: capped, not 4 TB
    assert len(huge.free()) * 4096 <= RowStore.MAX_BLOCK_BYTES


def test_event_reads_end_their_drain_when_quiet():
    import time

    from ebpf_nb.reading import DRAIN_SECONDS, bounded_read
    calls: list[float] = []

    def idle_poll(timeout: float) -> int:
        calls.append(timeout)
        time.sleep(timeout)
        return 0

    full = bounded_read(idle_poll, trigger=lambda: None)
    quiet = bounded_read(idle_poll, trigger=lambda: None, drain_quiet=0.02)
    assert full.stopped_by == quiet.stopped_by == "trigger"
    assert full.elapsed >= DRAIN_SECONDS > quiet.elapsed  # quiet for 20 ms ends the drain
    calls.clear()
    bursts = iter([3, 3, 3, 3, 3])

    def busy_poll(timeout: float) -> int:
        calls.append(timeout)
        n = next(bursts, 0)
        if not n:
            time.sleep(timeout)
        return n

    busy = bounded_read(busy_poll, trigger=lambda: None, drain_quiet=0.02)
    assert busy.stopped_by == "trigger" and len(calls) >= 6  # read on while records came


@pytest.mark.parametrize(("pending", "sleeps"), [(0, False), (1, True), (64, True),
                                                 ((64 << 10) - 1, True), (64 << 10, False),
                                                 (1 << 24, False)])
def test_a_reader_waits_for_the_rest_of_a_burst_only_when_a_little_is_there(
        monkeypatch, pending, sleeps):
    from ebpf_nb.kernel import records
    slept: list[float] = []
    monkeypatch.setattr(records.time, "sleep", slept.append)
    records.gather(pending)
    assert slept == ([records.GATHER_SECONDS] if sleeps else [])
    assert records.GATHER_SECONDS <= 0.001  # a trickle stays within a refresh
