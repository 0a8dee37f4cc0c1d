"""Every read keeps at most a cap of rows and bytes (issue 14).

A busy buffer brings ~2.4M rows a second: ``events(seconds=60)`` kept every one (gigabytes).
Here: the cap's arithmetic and argument checks, a read that stops at the cap (and does not ask
its reader for more), the ``truncated`` attribute and the one-line notice, and the trace pipe's
cap (read from a FIFO standing in for ``trace_pipe``)."""
from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from ebpf_nb.errors import UsageError
from ebpf_nb.reading import MAX_BYTES, MAX_ROWS, ReadCap, bounded_read, read_cap


def test_the_cap_is_the_smaller_of_rows_and_bytes():
    assert read_cap() == ReadCap(MAX_ROWS, MAX_BYTES) == ReadCap()
    assert ReadCap(10, 1000).rows_for(64) == 10          # rows first
    assert ReadCap(100, 640).rows_for(64) == 10          # bytes first
    assert ReadCap(100, 639).rows_for(64) == 9           # whole records only
    assert ReadCap().rows_for(72) == MAX_ROWS            # 5M rows of 72 bytes: 360 MB
    assert ReadCap().rows_for(256) == MAX_BYTES // 256   # 2M rows of 256 bytes: 512 MiB
    assert ReadCap(10, 640).which(10, 64) == "max_rows=10"
    assert ReadCap(100, 640).which(10, 64).startswith("max_bytes=640")


@pytest.mark.parametrize("kwargs", [{"max_rows": 0}, {"max_rows": -5}, {"max_rows": 2.5},
                                    {"max_rows": "1000"}, {"max_rows": True},
                                    {"max_bytes": 0}, {"max_bytes": 1.0}, {"max_bytes": None,
                                                                            "max_rows": -1}])
def test_a_bad_cap_is_one_usage_error(kwargs):
    with pytest.raises(UsageError) as info:
        read_cap(**kwargs)
    assert "\n" not in str(info.value) and "positive whole number" in str(info.value)


def test_a_full_reader_ends_the_read_at_once_and_marks_it_truncated():
    calls = []

    def poll(timeout: float) -> int:
        calls.append(timeout)
        return 100

    t0 = time.monotonic()
    out = bounded_read(poll, seconds=30, full=lambda: 100 * len(calls) >= 1000)
    assert out.stopped_by == "cap" and out.truncated
    assert len(calls) == 10 and time.monotonic() - t0 < 5  # no poll once full
    counted = bounded_read(poll, count=200, full=lambda: False)
    assert counted.stopped_by == "count" and not counted.truncated


class EndlessReader:
    """A ring reader that always has records waiting: ``seq`` counts them."""

    def __init__(self):
        self.seq = 0
        self.asked: list[int | None] = []

    def read_array(self, size, timeout=0.0, max_records=None, out=None):
        self.asked.append(max_records)
        n = min(len(out), max_records if max_records is not None else len(out), 512)
        out[:n].view(np.uint64)[:, 0] = np.arange(self.seq, self.seq + n)
        self.seq += n
        return out[:n]

    def close(self):
        pass


def endless_stream():
    from ebpf_nb.buffers import EventStream
    from ebpf_nb.constants import MapType
    stream = EventStream.__new__(EventStream)
    stream.layout = SimpleNamespace(map_type=MapType.RINGBUF, name="events", fd=-1)
    stream.dtype = np.dtype([("seq", "<u8")])
    stream.label = "fake.events"
    stream.is_ring = True
    stream.reader = EndlessReader()
    stream.t0 = time.time()
    stream.lost_total = stream.received_total = 0
    stream.closed = False
    return stream


def test_an_event_read_stops_at_its_cap_and_says_so(capsys):
    stream = endless_stream()
    t0 = time.monotonic()
    df = stream.read(seconds=30, max_rows=1000)
    assert time.monotonic() - t0 < 5  # stopped at the cap, not at 30 s
    assert len(df) == 1000 and list(df["seq"][:3]) == [0, 1, 2]
    assert df.attrs["truncated"] is True and df.attrs["stopped_by"] == "cap"
    assert stream.reader.seq == 1000  # it took no record past the cap
    assert all(a is not None and a > 0 for a in stream.reader.asked)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stopped at 1,000 rows (max_rows=1,000)" in err[0]
    assert "count=" in err[0] and "max_rows=" in err[0]
    by_bytes = stream.read(seconds=30, max_bytes=8 * 300)
    assert len(by_bytes) == 300 and by_bytes.attrs["truncated"] is True
    assert list(by_bytes["seq"][:1]) == [1000]  # the next read starts where the cap stopped
    assert "max_bytes=2,400" in capsys.readouterr().err


def test_a_read_under_its_cap_is_not_truncated(capsys):
    stream = endless_stream()
    df = stream.read(count=700)
    assert len(df) == 700 and df.attrs["truncated"] is False
    assert "stopped at" not in capsys.readouterr().err


def test_an_event_read_checks_its_cap_arguments():
    stream = endless_stream()
    for kwargs in ({"max_rows": 0}, {"max_bytes": -1}, {"max_rows": 1.5}, {"max_bytes": 7}):
        with pytest.raises(UsageError):
            stream.read(seconds=0.1, **kwargs)  # max_bytes=7: less than one 8-byte event
    assert stream.reader.seq == 0


def test_the_trace_pipe_read_stops_at_its_cap(tmp_path, capsys):
    from ebpf_nb.tracepipe import read_trace
    fifo = tmp_path / "trace_pipe"
    os.mkfifo(fifo)
    stop = threading.Event()
    line = b"   python3-2234    [001] ...21   102.061518: bpf_trace_printk: Hello World!\n"

    def write() -> None:  # a writer for each read: a FIFO's reader closing breaks the pipe
        while not stop.is_set():
            with open(fifo, "wb", buffering=0) as f:
                try:
                    while not stop.is_set():
                        f.write(line * 200)
                except BrokenPipeError:
                    pass

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        t0 = time.monotonic()
        df = read_trace(path=fifo, seconds=30, max_rows=100)
        assert time.monotonic() - t0 < 10
        assert len(df) == 100 and df.attrs["truncated"] is True
        assert "stopped at 100 rows (max_rows=100)" in capsys.readouterr().err
        by_bytes = read_trace(path=fifo, seconds=30, max_bytes=len(line) * 50)
        assert len(by_bytes) == 50 and by_bytes.attrs["truncated"] is True
    finally:
        stop.set()
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # a writer waiting to open: freed
        writer.join(5)


def test_the_trace_pipe_read_is_not_truncated_when_quiet(tmp_path):
    from ebpf_nb.tracepipe import read_trace
    fifo = tmp_path / "trace_pipe"
    os.mkfifo(fifo)
    df = read_trace(path=fifo, seconds=0.2)
    assert len(df) == 0 and df.attrs["truncated"] is False
