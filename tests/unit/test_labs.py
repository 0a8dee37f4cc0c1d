"""The lab tooling: solution markers, student-notebook builds and staleness, checks, syscall
numbers. No kernel needed here; the grader on real notebooks is in test_labs_grade.py."""
from __future__ import annotations

import platform
import re

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from ebpf_nb.labs import build, checks, exercises, syscalls
from ebpf_nb.labs.checks import FAIL, MIME_TYPE, NOT_DONE, PASS, run_check

SOLUTION_CELL = """%%bpf counter -a syscall:execve
int count(void *ctx) {
    // BEGIN SOLUTION
    u64 uid = bpf_get_current_uid_gid() & 0xFFFFFFFF;
    counts.increment(uid);
    // END SOLUTION
    return 0;
}"""


def test_solution_block_becomes_a_placeholder_at_its_indentation() -> None:
    student = build.strip_solutions(SOLUTION_CELL)
    assert "bpf_get_current_uid_gid" not in student
    assert "    // YOUR CODE HERE\n    return 0;" in student
    assert student.splitlines()[0] == "%%bpf counter -a syscall:execve"


def test_stub_lines_stay_for_the_student() -> None:
    source = "// BEGIN SOLUTION\nstatic __noinline int f(void)\n" \
             "// STUB: static __always_inline int f(void)\n// END SOLUTION\n{ return 0; }"
    assert build.strip_solutions(source) == \
        "// YOUR CODE HERE\nstatic __always_inline int f(void)\n{ return 0; }"


def test_python_markers() -> None:
    source = "d = {\n    1: 'a',\n    ### BEGIN SOLUTION\n    2: 'b',\n    ### END SOLUTION\n}"
    assert build.strip_solutions(source) == "d = {\n    1: 'a',\n    # YOUR CODE HERE\n}"


@pytest.mark.parametrize("source", ["// BEGIN SOLUTION\nx", "x\n// END SOLUTION",
                                    "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION"])
def test_unpaired_markers_are_refused(source: str) -> None:
    with pytest.raises(build.MarkerError):
        build.strip_solutions(source)


def _solution_notebook() -> nbformat.NotebookNode:
    tagged = new_code_cell("%%bpf x\nint secret(void *ctx) { return 1; }",
                           metadata={"tags": ["solution"]})
    instructor = new_markdown_cell("the answer is 42", metadata={"tags": ["instructor"]})
    ran = new_code_cell(SOLUTION_CELL, execution_count=3,
                        outputs=[nbformat.v4.new_output("stream", text="hi")])
    return new_notebook(cells=[new_markdown_cell("# Lab"), ran, tagged, instructor,
                               new_code_cell('check("02.per_uid")')])


def test_student_notebook_hides_solutions_and_outputs() -> None:
    student = build.student_notebook(_solution_notebook(), "02_maps")
    # What a student can read: sources and outputs (not cell ids: a random id may hold "42").
    text = "\n".join(c.source + repr(c.get("outputs", [])) for c in student.cells)
    assert "bpf_get_current_uid_gid" not in text and "secret" not in text and "42" not in text
    assert "secret" not in nbformat.writes(student)
    assert student.cells[2].source == "%%bpf x\n// YOUR CODE HERE"
    assert student.cells[1].outputs == [] and student.cells[1].execution_count is None
    assert student.metadata["ebpf_nb"] == {"lab": "02_maps", "role": "student",
                                           "exercises": ["02.per_uid"]}


def test_build_writes_and_detects_stale(tmp_path) -> None:
    lab = tmp_path / "02_maps"
    lab.mkdir()
    nbformat.write(_solution_notebook(), lab / "solution.ipynb")
    assert build.stale_labs(tmp_path) == [lab / "lab.ipynb"]  # missing counts as stale
    assert build.build(tmp_path) == [lab / "lab.ipynb"]
    assert build.stale_labs(tmp_path) == [] and build.build(tmp_path) == []
    solution = nbformat.read(lab / "solution.ipynb", as_version=4)
    solution.cells[0].source = "# Lab, edited"
    nbformat.write(solution, lab / "solution.ipynb")
    assert build.stale_labs(tmp_path) == [lab / "lab.ipynb"]


class FakeProgram:
    """Stands in for a loaded program: fixed map contents, optional source."""

    def __init__(self, frame: pd.DataFrame, source: str = ""):
        self.frame, self.source = frame, source

    def table(self, name: str) -> pd.DataFrame:
        if name != "counter_table":
            raise KeyError(name)
        return self.frame


class FakeExecCounter:
    """A fake `counter` program fed by the check's own commands: each `setpriv --reuid=U
    --regid=G ... /bin/true` is one execve by U/G, each other `/bin/true` one by root.
    ``mistake`` is the student's error: "gid" (counts the gid), "one" (writes 1), "unmasked"
    (keeps the gid in the key)."""

    def __init__(self, mistake: str = ""):
        self.mistake, self.counts, self.source = mistake, {}, ""

    def run(self, command: str, timeout: float = 30) -> None:
        for part in command.split(";"):
            match = re.search(r"--reuid=(\d+) --regid=(\d+)", part)
            uid, gid = (int(match[1]), int(match[2])) if match else (0, 0)
            key = {"gid": gid, "unmasked": (gid << 32) | uid}.get(self.mistake, uid)
            self.counts[key] = 1 if self.mistake == "one" else self.counts.get(key, 0) + 1

    def table(self, name: str) -> pd.DataFrame:
        return pd.DataFrame({"key": list(self.counts), "value": list(self.counts.values())})


