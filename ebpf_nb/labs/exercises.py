"""The checks of every lab's exercises, one section per lab (ids are ``NN.name``).

Each check makes the kernel do something known and asymmetric, so that plausible wrong answers
give a different result than the right one: a random user whose uid and gid differ, different
numbers of commands for root and for that user, an ``execve`` from a thread that is not the
main one, file names in a private directory (``tempfile.mkdtemp``), a rare syscall called a
random number of times. Counts are checked against a lower *and* an upper bound; a check whose
upper bound is exceeded measures again (another engineer's or student's program may have run
at the same time) before it says "wrong".
"""
from __future__ import annotations

import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from .checks import (
    NotDone,
    Wrong,
    as_user,
    exercise,
    marker,
    other_user,
    private_dir,
    run,
    run_python,
    str_columns,
)
from .syscalls import syscall_number

SHORT_READ = 1.5  # seconds a trace/event read lasts when the number of lines is not known
ATTEMPTS = 3      # measurements before an over-the-bound result counts as wrong


class Unsteady(Wrong):
    """A result that other programs running at the same time can cause (a count above its
    upper bound, events lost in a shared buffer): measure again before saying "wrong"."""


def _too_many(got: int, expected: int) -> type[Wrong]:
    """What a count above its bound means: at twice the expected or more, a wrong answer (other
    programs do not double a count); less, maybe someone else's events (measure again)."""
    return Wrong if got >= 2 * expected else Unsteady


def _again(measure: Callable[[], str]) -> str:
    """Run ``measure``; when it raises :class:`Unsteady`, try again (ATTEMPTS times in all)."""
    for attempt in range(ATTEMPTS):
        try:
            return measure()
        except Unsteady:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


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


def _counts(frame: pd.DataFrame) -> dict[int, int]:
    """``{key: count}`` of a map with a scalar key."""
    if len(frame) == 0:
        return {}
    if "key" not in frame:
        raise Wrong(f"the map's key should be a single number, its columns are "
                    f"{list(frame.columns)}")
    value = _count_column(frame)
    return {int(k): int(v) for k, v in zip(frame.key, frame[value])}


