"""Student notebooks from instructors' solution notebooks (nbgrader-style markers and tags).

In ``labs/NN_topic/solution.ipynb``:

- lines between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (``// BEGIN SOLUTION`` /
  ``// END SOLUTION`` in C cells) become one ``YOUR CODE HERE`` comment at the same indentation;
  lines inside written as ``# STUB: text`` / ``// STUB: text`` stay in the student version as
  ``text`` (a stub that still runs: ``return 0;``, ``counts = None``);
- a cell tagged ``solution`` keeps only its first line if that is a ``%%`` magic, plus the
  placeholder; a cell tagged ``instructor`` is left out of the student version.

The student notebook ``lab.ipynb`` is written next to the solution, without outputs, with the
lab's exercise ids in its metadata (for the grader). :func:`stale_labs` says which committed
student notebooks differ from what the build would write.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat

from .checks import PLACEHOLDER

SOLUTION_NAME, STUDENT_NAME = "solution.ipynb", "lab.ipynb"
_BEGIN = re.compile(r"^(\s*)(###|//)\s*BEGIN SOLUTION\s*$")
_END = re.compile(r"^\s*(###|//)\s*END SOLUTION\s*$")
_STUB = re.compile(r"^(\s*)(#|//)\s*STUB:\s?(.*)$")
_CHECK_ID = re.compile(r"""check\(\s*["'](\d\d[a-z]?\.\w+)["']""")


class MarkerError(ValueError):
    """A solution notebook's markers do not pair up."""


def strip_solutions(source: str, where: str = "cell") -> str:
    """``source`` with every marked solution replaced by its stub or a placeholder comment."""
    out: list[str] = []
    inside: tuple[str, str] | None = None  # (indent, comment) of the open block
    stubbed = False
    for line in source.splitlines():
        begin, end = _BEGIN.match(line), _END.match(line)
        if begin:
            if inside:
                raise MarkerError(f"{where}: BEGIN SOLUTION inside another solution")
            inside, stubbed = (begin.group(1), "#" if begin.group(2) == "###" else "//"), False
        elif end:
            if not inside:
                raise MarkerError(f"{where}: END SOLUTION without BEGIN SOLUTION")
            if not stubbed:
                out.append(f"{inside[0]}{inside[1]} {PLACEHOLDER}")
            inside = None
        elif inside:
            stub = _STUB.match(line)
            if stub:
                if not stubbed:
                    out.append(f"{inside[0]}{inside[1]} {PLACEHOLDER}")
                out.append(stub.group(1) + stub.group(3))
                stubbed = True
        else:
            out.append(line)
    if inside:
        raise MarkerError(f"{where}: BEGIN SOLUTION is never closed")
    return "\n".join(out)


def student_notebook(solution: nbformat.NotebookNode, lab: str) -> nbformat.NotebookNode:
    """The student version of a solution notebook (a new object; outputs cleared)."""
    student = copy.deepcopy(solution)
    cells = []
    for index, cell in enumerate(student.cells):
        tags = set(cell.get("metadata", {}).get("tags", []))
        if "instructor" in tags:
            continue
        if "solution" in tags:
            first = cell.source.splitlines()[0] if cell.source else ""
            keep = first if first.startswith("%%") else ""
            comment = "//" if first.startswith("%%bpf") else "#"
            cell.source = "\n".join(filter(None, [keep, f"{comment} {PLACEHOLDER}"]))
        elif cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, f"{lab} cell {index}")
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if tags:
            remaining = [t for t in cell.metadata["tags"] if t != "solution"]
            cell.metadata["tags"] = remaining
            if not remaining:
                del cell.metadata["tags"]
        cells.append(cell)
    student.cells = cells
    exercises = [m for c in cells if c.cell_type == "code" for m in _CHECK_ID.findall(c.source)]
    student.metadata["ebpf_nb"] = {"lab": lab, "role": "student", "exercises": exercises}
    return student


def render(solution_path: Path) -> str:
    """The exact text the student notebook of ``solution_path`` should have."""
    solution = nbformat.read(solution_path, as_version=4)
    student = student_notebook(solution, solution_path.parent.name)
    return nbformat.writes(student) + "\n"


def lab_dirs(root: Path) -> list[Path]:
    """Every lab folder under ``root`` (those holding a solution notebook), in order."""
    return sorted(p.parent for p in Path(root).glob(f"*/{SOLUTION_NAME}"))


def build(root: Path) -> list[Path]:
    """Write every lab's student notebook; returns the paths that changed."""
    changed = []
    for lab in lab_dirs(root):
        target, text = lab / STUDENT_NAME, render(lab / SOLUTION_NAME)
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
            changed.append(target)
    return changed


def stale_labs(root: Path) -> list[Path]:
    """Student notebooks that are missing or differ from a fresh build of their solution."""
    return [lab / STUDENT_NAME for lab in lab_dirs(root)
            if not (lab / STUDENT_NAME).exists()
            or (lab / STUDENT_NAME).read_text() != render(lab / SOLUTION_NAME)]
