"""CO-RE cells on the real kernel: clang + libbpf + vmlinux.h, no kernel headers involved.

Programs filter on a ``.rodata`` global holding this test process's pid (set from Python before
load), so other processes' execs never reach the assertions; trace lines carry a unique marker.
"""
from __future__ import annotations

import gzip
import os
import re
import subprocess
import uuid

import pytest
from kit_helpers import all_gone, prog_exists

from ebpf_nb.core import CoreProgram
from ebpf_nb.core.kernel_version import expected_kernel_version
from ebpf_nb.core.program import FENTRY_REFUSED
from ebpf_nb.errors import AttachError, HostError, UsageError, VerifierError

HEADER = """#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
"""
LICENSE = 'char LICENSE[] SEC("license") = "GPL";\n'


PARENT = HEADER + "\nconst volatile int parent = 0;\n"


def child_printk(section: str, function: str, printk_args: str) -> str:
    """C of a program in ``section`` calling ``bpf_printk(printk_args)`` when a child of the
    process ``parent`` (a global, see PARENT) runs it."""
    return f"""SEC("{section}")
int {function}(void *ctx)
{{
    struct task_struct *task = (void *)bpf_get_current_task();
    if (BPF_CORE_READ(task, real_parent, tgid) == parent)
        bpf_printk({printk_args});
    return 0;
}}
"""


def run_child():
    """Exec /bin/true as a direct child of this process (its real_parent is us)."""
    subprocess.run(["/bin/true"], check=True)


def marked(df, marker: str) -> list[str]:
    return [m for m in df["message"] if marker in m]


@pytest.fixture
def marker() -> str:
    return "core" + uuid.uuid4().hex[:10]


@pytest.fixture
def programs():
    """Programs made by a test; detached at the end whatever happens."""
    made: list[CoreProgram] = []
    yield made
    for p in made:
        p.detach()


# the start of a program run when a child of the process `parent` (a global) execs
ON_CHILD_EXEC = """SEC("tp/sched/sched_process_exec")
int on_exec(void *ctx)
{
    struct task_struct *task = (void *)bpf_get_current_task();
    int ppid = BPF_CORE_READ(task, real_parent, tgid);
    if (ppid != parent)
        return 0;
"""

SUBPROG = HEADER + """
const volatile int parent = 0;

static __attribute__((noinline)) int twice(int x)
{
    return x * 2 + 1;
}

""" + ON_CHILD_EXEC + """    bpf_printk("MARKER twice=%d", twice(ppid - parent + 20));
    return 0;
}
""" + LICENSE


def test_subprogram_runs_and_is_a_real_bpf_to_bpf_call(marker, programs):
    p = CoreProgram(SUBPROG.replace("MARKER", marker), "subprog",
                    globals={"parent": str(os.getpid())})
    programs.append(p)
    df = p.trace(trigger=run_child)
    assert f"{marker} twice=41" in marked(df, marker)
    code = p.instructions()
    calls = code[code["instruction"].str.match(r"call pc[+-]\d+")]
    assert len(calls) == 1
    assert set(code["function"]) == {"on_exec", "twice"}
    assert "call pc+" in p.instructions(text=True)


FEATURES = HEADER + """
extern u32 LINUX_KERNEL_VERSION __kconfig;
extern int CONFIG_HZ __kconfig;
const volatile int parent = 0;
const volatile u32 magic = 1;

struct task_struct___old { int no_such_field_here; } __attribute__((preserve_access_index));

""" + ON_CHILD_EXEC + """    struct task_struct___old *old = (void *)task;
    int has_pid = bpf_core_field_exists(task->pid);
    int has_bogus = bpf_core_field_exists(old->no_such_field_here);
    bpf_printk("MARKER ppid=%d magic=%u", ppid, magic);
    bpf_printk("MARKER version=%u hz=%d", LINUX_KERNEL_VERSION, CONFIG_HZ);
    bpf_printk("MARKER exists=%d missing=%d", has_pid, has_bogus);
    return 0;
}
""" + LICENSE


def kernel_version_code() -> int:
    """LINUX_KERNEL_VERSION as libbpf computes it (Ubuntu and Debian differ from uname -r)."""
    return expected_kernel_version().code


def config_hz() -> int:
    with gzip.open("/proc/config.gz", "rt") as f:
        return int(re.search(r"^CONFIG_HZ=(\d+)$", f.read(), re.MULTILINE)[1])


