"""The notebooks as files: all there, committed without outputs, student labs fresh, tutorials laid out alike."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from notebook_paths import ROOT, SOLUTIONS, STUDENTS, TUTORIALS, ids

from ebpf_nb.labs.build import stale_labs

# 02b (the verifier) is written separately; it joins the layout checks once it follows them.
LAID_OUT = [p for p in TUTORIALS if not p.name.startswith("02b")]
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO_KEYS = {"codemirror_mode", "file_extension", "mimetype", "name",
                      "nbconvert_exporter", "pygments_lexer", "version"}
READING = {"kernel docs": "docs.kernel.org/bpf", "BCC reference guide": "reference_guide.md",
           "libbpf": "libbpf.readthedocs.io", "the book": "github.com/lizrice/learning-ebpf"}
UNDER_THE_HOOD = ["01", "02", "03", "05"]  # a plain-BCC version of the notebook's program


def test_the_material_is_all_there() -> None:
    topics = ["01", "02", "02b", "03", "04", "05", "06"]
    assert [p.name.split("_")[0] for p in TUTORIALS] == ["00", *topics]
    assert [p.parent.name.split("_")[0] for p in SOLUTIONS] == topics
    assert [p.parent for p in STUDENTS] == [p.parent for p in SOLUTIONS]


@pytest.mark.parametrize("path", TUTORIALS + SOLUTIONS + STUDENTS,
                         ids=ids(TUTORIALS + SOLUTIONS + STUDENTS))
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


def _is_check(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and cell.metadata.get("jupyter", {}).get("source_hidden")


@pytest.mark.parametrize("path", TUTORIALS, ids=ids(TUTORIALS))
def test_tutorial_opens_clean(path: Path) -> None:
    """The metadata JupyterLab fills in on open is stored already, so opening changes nothing."""
    nb = nbformat.read(path, as_version=4)
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5)
    assert nb.metadata.get("kernelspec") == KERNELSPEC
    info = nb.metadata.get("language_info", {})
    assert set(info) == LANGUAGE_INFO_KEYS, f"language_info lacks {LANGUAGE_INFO_KEYS - set(info)}"
    assert info["codemirror_mode"] == {"name": "ipython", "version": 3}
    assert (info["name"], info["pygments_lexer"]) == ("python", "ipython3")
    assert re.fullmatch(r"3\.\d+\.\d+", info["version"]), info["version"]
    ids = [cell.get("id") for cell in nb.cells]
    assert all(ids) and len(set(ids)) == len(ids), "every cell has its own id"


@pytest.mark.parametrize("path", LAID_OUT, ids=ids(LAID_OUT))
def test_tutorial_checks_are_out_of_the_way(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    visible = [i for i, c in code if not _is_check(c) and re.search(r"\bassert\b|AssertionError",
                                                                     c.source)]
    assert not visible, f"cells {visible} assert in view: move the asserts to a hidden check cell"
    unnamed = [i for i, c in code if _is_check(c) and not c.source.startswith("# check: ")]
    assert not unnamed, f"hidden cells {unnamed} must say what they check (# check: ...)"
    assert any(_is_check(c) for _, c in code), "a tutorial checks what it produced"


@pytest.mark.parametrize("path", LAID_OUT, ids=ids(LAID_OUT))
def test_tutorial_layout(path: Path) -> None:
    """Goals first; then the sections; "What you learned"; "Going further" with the reading."""
    cells = nbformat.read(path, as_version=4).cells
    assert "By the end of this notebook you will be able to" in cells[0].source
    assert cells[-2].cell_type == "markdown" and cells[-2].source.startswith("## What you learned")
    missing = [name for name, link in READING.items() if link not in cells[-1].source]
    assert not missing, f"Going further has no link to {missing}"
    assert "tested on" not in "".join(c.source for c in cells), "machine notes belong in docs/"


@pytest.mark.parametrize("number", UNDER_THE_HOOD)
def test_under_the_hood_shows_plain_bcc(number: str) -> None:
    (path,) = [p for p in TUTORIALS if p.name.startswith(f"{number}_")]
    cells = nbformat.read(path, as_version=4).cells
    (start,) = [i for i, c in enumerate(cells) if c.source.startswith("## Under the hood")]
    assert cells[start].metadata.get("jp-MarkdownHeadingCollapsed"), "the section opens folded"
    program = cells[start + 1]
    assert program.cell_type == "code" and "from bcc import BPF" in program.source
    assert "with BPF(text=program) as b:" in program.source, "cleaned up at the end of the block"
    assert _is_check(cells[start + 2]), "and its result is checked"


def test_function_calls_show_the_jit() -> None:
    (path,) = [p for p in TUTORIALS if p.name.startswith("04_")]
    assert "instructions(jited=True)" in path.read_text()
