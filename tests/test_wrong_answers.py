"""Every exercise's check passes its solution and rejects known-wrong answers, on the real kernel.

Each wrong answer is the solution's ``%%bpf`` cell (from ``labs/*/solution.ipynb``) with one
small edit: ``(exercise, variant, old text, new text, what the feedback must say)``. The
variant is loaded like a student's cell, its check is run, and the check must say "not right
yet" *for the expected reason* (so a check that fails for an unrelated cause, such as a busy
trace pipe, does not count as rejecting the answer). The solution itself must pass.
"""
from __future__ import annotations

import random
import re
import time
from pathlib import Path

import nbformat
import pytest

from ebpf_nb.labs.checks import EXERCISES, FAIL, PASS, _load_exercises, run_check

ROOT = Path(__file__).resolve().parents[1]
BUSY = "already being read"  # another reader holds the trace pipe: measure again
BUSY_WAIT = 90.0  # seconds to wait for the trace pipe before giving up

# (exercise, variant, old, new, expected fragment of the feedback)
WRONG = [
    # 01 hello world
    ("01.pid_comm", "thread id", "bpf_get_current_pid_tgid() >> 32",
     "(u32)bpf_get_current_pid_tgid()",
     "id of the thread"),
    ("01.pid_comm", "pid_tgid unshifted", "bpf_get_current_pid_tgid() >> 32",
     "bpf_get_current_pid_tgid()", "id of the thread"),
    ("01.pid_comm", "no command name", 'bpf_trace_printk("pid %d comm %s", pid, comm);',
     'bpf_trace_printk("pid %d", pid);', "command name"),
    ("01.openat", "kernel read of a user pointer", "bpf_probe_read_user_str",
     "bpf_probe_read_kernel_str",
     "no line shows that file name"),
    ("01.openat", "buffer too small", "char name[64];", "char name[16];", "too small"),
    # 02 maps
    ("02.per_uid", "counts the gid", "bpf_get_current_uid_gid() & 0xFFFFFFFF",
     "bpf_get_current_uid_gid() >> 32", "the key must be the uid"),
    ("02.per_uid", "writes 1", "count++;", "count = 1;", "add one"),
    ("02.per_uid", "unmasked uid_gid", "bpf_get_current_uid_gid() & 0xFFFFFFFF",
     "bpf_get_current_uid_gid()", "larger than 32 bits"),
    ("02.per_comm", "writes 1", "counts.increment(key);",
     "u64 one = 1; counts.update(&key, &one);", "its count is 1"),
    ("02.per_comm", "counts twice", "counts.increment(key);",
     "counts.increment(key); counts.increment(key);", "add one to its counter"),
    ("02.per_syscall", "keyed by the registers", "u64 nr = ctx->args[1];",
     "u64 nr = ctx->args[0];", "is the key the syscall number"),
    ("02.per_syscall", "counts twice", "counts.increment(nr);",
     "counts.increment(nr); counts.increment(nr);", "count each call once"),
    ("02.array", "swapped slots", "int slot = uid == 0 ? 0 : 1;", "int slot = uid == 0 ? 1 : 0;",
     "slot 0 is for uid 0"),
    ("02.array", "increments both", "counts.increment(slot);",
     "counts.increment(0); counts.increment(1);", "only commands of users other than root"),
    ("02.array", "tests the gid", "u32 uid = bpf_get_current_uid_gid() & 0xFFFFFFFF;",
     "u32 uid = bpf_get_current_uid_gid() >> 32;", "slot 0 is for uid 0"),
    ("02.histogram", "linear, not log2", "dist.increment(bpf_log2l(args->count));",
     "dist.increment(args->count);", "bucket is bpf_log2l"),
    ("02.histogram", "one bucket too far", "dist.increment(bpf_log2l(args->count));",
     "dist.increment(bpf_log2l(args->count) + 1);", "bucket is bpf_log2l"),
    ("02.uid_syscalls", "counts the gid", "bpf_get_current_uid_gid() & 0xFFFFFFFF",
     "bpf_get_current_uid_gid() >> 32", "count every syscall under the uid"),
    ("02.uid_syscalls", "writes 1", "counter_table.increment(uid);",
     "u64 one = 1; counter_table.update(&uid, &one);", "count every syscall under the uid"),
    # 02b the verifier
    ("02b.null_check", "sets instead of adding", "(*count)++;\n    // STUB",
     "*count = 1;\n    // STUB",
     "add one"),
    ("02b.null_check", "adds two", "(*count)++;\n    // STUB", "(*count) += 2;\n    // STUB",
     "add one"),
    ("02b.last_char", "reads the NUL", "u8 last = name[len - 2];", "u8 last = name[len - 1];",
     "just before the NUL"),
    ("02b.last_char", "first character", "u8 last = name[len - 2];", "u8 last = name[0];",
     "just before the NUL"),
    ("02b.parent", "own pid", "BPF_CORE_READ(task, real_parent, tgid)", "BPF_CORE_READ(task, tgid)",
     "parent is process"),
    ("02b.parent", "parent thread id", "BPF_CORE_READ(task, real_parent, tgid)",
     "BPF_CORE_READ(task, real_parent, pid)", "parent's *thread*"),
    ("02b.slashes", "bound too small", "i < sizeof(name) &&", "i < 16 &&", "count every '/'"),
    ("02b.slashes", "counts characters", "if (name[i] == '/')", "if (name[i])", "count every '/'"),
    # 03 buffers
    ("03.openat_events", "kernel read of a user pointer", "bpf_probe_read_user_str",
     "bpf_probe_read_kernel_str", "none holds"),
    ("03.openat_events", "no command name",
     "bpf_get_current_comm(&event.command, sizeof(event.command));", "", "command name"),
    ("03.openat_events", "uid as pid", "event.pid = bpf_get_current_pid_tgid() >> 32;",
     "event.pid = bpf_get_current_uid_gid();", "but `cat` was process"),
    ("03.drops", "a drop on every event", "    event->pid = pid;",
     "    dropped.increment(pid);\n    event->pid = pid;", "count a drop only when"),
    ("03.drops", "no drop counted", "dropped.increment(pid);", "", "count a drop when"),
    ("03.compare", "perf only", "ring_events.ringbuf_output(&event, sizeof(event), 0);", "",
     "submit every event to both buffers"),
    ("03.compare", "ring twice", "ring_events.ringbuf_output(&event, sizeof(event), 0);",
     ("ring_events.ringbuf_output(&event, sizeof(event), 0);\n"
     "    ring_events.ringbuf_output(&event, sizeof(event), 0);"), "submit each event once"),
    ("03.compare", "skips some events", "perf_events.perf_submit(ctx, &event, sizeof(event));",
     "if (event.time_ns & 1) perf_events.perf_submit(ctx, &event, sizeof(event));",
     "submit every event to both buffers"),
    ("03.odd_even", "swapped", "if (data.pid % 2 == 0)", "if (data.pid % 2 == 1)",
     "its message should be"),
    ("03.odd_even", "parity of the uid", "if (data.pid % 2 == 0)", "if (data.uid % 2 == 0)",
     "its message should be"),
    # 04 function calls
    ("04.subprogram", "inlined", "static __noinline u32 classify(u64 nr)\n",
     "static __always_inline u32 classify(u64 nr)\n", "function was inlined"),
    ("04.subprogram", "call kept, classes swapped", "return nr < 64 ? 0 : 1;",
     "return nr < 64 ? 1 : 0;", "classify must still return"),
    # 05 tail calls
    ("05.getppid", "handler does nothing", "getppid_calls.increment(pid);", "",
     "count each call under the process id"),
    ("05.getppid", "entry calls a fixed slot", "syscall.call(ctx, opcode);",
     "syscall.call(ctx, 0);", "count each call under the process id"),
    ("05.timer", "hard-coded number", "timer_calls.increment(opcode);",
     "u64 fixed = 230; timer_calls.increment(fixed);", "count under the number of the syscall"),
    ("05.timer", "keyed by the registers", "u64 opcode = ctx->args[1];",
     "u64 opcode = ctx->args[0];", "count under the number of the syscall"),
    ("05.timer", "counts nothing", "timer_calls.increment(opcode);", "",
     "count under the number of the syscall"),
    # 06 CO-RE
    ("06.exe_inode", "thread id as key", "u32 pid = bpf_get_current_pid_tgid() >> 32;",
     "u32 pid = bpf_get_current_pid_tgid();", "has no row"),
    ("06.exe_inode", "inode of the working directory",
     "BPF_CORE_READ(task, mm, exe_file, f_inode, i_ino)",
     "BPF_CORE_READ(task, fs, pwd.dentry, d_inode, i_ino)", "follow task->mm"),
    ("06.kernel_facts", "flavors swapped", "        set(2, 1);\n", "        set(2, 2);\n",
     "the task state field's name"),
    ("06.kernel_facts", "HZ hard-coded", "set(1, CONFIG_HZ);", "set(1, 1000);", "CONFIG_HZ"),
    ("06.kernel_facts", "version shifted", "set(0, LINUX_KERNEL_VERSION);",
     "set(0, LINUX_KERNEL_VERSION >> 8);", "LINUX_KERNEL_VERSION"),
    ("06.one_user", "compares the gid", "u32 uid = bpf_get_current_uid_gid();",
     "u32 uid = bpf_get_current_uid_gid() >> 32;", "whose *uid* is wanted_uid"),
    ("06.one_user", "no filter", "    if (uid != wanted_uid)\n        return 0;\n", "",
     "whose *uid* is wanted_uid"),
]


