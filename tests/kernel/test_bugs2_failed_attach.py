"""A failed ``attach()`` after ``--no-attach`` leaves a consistent program (issue 14).

BCC's module was destroyed (its maps' and programs' fds closed) while the program stayed marked
loaded, with those fds in its cached layouts: a later ``table()`` read a closed fd, or one the
process had reused for something else. Now the program is unloaded and says so."""
from __future__ import annotations

import subprocess
import time

import pytest

from ebpf_nb.bcc_program import BpfProgram
from ebpf_nb.errors import AttachError, UsageError

SOURCE = """
BPF_HASH(counts, u32, u64);
BPF_PROG_ARRAY(jumps, 4);
int nbbug4_first(void *ctx) { u32 k = 1; counts.increment(k); return 0; }
int nbbug4_second(void *ctx) { return 0; }
"""
PROBES = ["tracepoint:syscalls:sys_enter_getppid=nbbug4_first",
          "tracepoint:syscalls:sys_enter_no_such_call_here=nbbug4_second"]


def loaded_names() -> str:
    return subprocess.run(["bpftool", "prog", "show"], capture_output=True, text=True,
                          check=True).stdout


def gone(name: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while name in loaded_names():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_failed_attach_unloads_the_program_and_later_reads_say_so():
    prog = BpfProgram(SOURCE, "halfway", probes=PROBES, attach=False)
    try:
        assert prog.table("counts").empty  # the layouts (and their fds) are cached now
        with pytest.raises(AttachError, match="no_such_call_here"):
            prog.attach()
        assert not prog.loaded and not prog.attached and prog.attachments == []
        assert gone("nbbug4_first"), "the probe attached before the failure is still loaded"
        for read in (lambda: prog.table("counts"), lambda: prog.maps,
                     lambda: prog.tail_calls("jumps", {0: "nbbug4_second"}), prog.attach):
            with pytest.raises(UsageError) as info:
                read()
            assert "attach() failed" in info.value.message
            assert info.value.hint and "again" in info.value.hint
        assert "detached" in prog.summary() or "unloaded" in prog.summary()
        prog.detach()  # nothing left to do, and no error
    finally:
        prog.detach()
