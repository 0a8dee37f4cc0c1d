"""The %%bpf magic through a real InteractiveShell: every map kind and both buffer kinds read
as DataFrames with checked values."""
from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest
from kit_helpers import run

NOBODY = "setpriv --reuid=65534 --regid=65534 --clear-groups"


def sh(command: str) -> None:
    subprocess.run(command, shell=True, check=True)


def test_hash_per_uid_shows_a_second_user(shell):
    run(shell, """%%bpf counts -a syscall:execve
BPF_HASH(counter_table);
int hello(void *ctx) {
    u64 uid = bpf_get_current_uid_gid() & 0xFFFFFFFF;
    u64 counter = 0;
    u64 *p = counter_table.lookup(&uid);
    if (p != 0) counter = *p;
    counter++;
    counter_table.update(&uid, &counter);
    return 0;
}""")
    sh(f"/bin/true; {NOBODY} /bin/true; {NOBODY} /bin/true")
    df = shell.user_ns["counts"].table("counter_table")
    assert list(df.columns) == ["key", "value"]
    by_uid = dict(zip(df.key, df.value))
    assert by_uid.get(0, 0) >= 1
    assert by_uid.get(65534, 0) >= 2
    assert df.attrs["map_type"] == "hash"


def test_struct_keys_become_named_columns_and_char_arrays_strings(shell):
    run(shell, """%%bpf bycomm
struct key_t { u32 uid; char command[16]; };
BPF_HASH(calls, struct key_t, u64);
TRACEPOINT_PROBE(syscalls, sys_enter_execve) {
    struct key_t key = {};
    key.uid = bpf_get_current_uid_gid();
    bpf_get_current_comm(&key.command, sizeof(key.command));
    calls.increment(key);
    return 0;
}""")
    sh(f"{NOBODY} /bin/true")
    df = shell.user_ns["bycomm"].table("calls")
    assert list(df.columns) == ["uid", "command", "value"]
    assert isinstance(df.command.iloc[0], str)
    assert ((df.uid == 65534) & (df.command == "setpriv")).any()


def test_array_lru_and_percpu(shell):
    run(shell, """%%bpf kinds
BPF_ARRAY(arr, u64, 4);
BPF_TABLE("lru_hash", u32, u64, lru, 128);
BPF_PERCPU_ARRAY(pcpu, u64, 2);
TRACEPOINT_PROBE(syscalls, sys_enter_execve) {
    int one = 1;
    arr.increment(one);
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    u64 seen = 1;
    lru.update(&pid, &seen);
    u64 *v = pcpu.lookup(&one);
    if (v) (*v)++;
    return 0;
}""")
    sh("/bin/true; /bin/true; /bin/true")
    prog = shell.user_ns["kinds"]
    arr = prog.table("arr")
    assert list(arr.key) == [0, 1, 2, 3] and arr.value[1] >= 3 and arr.value[0] == 0
    lru = prog.table("lru")
    assert lru.attrs["map_type"] == "lru_hash" and len(lru) >= 3
    pcpu = prog.table("pcpu")
    cpu_cols = [c for c in pcpu.columns if c.startswith("cpu")]
    assert cpu_cols and list(pcpu.columns) == ["key", *cpu_cols, "total"]
    assert (pcpu[cpu_cols].sum(axis=1) == pcpu.total).all() and pcpu.total[1] >= 3


def test_log2_histogram(shell):
    run(shell, """%%bpf hist
BPF_HISTOGRAM(sizes);
TRACEPOINT_PROBE(syscalls, sys_enter_read) {
    sizes.increment(bpf_log2l(args->count));
    return 0;
}""")
    sh("head -c 100 /etc/passwd > /dev/null")
    df = shell.user_ns["hist"].table("sizes")
    assert list(df.columns) == ["low", "high", "count"]
    assert df.attrs["kind"] == "log2_histogram"
    assert (df.high >= df.low).all() and df["count"].sum() >= 1
    assert all(h + 1 == 2 * max(lo, 1) or lo == h == 0 for lo, h in zip(df.low, df.high))


def test_stack_trace_map_is_symbolized(shell):
    run(shell, """%%bpf stacks
BPF_STACK_TRACE(traces, 64);
BPF_HASH(ids, int, u64);
TRACEPOINT_PROBE(syscalls, sys_enter_openat) {
    int id = traces.get_stackid(args, 0);
    if (id >= 0) ids.increment(id);
    return 0;
}""")
    sh("cat /etc/hostname > /dev/null")
    df = shell.user_ns["stacks"].table("traces")
    assert list(df.columns) == ["stack_id", "depth", "frames"]
    assert len(df) >= 1 and (df.depth > 0).all()
    frames = [f for fs in df.frames for f in fs]
    assert any("sys" in f or "syscall" in f for f in frames), frames[:10]


