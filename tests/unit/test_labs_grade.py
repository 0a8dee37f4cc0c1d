"""The grader's pieces without the kernel: what it takes from a submission (only ``%%bpf`` C),
what it refuses (malformed files, links), and a CSV a spreadsheet opens safely.

The whole grader against a class of attacks, on the real kernel, is in
``test_grade_adversarial.py``."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from ebpf_nb.cli import main
from ebpf_nb.labs.answers import (
    SubmissionError,
    bpf_program_name,
    canonical_labs,
    read_submission,
    student_answers,
    which_lab,
)
from ebpf_nb.labs.checks import EXERCISES, _load_exercises
from ebpf_nb.labs.grade import grade_notebook, job_for, rows_of
from ebpf_nb.labs.safe_files import (
    FORMULA_STARTS,
    find_submissions,
    spreadsheet_safe,
    write_csv,
)

LABS = Path(__file__).resolve().parents[2] / "labs"


@pytest.fixture(scope="module")
def labs():
    return canonical_labs(LABS)


def test_every_registered_exercise_is_graded_from_a_bpf_answer_cell(labs) -> None:
    _load_exercises()
    graded = {e for lab in labs.values() for e in lab.exercises}
    assert graded == set(EXERCISES), "an exercise no canonical lab checks cannot be graded"
    for lab in labs.values():
        answers = {s.name for s in lab.steps if s.kind == "bpf"}
        for exercise in lab.exercises:
            program = EXERCISES[exercise].program
            assert program in answers, f"{exercise}: no %%bpf {program} answer cell in {lab.name}"
        assert all(s.cell_id for s in lab.steps if s.kind == "bpf")


def test_the_lab_builds_a_job_with_the_students_c_only(labs) -> None:
    lab = labs["02_maps"]
    student = nbformat.read(LABS / "02_maps" / "lab.ipynb", as_version=4)
    job = job_for(lab, student_answers(lab, student.cells))
    bpf = [s for s in job["steps"] if s["kind"] == "bpf"]
    solution = {c.id: c for c in nbformat.read(LABS / "02_maps" / "solution.ipynb",
                                               as_version=4).cells}
    assert len(bpf) >= 5 and all("YOUR CODE HERE" in s["body"] for s in bpf)
    for step in bpf:  # the lab's own option line, the student's body
        first = solution[step["cell_id"]].source.splitlines()[0]
        assert first == f"%%bpf {step['source']}" and first.split()[1] == step["name"]
    checks = [s["name"] for s in job["steps"] if s["kind"] == "check"]
    assert checks == list(lab.exercises)
    run = "\n".join(s["source"] for s in job["steps"] if s["kind"] == "run")
    assert "BEGIN SOLUTION" not in run and "check(" not in run


def _bpf(source: str, cell_id: str | None = None) -> dict:
    cell = new_code_cell(source)
    if cell_id:
        cell["id"] = cell_id
    return cell


def test_answers_match_by_cell_id_then_by_program_name(labs) -> None:
    lab = labs["01_hello_world"]
    steps = [s for s in lab.steps if s.kind == "bpf"]
    cells = [
        _bpf("%%bpf opens -a whatever\nBODY OF OPENS {} $HOME", "changed-id"),
        _bpf("%%bpf hello_pid\nBODY BY ID", steps[0].cell_id),
        _bpf("%%bpf hello_pid\nA SECOND COPY"),
        _bpf("%%bpfx opens\nNOT A BPF CELL"),
        new_markdown_cell("%%bpf opens\nMARKDOWN"),
    ]
    answers = student_answers(lab, cells)
    assert answers[steps[0].cell_id] == "BODY BY ID"
    assert answers[steps[1].cell_id] == "BODY OF OPENS {} $HOME"  # text, nothing expanded


def test_a_renamed_or_deleted_answer_cell_is_missing(labs) -> None:
    lab = labs["01_hello_world"]
    answers = student_answers(lab, [_bpf("%%bpf other_name\nint x;"), _bpf("print('hi')")])
    assert answers == {}
    job = job_for(lab, answers)
    assert all(s["body"] is None for s in job["steps"] if s["kind"] == "bpf")


@pytest.mark.parametrize("line, name", [
    ("%%bpf", "bpf"), ("%%bpf counter -a syscall:execve", "counter"),
    ("%%bpf   spaced", "spaced"), ("%%bpfcounter", None), ("%%bpf 'unclosed", None),
    ("%%bpf 1bad", None), ("%%bash counter", None),
])
def test_program_names_are_read_like_the_magic(line: str, name: str | None) -> None:
    assert bpf_program_name(line) == name


@pytest.mark.parametrize("data, why", [
    (b"this is not a notebook", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b"[1, 2]", "no list of cells"),
    (b'{"cells": "many"}', "no list of cells"),
    (b'{"cells": [], "metadata": {"ebpf_nb": "evil"}}', "metadata.ebpf_nb is not a mapping"),
    (b'{"cells": [], "metadata": []}', "metadata.ebpf_nb is not a mapping"),
    (b'{"cells": [1], "metadata": {}}', "a cell is not a JSON object"),
    (b" " * (17 << 20), "larger than 16 MiB"),
])
def test_malformed_submissions_are_refused_with_a_reason(data: bytes, why: str) -> None:
    with pytest.raises(SubmissionError, match=why):
        read_submission(data)


def test_the_lab_is_told_by_file_name_metadata_or_cell_ids(labs) -> None:
    solution = nbformat.read(LABS / "06_core" / "solution.ipynb", as_version=4)
    assert which_lab("02_maps.ipynb", [], "06_core", labs).name == "02_maps"
    assert which_lab("alice.ipynb", [], "06_core", labs).name == "06_core"
    assert which_lab("alice.ipynb", solution.cells, None, labs).name == "06_core"
    assert which_lab("alice.ipynb", [], {"not": "a name"}, labs) is None


def test_rows_come_from_the_canonical_exercises_only(labs) -> None:
    lab = labs["01_hello_world"]
    verdicts = [{"exercise": "99.bonus", "status": "pass", "message": "invented"},
                {"exercise": "01.pid_comm", "status": "excellent", "message": "bad status"},
                {"exercise": "01.openat", "status": "pass", "message": "ok"},
                {"exercise": "01.openat", "status": "fail", "message": "later duplicate"}]
    rows = rows_of(lab, verdicts, "", "alice", "01_hello_world.ipynb")
    assert [(r["exercise"], r["status"], r["points"]) for r in rows] == \
        [("01.pid_comm", "not run", 0), ("01.openat", "pass", 1)]
    stopped = rows_of(lab, [], "grading stopped: too long", "bob", "x.ipynb")
    assert {r["feedback"] for r in stopped} == {"grading stopped: too long"}


def test_unreadable_files_become_error_rows_without_running_anything(tmp_path, labs) -> None:
    (tmp_path / "frank.ipynb").write_text("this is not a notebook")
    os.mkfifo(tmp_path / "fifo.ipynb")
    nb = new_notebook(cells=[new_code_cell("print(1)")])
    nbformat.write(nb, tmp_path / "unknown.ipynb")
    for name, why in [("frank", "not JSON"), ("fifo", "not a regular file"),
                      ("unknown", "cannot tell which lab")]:
        rows = grade_notebook(tmp_path / f"{name}.ipynb", name, labs)
        assert [(r["exercise"], r["status"], r["points"]) for r in rows] == [("*", "error", 0)]
        assert why in rows[0]["feedback"]


@pytest.mark.parametrize("start", FORMULA_STARTS)
def test_text_that_a_spreadsheet_would_run_is_neutralised(start: str) -> None:
    assert spreadsheet_safe(start + "HYPERLINK(\"http://x\")") == "'" + start + \
        "HYPERLINK(\"http://x\")"
    assert spreadsheet_safe("fine " + start) == "fine " + start
    assert spreadsheet_safe(3) == 3


def test_the_csv_replaces_a_link_and_never_writes_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    class_dir = tmp_path / "class"
    class_dir.mkdir()
    (class_dir / "grades.csv").symlink_to(victim)
    write_csv(class_dir / "grades.csv", ["student", "feedback"],
              [{"student": "=cmd|' /C calc'!A0", "feedback": "@SUM(1)"}])
    assert victim.read_text() == "keep me"
    assert not (class_dir / "grades.csv").is_symlink()
    rows = list(csv.reader((class_dir / "grades.csv").open()))
    assert rows == [["student", "feedback"], ["'=cmd|' /C calc'!A0", "'@SUM(1)"]]
    assert sorted(p.name for p in class_dir.iterdir()) == ["grades.csv"]  # no temp left


def test_links_are_reported_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    nbformat.write(new_notebook(), outside / "01_hello_world.ipynb")
    class_dir = tmp_path / "class"
    (class_dir / "alice" / ".ipynb_checkpoints").mkdir(parents=True)
    nbformat.write(new_notebook(), class_dir / "alice" / "01_hello_world.ipynb")
    nbformat.write(new_notebook(), class_dir / "alice" / ".ipynb_checkpoints" / "x.ipynb")
    (class_dir / "bob").mkdir()
    (class_dir / "bob" / "01_hello_world.ipynb").symlink_to(outside / "01_hello_world.ipynb")
    (class_dir / "carol").symlink_to(outside)
    found = {str(p.relative_to(class_dir)): why for p, why in find_submissions(class_dir)}
    assert found == {"alice/01_hello_world.ipynb": "",
                     "bob/01_hello_world.ipynb": "is a symbolic link: not graded",
                     "carol": "is a symbolic link to a folder: not graded"}


def test_grade_refuses_a_missing_folder(tmp_path: Path) -> None:
    assert main(["labs", "grade", str(tmp_path / "nope"), "--on-host"]) == 2


def test_grading_on_the_host_must_be_asked_for(tmp_path: Path, capsys) -> None:
    assert main(["labs", "grade", str(tmp_path)]) == 2
    assert "--on-host" in capsys.readouterr().err
    assert not (tmp_path / "grades.csv").exists()


def test_an_empty_class_gets_a_header_only_csv(tmp_path: Path, capsys) -> None:
    assert main(["labs", "grade", str(tmp_path), "--on-host"]) == 0
    assert "WARNING: grading on THIS machine" in capsys.readouterr().err
    assert (tmp_path / "grades.csv").read_text().strip() == \
        "student,notebook,exercise,status,points,feedback"


def test_student_names_lose_terminal_escapes(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "eve\x1b]0;owned\x07"
    folder.mkdir()
    (folder / "01_hello_world.ipynb").write_text("not json")
    assert main(["labs", "grade", str(tmp_path), "--on-host"]) == 0
    assert "\x1b" not in capsys.readouterr().out
    rows = list(csv.reader((tmp_path / "grades.csv").open()))
    assert rows[1][:4] == ["eve?]0;owned?", "01_hello_world.ipynb", "*", "error"]


def test_a_grader_failure_on_one_notebook_is_an_error_row(tmp_path: Path, monkeypatch) -> None:
    from ebpf_nb.labs import grade as grade_module

    def fake(path: Path, student: str, *args) -> list[dict[str, object]]:
        if student == "boom":
            raise RuntimeError("fork failed")
        return [{"student": student, "notebook": path.name, "exercise": "01.openat",
                 "status": "pass", "points": 1, "feedback": "ok"}]
    monkeypatch.setattr(grade_module, "prepare_submission", fake)
    for student in ("alice", "boom", "carol"):
        (tmp_path / student).mkdir()
        (tmp_path / student / "01_hello_world.ipynb").write_text("{}")
    frame = grade_module.grade(tmp_path)
    assert list(frame.student) == ["alice", "boom", "carol"]
    assert list(frame.status) == ["pass", "error", "pass"]
    assert "RuntimeError: fork failed" in frame.feedback[1]