def _grown(before: dict[int, int], after: dict[int, int]) -> dict[int, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def _map_counts(program: Any, map_name: str, empty: str | None = None) -> dict[int, int]:
    """``{key: count}`` of the program's map; with ``empty``, an empty map is "not done"."""
    counts = _counts(_table(program, map_name))
    if empty is not None and not counts:
        raise NotDone(empty)
    return counts


def _growth(program: Any, map_name: str, trigger: Callable[[], object],
            empty: str | None = None) -> dict[int, int]:
    """How much each key's count grew while ``trigger`` ran (``empty``: see _map_counts)."""
    before = _map_counts(program, map_name)
    trigger()
    return _grown(before, _map_counts(program, map_name, empty))


def _expect_exactly(got: int, expected: int, wrong: str) -> None:
    """Say ``wrong`` unless ``got == expected`` (above it, maybe others' events: see _too_many)."""
    if got != expected:
        raise (_too_many(got, expected) if got > expected else Wrong)(wrong)


def _expect_between(got: int, least: int, slack: int, too_few: str, too_many: str) -> None:
    """Say ``too_few`` below ``least``, ``too_many`` above ``least + slack`` (see _too_many)."""
    if got < least:
        raise Wrong(too_few)
    if got > least + slack:
        raise _too_many(got, least)(too_many)


def _python_loop(call: str, times: int) -> str:
    return f"import os\nfor _ in range({times}): {call}"


def _numbers(text: str) -> set[int]:
    return {int(n) for n in re.findall(r"\d+", str(text))}


# Python code that tries to open each path of its arguments (a missing file is still an openat)
_OPEN_EACH = ("import sys\nfor p in sys.argv[1:]:\n    try:\n        open(p).close()\n"
              "    except OSError:\n        pass\n")


PIPE_WAIT = 20.0  # seconds a check waits for another reader to let go of the trace pipe


def _trace(program: Any, trigger: Callable[[], object]) -> pd.DataFrame:
    """Trace pipe lines while ``trigger`` runs, waiting a while if another reader holds it."""
    from ..errors import HostError
    deadline = time.monotonic() + PIPE_WAIT
    while True:
        try:
            return program.trace(seconds=SHORT_READ, trigger=trigger)
        except HostError as err:
            if "already being read" not in str(err):
                raise
            if time.monotonic() > deadline:
                raise Wrong(f"another program has been reading the trace pipe for "
                            f"{PIPE_WAIT:g} s (only one reader at a time): run the check again "
                            "when it is done") from err
            time.sleep(random.uniform(0.3, 1.0))


# --- 01 hello world ------------------------------------------------------------------------------

_EXEC_FROM_THREAD = """
import ctypes, os, sys, threading
def start():
    ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)  # PR_SET_NAME: this thread
    with open(sys.argv[2], "w") as f:
        f.write(f"{os.getpid()} {threading.get_native_id()}")
    os.execv("/bin/true", ["/bin/true"])
worker = threading.Thread(target=start)
worker.start()
worker.join()
"""


@exercise("01.pid_comm", program="hello_pid", title="print the pid and the command on execve",
          hints=(("The pid is the upper half of what bpf_get_current_pid_tgid() returns; the "
                 "lower half is the thread id. Which one does `>> 32` give you?"),
                 ("bpf_get_current_comm needs a char array of 16 on the stack and its size; "
                 "print it with %s, the pid with %d.")))
def _pid_and_command(program: Any) -> str:
    name = marker("t")[:15]
    with private_dir() as folder:
        ids = folder / "ids"
        lines = _trace(program,
                              trigger=lambda: run_python(_EXEC_FROM_THREAD, name, str(ids)))
        if not ids.exists():
            raise Wrong("the check's own trigger did not run (no execve happened); run it again")
        pid, tid = (int(n) for n in ids.read_text().split())
    if len(lines) == 0:
        raise NotDone("no line reached the trace pipe while a program started: call "
                      "bpf_trace_printk(...) in hello_pid")
    ours = lines[lines.pid == tid]
    if len(ours) == 0:
        raise Wrong(f"a thread (id {tid}) of process {pid} called execve but no trace line came "
                    f"from it (seen e.g. {lines.message.iloc[-1]!r})")
    # Other programs on the machine may print about the same execve: judge the best line.
    messages = [str(m) for m in ours.message]
    message = next((m for m in messages if pid in _numbers(m) and name in m),
                   next((m for m in messages if pid in _numbers(m) or tid in _numbers(m)),
                        messages[0]))
    numbers = _numbers(message)
    if pid not in numbers:
        if tid in numbers:
            raise Wrong(f"you printed {tid}, the id of the thread that called execve; its "
                        f"process id is {pid} (line: {message!r}): the pid is the upper 32 bits")
        raise Wrong(f"process {pid} called execve but its line {message!r} does not show {pid}: "
                    "print the upper 32 bits of bpf_get_current_pid_tgid() with %d")
    if name not in message:
        raise Wrong(f"the pid is there but not the command name {name!r} (line: {message!r}): "
                    "fill a char[16] with bpf_get_current_comm and print it with %s")
    return f"the execve of process {pid} printed {message!r}"


@exercise("01.openat", program="opens", title="print the file name of every openat",
          hints=(("args->filename is a pointer into the calling process's memory: copy the "
                 "string onto the BPF stack before printing it."),
                 ("The copy needs a buffer large enough for a whole path (64 bytes here) and "
                 "the helper for *user* memory.")))
def _openat_file_name(program: Any) -> str:
    with private_dir() as folder:
        path = str(folder / marker("open"))
        lines = _trace(program, trigger=lambda: run_python(_OPEN_EACH, path))
    if len(lines) == 0:
        raise NotDone("no line reached the trace pipe while a file was opened: call "
                      "bpf_trace_printk(...) in the sys_enter_openat tracepoint")
    if lines.message.str.contains(path, regex=False).any():
        return f"the file name {path} appeared in the trace pipe"
    cut = lines[[len(str(m)) > 8 and str(m).split()[-1] and path.startswith(str(m).split()[-1])
                 for m in lines.message]]
    if len(cut):
        raise Wrong(f"{path} was opened but the line shows only {cut.message.iloc[0]!r}: the "
                    "buffer is too small for the whole name")
    raise Wrong(f"{path} was opened but no line shows that file name: copy args->filename with "
                f"the helper that reads user memory, print it with %s (seen e.g. "
                f"{lines.message.iloc[-1]!r})")


# --- 02 maps -------------------------------------------------------------------------------------

@exercise("02.per_uid", program="counter", title="count execve calls per user id",
          hints=("bpf_get_current_uid_gid() packs two ids in one u64: which half is the uid?",
                 ("lookup() gives a pointer to the current count or NULL; the new count is the "
                 "old one plus one, written back with update().")))
def _per_uid(program: Any) -> str:
    uid, gid = other_user()
    as_root, as_other = random.sample(range(2, 9), 2)

    def measure() -> str:
        commands = ["/bin/true"] * as_root + [as_user("/bin/true", uid, gid)] * as_other
        before = _map_counts(program, "counter_table")
        run("; ".join(commands))
        after = _map_counts(program, "counter_table",
                            empty="the map counter_table is empty after commands ran: look up "
                                  "the uid's counter, add one and update the map")
        grown = _grown(before, after)
        if any(k > 0xFFFFFFFF for k in after):
            raise Wrong("a key is larger than 32 bits: bpf_get_current_uid_gid() returns the gid "
                        "in the upper 32 bits and the uid in the lower 32")
        if uid not in grown:
            seen = f"gid {gid} has a row" if gid in grown else f"keys that grew: {sorted(grown)}"
            raise Wrong(f"{as_other} commands ran as uid {uid} (gid {gid}) but there is no row "
                        f"for uid {uid} ({seen}): the key must be the uid")
        _expect_exactly(grown[uid], as_other,
                        f"uid {uid} started {as_other} commands but its count grew by "
                        f"{grown[uid]}: add one to the count already in the map on every execve")
        if grown.get(0, 0) < as_root:
            raise Wrong(f"root started at least {as_root} commands but its row grew by "
                        f"{grown.get(0, 0)}")
        return f"uid {uid} counted {as_other} times, root at least {as_root}"
    return _again(measure)


@exercise("02.per_comm", program="by_comm", title="count execve calls per command name",
          hints=("The key is a struct: zero it, then let bpf_get_current_comm fill its comm.",
                 "BCC's counts.increment(key) adds one to the key's count (creating it at 0)."))
def _per_command(program: Any) -> str:
    word = marker("c")
    times = random.randint(3, 7)

    def measure() -> str:
        with private_dir() as folder:
            shell = folder / word
            shutil.copy("/bin/sh", shell)
            loop = " ".join(str(i) for i in range(times))
            run(shlex.join([str(shell), "-c", f"for i in {loop}; do /bin/true; done"]))
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
            raise Wrong(f"a program called {word} started {times} commands but there is no row "
                        f"for it (names seen: {sorted(counts[text_columns[0]])[:8]})")
        number = int(rows[_count_column(counts, exclude=tuple(text_columns))].iloc[0])
        _expect_exactly(number, times, f"{word} called execve {times} times but its count is "
                                       f"{number}: add one to its counter on every execve")
        return f"{word} counted {number} times"
    return _again(measure)


@exercise("02.per_syscall", program="syscalls", title="count syscalls by number (raw tracepoint)",
          hints=(("On the sys_enter raw tracepoint, ctx->args[0] is the registers and "
                 "ctx->args[1] the syscall number."),),)
def _per_syscall(program: Any) -> str:
    number = syscall_number("sched_get_priority_max")  # a call almost nothing else makes
    times = random.randint(1500, 2500)
    calls = _python_loop("os.sched_get_priority_max(os.SCHED_OTHER)", times)

    def measure() -> str:
        grown = _growth(program, "counts", lambda: run_python(calls),
                        empty="the map counts is empty: count the syscall number on sys_enter"
                        ).get(number, 0)
        _expect_between(grown, times, 20,
                        f"a process called sched_get_priority_max (syscall {number} here) "
                        f"{times} times but its row grew by {grown}: is the key the syscall "
                        "number, ctx->args[1]?",
                        f"sched_get_priority_max ran {times} times but its row grew by {grown}: "
                        "count each call once")
        return f"syscall {number} (sched_get_priority_max) grew by {grown}"
    return _again(measure)


@exercise("02.array", program="by_root", title="an array map: root vs other users",
          hints=(("Slots of an array always exist: no lookup-or-create is needed, "
                 "counts.increment(slot) does it."),
                 "Root is *uid* 0, whatever the group; the uid is the lower 32 bits."))
def _array(program: Any) -> str:
    uid, _ = other_user()
    as_root, as_other = random.randint(9, 12), random.randint(2, 5)

    def measure() -> str:
        before = _table(program, "counts")
        # The other user's group is 0 (root's group): only the uid says who is root.
        run("; ".join(["/bin/true"] * as_root + [as_user("/bin/true", uid, 0)] * as_other))
        after = _table(program, "counts")
        if len(after) < 2 or "key" not in after:
            raise Wrong(f"counts should be BPF_ARRAY(counts, u64, 2), got {len(after)} rows "
                        f"with columns {list(after.columns)}")
        slot, old = _counts(after), _counts(before)
        if sum(slot.values()) == 0:
            raise NotDone("both slots of the array are still 0: increment slot 0 for root and "
                          "slot 1 for everyone else")
        roots, others = slot.get(0, 0) - old.get(0, 0), slot.get(1, 0) - old.get(1, 0)
        seen = f"root ran {as_root} commands, uid {uid} (group 0) ran {as_other}; slot 0 grew " \
               f"by {roots}, slot 1 by {others}"
        wrong_slots = f"{seen}: slot 0 is for uid 0, slot 1 for every other uid"
        if roots < as_root:
            raise Wrong(wrong_slots)
        _expect_between(others, as_other, 3, wrong_slots,
                        f"{seen}: only commands of users other than root go to slot 1")
        return seen
    return _again(measure)


def _histogram_table(program: Any, map_name: str) -> pd.DataFrame:
    """The map read as a log2 histogram, even when the kit did not recognise it as one."""
    frame = _table(program, map_name)
    if len(frame) and "low" not in frame:
        try:
            return program.table(map_name, kind="log2_histogram")
        except Exception:  # noqa: BLE001 - not readable as a histogram: report the columns
            return frame
    return frame


@exercise("02.histogram", program="sizes", title="a log2 histogram of read sizes",
          hints=(("A BPF_HISTOGRAM's key is the bucket: the power of two of the value, not the "
                 "value itself."),
                 ("The size a read asks for is one of the tracepoint's arguments (see its "
                 "format file).")))
def _histogram(program: Any) -> str:
    # reads of 2 to 4 MiB: a bucket that the rest of the machine hardly ever uses
    size, blocks = random.randint(2**21 + 1, 2**22 - 1), random.randint(100, 200)

    def bucket(frame: pd.DataFrame) -> int:
        rows = frame[(frame.low <= size) & (frame.high >= size)] if len(frame) else frame
        return int(rows["count"].sum()) if len(rows) else 0

    def measure() -> str:
        before = _histogram_table(program, "dist")
        run(f"dd if=/dev/zero of=/dev/null bs={size} count={blocks} status=none")
        after = _histogram_table(program, "dist")
        if len(after) == 0 or int(after["count"].sum() if "count" in after else 0) == 0:
            raise Wrong(f"the histogram dist stayed empty while dd read {blocks} blocks of "
                        f"{size} bytes: add one to the bucket of each read's requested size "
                        "(the bucket is bpf_log2l of the size)")
        if not {"low", "high", "count"} <= set(after.columns):
            raise Wrong("dist should be a BPF_HISTOGRAM (columns low, high, count), columns "
                        f"are {list(after.columns)}")
        grown = bucket(after) - bucket(before)
        _expect_between(grown, blocks, 30,
                        f"dd read {blocks} blocks of {size} bytes but the bucket holding {size} "
                        f"grew by {grown}: the bucket is bpf_log2l() of the requested size",
                        f"dd read {blocks} blocks of {size} bytes but that bucket grew by "
                        f"{grown}: count each read once")
        return f"the bucket holding {size} grew by {grown}"
    return _again(measure)


# --- 02b the verifier ----------------------------------------------------------------------------

def _getppid_child(times: int) -> int:
    return run_python(_python_loop("os.getppid()", times))


@exercise("02b.null_check", program="per_pid", title="check the map value before using it",
          hints=("The verifier's 'map_value_or_null' means: this pointer may be NULL here.",
                 "Only touch *count inside an if (count) { ... }."))
def _null_check(program: Any) -> str:
    times = random.randint(300, 900)
    pid = _getppid_child(times)
    counts = _map_counts(program, "counts",
                         empty="the map counts is empty after a process called getppid")
    if counts.get(pid, 0) != times:
        raise Wrong(f"process {pid} called getppid {times} times but its count is "
                    f"{counts.get(pid, 0)}: add one to the count of the process on every call")
    return f"process {pid} counted {times} getppid calls"


@exercise("02b.last_char", program="last_char", title="a stack index the verifier can bound",
          hints=(("bpf_probe_read_user_str returns the length copied *including* the NUL, or a "
                 "negative error: the verifier knows it can be negative."),
                 ("Return early when the length is too small; then the index has a range the "
                 "verifier can prove is inside the buffer.")))
def _last_char(program: Any) -> str:
    letter, times = random.choice("QJXZ"), random.randint(3, 7)

    def measure() -> str:
        with private_dir() as folder:
            paths = [str(folder / f"{marker('f')}{letter}") for _ in range(times)]
            grown = _growth(program, "counts", lambda: run_python(_OPEN_EACH, *paths),
                            empty="the map counts is empty after files were opened")
        got = grown.get(ord(letter), 0)
        _expect_between(got, times, 2,
                        f"{times} file names ending in {letter!r} were opened but the count of "
                        f"{letter!r} ({ord(letter)}) grew by {got} (keys that grew: "
                        f"{sorted(grown)[:10]}): the last character is just before the NUL",
                        f"{times} names ending in {letter!r} were opened, its count grew by {got}")
        return f"{times} names ending in {letter!r} counted"
    return _again(measure)


_SPAWN_FROM_THREAD = """
import subprocess, sys, threading
def spawn():
    subprocess.run([sys.executable, "-c", "import os; print(os.getpid()); os.getppid()"],
                   stdout=open(sys.argv[1], "w"), check=True)
    with open(sys.argv[2], "w") as f:
        f.write(str(threading.get_native_id()))
worker = threading.Thread(target=spawn)
worker.start()
worker.join()
"""


@exercise("02b.parent", program="parents", title="read kernel memory the verified way",
          hints=(("In a tracing program a kernel pointer is just a number to the verifier: it "
                 "cannot be dereferenced with ->."),
                 "BPF_CORE_READ(task, a, b) follows task->a->b with checked reads."))
def _parent(program: Any) -> str:
    with private_dir() as folder:
        child_file, spawner_file = folder / "child", folder / "spawner"
        parent = run_python(_SPAWN_FROM_THREAD, str(child_file), str(spawner_file))
        if not child_file.exists() or not spawner_file.exists():
            raise Wrong("the check's own trigger did not run; run it again")
        child, spawner = int(child_file.read_text()), int(spawner_file.read_text())
    table = _map_counts(program, "parent",
                        empty="the map parent is empty after a process called getppid")
    if child not in table:
        raise Wrong(f"process {child} called getppid but has no row: the key is its pid")
    got = table[child]
    if got != parent:
        why = " (the id of the parent's *thread*: use the tgid)" if got == spawner else ""
        raise Wrong(f"process {child}'s parent is process {parent}, your map says {got}{why}")
    return f"process {child}: parent {parent}, read with BPF_CORE_READ"


@exercise("02b.slashes", program="depth", title="a loop the verifier can prove ends",
          hints=(("The verifier follows the loop one iteration at a time: what stops it when "
                 "no NUL byte comes before the end of the buffer?"),
                 "Give the loop a constant upper bound: the size of the buffer."))
def _slashes(program: Any) -> str:
    levels, times = random.randint(8, 11), random.randint(3, 6)

    def measure() -> str:
        with private_dir() as folder:
            base = str(folder)
            path = base + "/a" * (levels - base.count("/"))
            cat = shlex.join(["cat", *[path] * times]) + " 2>/dev/null; true"  # cat opens few
            grown = _growth(program, "depth", lambda: run(cat),
                            empty="the map depth is empty after files were opened")
        got = grown.get(levels, 0)
        _expect_between(got, times, 2,
                        f"{path} ({levels} slashes, {len(path)} characters) was opened {times} "
                        f"times but the count of {levels} grew by {got} (keys that grew: "
                        f"{sorted(grown)[:10]}): count every '/' up to the end of the name",
                        f"a name with {levels} slashes was opened {times} times, the count "
                        f"grew by {got}")
        return f"{times} opens of a name with {levels} slashes counted"
    return _again(measure)


# --- 03 perf and ring buffers --------------------------------------------------------------------

def _cat_pid(paths: list[str], out: dict[str, int]) -> Callable[[], None]:
    def start() -> None:
        proc = subprocess.Popen(["cat", *paths], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        out["pid"] = proc.pid
        proc.wait(timeout=30)
    return start


@exercise("03.openat_events", program="opens", title="send the opened file name in events",
          hints=("Fill every field of the struct on the stack, then submit the whole struct.",
                 ("The file name lives in user memory: copy it into the struct's char array with "
                 "the user-string helper.")))
def _openat_events(program: Any) -> str:
    started: dict[str, int] = {}
    with private_dir() as folder:
        path = str(folder / marker("open"))
        events = program.events("events", seconds=SHORT_READ, trigger=_cat_pid([path], started))
    if len(events) == 0:
        raise NotDone("no event arrived while `cat` opened a file: fill a struct and "
                      "events.perf_submit(args, &data, sizeof(data))")
    columns = str_columns(events)
    hits = [c for c in columns if events[c].str.contains(path, regex=False).any()]
    if not hits:
        raise Wrong(f"{len(events)} events arrived but none holds {path}: copy the whole "
                    f"args->filename into the struct's char array (text columns: {columns})")
    row = events[events[hits[0]].str.contains(path, regex=False)].iloc[0]
    pid = started.get("pid")
    if "pid" in events and pid is not None and int(row["pid"]) != pid:
        raise Wrong(f"the event for {path} says pid {int(row['pid'])} but `cat` was process "
                    f"{pid}")
    names = [str(row[c]) for c in columns if c != hits[0]]
    if "cat" not in names:
        raise Wrong(f"the event for {path} does not carry the command name `cat` (text fields: "
                    f"{names}): fill command with bpf_get_current_comm")
    return f"{len(events)} events, the file name is in column {hits[0]!r}"


def _bursts(calls: int, burst: int) -> str:
    return (f"import os, time\nfor _ in range({calls // burst}):\n"
            f"    for _ in range({burst}): os.getppid()\n    time.sleep(0.002)\n")


@exercise("03.drops", program="tiny", title="a one-page ring buffer that drops events",
          hints=("ringbuf_reserve returns NULL when the ring has no room: that is a drop.",
                 ("An event that was reserved must be submitted (or discarded); a drop is counted "
                 "only when the reservation failed.")))
def _drops(program: Any) -> str:
    calls, burst = 20000, 100  # bursts of 100 overflow the ring, pauses let the reader empty it

    def measure() -> str:
        started: dict[str, int] = {}

        def trigger() -> None:
            started["pid"] = _getppid_child_pid(_bursts(calls, burst))
        events = program.events("events", seconds=3, trigger=trigger)
        pid = started.get("pid", -1)
        dropped = _map_counts(program, "dropped").get(pid, 0)
        ours = int((events.pid == pid).sum()) if "pid" in events else 0
        if ours == 0 and dropped == 0:
            raise NotDone(f"process {pid} called getppid {calls} times: no event and no drop "
                          "for it. Reserve an event on every call, submit it, and count a drop "
                          "under the pid when the reservation fails")
        seen = f"process {pid} called getppid {calls} times: {ours} of its events arrived, " \
               f"{dropped} drops were counted for it"
        if dropped == 0:
            raise Wrong(f"{seen}: is the ring buffer one page, and do you count a drop when "
                        "ringbuf_reserve returns NULL?")
        if ours + dropped > calls:
            raise Wrong(f"{seen}, {ours + dropped - calls} more than calls were made: count a "
                        "drop only when the reservation failed")
        if ours + dropped < calls:
            missing = calls - ours - dropped
            raise (Unsteady if missing <= 16 else Wrong)(  # up to a ring's worth still unread
                f"{seen}, {missing} calls ended as neither: every call is an event or a drop")
        return seen
    return _again(measure)


def _getppid_child_pid(code: str, cpu: int | None = None) -> int:
    command = [sys.executable, "-c", code]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.wait(timeout=60)
    return proc.pid


def _events(program: Any, map_name: str, trigger: Callable[[], None]) -> pd.DataFrame:
    try:
        return program.events(map_name, seconds=SHORT_READ, trigger=trigger)
    except Exception as err:
        raise Wrong(f"could not read {map_name} ({err}): submit every event to both buffers"
                    ) from err


@exercise("03.compare", program="both", title="the same events through perf and ring buffers",
          hints=(("perf_submit takes the context, a pointer and a size; ringbuf_output a pointer, "
                 "a size and flags."),
                 "Submit the very same struct to both, once each."))
def _compare(program: Any) -> str:
    cpus = sorted({0, (os.cpu_count() or 1) - 1})
    calls = 200

    def on_cpus(pids: list[int]) -> Callable[[], None]:
        def start() -> None:
            threads = [threading.Thread(target=lambda c=c: pids.append(
                _getppid_child_pid(_python_loop("os.getppid()", calls), c))) for c in cpus]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        return start

    def measure() -> str:
        perf_pids: list[int] = []
        ring_pids: list[int] = []
        perf = _events(program, "perf_events", on_cpus(perf_pids))
        ring = _events(program, "ring_events", on_cpus(ring_pids))
        if len(perf) == 0 and len(ring) == 0:
            raise NotDone("no event in either buffer: submit each event to perf_events and to "
                          "ring_events")
        for name, frame, pids in (("perf_events", perf, perf_pids),
                                  ("ring_events", ring, ring_pids)):
            for pid in pids:
                mine = frame[frame.pid == pid] if "pid" in frame else frame.iloc[0:0]
                seen = f"process {pid} called getppid {calls} times and {name} received " \
                       f"{len(mine)} of its events"
                if len(mine) < calls:  # other programs' bursts can fill a shared buffer
                    raise Unsteady(f"{seen}: submit every event to both buffers")
                if len(mine) > calls:  # the events are this process's own: no one else's
                    raise Wrong(f"{seen}: submit each event once")
                if not mine.time_ns.is_monotonic_increasing:
                    raise Wrong(f"{name}: the events of process {pid} are not in time order")
        got_cpus = sorted({int(c) for c, p in zip(perf.cpu, perf.pid) if p in perf_pids})
        return (f"each process's {calls} events arrived once in each buffer, in time order; "
                f"perf events came from CPUs {got_cpus}")
    return _again(measure)


# --- 04 function calls ---------------------------------------------------------------------------

def _listing_text(program: Any) -> str:
    listing = program.instructions()
    if isinstance(listing, pd.DataFrame):
        return "\n".join(map(str, listing.get("instruction", listing.to_string().splitlines())))
    return str(listing)


@exercise("04.subprogram", program="calls", title="a real BPF-to-BPF call",
          hints=("`static __always_inline` asks clang to paste the function into its caller.",
                 "The opposite attribute keeps the function a separate subprogram."))
def _subprogram(program: Any) -> str:
    if "call pc" not in _listing_text(program):
        raise Wrong("no `call pc+N` in the translated instructions: the function was inlined; "
                    "declare it so that clang keeps it a separate function")
    high, low = syscall_number("getppid"), syscall_number("lseek")  # classes 1 and 0 here
    if not low < 64 <= high:
        raise RuntimeError(f"getppid ({high}) and lseek ({low}) are not in classes 1 and 0")
    times = 100_000

    def grown_by(call: str) -> dict[int, int]:
        before = _map_counts(program, "classes")
        run_python(_python_loop(call, times))
        after = _map_counts(program, "classes")
        return {c: after.get(c, 0) - before.get(c, 0) for c in (0, 1)}

    def measure() -> str:
        # The counters count every process's syscalls. Two runs, one of each class, differ by
        # 2 * times in the contrast below when classify is right, whatever the rest of the
        # machine does at a steady rate: its calls add to both runs alike.
        high_run, low_run = grown_by("os.getppid()"), grown_by("os.lseek(0, 0, 1)")
        contrast = (high_run[1] - high_run[0]) - (low_run[1] - low_run[0])
        seen = (f"{times} getppid calls (syscall {high}) grew class 0 by {high_run[0]} and "
                f"class 1 by {high_run[1]}; {times} lseek calls (syscall {low}) grew class 0 by "
                f"{low_run[0]} and class 1 by {low_run[1]}")
        fix = "classify must still return 0 below 64 and 1 otherwise"
        if high_run[1] < times or low_run[0] < times or contrast <= 0:
            raise Wrong(f"{seen}: {fix}")
        if contrast < times:
            raise Unsteady(f"{seen}: the rest of the machine made too many syscalls to tell; "
                           f"run the check again when it is quieter ({fix})")
        return f"the instructions contain a BPF-to-BPF call (call pc+N); {seen}"
    return _again(measure)


# --- 05 tail calls -------------------------------------------------------------------------------

def _tail_call_setup(program: Any) -> None:
    """Fill the program array as the lab's own cell does, then attach (both idempotent)."""
    handlers = {syscall_number("execve"): "hello_exec",
                syscall_number("getppid"): "hello_getppid",
                syscall_number("nanosleep"): "hello_timer",
                syscall_number("clock_nanosleep"): "hello_timer"}
    try:
        program.tail_calls("syscall", handlers, default="ignore_opcode")
    except Exception as err:
        raise Wrong(f"could not put your handlers in the program array: {err}") from err
    if not program.attached:
        program.attach()


@exercise("05.getppid", program="dispatch", title="a tail-called handler for getppid",
          hints=(("The handler is a program of its own: it runs instead of the entry program, "
                  "with the same context."),
                 "Count as in lab 2: the key is the process id, the upper 32 bits."))
def _getppid_handler(program: Any) -> str:
    number = syscall_number("getppid")
    _tail_call_setup(program)
    times = random.randint(3, 9)
    pid = _getppid_child(times)
    got = _map_counts(program, "getppid_calls").get(pid, 0)
    if got != times:
        raise Wrong(f"slot {number} holds hello_getppid; process {pid} called getppid {times} "
                    f"times and its count in getppid_calls is {got}: count each call under the "
                    "process id")
    return f"slot {number} runs your handler: process {pid} counted {times} calls"


_SLEEP_BOTH_WAYS = """
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
pause = (ctypes.c_long * 2)(0, 1000000)
for _ in range(int(sys.argv[2])):
    libc.syscall(int(sys.argv[1]), pause, None)
    time.sleep(0.001)
"""


@exercise("05.timer", program="dispatch", title="one handler for the timer syscalls",
          hints=(("The tail-called program receives the entry program's context: the same "
                  "ctx->args as the raw tracepoint."),
                 "Never write an architecture's syscall number in the code: read it."))
def _timer_handler(program: Any) -> str:
    _tail_call_setup(program)
    numbers = {name: syscall_number(name) for name in ("nanosleep", "clock_nanosleep")}
    times = random.randint(3, 6)
    grown = _growth(program, "timer_calls",
                    lambda: run_python(_SLEEP_BOTH_WAYS, str(numbers["nanosleep"]), str(times)))
    for name, number in numbers.items():
        if grown.get(number, 0) < times:
            raise Wrong(f"a process called {name} (syscall {number} here) {times} times but "
                        f"the count of {number} in timer_calls grew by {grown.get(number, 0)} "
                        f"(keys that grew: {sorted(grown)[:8]}): count under the number of the "
                        "syscall the handler was called for")
    return f"both timer syscalls ({numbers}) counted under their own numbers"


# --- 06 CO-RE ------------------------------------------------------------------------------------

_GETPPID_FROM_THREAD = """
import os, sys, threading
worker = threading.Thread(target=os.getppid)
worker.start()
worker.join()
"""


@exercise("06.exe_inode", program="inodes", title="the executable's inode with BPF_CORE_READ",
          hints=("The executable is a file of the task's memory map (mm).",
                 "BPF_CORE_READ takes the pointer and then each field name of the chain."))
def _exe_inode(program: Any) -> str:
    pid = run_python(_GETPPID_FROM_THREAD)  # getppid from a thread that is not the main one
    table = _map_counts(program, "inode_by_pid",
                        empty="inode_by_pid is empty: store the executable's inode under the pid "
                              "in the getppid tracepoint")
    if pid not in table:
        raise Wrong(f"process {pid} called getppid (from a second thread) but has no row: is "
                    "the key the process id, the upper 32 bits of bpf_get_current_pid_tgid()?")
    expected = os.stat(Path(sys.executable).resolve()).st_ino
    if table[pid] != expected:
        raise Wrong(f"the inode stored for process {pid} is {table[pid]}, its executable's is "
                    f"{expected}: follow task->mm->exe_file->f_inode->i_ino")
    return f"inode {expected} of process {pid}'s executable, read with CO-RE"


def _kernel_version() -> int:
    """``LINUX_KERNEL_VERSION`` as libbpf computes it (Ubuntu's version signature, Debian's
    ``uname -v``, then the release)."""
    from ..core.kernel_version import expected_kernel_version
    return expected_kernel_version().code


def _config_hz() -> int:
    """CONFIG_HZ from the kernel's config (0 when no config file is readable, as libbpf)."""
    import gzip
    for path in (Path("/proc/config.gz"), Path(f"/boot/config-{os.uname().release}")):
        try:
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else \
                path.read_bytes()
        except OSError:
            continue
        match = re.search(rb"^CONFIG_HZ=(\d+)$", raw, re.MULTILINE)
        return int(match.group(1)) if match else 0
    return 0


@exercise("06.kernel_facts", program="kernel_facts",
          title="Kconfig externs and struct flavors with bpf_core_field_exists",
          hints=(("A Kconfig extern is declared like a global, `extern TYPE NAME __kconfig;`, "
                  "and libbpf fills it in at load time."),
                 ("Two flavors, task_struct___new { unsigned int __state; } and "
                  "task_struct___old { long state; }: cast the task to the one "
                  "bpf_core_field_exists says exists, read it with BPF_CORE_READ.")))
def _kernel_facts(program: Any) -> str:
    os.getppid()
    facts = _map_counts(program, "facts")
    if not any(facts.values()):
        raise NotDone("every slot of facts is 0 after a getppid call: fill them in "
                      "record_facts")
    version, hz = _kernel_version(), _config_hz()
    renamed = version >= (5 << 16) + (14 << 8)
    expected = {0: version, 1: hz, 2: 1 if renamed else 2, 3: 0}
    names = {0: "LINUX_KERNEL_VERSION", 1: "CONFIG_HZ",
             2: "the task state field's name (1: __state, 2: state)",
             3: "the state of the calling task (running: 0)"}
    for slot, value in expected.items():
        if facts.get(slot, 0) != value:
            raise Wrong(f"slot {slot} should be {names[slot]} = {value} on this kernel "
                        f"({os.uname().release}), it is {facts.get(slot, 0)}")
    field = "__state" if renamed else "state"
    return f"version {version:#x}, HZ {hz}, the state field is {field} here"


@exercise("06.one_user", program="one_user", title="a read-only global set before load",
          hints=("The global is an ordinary variable for the program's C: compare with it.",
                 "The uid is the lower 32 bits of bpf_get_current_uid_gid()."))
def _one_user(program: Any) -> str:
    from ..core import CoreProgram
    uid, gid = other_user()
    other, _ = other_user()
    mine, theirs = random.sample(range(2, 7), 2)
    try:  # the check's own copy, with its own uid: whatever -G the cell used
        copy = CoreProgram(program.source, f"{program.name}_check", globals={"wanted_uid": uid})
    except Exception as err:
        raise Wrong(f"your program could not be loaded with wanted_uid={uid}: {err}") from err
    try:
        def measure() -> str:
            commands = ([as_user("/bin/true", uid, gid)] * mine
                        + [as_user("/bin/true", other, uid)] * theirs + ["/bin/true"])
            before = _map_counts(copy, "execs").get(0, 0)
            run("; ".join(commands))
            got = _map_counts(copy, "execs").get(0, 0) - before
            seen = (f"with wanted_uid={uid}: {mine} commands ran as uid {uid} (gid {gid}), "
                    f"{theirs} as uid {other} (gid {uid}) and some as root; slot 0 grew by {got}")
            _expect_exactly(got, mine, f"{seen}: count exactly the commands whose *uid* is "
                                       "wanted_uid")
            return seen
        return _again(measure)
    finally:
        copy.detach()


# --- the book's end-of-chapter exercises -----------------------------------------------------------

@exercise("02.uid_syscalls", program="per_user", title="every syscall, counted per user id",
          hints=("The hook is exercise 3's; the key is exercise 1's.",
                 "BCC's increment adds one to the key's count, creating it at 0."))
def _uid_syscalls(program: Any) -> str:
    uid, gid = other_user()
    size = random.randint(2000, 4000)  # dd bs=1: one read and one write per byte
    dd = f"dd if=/dev/zero of=/dev/null bs=1 count={size} status=none"

    def measure() -> str:
        grown = _growth(program, "counter_table", lambda: run(as_user(dd, uid, gid)),
                        empty="counter_table is empty: count every sys_enter under the uid")
        got = grown.get(uid, 0)
        seen = (f"uid {uid} (gid {gid}) ran dd, which made {2 * size} reads and writes plus its "
                f"start-up; uid {uid}'s row grew by {got}")
        also = f" (gid {gid} has a row)" if gid in grown else ""
        _expect_between(got, 2 * size, 500,
                        f"{seen}{also}: count every syscall under the uid, the lower 32 bits",
                        f"{seen}: count each syscall once")
        return seen
    return _again(measure)


def _exec_from(pids: list[int]) -> Callable[[], None]:
    """Start ``/bin/true`` until both an odd and an even process id have called execve."""
    def start() -> None:
        for _ in range(40):
            proc = subprocess.Popen(["/bin/true"])
            proc.wait(timeout=30)
            pids.append(proc.pid)
            if len({p % 2 for p in pids}) == 2 and len(pids) >= 4:
                return
    return start


@exercise("03.odd_even", program="hello_buffer", title="different messages for odd and even pids",
          hints=("The parity of a number n is n % 2.",
                 ("Copy the right message with bpf_probe_read_kernel(&data.message, size, "
                 "source), the size of the source string.")))
def _odd_even(program: Any) -> str:
    pids: list[int] = []
    events = program.events("output", seconds=SHORT_READ, trigger=_exec_from(pids))
    if len(events) == 0:
        raise NotDone("no event arrived while programs started")
    if "pid" not in events or "message" not in events:
        raise Wrong(f"the events should have the fields pid and message, they have "
                    f"{list(events.columns)}")
    ours = events[events.pid.isin(pids)]
    if len(ours) < len(pids):
        raise Wrong(f"{len(pids)} programs started (pids {pids}) but only {len(ours)} of their "
                    "events arrived: submit one event on every execve")
    for pid, message in zip(ours.pid, ours.message):
        expected = "even pid" if pid % 2 == 0 else "odd pid"
        if str(message) != expected:
            raise Wrong(f"process {pid} is {expected.split()[0]}: its message should be "
                        f"{expected!r}, it is {message!r}")
    return f"{len(ours)} events, odd and even pids with the right message"
