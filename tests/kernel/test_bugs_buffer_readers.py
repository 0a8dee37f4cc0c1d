"""One reader per buffer map: a second one is refused with a clear UsageError (issue 14).

A second perf reader stored its own event fds in the map's per-CPU slots (and deleted them when
it closed): the first one, e.g. a running ``watch_events``, silently received nothing more. Two
ring readers each stored ``consumer_pos``: one took the other's records. The program here sends
one event per ``getpid()`` of this process to a perf buffer and to a ring buffer."""
from __future__ import annotations

import os

import pytest

from ebpf_nb.bcc_program import BpfProgram
from ebpf_nb.errors import UsageError
from ebpf_nb.kernel.perfbuf import PerfBufferReader
from ebpf_nb.kernel.ringbuf import RingBufferReader

SOURCE = r"""
struct ev { u32 pid; u32 seq; };
BPF_PERF_OUTPUT(pevents);
BPF_RINGBUF_OUTPUT(revents, 4);
BPF_ARRAY(seqs, u32, 1);

TRACEPOINT_PROBE(syscalls, sys_enter_getpid) {
    u32 pid = bpf_get_current_pid_tgid() >> 32, zero = 0;
    if (pid != TARGET)
        return 0;
    u32 *seq = seqs.lookup(&zero);
    if (!seq)
        return 0;
    struct ev e = {.pid = pid, .seq = (*seq)++};  // one process calls: no race to mind
    pevents.perf_submit(args, &e, sizeof(e));
    revents.ringbuf_output(&e, sizeof(e), 0);
    return 0;
}
"""
N = 10


@pytest.fixture(scope="module")
def prog():
    p = BpfProgram(SOURCE, "readers", defines={"TARGET": str(os.getpid())})
    yield p
    p.detach()


def getpids(n: int = N) -> None:
    for _ in range(n):
        os.getpid()  # a real syscall each time (glibc caches no pid)


def perf_records(reader: PerfBufferReader) -> int:
    rows, _cpus, _lost = reader.read_array(8, timeout=1.0)
    return len(rows)


def ring_records(reader: RingBufferReader) -> int:
    return len(reader.read_array(8, timeout=1.0))


def open_or_error(cls, fd):
    try:
        return cls(fd), None
    except UsageError as err:
        return None, err


@pytest.mark.parametrize(("cls", "map_name", "records", "kind"), [
    (PerfBufferReader, "pevents", perf_records, "perf"),
    (RingBufferReader, "revents", ring_records, "ring"),
], ids=["perf", "ring"])
def test_a_second_reader_is_refused_and_the_first_keeps_every_event(prog, cls, map_name,
                                                                    records, kind):
    fd = prog._layout(map_name).fd
    with cls(fd) as first:
        records(first)  # anything from before
        second, err = open_or_error(cls, fd)
        try:
            getpids()
            if second is not None:  # the bug: it reads too, or takes the per-CPU slots
                records(second)
        finally:
            if second is not None:
                second.close()
        assert records(first) == N, f"the first {kind} reader lost events to the second"
        assert err is not None, "a second reader on the same map was opened"
        assert err.message.startswith(f"map '{map_name}' already has an open {kind} reader")
        assert "close the first reader" in err.hint
        again, err = open_or_error(cls, fd)  # a refused open did not free the first's claim
        assert again is None and err is not None
    with cls(fd) as after:  # closing the first lets a new one open, and it receives events
        getpids()
        assert records(after) == N


def test_events_during_an_open_stream_is_refused_and_works_once_it_is_closed(prog):
    stream = prog.event_stream("pevents")
    try:
        with pytest.raises(UsageError, match="map 'pevents' already has an open perf reader"):
            prog.events("pevents", count=N, trigger=getpids)
        df = stream.read(count=N, trigger=getpids)
        assert len(df) == N
    finally:
        stream.close()
    df = prog.events("pevents", count=N, trigger=getpids)
    assert len(df) == N and list(df["seq"]) == sorted(df["seq"])