def test_core_read_field_exists_kconfig_and_rodata_set_from_python(marker, programs):
    p = CoreProgram(FEATURES.replace("MARKER", marker), "features", attach=False)
    programs.append(p)
    assert {"parent", "magic"} <= set(p.global_names)
    p.set_global("parent", os.getpid())
    p.set_global("magic", 0xBEEF)
    assert p.get_global("magic") == 0xBEEF
    p.attach()
    with pytest.raises(UsageError, match="frozen"):
        p.set_global("magic", 2)
    lines = marked(p.trace(trigger=run_child), marker)
    assert f"{marker} ppid={os.getpid()} magic={0xBEEF}" in lines
    assert f"{marker} version={kernel_version_code()} hz={config_hz()}" in lines
    assert f"{marker} exists=1 missing=0" in lines


BUFFERS = HEADER + """
const volatile int parent = 0;

struct event {
    u32 pid;
    u32 ppid;
    char comm[16];
};

struct stats {
    u64 count;
    char comm[16];
};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 64 * 1024);
} events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 128);
    __type(key, u32);
    __type(value, struct stats);
} per_pid SEC(".maps");

SEC("tp/sched/sched_process_exec")
int on_exec(void *ctx)
{
    struct task_struct *task = (void *)bpf_get_current_task();
    u32 ppid = BPF_CORE_READ(task, real_parent, tgid);
    if (ppid != parent)
        return 0;
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (e) {
        e->pid = pid;
        e->ppid = ppid;
        bpf_get_current_comm(e->comm, sizeof(e->comm));
        bpf_ringbuf_submit(e, 0);
    }
    struct stats zero = {}, *s = bpf_map_lookup_elem(&per_pid, &pid);
    if (!s) {
        bpf_map_update_elem(&per_pid, &pid, &zero, BPF_NOEXIST);
        s = bpf_map_lookup_elem(&per_pid, &pid);
        if (!s)
            return 0;
    }
    __sync_fetch_and_add(&s->count, 1);
    bpf_get_current_comm(s->comm, sizeof(s->comm));
    return 0;
}
""" + LICENSE


def test_ring_buffer_events_and_hash_map_as_frames(programs):
    p = CoreProgram(BUFFERS, "buffers", globals={"parent": os.getpid()})
    programs.append(p)
    assert p.maps == {"events": "ringbuf", "per_pid": "hash"}
    events = p.events("events", count=2, trigger=lambda: (run_child(), run_child()))
    assert list(events.columns[:3]) == ["pid", "ppid", "comm"]
    assert len(events) == 2
    assert set(events["comm"]) == {"true"}
    assert set(events["ppid"]) == {os.getpid()}
    table = p.table("per_pid")
    assert list(table.columns) == ["key", "count", "comm"]
    rows = table[table["key"].isin(events["pid"])]  # (other children of ours may be there too)
    assert len(rows) == 2
    assert set(rows["count"]) == {1} and set(rows["comm"]) == {"true"}


def test_events_struct_can_be_named(programs):
    src = BUFFERS.replace("sizeof(*e)", "24").replace(
        "struct event *e = bpf_ringbuf_reserve", "struct event *e = (void *)bpf_ringbuf_reserve")
    p = CoreProgram(src.replace("struct event *e = (void *)", "struct event *e; e = "),
                    "named", globals={"parent": os.getpid()})
    programs.append(p)
    # two structs and no sizeof(struct ...): the kit cannot tell; it says how to name it
    with pytest.raises(UsageError, match='struct="NAME"'):
        p.events("events", count=1, trigger=run_child)
    df = p.events("events", count=1, trigger=run_child, struct="event")
    assert list(df["comm"]) == ["true"]


MISSING_FIELD = HEADER + """
struct task_struct___flavor {
    int field_this_kernel_lacks;
} __attribute__((preserve_access_index));

SEC("tp/sched/sched_process_exec")
int on_exec(void *ctx)
{
    struct task_struct___flavor *task = (void *)bpf_get_current_task();
    bpf_printk("never %d", BPF_CORE_READ(task, field_this_kernel_lacks));
    return 0;
}
""" + LICENSE


def test_missing_field_fails_with_the_relocation_explained():
    with pytest.raises(VerifierError) as info:
        CoreProgram(MISSING_FIELD, "missing")
    err = info.value
    assert "CO-RE relocation failed in on_exec" in err.message
    assert "struct task_struct___flavor.field_this_kernel_lacks" in err.message
    assert "does not exist in this kernel" in err.message
    assert "bpf_core_field_exists" in err.hint
    assert "relo #" in err.details  # libbpf's own lines


def test_detach_leaves_no_program_and_rerun_of_unchanged_source_skips_compile(
        tmp_path, monkeypatch, marker):
    monkeypatch.setenv("EBPF_NB_CACHE", str(tmp_path))
    src = SUBPROG.replace("MARKER", marker)
    first = CoreProgram(src, "rerun", globals={"parent": os.getpid()})
    ids = first.program_ids()
    assert first.cache_hit is False and all(prog_exists(i) for i in ids.values())
    first.detach()
    first.detach()  # twice is harmless
    assert all_gone(ids.values())
    again = CoreProgram(src, "rerun", globals={"parent": os.getpid()})
    ids = again.program_ids()
    try:
        assert again.cache_hit is True
        assert "rerun (core): attached" in repr(again)
        assert "object cached" in repr(again)
    finally:
        again.detach()
    assert all_gone(ids.values())


