"""Grade a folder of submitted lab notebooks into a CSV: one row per student per exercise.

Each notebook runs in its own kernel (nbclient) with a per-cell timeout; a cell error does not
stop the run (later checks still count), and a notebook that hangs or kills its kernel is
stopped and graded on what ran before. The check results are read back from the outputs
(:data:`~ebpf_nb.labs.checks.MIME_TYPE`); an exercise whose check never ran gets 0 points and
says why.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pandas as pd
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from .checks import PASS, results_from_outputs

COLUMNS = ["student", "notebook", "exercise", "status", "points", "feedback"]
_CHECK_ID = re.compile(r"""check\(\s*["'](\d\d\.\w+)["']""")


def execute(path: Path, timeout: float = 60, kernel_name: str = "python3"
            ) -> tuple[nbformat.NotebookNode, str]:
    """Run a notebook in a fresh kernel; returns it with outputs and what stopped it ("" if
    nothing did)."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name, allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellTimeoutError:
        return nb, f"a cell ran longer than {timeout:g} s and was stopped"
    except DeadKernelError:
        return nb, "the kernel died (crashed or was killed) while running a cell"
    except Exception as err:  # noqa: BLE001 - one bad notebook must not stop the grading
        return nb, f"the notebook could not run: {type(err).__name__}: {err}"
    return nb, ""


def expected_exercises(nb: nbformat.NotebookNode) -> list[str]:
    """The exercises a notebook should have checks for (its metadata, else its check calls)."""
    listed = nb.metadata.get("ebpf_nb", {}).get("exercises")
    if listed:
        return list(listed)
    found = [m for c in nb.cells if c.cell_type == "code" for m in _CHECK_ID.findall(c.source)]
    return list(dict.fromkeys(found))


def grade_notebook(path: Path, student: str, timeout: float = 60,
                   kernel_name: str = "python3") -> list[dict[str, object]]:
    """The grade rows of one submitted notebook."""
    try:
        nb, stopped = execute(path, timeout, kernel_name)
    except Exception as err:  # noqa: BLE001 - e.g. not a notebook at all
        return [_row(student, path, "*", "error", 0, f"not a readable notebook: {err}")]
    results = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            for result in results_from_outputs(cell.get("outputs", [])):
                results[result.exercise] = result
    rows = []
    for exercise_id in dict.fromkeys(expected_exercises(nb) + list(results)):
        result = results.get(exercise_id)
        if result is None:
            why = stopped or "its check cell did not run or did not show a result"
            rows.append(_row(student, path, exercise_id, "not run", 0, why))
        else:
            rows.append(_row(student, path, exercise_id, result.status,
                             1 if result.status == PASS else 0, result.message))
    if not rows:
        rows.append(_row(student, path, "*", "not run", 0, stopped or "no exercise found"))
    return rows


def grade(directory: Path, out: Path | None = None, timeout: float = 60,
          kernel_name: str = "python3") -> pd.DataFrame:
    """Grade every notebook under ``directory``; writes ``grades.csv`` there (or ``out``).

    The student is the notebook's first folder under ``directory`` (``alice/02_maps.ipynb``) or,
    for notebooks directly in it, the file name (``alice.ipynb``).
    """
    directory = Path(directory)
    rows: list[dict[str, object]] = []
    for path in sorted(directory.rglob("*.ipynb")):
        relative = path.relative_to(directory)
        if ".ipynb_checkpoints" in relative.parts:
            continue
        student = relative.parts[0] if len(relative.parts) > 1 else path.stem
        rows.extend(grade_notebook(path, student, timeout, kernel_name))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame.to_csv(out or directory / "grades.csv", index=False)
    return frame


def _row(student: str, path: Path, exercise: str, status: str, points: int,
         feedback: str) -> dict[str, object]:
    return {"student": student, "notebook": path.name, "exercise": exercise, "status": status,
            "points": points, "feedback": feedback}
