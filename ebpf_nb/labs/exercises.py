"""The checks of every lab's exercises, one section per lab (ids are ``NN.name``).

Each check makes the kernel do something known (a command as user 65534, a file name nobody
else opens, 2000 ``getppid`` calls), reads the student's program, and names what is missing.
"""
from __future__ import annotations

import os
from typing import Any

import pandas as pd

from .checks import (
    NotDone,
    Wrong,
    as_user,
    exercise,
    marker,
    need_program,
    python_command,
    run,
    str_columns,
)
from .syscalls import syscall_number

SHORT_READ = 1.5  # seconds a trace/event read lasts when the number of lines is not known


def _table(program: Any, map_name: str) -> pd.DataFrame:
    try:
        return program.table(map_name)
    except Exception as err:
        raise Wrong(f"could not read the map {map_name!r} of your program ({err}); the exercise "
                    f"asks for a map with exactly that name") from err


def _count_column(frame: pd.DataFrame, exclude: tuple[str, ...] = ("key",)) -> str:
    for name in ("value", "count", "total"):
        if name in frame.columns and name not in exclude:
            return name
    numeric = [c for c in frame.columns if c not in exclude
               and pd.api.types.is_numeric_dtype(frame[c])]
    if not numeric:
        raise Wrong(f"the map has no numeric column to count with (columns: {list(frame.columns)})")
    return numeric[-1]


def _total(frame: pd.DataFrame) -> int:
    return int(frame[_count_column(frame)].sum()) if len(frame) else 0


def _getppid_loop(times: int) -> str:
    return python_command(f"import os\nfor _ in range({times}): os.getppid()")


# --- 01 hello world ------------------------------------------------------------------------------

@exercise("01.pid_comm", program="hello_pid", title="print the pid and the command on execve")
def _pid_and_command(program: Any) -> str:
    program = need_program(program, "hello_pid")
    lines = program.trace(seconds=SHORT_READ, trigger="/bin/true; /bin/true")
    if len(lines) == 0:
        raise NotDone("no line reached the trace pipe while two programs started: call "
                      "bpf_trace_printk(...) in hello_pid")
    with_pid = lines[[str(pid) in str(msg) for pid, msg in zip(lines.pid, lines.message)]]
    if len(with_pid) == 0:
        example = lines.message.iloc[0]
        raise Wrong(f"lines arrived (e.g. {example!r}) but none contains the pid of the process "
                    "that called execve: print bpf_get_current_pid_tgid() >> 32 with %d")
    known = with_pid[[not str(t).startswith("<") for t in with_pid.task]]
    named = known[[str(t) in str(m) for t, m in zip(known.task, known.message)]]
    if len(known) and len(named) == 0:
        example = with_pid.message.iloc[0]
        raise Wrong(f"the pid is there but not the command name (e.g. {example!r}): fill a "
                    "char[16] with bpf_get_current_comm(&comm, sizeof(comm)) and print it with %s")
    return f"{len(with_pid)} lines carry the pid and the command, e.g. {with_pid.message.iloc[0]!r}"


@exercise("01.openat", program="opens", title="print the file name of every openat")
def _openat_file_name(program: Any) -> str:
    program = need_program(program, "opens")
    word = marker("open")
    lines = program.trace(seconds=SHORT_READ, trigger=f"cat /tmp/{word} 2>/dev/null; true")
    if len(lines) == 0:
        raise NotDone("no line reached the trace pipe while `cat` opened a file: call "
                      "bpf_trace_printk(...) in the sys_enter_openat tracepoint")
    if not lines.message.str.contains(word).any():
        raise Wrong(f"`cat /tmp/{word}` ran but no line shows that file name: copy "
                    "args->filename with bpf_probe_read_user_str into a char buffer, print it "
                    f"with %s (seen: {lines.message.iloc[-1]!r})")
    return f"the file name /tmp/{word} appeared in the trace pipe"


# --- 02 maps -------------------------------------------------------------------------------------

