"""Inside the test VM (a distribution kernel with kprobes): the kprobe paths the CI host cannot run.

A plain BCC kprobe on the execve syscall function must see the child we start, and ebpf_nb must
know kprobes are there (so the main suite's `syscall:`/`kprobe:` tests take the kprobe branch)."""
from __future__ import annotations

import subprocess

import pytest
from bcc import BPF

from ebpf_nb import host

pytestmark = pytest.mark.kernel

COUNT_EXECS = r"""
BPF_HASH(execs, u32, u64);
int on_execve(struct pt_regs *ctx) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    execs.increment(pid);
    return 0;
}
"""


def test_this_guest_kernel_has_kprobes():
    assert host.kprobes_available(), "the VM tests exist to exercise kprobes: this guest has none"


def test_bcc_kprobe_on_the_execve_syscall_function_fires_for_our_child():
    bpf = BPF(text=COUNT_EXECS)
    try:
        function = bpf.get_syscall_fnname("execve").decode()
        bpf.attach_kprobe(event=function, fn_name="on_execve")
        child = subprocess.Popen(["/bin/true"])
        assert child.wait(timeout=30) == 0
        counts = {key.value: value.value for key, value in bpf["execs"].items()}
        assert counts.get(child.pid, 0) >= 1, (
            f"the kprobe on {function} saw no execve from pid {child.pid}: {counts}")
    finally:
        bpf.cleanup()


def test_kprobe_sys_names_attach_to_the_architectures_syscall_function():
    from ebpf_nb.bcc_program import BpfProgram
    prog = BpfProgram("""
BPF_HASH(execs, u32, u64);
int kprobe__sys_execve(struct pt_regs *ctx) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    execs.increment(pid);
    return 0;
}""", "sys_names")
    try:
        (attachment,) = prog.attachments
        event = attachment.how.removeprefix("kprobe on ")
        # a kernel function of this architecture's syscall ABI, e.g. __x64_sys_execve
        assert event.endswith("_sys_execve") and event != "sys_execve", attachment
        with open("/proc/kallsyms") as symbols:
            assert any(line.split()[2] == event for line in symbols), event
        child = subprocess.Popen(["/bin/true"])
        assert child.wait(timeout=30) == 0
        table = prog.table("execs")
        assert int(table.loc[table.key == child.pid, "value"].sum()) >= 1, table
    finally:
        prog.detach()
