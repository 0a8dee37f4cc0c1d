"""A real event read stops at its cap (issue 14).

The program sends one event per ``getppid()`` of the trigger's process to a perf and a ring
buffer; the trigger makes 50,000 calls, then sleeps 30 s. Before the cap the read kept all
50,000 rows and waited for the trigger; with ``max_rows=1000`` it ends as soon as it has 1000."""
from __future__ import annotations

import sys
import time

import pytest

from ebpf_nb.bcc_program import BpfProgram

SOURCE = r"""
struct ev { u32 pid; u32 n; };
BPF_PERF_OUTPUT(pevents);
BPF_RINGBUF_OUTPUT(revents, 64);

TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    char comm[16];
    bpf_get_current_comm(&comm, sizeof(comm));
    if (comm[0] != 'c' || comm[1] != 'a' || comm[2] != 'p' || comm[3] != 'p')
        return 0;  // only the trigger below (its comm: "capped-calls")
    struct ev e = {.pid = bpf_get_current_pid_tgid() >> 32};
    pevents.perf_submit(args, &e, sizeof(e));
    revents.ringbuf_output(&e, sizeof(e), 0);
    return 0;
}
"""
CALLS = ("import ctypes, os, time; "
         "ctypes.CDLL(None).prctl(15, b'capped-calls', 0, 0, 0); "  # PR_SET_NAME
         "[os.getppid() for _ in range({n})]; time.sleep({sleep})")


def trigger(n: int, sleep: float) -> str:
    return f'{sys.executable} -c "{CALLS.format(n=n, sleep=sleep)}"'


@pytest.fixture(scope="module")
def prog():
    p = BpfProgram(SOURCE, "capped")
    yield p
    p.detach()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("map_name", ["pevents", "revents"])
def test_a_read_past_its_cap_stops_at_the_cap(prog, map_name, capsys):
    t0 = time.monotonic()
    df = prog.events(map_name, max_rows=1000, trigger=trigger(50_000, 30))
    elapsed = time.monotonic() - t0
    assert len(df) == 1000
    assert df.attrs["truncated"] is True and df.attrs["stopped_by"] == "cap"
    assert elapsed < 10, f"the read went on for {elapsed:.1f} s after its cap"
    assert "stopped at 1,000 rows (max_rows=1,000)" in capsys.readouterr().err


@pytest.mark.timeout(120)
@pytest.mark.parametrize("map_name", ["pevents", "revents"])
def test_a_read_under_its_cap_is_not_truncated(prog, map_name, capsys):
    df = prog.events(map_name, trigger=trigger(500, 0))
    assert len(df) == 500 and df.attrs["truncated"] is False
    assert "stopped at" not in capsys.readouterr().err


TRACE_SOURCE = r"""
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    char comm[16];
    bpf_get_current_comm(&comm, sizeof(comm));
    if (comm[0] != 'c' || comm[1] != 'a' || comm[2] != 'p' || comm[3] != 'p')
        return 0;
    bpf_trace_printk("capped call\n");
    return 0;
}
"""


@pytest.mark.timeout(120)
def test_a_trace_pipe_read_past_its_cap_stops_at_the_cap(capsys):
    """The real trace pipe: 20,000 lines offered, ``max_rows=500`` kept, the trigger's 30 s
    sleep not waited out."""
    traced = BpfProgram(TRACE_SOURCE, "capped_trace")
    try:
        t0 = time.monotonic()
        df = traced.trace(max_rows=500, trigger=trigger(20_000, 30))
        elapsed = time.monotonic() - t0
    finally:
        traced.detach()
    assert len(df) == 500 and df["message"].str.contains("capped call").all()
    assert df.attrs["truncated"] is True
    assert elapsed < 10, f"the read went on for {elapsed:.1f} s after its cap"
    assert "max_rows=500" in capsys.readouterr().err