@exercise("02.per_uid", program="counter", title="count execve calls per user id")
def _per_uid(program: Any) -> str:
    program = need_program(program, "counter")
    run(f"/bin/true; {as_user('/bin/true')}")
    counts = _table(program, "counter_table")
    if len(counts) == 0:
        raise NotDone("the map counter_table is empty after two commands ran: look up the "
                      "uid's counter, add one and update the map")
    if "key" not in counts:
        raise Wrong(f"the key should be the uid alone (a u64), columns are {list(counts.columns)}")
    keys = [int(k) for k in counts.key]
    if any(k > 0xFFFFFFFF for k in keys):
        raise Wrong("a key is larger than 32 bits: did you mask the uid with 0xFFFFFFFF? "
                    "(bpf_get_current_uid_gid() returns the gid in the high 32 bits)")
    if 65534 not in keys:
        raise Wrong("the map has no row for uid 65534 although a command ran as that user: "
                    f"keys seen are {sorted(keys)}")
    if 0 not in keys:
        raise Wrong(f"the map has no row for root (uid 0); keys seen are {sorted(keys)}")
    return f"rows for uid 0 and 65534 ({len(keys)} users in all)"


@exercise("02.per_comm", program="by_comm", title="count execve calls per command name")
def _per_command(program: Any) -> str:
    program = need_program(program, "by_comm")
    word = marker("c")
    run(f"cp /bin/sh /tmp/{word} && /tmp/{word} -c '/bin/true; /bin/true; /bin/true'; "
        f"rm -f /tmp/{word}")
    counts = _table(program, "counts")
    if len(counts) == 0:
        raise NotDone("the map counts is empty after commands ran: count each execve under "
                      "the name from bpf_get_current_comm")
    text_columns = str_columns(counts)
    if not text_columns:
        raise Wrong("no column holds text: the key should be a struct with a char comm[16] "
                    f"field (columns are {list(counts.columns)})")
    rows = counts[counts[text_columns[0]] == word]
    if len(rows) == 0:
        raise Wrong(f"a program called {word} started three commands but there is no row "
                    f"for it (names seen: {sorted(counts[text_columns[0]])[:8]})")
    number = int(rows[_count_column(counts, exclude=tuple(text_columns))].iloc[0])
    if number < 3:
        raise Wrong(f"{word} called execve 3 times but its count is {number}: do you add one "
                    "to the existing counter?")
    return f"{word} counted {number} times"


@exercise("02.per_syscall", program="syscalls", title="count syscalls by number (raw tracepoint)")
def _per_syscall(program: Any) -> str:
    program = need_program(program, "syscalls")
    number = syscall_number("getppid")
    before = _table(program, "counts")
    run(_getppid_loop(2000))
    after = _table(program, "counts")
    if len(after) == 0:
        raise NotDone("the map counts is empty: count ctx->args[1] on sys_enter")
    if "key" not in after:
        raise Wrong(f"the key should be the syscall number, columns are {list(after.columns)}")
    value = _count_column(after)

    def count_of(frame: pd.DataFrame) -> int:
        rows = frame[frame.key == number] if len(frame) else frame
        return int(rows[value].sum()) if len(rows) else 0
    grown = count_of(after) - count_of(before)
    if grown < 2000:
        raise Wrong(f"a process called getppid (syscall {number} here) 2000 times but its row "
                    f"grew by {grown}: is the key ctx->args[1], the syscall number?")
    return f"syscall {number} (getppid) grew by {grown}"


@exercise("02.array", program="by_root", title="an array map: root vs other users")
def _array(program: Any) -> str:
    program = need_program(program, "by_root")
    before = _table(program, "counts")
    run("; ".join([as_user("/bin/true")] * 3))
    after = _table(program, "counts")
    if len(after) < 2 or "key" not in after:
        raise Wrong(f"counts should be BPF_ARRAY(counts, u64, 2), got {len(after)} rows with "
                    f"columns {list(after.columns)}")
    value = _count_column(after)
    if int(after[value].sum()) == 0:
        raise NotDone("both slots of the array are still 0: increment slot 0 for root and "
                      "slot 1 for everyone else")
    slot = {int(k): int(v) for k, v in zip(after.key, after[value])}
    old = {int(k): int(v) for k, v in zip(before.key, before[value])}
    others = slot.get(1, 0) - old.get(1, 0)
    roots = slot.get(0, 0) - old.get(0, 0)
    if others < 3:
        raise Wrong(f"three commands ran as uid 65534 but slot 1 grew by {others} (slot 0 by "
                    f"{roots}): slot 1 is for every uid that is not 0")
    if roots < 3:
        raise Wrong(f"root started three commands but slot 0 grew by {roots}")
    return f"slot 0 (root) grew by {roots}, slot 1 (others) by {others}"