@pytest.mark.parametrize("mistake, says", [("gid", "the key must be the uid"),
                                           ("one", "add one"),
                                           ("unmasked", "larger than 32 bits")])
def test_check_passes_fails_and_says_what_is_wrong(monkeypatch, mistake: str, says: str) -> None:
    right = FakeExecCounter()
    monkeypatch.setattr(exercises, "run", right.run)
    assert run_check("02.per_uid", right).status == PASS
    wrong = FakeExecCounter(mistake)
    monkeypatch.setattr(exercises, "run", wrong.run)
    result = run_check("02.per_uid", wrong)
    assert result.status == FAIL and says in result.message, result


def test_other_user_has_distinct_unused_ids() -> None:
    import grp
    import pwd
    for _ in range(20):
        uid, gid = checks.other_user()
        assert uid != gid and uid >= 20000 and gid >= 20000
        with pytest.raises(KeyError):
            pwd.getpwuid(uid)
        with pytest.raises(KeyError):
            grp.getgrgid(gid)


def test_private_dir_is_private_and_removed() -> None:
    import os
    import stat
    with checks.private_dir() as folder:
        info = folder.stat()
        assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
        (folder / "x").write_text("x")
    assert not folder.exists()


def test_hints_come_one_at_a_time_and_every_exercise_has_some() -> None:
    checks._load_exercises()
    for exercise_id, spec in checks.EXERCISES.items():
        assert 1 <= len(spec.hints) <= 2, exercise_id
        first = checks.hint(exercise_id)
        assert first.number == 1 and first.text == spec.hints[0]
        assert f"hint 1 of {len(spec.hints)}" in str(first)
    with pytest.raises(ValueError):
        checks.hint("02.per_uid", 3)
    with pytest.raises(KeyError):
        checks.hint("99.nothing")


def test_unfinished_work_is_not_done(monkeypatch) -> None:
    monkeypatch.setattr(exercises, "run", lambda command, timeout=30: None)
    empty = FakeProgram(pd.DataFrame({"key": [], "value": []}))
    assert run_check("02.per_uid", empty).status == NOT_DONE
    placeholder = FakeProgram(pd.DataFrame({"key": [0], "value": [1]}),
                              source="// YOUR CODE HERE")
    assert run_check("02.per_uid", placeholder).status == NOT_DONE
    assert run_check("02.per_uid").status == NOT_DONE  # no program called counter anywhere


def test_a_crashing_check_reports_instead_of_raising() -> None:
    class Broken:
        def trace(self, **kw):
            raise RuntimeError("boom")
    result = run_check("01.pid_comm", Broken())
    assert result.status == FAIL and "boom" in result.message
    assert run_check("99.nothing").status == FAIL


def test_check_shows_a_result_the_grader_can_read_back() -> None:
    result = checks.CheckResult("02.per_uid", NOT_DONE, "the map is empty")
    bundle = result._repr_mimebundle_()
    assert bundle[MIME_TYPE] == {"exercise": "02.per_uid", "status": NOT_DONE,
                                 "message": "the map is empty"}
    assert "not done yet" in bundle["text/plain"]
    outputs = [{"output_type": "display_data", "data": bundle}, {"output_type": "stream"}]
    assert checks.results_from_outputs(outputs) == [result]


def test_check_in_ipython_looks_the_program_up_by_name(monkeypatch) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    fake = FakeExecCounter()
    monkeypatch.setattr(exercises, "run", fake.run)
    shell = InteractiveShell.instance()
    shell.user_ns["counter"] = fake
    try:
        assert run_check("02.per_uid").status == PASS
    finally:
        del shell.user_ns["counter"]


def test_syscall_numbers_follow_the_architecture() -> None:
    expected = {"x86_64": 59, "aarch64": 221, "riscv64": 221}.get(platform.machine())
    if expected is not None:
        assert syscalls.syscall_number("execve") == expected
    table = syscalls.syscall_numbers()
    assert len(table) > 250 and len(set(table.values())) > 250
    assert syscalls.syscall_numbers(["getppid", "no_such_call"]) == \
        {"getppid": table["getppid"]}
    with pytest.raises(KeyError):
        syscalls.syscall_number("no_such_call")


def test_header_fallback_agrees_with_the_preprocessor() -> None:
    from_headers = syscalls._via_headers()
    from_cpp = syscalls._via_preprocessor(syscalls._names_from_headers())
    assert len(from_headers) > 250 and len(from_cpp) > 250  # both sources really read
    for name in ("getppid", "openat", "read"):
        assert from_headers[name] == from_cpp[name], name


def test_syscall_numbers_call_the_right_syscall() -> None:
    import ctypes
    import os
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.syscall(syscalls.syscall_number("getppid")) == os.getppid()
    assert libc.syscall(syscalls.syscall_number("getpid")) == os.getpid()


def test_lab_notebooks_open_clean() -> None:
    """Lab notebooks store the metadata JupyterLab fills in (the tutorials' own), so opening
    one does not mark it modified; the student version inherits it from the solution."""
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    reference = nbformat.read(root / "notebooks" / "00_setup.ipynb", as_version=4).metadata
    for path in sorted((root / "labs").glob("*/*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert (nb.nbformat, nb.nbformat_minor) == (4, 5), path
        assert nb.metadata.kernelspec == reference.kernelspec, path
        assert nb.metadata.language_info == reference.language_info, path
        ids = [cell.get("id") for cell in nb.cells]
        assert all(ids) and len(set(ids)) == len(ids), path
