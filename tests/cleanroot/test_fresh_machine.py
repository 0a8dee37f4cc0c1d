"""What a new machine must be able to do right after `make test` set it up from nothing.

`tests/cleanroot/run.sh` runs these inside a clean Debian root (EBPF_NB_CLEAN_ROOT=1), where the
running kernel has no packaged headers; on any other machine they run as part of the suite."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import pytest
from kit_helpers import bpftool_prog_ids, run, still_loaded

pytestmark = pytest.mark.kernel
IN_CLEAN_ROOT = os.environ.get("EBPF_NB_CLEAN_ROOT") == "1"


def test_bcc_imports_from_the_venv() -> None:
    import bcc
    assert Path(bcc.__file__).is_relative_to("/usr/lib/python3/dist-packages")


def test_kernel_headers_are_usable() -> None:
    build = Path("/lib/modules") / platform.release() / "build"
    assert (build / "include" / "linux").is_dir() or (build / "include" / "generated").is_dir()
    if IN_CLEAN_ROOT:  # no headers exist for this kernel: the distribution's generic ones
        assert build.is_symlink() and os.readlink(build).startswith("/usr/src/linux-headers-")
        assert not os.readlink(build).endswith(platform.release())


def test_plain_bcc_compiles_loads_and_counts() -> None:
    from bcc import BPF
    b = BPF(text=b"""
BPF_HASH(counts, u32, u64);
TRACEPOINT_PROBE(syscalls, sys_enter_execve) {
    u32 uid = bpf_get_current_uid_gid();
    counts.increment(uid);
    return 0;
}""")
    try:
        subprocess.run(["/bin/true"], check=True)
        assert sum(v.value for v in b[b"counts"].values()) >= 1
    finally:
        b.cleanup()


def test_hello_world_through_the_magic(shell) -> None:
    run(shell, """%%bpf hello -a syscall:execve
BPF_HASH(counter_table);
int hello(void *ctx) {
    bpf_trace_printk("Hello World!");
    u64 uid = bpf_get_current_uid_gid() & 0xFFFFFFFF;
    counter_table.increment(uid);
    return 0;
}""")
    hello = shell.user_ns["hello"]
    lines = hello.trace(seconds=2, trigger="/bin/true")  # other programs may print too
    assert lines.message.str.contains("Hello World!").any()
    table = hello.table("counter_table")
    assert int(table.loc[table.key == 0, "value"].sum()) >= 1
    ours = set(hello.prog_ids.values())
    assert ours and ours <= bpftool_prog_ids()
    run(shell, "%bpf_detach hello")
    assert not still_loaded(ours, wait=10)


def test_core_hello_world_needs_no_headers(shell) -> None:
    run(shell, """%%bpf counted --core
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
         __type(key, u32); __type(value, u64); } calls SEC(".maps");
SEC("tracepoint/syscalls/sys_enter_execve")
int count_execve(void *ctx) {
    u32 key = 0;
    u64 *value = bpf_map_lookup_elem(&calls, &key);
    if (value)
        __sync_fetch_and_add(value, 1);
    return 0;
}
char LICENSE[] SEC("license") = "GPL";""")
    subprocess.run(["/bin/true"], check=True)
    assert int(shell.user_ns["counted"].table("calls").value.sum()) >= 1