@exercise("02.histogram", program="sizes", title="a log2 histogram of read sizes")
def _histogram(program: Any) -> str:
    program = need_program(program, "sizes")
    before = _table(program, "dist")
    run("dd if=/dev/zero of=/dev/null bs=4096 count=300 status=none")
    after = _table(program, "dist")
    if len(after) == 0 or int(after["count"].sum() if "count" in after else 0) == 0:
        raise NotDone("the histogram dist is empty: dist.increment(bpf_log2l(args->count))")
    if not {"low", "high", "count"} <= set(after.columns):
        raise Wrong("dist should be a BPF_HISTOGRAM (columns low, high, count), columns are "
                    f"{list(after.columns)}")

    def bucket(frame: pd.DataFrame) -> int:
        rows = frame[(frame.low <= 4096) & (frame.high >= 4096)] if len(frame) else frame
        return int(rows["count"].sum()) if len(rows) else 0
    grown = bucket(after) - bucket(before)
    if grown < 300:
        raise Wrong(f"dd read 300 blocks of 4096 bytes but the bucket holding 4096 grew by "
                    f"{grown}: increment bpf_log2l(args->count), the requested size")
    return f"the 4096-8191 bucket grew by {grown}"


# --- 03 perf and ring buffers --------------------------------------------------------------------

@exercise("03.openat_events", program="opens", title="send the opened file name in events")
def _openat_events(program: Any) -> str:
    program = need_program(program, "opens")
    word = marker("open")
    events = program.events("events", seconds=SHORT_READ,
                            trigger=f"cat /tmp/{word} 2>/dev/null; true")
    if len(events) == 0:
        raise NotDone("no event arrived while `cat` opened a file: fill a struct and "
                      "events.perf_submit(args, &data, sizeof(data))")
    columns = str_columns(events)
    hits = [c for c in columns if events[c].str.contains(word).any()]
    if not hits:
        raise Wrong(f"{len(events)} events arrived but none holds /tmp/{word}: copy "
                    "args->filename with bpf_probe_read_user_str into the struct's char array "
                    f"(text columns: {columns})")
    return f"{len(events)} events, the file name is in column {hits[0]!r}"


@exercise("03.drops", program="tiny", title="a one-page ring buffer that drops events")
def _drops(program: Any) -> str:
    program = need_program(program, "tiny")
    calls = 20000  # far faster than any reader: the one-page ring must overflow
    before = _table(program, "dropped")
    events = program.events("events", seconds=2, trigger=_getppid_loop(calls))
    dropped_table = _table(program, "dropped")
    dropped = _total(dropped_table) - _total(before)
    if len(events) == 0 and dropped == 0:
        raise NotDone("no event and no drop: reserve an event on every getppid, submit it, and "
                      "count in dropped when the reservation fails")
    if dropped == 0:
        raise Wrong(f"{len(events)} events and no drop counted: is the ring buffer one page "
                    "(BPF_RINGBUF_OUTPUT(events, 1)) and do you add one to dropped when "
                    "events.ringbuf_reserve returns NULL?")
    if len(events) + dropped < calls:
        raise Wrong(f"{calls} getppid calls, {len(events)} events and {dropped} drops: every "
                    "call should end as an event or a drop")
    return f"{len(events)} events fitted, {dropped} were dropped and counted"


