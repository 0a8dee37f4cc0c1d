"""What the grader runs for one submission: the canonical lab with the student's C put in.

The grader trusts only the canonical lab (``labs/NN_topic/solution.ipynb``). From it,
:func:`canonical_lab` makes a list of steps: its Python cells as they are (the instructor's
code), its ``check("NN.name")`` cells as "check" steps, and each *answer cell* (a ``%%bpf``
cell holding solution markers, or tagged ``solution``) as a "bpf" step whose C comes from the
submission. From the submission, :func:`student_answers` takes only the text of those
``%%bpf`` cells (matched by cell id, else by program name), never its Python, outputs or
metadata. The option line is the lab's own, not the student's.
"""
from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .build import SOLUTION_NAME, lab_dirs, strip_solutions

_CHECK_CALL = re.compile(r"""check\(\s*["'](\d\d\w?\.\w+)["']""")
MAX_NOTEBOOK_BYTES = 16 * 1024 * 1024  # a lab notebook without outputs is a few dozen KiB
MAX_ANSWER_CHARS = 200_000


class SubmissionError(ValueError):
    """A submitted file is not a notebook the grader can read; the message says why."""


@dataclass(frozen=True)
class Step:
    """One thing the grading process does: run lab code, load an answer, or run a check."""

    kind: str  # "run" (the lab's own cell), "bpf" (an answer cell) or "check"
    source: str = ""  # "run": the cell; "bpf": the lab's %%bpf option line
    name: str = ""  # "bpf": the program name; "check": the exercise id
    cell_id: str = ""  # "bpf": the lab's cell id, to find the student's cell


@dataclass(frozen=True)
class CanonicalLab:
    """A lab as the grader knows it: its name, its exercises and its steps."""

    name: str
    exercises: tuple[str, ...]
    steps: tuple[Step, ...]
    cell_ids: frozenset[str] = field(default_factory=frozenset)


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    if isinstance(source, list):
        source = "".join(s for s in source if isinstance(s, str))
    return source if isinstance(source, str) else ""


def bpf_program_name(first_line: str) -> str | None:
    """The NAME of a ``%%bpf NAME ...`` line (read like the magic does, no expansion)."""
    if not first_line.startswith("%%bpf"):
        return None
    rest = first_line[len("%%bpf"):]
    if rest and not rest[0].isspace():
        return None  # %%bpfx
    try:
        words = shlex.split(rest)
    except ValueError:
        return None
    if not words:
        return "bpf"
    return words[0] if words[0].isidentifier() else None


def canonical_lab(lab_dir: Path) -> CanonicalLab:
    """The steps of ``lab_dir``'s solution notebook (read from the instructor's copy)."""
    nb = json.loads((lab_dir / SOLUTION_NAME).read_text())
    steps: list[Step] = []
    exercises: list[str] = []
    ids = set()
    for cell in nb["cells"]:
        if cell.get("id"):
            ids.add(cell["id"])
        if cell.get("cell_type") != "code":
            continue
        source = _source(cell)
        first = source.splitlines()[0] if source.strip() else ""
        checked = _CHECK_CALL.findall(source)
        tags = set(cell.get("metadata", {}).get("tags", []))
        name = bpf_program_name(first)
        if checked:
            for exercise_id in checked:
                steps.append(Step("check", name=exercise_id))
                exercises.append(exercise_id)
        elif name and ("solution" in tags or strip_solutions(source) != source):
            steps.append(Step("bpf", source=first[len("%%bpf"):].strip(), name=name,
                              cell_id=cell.get("id", "")))
        elif "instructor" not in tags:
            steps.append(Step("run", source=source))
    return CanonicalLab(lab_dir.name, tuple(dict.fromkeys(exercises)), tuple(steps),
                        frozenset(ids))


def canonical_labs(root: Path) -> dict[str, CanonicalLab]:
    """Every lab under ``root`` (the instructor's ``labs/`` folder), by folder name."""
    return {lab.name: canonical_lab(lab) for lab in lab_dirs(root)}


def read_submission(data: bytes) -> list[dict[str, Any]]:
    """The code and markdown cells of a submitted notebook's bytes, or :class:`SubmissionError`."""
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise SubmissionError(f"the file is larger than {MAX_NOTEBOOK_BYTES >> 20} MiB")
    try:
        nb = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise SubmissionError(f"not a notebook (not JSON: {err})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise SubmissionError("not a notebook (no list of cells)")
    metadata = nb.get("metadata", {})
    if not isinstance(metadata, dict) or not isinstance(metadata.get("ebpf_nb", {}), dict):
        raise SubmissionError("malformed notebook metadata (metadata.ebpf_nb is not a mapping)")
    cells = [c for c in nb["cells"] if isinstance(c, dict)]
    if len(cells) != len(nb["cells"]):
        raise SubmissionError("malformed notebook (a cell is not a JSON object)")
    return cells


def which_lab(file_name: str, cells: list[dict[str, Any]], metadata_lab: object,
              labs: dict[str, CanonicalLab]) -> CanonicalLab | None:
    """The lab a submission answers: its file name (``02_maps.ipynb``), else the lab its
    metadata names, else the lab sharing the most cell ids (a renamed solution copy)."""
    stem = Path(file_name).stem
    if stem in labs:
        return labs[stem]
    if isinstance(metadata_lab, str) and metadata_lab in labs:
        return labs[metadata_lab]
    ids = {c.get("id") for c in cells if isinstance(c.get("id"), str)}
    overlap = {name: len(ids & lab.cell_ids) for name, lab in labs.items()}
    best = max(overlap, key=overlap.__getitem__, default=None)
    return labs[best] if best is not None and overlap[best] > 0 else None


def metadata_lab(data: bytes) -> object:
    """``metadata.ebpf_nb.lab`` of an already validated notebook (a hint, never trusted)."""
    nb = json.loads(data.decode("utf-8"))
    return nb.get("metadata", {}).get("ebpf_nb", {}).get("lab")


def student_answers(lab: CanonicalLab, cells: list[dict[str, Any]]) -> dict[str, str]:
    """The C body of each answer cell of ``lab`` found in the submission, by lab cell id.

    A student cell answers a lab cell when it has the same cell id and is still a
    ``%%bpf NAME`` cell with the same NAME; else the first unused ``%%bpf NAME`` cell with that
    NAME. The body is the text after the first line, taken as text (nothing is expanded).
    """
    bpf_cells = []
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        source = _source(cell)
        first, _, body = source.partition("\n")
        name = bpf_program_name(first.strip())
        if name:
            bpf_cells.append((index, cell.get("id"), name, body))
    used: set[int] = set()
    answers: dict[str, str] = {}
    for step in (s for s in lab.steps if s.kind == "bpf"):
        match = next((c for c in bpf_cells if c[1] == step.cell_id and c[2] == step.name
                      and c[0] not in used), None) or \
            next((c for c in bpf_cells if c[2] == step.name and c[0] not in used), None)
        if match is not None:
            used.add(match[0])
            answers[step.cell_id] = match[3][:MAX_ANSWER_CHARS]
    return answers
