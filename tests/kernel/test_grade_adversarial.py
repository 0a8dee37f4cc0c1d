"""An adversarial class graded on the real kernel (``ebpf-nb labs grade --on-host``).

Next to the real solutions (full marks) and the untouched labs (0), each student tries one
attack: stored "pass" outputs in an empty and in a skip-execution cell, a raw display of the
check's MIME type, invented exercise ids, a payload without "exercise", malformed metadata,
a file that is not a notebook, a shadowing ``pandas.py``, a redefined ``check`` and a
monkeypatched checker, a daemon that outlives its notebook and rewrites the CSV, a notebook
that never ends, one that allocates memory without end, a symlinked submission and folder, a
symlinked ``grades.csv``, a student name starting with ``=``. Every attack must end at 0 or
as an error row, the CSV complete and intact, no attacker code run (their marker files never
appear), and every program the grading loaded gone afterwards (``bpftool``).
"""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import nbformat
import pandas as pd
from nbformat.v4 import new_code_cell, new_output

from ebpf_nb.cli import main
from ebpf_nb.labs.answers import canonical_labs
from ebpf_nb.labs.checks import MIME_TYPE
from ebpf_nb.labs.grade import run_job

LABS = Path(__file__).resolve().parents[2] / "labs"
TARGET = "04_function_calls"  # the attacks' lab: one quick CO-RE check
LEAKY_LAB = "06_core"
LEAK_PROGRAM = "gradeleak_probe"  # an extra program in one answer: must be gone after grading
FORGED = {"exercise": "04.subprogram", "status": "pass", "message": "forged"}


def _untouched() -> nbformat.NotebookNode:
    return nbformat.read(LABS / TARGET / "lab.ipynb", as_version=4)


def _write(nb: nbformat.NotebookNode, folder: Path, name: str = f"{TARGET}.ipynb") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / name)
    return folder / name


def _stored_pass(source: str, tags: list[str] | None = None) -> nbformat.NotebookNode:
    cell = new_code_cell(source, execution_count=7,
                         outputs=[new_output("display_data", data={MIME_TYPE: FORGED,
                                                                   "text/plain": "pass"})])
    if tags:
        cell.metadata["tags"] = tags
    return cell


def _with_cells(*cells: nbformat.NotebookNode, first: bool = False) -> nbformat.NotebookNode:
    nb = _untouched()
    nb.cells = [*cells, *nb.cells] if first else [*nb.cells, *cells]
    return nb


def _solution_with_leak_probe() -> nbformat.NotebookNode:
    """The CO-RE lab's solution with one more program in its answer (its check reads a map,
    so the extra program does not change the verdict)."""
    nb = nbformat.read(LABS / LEAKY_LAB / "solution.ipynb", as_version=4)
    answer = next(c for c in nb.cells if c.source.startswith("%%bpf inodes"))
    answer.source += ('\n\nSEC("raw_tracepoint/sys_enter")\n'
                      f"int {LEAK_PROGRAM}(void *ctx) {{ return 0; }}\n")
    return nb


