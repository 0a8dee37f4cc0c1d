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
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from wrong_answers import WRONG

from ebpf_nb.labs.checks import EXERCISES, FAIL, PASS, _load_exercises, run_check

ROOT = Path(__file__).resolve().parents[2]
BUSY = "already being read"  # another reader holds the trace pipe: measure again
BUSY_WAIT = 90.0  # seconds to wait for the trace pipe before giving up


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


@pytest.mark.parametrize("exercise_id", sorted({row[0] for row in WRONG}))
def test_solution_passes(shell, exercise_id: str) -> None:
    verdict = _verdict(shell, exercise_id, _strip_markers(_solution_of(exercise_id)))
    assert verdict.status == PASS, str(verdict)


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


# Syscalls of both classes from another process, as a class's other notebooks make them.
NOISE = "import os\nwhile True:\n    os.getppid(); os.lseek(0, 0, 1); os.getpid()\n"


@pytest.mark.parametrize("variant", ["solution", "classes swapped"])
def test_the_subprogram_check_holds_on_a_busy_machine(shell, variant: str) -> None:
    """The counters of 04.subprogram count every process: the check must still pass the
    solution and reject swapped classes while another process makes syscalls of both."""
    source = _strip_markers(_solution_of("04.subprogram"))
    if variant != "solution":
        source = source.replace("return nr < 64 ? 0 : 1;", "return nr < 64 ? 1 : 0;")
    noise = subprocess.Popen([sys.executable, "-c", NOISE], stdin=subprocess.DEVNULL)
    try:
        verdict = _verdict(shell, "04.subprogram", source)
    finally:
        noise.kill()
        noise.wait()
    assert verdict.status == (PASS if variant == "solution" else FAIL), str(verdict)
