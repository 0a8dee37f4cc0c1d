"""Each probe kind this kernel offers, attached for real and observed firing."""
from __future__ import annotations

import ctypes.util
import subprocess
import uuid

import pytest

from ebpf_nb import host
from ebpf_nb.bcc_program import BpfProgram
from ebpf_nb.errors import HostError

COUNT_BY_COMM = r"""
struct key_t { char comm[16]; };
BPF_HASH(calls, struct key_t, u64);
static inline void count_comm(void) {
    struct key_t key = {};
    bpf_get_current_comm(&key.comm, sizeof(key.comm));
    calls.increment(key);
}
"""


def sh(command: str) -> None:
    subprocess.run(command, shell=True, check=True)


def _count_for(prog: BpfProgram, comm: str) -> int:
    df = prog.table("calls")
    return int(df.loc[df.comm == comm, "value"].sum())


def test_tracepoint_by_convention_fires():
    prog = BpfProgram(COUNT_BY_COMM + """
TRACEPOINT_PROBE(syscalls, sys_enter_openat) { count_comm(); return 0; }""", "tp")
    try:
        assert [a.probe for a in prog.attachments] == ["tracepoint:syscalls:sys_enter_openat"]
        sh("cat /etc/hostname > /dev/null")
        assert _count_for(prog, "cat") >= 1
    finally:
        prog.detach()


def test_raw_tracepoint_fires_with_syscall_numbers():
    prog = BpfProgram(r"""
BPF_HASH(by_nr, u64, u64);
RAW_TRACEPOINT_PROBE(sys_enter) {
    u64 nr = ctx->args[1];
    by_nr.increment(nr);
    return 0;
}""", "raw")
    try:
        import os
        os.getppid()
        df = prog.table("by_nr")
        assert len(df) >= 1 and int(df.value.sum()) >= 1
        assert list(df.columns) == ["key", "value"]
    finally:
        prog.detach()


def test_uprobe_on_libc_fires():
    libc = "/lib/x86_64-linux-gnu/libc.so.6"
    import os
    if not os.path.exists(libc):
        libc = ctypes.util.find_library("c")
    prog = BpfProgram(COUNT_BY_COMM + "int on_getuid(void *ctx) { count_comm(); return 0; }",
                      "up", probes=[f"uprobe:{libc}:getuid"])
    try:
        sh("id -ru > /dev/null")
        assert _count_for(prog, "id") >= 1
    finally:
        prog.detach()


def test_syscall_probe_picks_what_exists_and_says_so():
    prog = BpfProgram(COUNT_BY_COMM + "int on_exec(void *ctx) { count_comm(); return 0; }",
                      "sc", probes=["syscall:execve"])
    try:
        (att,) = prog.attachments
        expected = "kprobe" if host.kprobes_available() else "tracepoint syscalls:sys_enter_execve"
        assert att.probe == "syscall:execve" and expected in att.how
        sh("/bin/true")
        assert int(prog.table("calls").value.sum()) >= 1
    finally:
        prog.detach()


def _counts_cat_or_is_refused(available: bool, refusal: str, src: str, name: str,
                              **options) -> HostError | None:
    """Where the host has the probe kind (``available``), the program counts a `cat` opening
    a file; elsewhere loading it fails with a HostError matching ``refusal``, returned."""
    if available:
        prog = BpfProgram(src, name, **options)
        try:
            sh("cat /etc/hostname > /dev/null")
            assert _count_for(prog, "cat") >= 1
        finally:
            prog.detach()
        return None
    with pytest.raises(HostError, match=refusal) as info:
        BpfProgram(src, name, **options)
    return info.value


def test_kprobe_path_where_kprobes_exist_else_explained():
    src = COUNT_BY_COMM + "int on_open(void *ctx) { count_comm(); return 0; }"
    refused = _counts_cat_or_is_refused(host.kprobes_available(), "CONFIG_KPROBES", src, "kp",
                                        probes=["kprobe:do_sys_openat2"])
    assert refused is None or "syscall:NAME" in str(refused)


def test_fentry_fires_or_the_refusal_is_explained():
    src = COUNT_BY_COMM + "KFUNC_PROBE(do_sys_openat2) { count_comm(); return 0; }"
    refused = _counts_cat_or_is_refused(host.fentry_supported(), "refuses fentry", src, "fe")
    assert refused is None or "tracepoint" in refused.hint


# Prints "MARK <number>" on every execve made by a process called env.
MARK_ENV = r"""
int hello(void *ctx) {
    char comm[16];
    bpf_get_current_comm(&comm, sizeof(comm));
    if (comm[0] == 'e' && comm[1] == 'n' && comm[2] == 'v')
        bpf_trace_printk("MARK %d", MARKER);
    return 0;
}"""


def _marking_program(name: str) -> tuple[BpfProgram, str]:
    """A program printing a marker unique to this test, and the line it prints."""
    marker = uuid.uuid4().hex[:7]  # below 2**31: printed with %d
    prog = BpfProgram(MARK_ENV, name, probes=["syscall:execve"],
                      defines=[f"MARKER=0x{marker}"])
    return prog, f"MARK {int(marker, 16)}"


def test_trace_pipe_lines_become_rows():
    prog, mark = _marking_program("tr")
    try:
        df = prog.trace(trigger="env true", seconds=1.0)
        mine = df[df.message == mark]
        assert list(df.columns) == ["task", "pid", "cpu", "timestamp", "message"]
        assert len(mine) >= 1 and (mine.pid > 0).all()
    finally:
        prog.detach()


def test_trace_returns_only_what_was_written_after_the_read_began():
    prog, mark = _marking_program("tr_backlog")  # once per `env /bin/true`: env execs once
    try:
        subprocess.run(["env", "/bin/true"], check=True)  # written while nobody reads: it waits
        subprocess.run(["env", "/bin/true"], check=True)
        fresh = prog.trace(trigger="env /bin/true", seconds=1.0)
        assert (fresh.message == mark).sum() == 1, fresh.message.tolist()
        assert fresh.attrs["backlog_lines"] >= 2 and "backlog" not in fresh.columns

        subprocess.run(["env", "/bin/true"], check=True)
        both = prog.trace(trigger="env /bin/true", seconds=1.0, backlog=True)
        mine = both[both.message == mark]
        assert mine.backlog.tolist() == [True, False]
        assert both.backlog.dtype == bool and both.attrs["backlog_lines"] >= 1
    finally:
        prog.detach()