def _answer_cells() -> dict[tuple[str, str], str]:
    """``(lab number, program name) -> %%bpf cell`` of every solution notebook."""
    cells = {}
    for path in sorted((ROOT / "labs").glob("*/solution.ipynb")):
        lab = path.parent.name.split("_")[0]
        for cell in nbformat.read(path, as_version=4).cells:
            match = re.match(r"%%bpf\s+(\w+)", cell.source)
            if cell.cell_type == "code" and match:
                cells[(lab, match.group(1))] = cell.source
    return cells


def _solution_of(exercise_id: str) -> str:
    _load_exercises()
    lab, program = exercise_id.split(".")[0], EXERCISES[exercise_id].program
    return _answer_cells()[(lab, program)]


def _strip_markers(source: str) -> str:
    """The solution as a student would write it: markers and stub lines removed."""
    return "\n".join(line for line in source.splitlines()
                     if not re.match(r"\s*//\s*(BEGIN SOLUTION|END SOLUTION|STUB:)", line))


@pytest.fixture(scope="module")
def shell():
    from IPython.core.interactiveshell import InteractiveShell
    ipython = InteractiveShell.instance()
    ipython.run_line_magic("load_ext", "ebpf_nb")
    yield ipython
    ipython.run_line_magic("bpf_detach", "--all")