def test_perf_and_ring_buffer_events(shell):
    run(shell, """%%bpf ev
struct data_t { int pid; int uid; char command[16]; char message[12]; };
BPF_PERF_OUTPUT(output);
BPF_RINGBUF_OUTPUT(ring, 8);
TRACEPOINT_PROBE(syscalls, sys_enter_execve) {
    struct data_t data = {};
    char message[12] = "Hello World";
    data.pid = bpf_get_current_pid_tgid() >> 32;
    data.uid = bpf_get_current_uid_gid() & 0xFFFFFFFF;
    bpf_get_current_comm(&data.command, sizeof(data.command));
    bpf_probe_read_kernel(&data.message, sizeof(data.message), message);
    output.perf_submit(args, &data, sizeof(data));
    ring.ringbuf_output(&data, sizeof(data), 0);
    return 0;
}""")
    prog = shell.user_ns["ev"]
    perf = prog.events("output", trigger=f"{NOBODY} /bin/true")
    assert list(perf.columns) == ["pid", "uid", "command", "message", "cpu", "timestamp"]
    assert (perf.message == "Hello World").all() and 65534 in set(perf.uid)
    assert perf.attrs["lost"] == 0 and perf.attrs["buffer"] == "perf"
    ring = prog.events("ring", count=2, trigger="/bin/true; /bin/true; /bin/true")
    assert len(ring) == 2 and "cpu" not in ring.columns
    assert ring.attrs["buffer"] == "ringbuf" and ring.attrs["stopped_by"] == "count"


def test_tail_calls_fill_the_program_array(shell):
    run(shell, """%%bpf tails -a raw_tracepoint:sys_enter=entry --no-attach
BPF_PROG_ARRAY(syscall, 500);
BPF_HASH(seen, u32, u64);
int entry(struct bpf_raw_tracepoint_args *ctx) {
    int nr = ctx->args[1];
    syscall.call(ctx, nr);
    return 0;
}
int on_getppid(void *ctx) { u32 k = 1; seen.increment(k); return 0; }
int ignore(void *ctx) { return 0; }""")
    import os
    prog = shell.user_ns["tails"]
    nr_getppid = _syscall_number("getppid")
    slots = prog.tail_calls("syscall", {nr_getppid: "on_getppid"}, default="ignore")
    assert slots[nr_getppid] == "on_getppid" and len(slots) == 500
    prog.attach()
    os.getppid()
    sh("/bin/true")
    assert prog.table("seen").value.sum() >= 1
    arr = prog.table("syscall")
    row = arr[arr["index"] == nr_getppid].iloc[0]
    assert row.function == "on_getppid"
    others = arr[arr["index"] != nr_getppid]
    assert len(others) == 499 and set(others.function) == {"ignore"}


def _syscall_number(name: str) -> int:
    import re
    for header in ("/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
                   "/usr/include/aarch64-linux-gnu/asm/unistd.h", "/usr/include/asm-generic/unistd.h"):
        try:
            with open(header) as f:
                text = f.read()
        except OSError:
            continue
        m = re.search(rf"#define __NR_{name}\s+(\d+)", text)
        if m:
            return int(m.group(1))
    raise LookupError(name)


def test_list_and_detach_magics(shell):
    run(shell, "%%bpf one\nTRACEPOINT_PROBE(syscalls, sys_enter_execve) { return 0; }")
    run(shell, "%%bpf two\nTRACEPOINT_PROBE(syscalls, sys_enter_execve) { return 0; }")
    listing = run(shell, "%bpf_list").result
    assert list(listing.name) == ["one", "two"] and set(listing.state) == {"attached"}
    run(shell, "%bpf_detach one")
    assert not shell.user_ns["one"].loaded and shell.user_ns["two"].attached
    run(shell, "%bpf_detach --all")
    assert not shell.user_ns["two"].loaded


def test_doctor_rows(shell):
    df = run(shell, "%bpf_doctor").result
    assert list(df.columns) == ["check", "status", "detail", "fix"]
    checks = dict(zip(df.check, df.status))
    assert checks["privileges"] == "OK" and checks["tracefs"] == "OK" and checks["BTF"] == "OK"
    assert {"kernel headers", "kprobes", "JIT", "bcc"} <= set(checks)
    bad = df[df.status == "problem"]
    assert (bad.fix.str.len() > 0).all()


@pytest.mark.parametrize("output", ["perf", "ring"])
def test_an_event_stream_misses_nothing_between_reads(shell, output, tmp_path):
    submit = ("events.perf_submit(args, &e, sizeof(e));" if output == "perf"
              else "events.ringbuf_output(&e, sizeof(e), 0);")
    declare = "BPF_PERF_OUTPUT(events);" if output == "perf" else "BPF_RINGBUF_OUTPUT(events, 8);"
    run(shell, f"""%%bpf streamed
struct event_t {{ u32 pid; char command[16]; }};
{declare}
TRACEPOINT_PROBE(sched, sched_process_exec) {{
    struct event_t e = {{}};
    e.pid = bpf_get_current_pid_tgid() >> 32;
    bpf_get_current_comm(&e.command, sizeof(e.command));
    {submit}
    return 0;
}}""")
    # A copy of true under a name nothing else on the machine runs: only our execs count.
    name = f"t{uuid.uuid4().hex[:10]}"
    exe = tmp_path / name
    shutil.copy("/bin/true", exe)
    stream = shell.user_ns["streamed"].event_stream("events")
    first = stream.read(trigger=f"{exe}; {exe}")
    sh(f"{exe}; {exe}; {exe}")                      # between two reads: kept by the stream
    second = stream.read(seconds=0.3)
    stream.close()
    assert (first.command == name).sum() == 2
    assert (second.command == name).sum() == 3
    assert not set(first.pid) & set(second.pid)   # nothing read twice