def test_explicit_probes_attach_bare_sections(marker, programs):
    src = (PARENT + child_printk("tp", "by_tracepoint", '"MARKER tracepoint"')
           + child_printk("raw_tp", "by_raw_tracepoint", '"MARKER raw"')
           ).replace("MARKER", marker) + LICENSE
    p = CoreProgram(src, "explicit", globals={"parent": os.getpid()},
                    probes=["tracepoint:sched:sched_process_exec=by_tracepoint",
                            "raw_tracepoint:sched_process_exec=by_raw_tracepoint"])
    programs.append(p)
    assert [a.probe for a in p.attachments] == ["tracepoint:sched:sched_process_exec",
                                                "raw_tracepoint:sched_process_exec"]
    lines = marked(p.trace(trigger=run_child), marker)
    assert sorted(lines) == [f"{marker} raw", f"{marker} tracepoint"]


def test_bare_section_without_probe_is_loaded_not_attached(programs):
    src = HEADER + 'SEC("raw_tp")\nint idle(void *ctx) { return 0; }\n' + LICENSE
    p = CoreProgram(src, "bare")
    programs.append(p)
    assert p.attachments == []
    assert any("names no attach point" in n for n in p.notes)
    assert prog_exists(p.program_ids()["idle"])


def test_unknown_tracepoint_is_an_attach_error():
    src = HEADER + 'SEC("tp/sched/no_such_event_here")\nint f(void *ctx) { return 0; }\n' + LICENSE
    with pytest.raises(AttachError, match="no_such_event_here"):
        CoreProgram(src, "unknown")


def test_unknown_global_and_probe_function_are_named():
    src = HEADER + 'const volatile int known = 1;\nSEC("raw_tp")\nint f(void *ctx) ' \
                   '{ return known; }\n' + LICENSE
    with pytest.raises(UsageError, match=r"no read-only global named 'nope' \(its globals: known\)"):
        CoreProgram(src, "g", globals={"nope": "1"})
    with pytest.raises(UsageError, match="no SEC\\(\\) program named 'g'"):
        CoreProgram(src, "g", probes=["raw_tracepoint:sys_enter=g"])


FENTRY = HEADER + """
SEC("fentry/do_unlinkat")
int BPF_PROG(on_unlink, int dfd)
{
    return 0;
}
""" + LICENSE


def test_fentry_is_explained_where_the_kernel_refuses_it():
    try:
        p = CoreProgram(FENTRY, "fentry")
    except HostError as err:
        assert err.message == FENTRY_REFUSED
    else:  # a kernel that allows fentry attaches it
        try:
            assert [a.function for a in p.attachments] == ["on_unlink"]
        finally:
            p.detach()


PERF = HEADER + """
const volatile int parent = 0;
struct sample_t { u32 pid; char comm[16]; u64 when; };
struct {
    __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
    __uint(key_size, sizeof(u32));
    __uint(value_size, sizeof(u32));
} samples SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_execve")
int on_execve(void *ctx)
{
    struct task_struct *task = (void *)bpf_get_current_task();
    if (BPF_CORE_READ(task, real_parent, tgid) != parent)
        return 0;
    struct sample_t s = {};
    s.pid = bpf_get_current_pid_tgid() >> 32;
    s.when = bpf_ktime_get_ns();
    bpf_get_current_comm(s.comm, sizeof(s.comm));
    bpf_perf_event_output(ctx, &samples, BPF_F_CURRENT_CPU, &s, sizeof(s));
    return 0;
}
""" + LICENSE


def test_perf_buffer_events_with_btf_columns(programs):
    p = CoreProgram(PERF, "perf", globals={"parent": os.getpid()})
    programs.append(p)
    assert p.maps == {"samples": "perf_event_array"}
    df = p.events("samples", count=1, trigger=run_child)
    assert len(df) == 1
    assert {"pid", "comm", "when", "cpu"} <= set(df.columns)
    assert df["when"].iloc[0] > 0
    assert isinstance(df["comm"].iloc[0], str)


def test_syscall_probe_uses_the_tracepoint_and_defines_reach_clang(marker, programs):
    src = (PARENT + child_printk("tracepoint", "on_enter", '"MARKER %d", ANSWER')
           ).replace("MARKER", marker) + LICENSE
    p = CoreProgram(src, "sys", probes=["syscall:execve"], defines=["ANSWER=42"],
                    globals={"parent": os.getpid()})
    programs.append(p)
    assert p.attachments[0].how == "tracepoint syscalls:sys_enter_execve"
    assert f"{marker} 42" in marked(p.trace(trigger=run_child), marker)