def build_class(root: Path, markers: Path, *, idle: bool = True) -> Path:
    """The class folder: solutions, untouched labs (unless ``idle`` is false) and one attack
    per student."""
    class_dir = root / "class"
    for lab in sorted(LABS.glob("*/solution.ipynb")):
        (class_dir / "solver").mkdir(parents=True, exist_ok=True)
        shutil.copy(lab, class_dir / "solver" / f"{lab.parent.name}.ipynb")
        if idle:
            (class_dir / "idle").mkdir(parents=True, exist_ok=True)
            shutil.copy(lab.parent / "lab.ipynb", class_dir / "idle" / f"{lab.parent.name}.ipynb")

    # one notebook holds every forgery (any one that worked would show as a pass)
    redefined = new_code_cell(
        "from IPython.display import display\n"
        f"open({str(markers / 'check_ran')!r}, 'w').write('x')\n"
        "import ebpf_nb.labs.checks as checks\n"
        "checks.run_check = lambda *a, **k: checks.CheckResult('04.subprogram', 'pass', 'x')\n"
        f"def check(*args, **kwargs):\n    display({{{MIME_TYPE!r}: {json.dumps(FORGED)}}}, "
        "raw=True)\n")
    raw_display = new_code_cell(
        "from IPython.display import display\n"
        f"display({{{MIME_TYPE!r}: {json.dumps(FORGED)}}}, raw=True)")
    invented, no_id = _stored_pass(""), _stored_pass("")
    invented.outputs[0].data[MIME_TYPE] = {**FORGED, "exercise": "99.bonus"}
    del no_id.outputs[0].data[MIME_TYPE]["exercise"]
    forger = _with_cells(redefined, first=True)
    forger.cells += [_stored_pass(""), _stored_pass('check("04.subprogram")', ["skip-execution"]),
                     raw_display, invented, no_id]
    forger.metadata["ebpf_nb"]["exercises"] = ["04.subprogram", "99.bonus", "98.extra"]
    _write(forger, class_dir / "forger")

    bad_meta = _untouched()
    bad_meta.metadata["ebpf_nb"] = "evil"
    _write(bad_meta, class_dir / "bad_metadata")
    (class_dir / "not_json").mkdir()
    (class_dir / "not_json" / f"{TARGET}.ipynb").write_text("{ this is not json")

    # one notebook holds every attack on the machine, each leaving a marker if it ever ran
    csv_path = class_dir / "grades.csv"
    saboteur = _with_cells(new_code_cell("import pandas"), new_code_cell(
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        f"    open({str(markers / 'daemon_ran')!r}, 'w').write('x')\n"
        "    for _ in range(60):\n"
        "        time.sleep(0.5)\n"
        f"        open({str(csv_path)!r}, 'w').write('student,points\\nmallory,999\\n')\n"
        "    os._exit(0)\n"), new_code_cell(
        f"open({str(markers / 'bomb_ran')!r}, 'w').write('x')\n"
        "hoard = []\nwhile True:\n    hoard.append(bytearray(1 << 26))"), new_code_cell(
        f"open({str(markers / 'loop_ran')!r}, 'w').write('x')\nwhile True:\n    pass"),
        first=True)
    folder = _write(saboteur, class_dir / "saboteur").parent
    (folder / "pandas.py").write_text(
        f"open({str(markers / 'shadow_ran')!r}, 'w').write('x')\n")
    (folder / "ebpf_nb").mkdir()
    (folder / "ebpf_nb" / "__init__.py").write_text(
        f"open({str(markers / 'shadow_kit_ran')!r}, 'w').write('x')\n")

    _write(_solution_with_leak_probe(), class_dir / "leaky_solver", f"{LEAKY_LAB}.ipynb")
    _write(_untouched(), class_dir / '=HYPERLINK("evil.example")')

    outside = root / "outside"
    outside.mkdir()
    shutil.copy(LABS / TARGET / "solution.ipynb", outside / f"{TARGET}.ipynb")
    (class_dir / "linked_file").mkdir()
    (class_dir / "linked_file" / f"{TARGET}.ipynb").symlink_to(outside / f"{TARGET}.ipynb")
    (class_dir / "linked_folder").symlink_to(outside)
    (root / "victim.csv").write_text("keep me\n")
    csv_path.symlink_to(root / "victim.csv")
    return class_dir


def check_grades(class_dir: Path, root: Path, labs: dict, markers: Path, *,
                 idle: bool = True) -> int:
    """The CSV of the class built by :func:`build_class` (with the same ``idle``) is complete
    and intact, and every attack got 0 or an error row; returns how many notebooks were run."""
    time.sleep(2)  # a daemon, had one started, rewrites the CSV every 0.5 s
    csv_path = class_dir / "grades.csv"
    assert not csv_path.is_symlink() and (root / "victim.csv").read_text() == "keep me\n"
    assert sorted(p.name for p in markers.iterdir()) == [], "student Python was run"

    with csv_path.open(newline="") as handle:
        raw = list(csv.reader(handle))
    assert raw[0] == ["student", "notebook", "exercise", "status", "points", "feedback"]
    for row in raw[1:]:
        assert len(row) == 6
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row
    grades = pd.read_csv(csv_path, keep_default_na=False)
    by_student = {s: g for s, g in grades.groupby("student")}
    graded = len(grades[grades.status != "error"][["student", "notebook"]].drop_duplicates())

    everything = [e for lab in labs.values() for e in lab.exercises]
    solver = by_student.pop("solver")
    assert sorted(solver.exercise) == sorted(everything)
    assert (solver.status == "pass").all(), solver[solver.status != "pass"].to_string()
    if idle:
        untouched = by_student.pop("idle")
        assert sorted(untouched.exercise) == sorted(everything) and untouched.points.sum() == 0
        assert (untouched.status == "not done").all(), untouched[untouched.status != "not done"].to_string()
    else:
        assert "idle" not in by_student

    leaky = by_student.pop("leaky_solver")
    assert list(leaky.exercise) == list(labs[LEAKY_LAB].exercises)
    assert (leaky.status == "pass").all(), leaky.feedback.to_string()

    errors = {"bad_metadata": "metadata.ebpf_nb is not a mapping", "not_json": "not JSON",
              "linked_file": "is a symbolic link", "linked_folder": "symbolic link to a folder"}
    for student, why in errors.items():
        rows = by_student.pop(student)
        assert list(rows.status) == ["error"] and rows.points.sum() == 0
        assert why in rows.feedback.iloc[0]

    formula = by_student.pop("'=HYPERLINK(\"evil.example\")")
    assert list(formula.points) == [0]
    assert set(by_student) == {"forger", "saboteur"}
    for student, rows in by_student.items():
        assert list(rows.exercise) == ["04.subprogram"], (student, rows.to_string())
        assert list(rows.status) == ["not done"], (student, rows.feedback.iloc[0])
        assert rows.points.sum() == 0
    return graded