def _verdict(shell, exercise_id: str, source: str):
    """Load ``source`` as the exercise's cell, run its check (again if the pipe was busy)."""
    name = EXERCISES[exercise_id].program
    result = shell.run_cell(source, silent=True)
    assert result.success, f"{exercise_id}: the cell did not load: {result.error_in_exec!r}"
    try:
        deadline = time.monotonic() + BUSY_WAIT
        verdict = run_check(exercise_id, shell.user_ns[name])
        while BUSY in verdict.message and time.monotonic() < deadline:
            time.sleep(random.uniform(0.5, 2.0))
            verdict = run_check(exercise_id, shell.user_ns[name])
        return verdict
    finally:
        shell.run_line_magic("bpf_detach", name)
        del shell.user_ns[name]


def test_every_exercise_has_wrong_answers() -> None:
    _load_exercises()
    covered = {row[0] for row in WRONG}
    assert covered == set(EXERCISES), f"exercises without wrong answers: {set(EXERCISES) - covered}"
    few = [e for e in EXERCISES if sum(r[0] == e for r in WRONG) < 2]
    assert not few, f"exercises with fewer than two wrong answers: {few}"


@pytest.mark.kernel
@pytest.mark.parametrize("exercise_id", sorted({row[0] for row in WRONG}))
def test_solution_passes(shell, exercise_id: str) -> None:
    verdict = _verdict(shell, exercise_id, _strip_markers(_solution_of(exercise_id)))
    assert verdict.status == PASS, str(verdict)


@pytest.mark.kernel
@pytest.mark.parametrize("exercise_id, variant, old, new, expected", WRONG,
                         ids=[f"{r[0]}-{r[1]}" for r in WRONG])
def test_wrong_answer_is_rejected(shell, exercise_id, variant, old, new, expected) -> None:
    solution = _solution_of(exercise_id)
    assert old in solution, f"{exercise_id} {variant}: {old!r} is not in the solution any more"
    verdict = _verdict(shell, exercise_id, _strip_markers(solution.replace(old, new, 1)))
    assert verdict.status == FAIL, f"{variant}: {verdict}"
    assert expected in verdict.message, f"{variant}: rejected for another reason: {verdict}"


# The verifier lab's student cells start as programs the verifier refuses, for these reasons.
REJECTED = [("per_pid", "map_value_or_null"),
            ("last_char", "invalid variable-offset read from stack"),
            ("parents", "invalid mem access 'scalar'"),
            ("depth", "invalid read from stack")]


@pytest.mark.kernel
@pytest.mark.parametrize("name, reason", REJECTED, ids=[r[0] for r in REJECTED])
def test_verifier_lab_starts_from_a_rejected_program(shell, name: str, reason: str) -> None:
    from ebpf_nb import VerifierError
    student = nbformat.read(ROOT / "labs/02b_verifier/lab.ipynb", as_version=4)
    cell = next(c for c in student.cells if c.source.startswith(f"%%bpf {name}"))
    assert "raises-exception" in cell.metadata.get("tags", [])
    line, body = cell.source.split("\n", 1)
    magics = shell.magics_manager.registry["BpfMagics"]
    with pytest.raises(VerifierError) as caught:
        magics.bpf(line.removeprefix("%%bpf "), body)
    assert reason in caught.value.message and "cell line" in caught.value.message, caught.value
    assert name not in shell.user_ns


@pytest.mark.kernel
def test_a_check_waits_for_the_trace_pipe(shell) -> None:
    """Another reader holding the trace pipe delays a check; it does not fail it."""
    import threading

    from ebpf_nb.tracepipe import TracePipe
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with TracePipe():
            held.set()
            release.wait(timeout=30)
    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(timeout=BUSY_WAIT), "could not take the trace pipe for the test"
        threading.Timer(3.0, release.set).start()
        verdict = _verdict(shell, "01.openat", _strip_markers(_solution_of("01.openat")))
    finally:
        release.set()
        holder.join(timeout=30)
    assert verdict.status == PASS, str(verdict)
