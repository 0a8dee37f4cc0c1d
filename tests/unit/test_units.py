"""Small unit tests of the pure pieces: probe specs, diagnostics, bounded reads, decoding."""
from __future__ import annotations

import ctypes
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ebpf_nb import decode, diagnostics
from ebpf_nb.errors import UsageError
from ebpf_nb.kernel.maps import to_structured
from ebpf_nb.probes import ProbeSpec, parse_probe, probe_from_convention
from ebpf_nb.reading import bounded_read


@pytest.mark.parametrize("text, spec", [
    ("kprobe:do_sys_openat2", ProbeSpec("kprobe", ("do_sys_openat2",))),
    ("tracepoint:syscalls:sys_enter_execve=hello",
     ProbeSpec("tracepoint", ("syscalls", "sys_enter_execve"), "hello")),
    ("tp:sched:sched_switch", ProbeSpec("tracepoint", ("sched", "sched_switch"))),
    ("raw_tp:sys_enter", ProbeSpec("raw_tracepoint", ("sys_enter",))),
    ("uprobe:/usr/lib/x86_64-linux-gnu/libc.so.6:getuid=f",
     ProbeSpec("uprobe", ("/usr/lib/x86_64-linux-gnu/libc.so.6", "getuid"), "f")),
    ("syscall:execve", ProbeSpec("syscall", ("execve",))),
])
def test_parse_probe(text, spec):
    assert parse_probe(text) == spec


@pytest.mark.parametrize("text", ["", "kprobe", "kprobe:", "tracepoint:one", "nope:x",
                                  "kprobe:a b", "syscall:execve=1bad", "uprobe:nosymbol"])
def test_parse_probe_rejects(text):
    with pytest.raises(UsageError):
        parse_probe(text)


def test_conventions():
    assert probe_from_convention("tracepoint__syscalls__sys_enter_openat").spec == \
        ProbeSpec("tracepoint", ("syscalls", "sys_enter_openat"),
                  "tracepoint__syscalls__sys_enter_openat")
    assert probe_from_convention("kfunc__vmlinux__vfs_read").spec.target == ("vfs_read",)
    assert probe_from_convention("kprobe__do_exit").spec.kind == "kprobe"
    assert probe_from_convention("hello") is None


CLANG = """/virtual/main.c:3:13: error: use of undeclared identifier 'y'
    u32 x = y + 1;
            ^
/virtual/include/bcc/helpers.h:10:1: warning: something in a header
/virtual/main.c:5:1: error: expected ';' after return statement
5 errors generated.
"""


def test_parse_clang_keeps_cell_file_only():
    diags = diagnostics.parse_clang(CLANG)
    assert [(d.line, d.column) for d in diags] == [(3, 13), (5, 1)]
    assert diagnostics.first_error(diags).text == "use of undeclared identifier 'y'"
    text = diagnostics.format_diagnostics(diags)
    assert "line 3, column 13" in text and "u32 x = y + 1;" in text and "helpers.h" not in text


VERIFIER = """bpf: Failed to load program: Permission denied
0: R1=ctx() R10=fp0
; int hello(void *ctx) { @ main.c:14
; u64 z = *v; @ main.c:17
7: (79) r3 = *(u64 *)(r0 +0)
R0 invalid mem access 'map_value_or_null'
processed 7 insns (limit 1000000) max_states_per_insn 0

HINT: The 'map_value_or_null' error can happen if you dereference a pointer.
"""


def test_verifier_log_maps_source_lines_to_the_cell():
    cell = "BPF_HASH(h, u32, u64);\nint hello(void *ctx) {\n    u32 k = 0;\n    u64 *v = h.lookup(&k);\n    u64 z = *v;\n"
    report = diagnostics.parse_verifier_log(VERIFIER, cell)
    assert report.reason == "R0 invalid mem access 'map_value_or_null'"
    assert report.cell_line == 5  # main.c:17 with an offset of 12 learnt from 'int hello'
    assert report.hints == ["The 'map_value_or_null' error can happen if you dereference a pointer."]
    assert "<- cell line 5" in report.log and "bpf: Failed" not in report.log


def test_bounded_read_stops_on_count_seconds_and_trigger():
    items = iter(range(1000))
    assert bounded_read(lambda t: next(items) % 2 + 1, count=10).stopped_by == "count"
    t0 = time.monotonic()
    out = bounded_read(lambda t: (time.sleep(t), 0)[1], seconds=0.3)
    assert out.stopped_by == "seconds" and 0.25 < time.monotonic() - t0 < 15  # loaded CI
    out = bounded_read(lambda t: (time.sleep(t), 0)[1], trigger="echo hi; exit 3")
    assert out.stopped_by == "trigger" and out.trigger_returncode == 3 and out.trigger_output == "hi\n"


def test_bounded_read_keeps_going_until_interrupted():
    calls = []

    def poll(t):
        calls.append(t)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return 1
    out = bounded_read(poll, seconds=10)
    assert out.interrupted and out.stopped_by == "interrupt" and len(calls) == 3


def test_bounded_read_rejects_bad_bounds():
    for kwargs in ({"seconds": 0}, {"seconds": -1}, {"count": 0}, {"count": 2.5},
                   {"trigger": 42}):
        with pytest.raises(UsageError):
            bounded_read(lambda t: 0, **kwargs)


def test_decode_structs_and_strings():
    class Inner(ctypes.Structure):
        _fields_ = [("a", ctypes.c_ushort), ("b", ctypes.c_ushort)]

    class Event(ctypes.Structure):
        _fields_ = [("pid", ctypes.c_int), ("comm", ctypes.c_char * 16),
                    ("__pad_1", ctypes.c_char * 4), ("inner", Inner)]
    events = (Event * 2)()
    events[0].pid, events[0].comm = 7, b"bash"
    events[1].comm, events[1].inner.b = b"python3", 9
    raw = np.frombuffer(bytes(events), dtype=np.uint8).reshape(2, -1)
    records = to_structured(raw, np.dtype(Event))
    cols = decode.columns(records)
    assert list(cols) == ["pid", "comm", "inner_a", "inner_b"]
    assert list(cols["comm"]) == ["bash", "python3"] and list(cols["inner_b"]) == [0, 9]


@given(st.lists(st.binary(min_size=0, max_size=15), max_size=20))
def test_decode_char_arrays_roundtrip(words):
    dtype = np.dtype([("name", "S1", (16,))])
    raw = b"".join(w.replace(b"\0", b"x").ljust(16, b"\0") for w in words)
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(len(words), 16)
    cols = decode.columns(to_structured(rows, dtype))
    assert list(cols["name"]) == [w.replace(b"\0", b"x").decode("utf-8", "replace") for w in words]
