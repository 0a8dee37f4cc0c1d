"""Every tutorial notebook, lab solution and student lab runs on the real kernel.

Tutorials and solutions run with errors not allowed, in under 60 s each, and every check of a
solution passes; student notebooks run to their end and every check says "not done yet".
Committed notebooks carry no outputs, and no student notebook is stale against its solution.
Tutorials are stored as JupyterLab would store them (opening one changes nothing), keep their
checks in hidden ``# check:`` cells, and share one layout: goals, sections, what you learned,
further reading.
"""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from notebook_paths import SOLUTIONS, STUDENTS, TUTORIALS, ids
from traitlets.config import Config

from ebpf_nb.labs.checks import NOT_DONE, PASS, results_from_outputs
from tools.site.build import remember

# A guard against a hung notebook, not a speed test (the CI machine may be loaded, the VM runs
# under QEMU): the time each notebook took is in pytest's --durations report.
BUDGET = float(os.environ.get("EBPF_NB_NOTEBOOK_BUDGET", "300"))


# In a VM guest (tests/vm/guest_checks.sh) these run as the unprivileged JupyterLab account, each
# kernel started as root by the service's launcher, which takes a connection file from that
# account's runtime directory only; the kit there is read-only, so no site cache is kept.
KERNEL_RUNTIME_DIR = os.environ.get("EBPF_NB_KERNEL_RUNTIME_DIR")
KEEP_FOR_SITE = os.environ.get("EBPF_NB_SITE_CACHE") != "off"


def run_notebook(path: Path) -> tuple[nbformat.NotebookNode, float]:
    """Execute ``path`` in a fresh kernel, errors not allowed; returns it and the seconds taken."""
    nb = nbformat.read(path, as_version=4)
    config = Config()
    if KERNEL_RUNTIME_DIR:
        connection_file = Path(KERNEL_RUNTIME_DIR) / f"kernel-{uuid.uuid4()}.json"
        config.KernelManager.connection_file = str(connection_file)
    client = NotebookClient(nb, config=config, timeout=BUDGET, kernel_name="python3",
                            allow_errors=False, resources={"metadata": {"path": str(path.parent)}})
    start = time.monotonic()
    client.execute()
    seconds = time.monotonic() - start
    if KEEP_FOR_SITE:
        remember(path, nb)  # the site build (tests/kernel/test_site_pages.py, make site) reuses it
    return nb, seconds


def check_results(nb: nbformat.NotebookNode) -> dict[str, object]:
    return {r.exercise: r for cell in nb.cells if cell.cell_type == "code"
            for r in results_from_outputs(cell.get("outputs", []))}


@pytest.mark.notebook_kernel
@pytest.mark.parametrize("path", TUTORIALS, ids=ids(TUTORIALS))
def test_tutorial_runs(path: Path) -> None:
    nb, seconds = run_notebook(path)
    assert seconds < BUDGET, f"{path.name} took {seconds:.1f} s"
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
    stored = nbformat.read(path, as_version=4).metadata.language_info
    assert nb.metadata.language_info == stored, "store the kernel's language_info (JupyterLab would)"


@pytest.mark.notebook_kernel
@pytest.mark.parametrize("path", SOLUTIONS, ids=ids(SOLUTIONS))
def test_solution_runs_and_every_check_passes(path: Path) -> None:
    nb, seconds = run_notebook(path)
    assert seconds < BUDGET, f"{path.name} took {seconds:.1f} s"
    expected = nbformat.read(path.parent / "lab.ipynb", as_version=4).metadata["ebpf_nb"]
    results = check_results(nb)
    assert sorted(results) == sorted(expected["exercises"]) and results
    failing = {k: str(r) for k, r in results.items() if r.status != PASS}
    assert not failing, failing


@pytest.mark.notebook_kernel
@pytest.mark.parametrize("path", STUDENTS, ids=ids(STUDENTS))
def test_student_notebook_runs_and_says_not_done(path: Path) -> None:
    nb, seconds = run_notebook(path)
    assert seconds < BUDGET, f"{path.name} took {seconds:.1f} s"
    results = check_results(nb)
    assert sorted(results) == sorted(nb.metadata["ebpf_nb"]["exercises"]) and results
    wrong = {k: str(r) for k, r in results.items() if r.status != NOT_DONE}
    assert not wrong, wrong