def _programs() -> set[str]:
    done = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True,
                          check=True)
    return {p.get("name", "") for p in json.loads(done.stdout or "[]")}


class ProgramWatch(threading.Thread):
    """Polls ``bpftool prog show`` while the grader runs: was LEAK_PROGRAM ever loaded?"""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.seen = False
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and not self.seen:
            self.seen = LEAK_PROGRAM in _programs()
            time.sleep(0.2)


def test_an_adversarial_class_is_graded_correctly(tmp_path: Path, capsys) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    labs = canonical_labs(LABS)  # what the class was built from
    class_dir = build_class(tmp_path, markers)
    assert LEAK_PROGRAM not in _programs()
    watch = ProgramWatch()
    watch.start()
    started = time.monotonic()
    try:
        assert main(["labs", "grade", str(class_dir), "--on-host", "--timeout", "300"]) == 0
    finally:
        watch.stop.set()
        watch.join(timeout=30)
    took = time.monotonic() - started
    assert watch.seen, "the leak probe never loaded: the test could not see a leak"

    deadline = time.monotonic() + 30  # the kernel frees programs after an RCU grace period
    while LEAK_PROGRAM in _programs():
        assert time.monotonic() < deadline, "a program loaded by the grading outlived it"
        time.sleep(0.2)

    graded = check_grades(class_dir, tmp_path, labs, markers)
    with capsys.disabled():
        print(f"\ngraded the adversarial class in {took:.0f} s: {graded} notebooks run, "
              f"{took / graded:.1f} s each")
    assert "wrote" in capsys.readouterr().out


LEAK_CORE = """#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
SEC("raw_tracepoint/sys_enter")
int gradeleak_probe(void *ctx) { return 0; }
"""


def _sleepers(seconds: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and \
                    (proc / "cmdline").read_bytes() == f"sleep\0{seconds}\0".encode():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_the_time_limit_kills_the_whole_grading_and_unloads_its_programs() -> None:
    """A grading process past its limit is killed with everything it started: a program it
    loaded is unloaded, a child process it left is gone."""
    job = {"lab": "test", "steps": [
        {"kind": "run", "source": "%load_ext ebpf_nb"},
        {"kind": "bpf", "source": "leak --core", "name": "leak", "body": LEAK_CORE},
        {"kind": "run", "source": "import subprocess, time\n"
                                  "subprocess.Popen(['sleep', '6173'])\ntime.sleep(600)"},
    ]}
    watch = ProgramWatch()
    watch.start()
    started = time.monotonic()
    try:
        verdicts, stopped = run_job(job, timeout=20, memory_mb=4096)
    finally:
        watch.stop.set()
        watch.join(timeout=30)
    assert 19 < time.monotonic() - started < 120
    assert verdicts == [] and stopped == "grading stopped: the submission took longer than 20 s"
    assert watch.seen, "the program never loaded: the test could not see a leak"
    deadline = time.monotonic() + 30
    while LEAK_PROGRAM in _programs() or _sleepers("6173"):
        assert time.monotonic() < deadline, "the killed grading left a program or a process"
        time.sleep(0.2)


def test_the_memory_limit_stops_a_submission_with_a_clear_reason(tmp_path: Path) -> None:
    class_dir = tmp_path / "class"
    _write(_untouched(), class_dir / "big")
    assert main(["labs", "grade", str(class_dir), "--on-host", "--memory", "200"]) == 0
    rows = pd.read_csv(class_dir / "grades.csv")
    assert list(rows.status) == ["not run"] and rows.points.sum() == 0
    assert "memory limit (200 MiB)" in rows.feedback.iloc[0]
