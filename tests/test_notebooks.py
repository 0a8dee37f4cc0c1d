"""Every tutorial notebook, lab solution and student lab runs on the real kernel.

Tutorials and solutions run with errors not allowed, in under 60 s each, and every check of a
solution passes; student notebooks run to their end and every check says "not done yet".
Committed notebooks carry no outputs, and no student notebook is stale against its solution.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from ebpf_nb.labs.build import stale_labs
from ebpf_nb.labs.checks import NOT_DONE, PASS, results_from_outputs

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
SOLUTIONS = sorted((ROOT / "labs").glob("*/solution.ipynb"))
STUDENTS = sorted((ROOT / "labs").glob("*/lab.ipynb"))
# A guard against a hung notebook, not a speed test (the CI machine may be loaded, the VM runs
# under QEMU): the time each notebook took is in pytest's --durations report.
BUDGET = float(os.environ.get("EBPF_NB_NOTEBOOK_BUDGET", "300"))


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


def run_notebook(path: Path) -> tuple[nbformat.NotebookNode, float]:
    """Execute ``path`` in a fresh kernel, errors not allowed; returns it and the seconds taken."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=BUDGET, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.monotonic()
    client.execute()
    return nb, time.monotonic() - start


def check_results(nb: nbformat.NotebookNode) -> dict[str, object]:
    return {r.exercise: r for cell in nb.cells if cell.cell_type == "code"
            for r in results_from_outputs(cell.get("outputs", []))}


def test_the_material_is_all_there() -> None:
    topics = ["01", "02", "02b", "03", "04", "05", "06"]
    assert [p.name.split("_")[0] for p in TUTORIALS] == ["00", *topics]
    assert [p.parent.name.split("_")[0] for p in SOLUTIONS] == topics
    assert [p.parent for p in STUDENTS] == [p.parent for p in SOLUTIONS]


@pytest.mark.parametrize("path", TUTORIALS + SOLUTIONS + STUDENTS,
                         ids=_ids(TUTORIALS + SOLUTIONS + STUDENTS))
def test_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"


def test_student_notebooks_are_fresh() -> None:
    stale = stale_labs(ROOT / "labs")
    assert not stale, f"stale student notebooks {stale}: run `make labs` and commit them"


def test_tutorials_end_with_going_further() -> None:
    for path in TUTORIALS:
        last = nbformat.read(path, as_version=4).cells[-1]
        assert last.cell_type == "markdown" and "Going further" in last.source, path.name


@pytest.mark.kernel
@pytest.mark.parametrize("path", TUTORIALS, ids=_ids(TUTORIALS))
def test_tutorial_runs(path: Path) -> None:
    nb, seconds = run_notebook(path)
    assert seconds < BUDGET, f"{path.name} took {seconds:.1f} s"
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.mark.kernel
@pytest.mark.parametrize("path", SOLUTIONS, ids=_ids(SOLUTIONS))
def test_solution_runs_and_every_check_passes(path: Path) -> None:
    nb, seconds = run_notebook(path)
    assert seconds < BUDGET, f"{path.name} took {seconds:.1f} s"
    expected = nbformat.read(path.parent / "lab.ipynb", as_version=4).metadata["ebpf_nb"]
    results = check_results(nb)
    assert sorted(results) == sorted(expected["exercises"]) and results
    failing = {k: str(r) for k, r in results.items() if r.status != PASS}
    assert not failing, failing


@pytest.mark.kernel
@pytest.mark.parametrize("path", STUDENTS, ids=_ids(STUDENTS))
def test_student_notebook_runs_and_says_not_done(path: Path) -> None:
    nb, seconds = run_notebook(path)
    assert seconds < BUDGET, f"{path.name} took {seconds:.1f} s"
    results = check_results(nb)
    assert sorted(results) == sorted(nb.metadata["ebpf_nb"]["exercises"]) and results
    wrong = {k: str(r) for k, r in results.items() if r.status != NOT_DONE}
    assert not wrong, wrong