# a global `level` copied into the array `seen` on every syscall
LEVEL = HEADER + """
const volatile int level = 1;
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, u32);
         __type(value, u32); } seen SEC(".maps");
SEC("raw_tp/sys_enter")
int f(void *ctx) { u32 k = 0; u32 v = level; bpf_map_update_elem(&seen, &k, &v, 0); return 0; }
""" + LICENSE


def test_no_attach_keeps_globals_settable_until_attach(programs):
    src = LEVEL
    p = CoreProgram(src, "later", attach=False)
    programs.append(p)
    assert p.maps == {"seen": "array"}  # known without loading
    assert "not loaded yet" in repr(p)
    p.set_global("level", 9)
    p.attach()
    os.getppid()  # any syscall
    assert list(p.table("seen")["value"]) == [9]
    assert "later (core): attached" in repr(p)


def libc_path() -> str:
    import ctypes.util
    name = ctypes.util.find_library("c") or "libc.so.6"
    for d in ("/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib64", "/lib64"):
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    pytest.fail("libc not found")


UPROBE = HEADER + """
const volatile int me = 0;
u64 calls = 0;
SEC("uprobe")
int on_getppid(void *ctx)
{
    if ((bpf_get_current_pid_tgid() >> 32) == me)
        __sync_fetch_and_add(&calls, 1);
    return 0;
}
""" + LICENSE


def test_uprobe_probe_by_path_and_symbol(programs):
    src = UPROBE.replace("u64 calls = 0;", """struct { __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1); __type(key, u32); __type(value, u64); } calls SEC(".maps");""")
    src = src.replace("__sync_fetch_and_add(&calls, 1);",
                      "{ u32 k = 0; u64 *n = bpf_map_lookup_elem(&calls, &k);"
                      " if (n) __sync_fetch_and_add(n, 1); }")
    p = CoreProgram(src, "uprobe", probes=[f"uprobe:{libc_path()}:getppid"],
                    globals={"me": os.getpid()})
    programs.append(p)
    for _ in range(3):
        os.getppid()
    assert list(p.table("calls")["value"]) == [3]


def test_magic_core_cell_rerun_replaces_and_errors_stay_short():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "ebpf_nb")
    cell = LEVEL
    try:
        shell.run_cell_magic("bpf", "core_cell --core -G level=5", cell)
        first = shell.user_ns["core_cell"]
        first_ids = first.program_ids()
        assert list(first.table("seen")["value"]) == [5]
        shell.run_cell_magic("bpf", "core_cell --core -G level=6", cell)
        second = shell.user_ns["core_cell"]
        assert second is not first and not first.loaded
        assert all_gone(first_ids.values())
        assert second.cache_hit  # same source: no clang run
        assert list(second.table("seen")["value"]) == [6]
        second_ids = second.program_ids()
        result = shell.run_cell("%%bpf broken --core\n" + cell.replace("= level;", "= levl;"))
        assert "line 11, column" in str(result.error_in_exec)  # %%bpf is line 1
    finally:
        shell.run_line_magic("bpf_detach", "--all")
    assert all_gone(second_ids.values())


def test_verifier_rejection_names_the_cell_line():
    src = HEADER + """
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 8); __type(key, u32);
         __type(value, u64); } m SEC(".maps");
SEC("raw_tp/sys_enter")
int f(void *ctx)
{
    u32 k = 0;
    u64 *v = bpf_map_lookup_elem(&m, &k);
    return *v;
}
""" + LICENSE
    with pytest.raises(VerifierError) as info:
        CoreProgram(src, "unchecked")
    err = info.value
    assert err.message == ("the verifier rejected f at cell line 13: "
                           "R0 invalid mem access 'map_value_or_null'")
    assert "against NULL" in err.hint
    assert err.program == "f"


def test_tp_btf_program_reads_typed_arguments(programs):
    src = HEADER + """
const volatile int parent = 0;
struct exec_t { u32 pid; char file[32]; };
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } execs SEC(".maps");

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
    if (task->real_parent->tgid != parent)   /* BTF-typed pointers: plain C access */
        return 0;
    struct exec_t *e = bpf_ringbuf_reserve(&execs, sizeof(*e), 0);
    if (!e)
        return 0;
    e->pid = task->tgid;
    bpf_probe_read_kernel_str(e->file, sizeof(e->file), bprm->filename);
    bpf_ringbuf_submit(e, 0);
    return 0;
}
""" + LICENSE
    p = CoreProgram(src, "typed", globals={"parent": os.getpid()})
    programs.append(p)
    assert p.attachments[0].probe == "tp_btf/sched_process_exec"
    df = p.events("execs", count=1, trigger=run_child)
    assert list(df["file"]) == ["/bin/true"]