@exercise("03.compare", program="both", title="the same events through perf and ring buffers")
def _compare(program: Any) -> str:
    program = need_program(program, "both")
    last_cpu = (os.cpu_count() or 1) - 1
    burst = _getppid_loop(200)
    on_two_cpus = f"taskset -c 0 {burst} & taskset -c {last_cpu} {burst}; wait"
    perf = program.events("perf_events", seconds=SHORT_READ, trigger=on_two_cpus)
    ring = program.events("ring_events", seconds=SHORT_READ, trigger=on_two_cpus)
    if len(perf) == 0 and len(ring) == 0:
        raise NotDone("no event in either buffer: submit each event to perf_events "
                      "(perf_submit) and to ring_events (ringbuf_output)")
    for name, frame in (("perf_events", perf), ("ring_events", ring)):
        if len(frame) < 400:
            raise Wrong(f"400 getppid calls ran but {name} received {len(frame)} events: "
                        "submit every event to both buffers")
    if "time_ns" not in ring or not ring.time_ns.is_monotonic_increasing:
        raise Wrong("the ring buffer's events should carry time_ns = bpf_ktime_get_ns(), "
                    "which come out in order")
    cpus = sorted(set(perf.cpu)) if "cpu" in perf else []
    return (f"perf: {len(perf)} events from CPUs {cpus}; ring: {len(ring)} events, "
            "in time order")


# --- 04 function calls ---------------------------------------------------------------------------

@exercise("04.subprogram", program="calls", title="a real BPF-to-BPF call")
def _subprogram(program: Any) -> str:
    program = need_program(program, "calls")
    listing = program.instructions()
    if isinstance(listing, pd.DataFrame):
        text = "\n".join(map(str, listing.get("instruction", listing.to_string().splitlines())))
    else:
        text = str(listing)
    if "call pc" not in text:
        raise Wrong("no `call pc+N` in the translated instructions: the helper was inlined; "
                    "declare it `static __noinline`")
    return "the instructions contain a BPF-to-BPF call (call pc+N)"


# --- 05 tail calls -------------------------------------------------------------------------------

@exercise("05.getppid", program="dispatch", title="a tail-called handler for getppid")
def _getppid_handler(program: Any) -> str:
    program = need_program(program, "dispatch")
    number = syscall_number("getppid")
    slots = _table(program, "syscall")
    index = "index" if "index" in slots else "key"
    filled = {int(k) for k in slots[index]} if index in slots else set()
    if number not in filled:
        raise NotDone(f"the program array has no entry at index {number} (getppid on this "
                      "machine): add it to the tail_calls(...) table")
    lines = program.trace(seconds=SHORT_READ, trigger=_getppid_loop(3))
    if not lines.message.str.contains("getppid").any():
        raise Wrong(f"slot {number} is filled but no trace line mentions getppid: does your "
                    "handler call bpf_trace_printk(\"getppid ...\")?")
    return f"slot {number} calls your handler, which printed a line"


# --- 06 CO-RE ------------------------------------------------------------------------------------

@exercise("06.exe_inode", program="inodes", title="the executable's inode with BPF_CORE_READ")
def _exe_inode(program: Any) -> str:
    program = need_program(program, "inodes")
    os.getppid()  # this very process: its pid and executable are known here
    table = _table(program, "inode_by_pid")
    if len(table) == 0:
        raise NotDone("inode_by_pid is empty: store BPF_CORE_READ(task, mm, exe_file, f_inode, "
                      "i_ino) under the pid in the getppid tracepoint")
    rows = table[table.key == os.getpid()] if "key" in table else table.iloc[0:0]
    if len(rows) == 0:
        raise Wrong(f"this process (pid {os.getpid()}) called getppid but has no row: is the "
                    "key bpf_get_current_pid_tgid() >> 32?")
    expected = os.stat("/proc/self/exe").st_ino
    got = int(rows[_count_column(table)].iloc[0])
    if got != expected:
        raise Wrong(f"the inode stored for pid {os.getpid()} is {got}, the executable's is "
                    f"{expected}: follow task->mm->exe_file->f_inode->i_ino")
    return f"inode {got} of this kernel's executable, read with CO-RE"
