"""``ebpf-nb labs grade`` on a class of four: a solution, an untouched student notebook, one
that hangs and one that kills its kernel. Each runs in its own kernel; the CSV has a row per
student per exercise with the feedback text."""
from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell

from ebpf_nb.cli import main

LAB = Path(__file__).resolve().parents[1] / "labs" / "02_maps"
EXERCISES = ["02.per_uid", "02.per_comm", "02.per_syscall", "02.array", "02.histogram"]


def _with_cell_after_check(source: str, check_number: int, target: Path) -> None:
    """The solution with ``source`` run right after its ``check_number``-th check."""
    nb = nbformat.read(LAB / "solution.ipynb", as_version=4)
    checks = [i for i, c in enumerate(nb.cells) if c.source.startswith("check(")]
    nb.cells.insert(checks[check_number - 1] + 1, new_code_cell(source))
    nbformat.write(nb, target)


@pytest.mark.kernel
def test_grades_a_class_with_a_hang_and_a_crash(tmp_path: Path, capsys) -> None:
    shutil.copy(LAB / "solution.ipynb", tmp_path / "alice.ipynb")
    (tmp_path / "bob").mkdir()
    shutil.copy(LAB / "lab.ipynb", tmp_path / "bob" / "02_maps.ipynb")
    _with_cell_after_check("import time\ntime.sleep(600)", 2, tmp_path / "carol.ipynb")
    _with_cell_after_check("import os\nos._exit(1)", 1, tmp_path / "dave.ipynb")
    out = tmp_path / "grades.csv"

    assert main(["labs", "grade", str(tmp_path), "--timeout", "20", "--out", str(out)]) == 0

    grades = pd.read_csv(out)
    assert list(grades.columns) == ["student", "notebook", "exercise", "status", "points",
                                    "feedback"]
    by_student = {s: g.set_index("exercise") for s, g in grades.groupby("student")}
    assert sorted(by_student) == ["alice", "bob", "carol", "dave"]
    for rows in by_student.values():
        assert list(rows.index) == EXERCISES
    assert by_student["alice"].points.sum() == 5
    assert (by_student["bob"].status == "not done").all() and by_student["bob"].points.sum() == 0
    assert (by_student["bob"].feedback.str.len() > 20).all()
    carol = by_student["carol"]
    assert list(carol.points) == [1, 1, 0, 0, 0]
    assert (carol.status[2:] == "not run").all() and carol.feedback.iloc[-1].startswith(
        "a cell ran longer than 20 s")
    dave = by_student["dave"]
    assert list(dave.points) == [1, 0, 0, 0, 0]
    assert "kernel died" in dave.feedback.iloc[-1]
    assert "alice" in capsys.readouterr().out


def test_grade_refuses_a_missing_folder(tmp_path: Path) -> None:
    assert main(["labs", "grade", str(tmp_path / "nope")]) == 2


def test_a_raising_cell_and_an_unreadable_file_are_graded_not_fatal(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=[
        new_code_cell('from ebpf_nb.labs import check\nraise ValueError("student bug")'),
        new_code_cell('check("01.pid_comm")'),  # runs after the error: hello_pid never made
    ])
    nb.metadata["ebpf_nb"] = {"exercises": ["01.pid_comm", "01.openat"]}
    nbformat.write(nb, tmp_path / "erin.ipynb")
    (tmp_path / "frank.ipynb").write_text("this is not a notebook")

    grades = main(["labs", "grade", str(tmp_path), "--timeout", "30"])
    assert grades == 0
    rows = pd.read_csv(tmp_path / "grades.csv").set_index(["student", "exercise"])
    assert rows.loc[("erin", "01.pid_comm")].status == "not done"
    assert "hello_pid" in rows.loc[("erin", "01.pid_comm")].feedback
    assert rows.loc[("erin", "01.openat")].status == "not run"
    assert rows.loc[("frank", "*")].status == "error" and rows.points.sum() == 0
