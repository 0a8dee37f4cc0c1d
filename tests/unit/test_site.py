"""The site builder's parts, on small made-up notebooks (the real build and its browser check are
tests/e2e/test_site.py): curriculum order, links, error announcements, the picture's cells, and
a notebook that fails ends the build with one short message naming the cell."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from tools.site.build import SiteError, execute, failing_cell, remember, reused
from tools.site.curriculum import REPO, Page, notebook_pages
from tools.site.picture import TAG, mark_picture_cells
from tools.site.render import (
    WIDGET_MIME,
    BrokenLink,
    error_cells,
    rewrite_links,
    without_widgets,
)

TABLE = new_output("execute_result", data={"text/html": "<table><tr><td>1</td></tr></table>"})
PLOT = new_output("display_data", data={"image/png": "iVBORw0KGgo="})
ERROR = new_output("error", ename="BpfError", evalue="bad", traceback=["BpfError: bad"])


def write_notebook(path: Path, *cells) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = new_notebook(cells=[new_markdown_cell(f"# {path.stem}"), *cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


def tagged(cell, tag="raises-exception"):
    cell.metadata["tags"] = [tag]
    return cell


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for name in ("00_setup", "01_hello", "02_maps", "02b_verifier", "03_perf", "10_later"):
        write_notebook(tmp_path / "notebooks" / f"{name}.ipynb")
    for name in ("01_hello", "02b_verifier", "02_maps"):
        write_notebook(tmp_path / "labs" / name / "solution.ipynb")
        write_notebook(tmp_path / "labs" / name / "lab.ipynb")  # not on the site
    (tmp_path / "notebooks" / "scratch.ipynb").write_text("{}")  # not a tutorial: no number
    return tmp_path


def test_the_curriculum_is_in_order_tutorial_then_lab(repo):
    pages = [p.page for p in notebook_pages(repo)]
    assert pages == ["00_setup.html", "01_hello.html", "lab-01_hello.html", "02_maps.html",
                     "lab-02_maps.html", "02b_verifier.html", "lab-02b_verifier.html",
                     "03_perf.html", "10_later.html"]
    assert notebook_pages(repo)[0].title == "00_setup"


def page_of(repo: Path, name: str) -> Page:
    return next(p for p in notebook_pages(repo) if p.page == name)


def test_links_become_pages_or_plain_text_and_a_missing_file_stops_the_build(repo, tmp_path):
    page = page_of(repo, "01_hello.html")
    (repo / "docs").mkdir()
    (repo / "docs" / "notes.txt").write_text("x")
    pages = {p.source.resolve(): p.page for p in notebook_pages(repo)}
    body = ('<a href="02_maps.ipynb#Maps">next</a> <a href="../docs/notes.txt">notes</a> '
            '<a href="https://example.org/x">out</a> <a href="#here">here</a> '
            '<a data-site-link href="index.html">home</a>')
    out = rewrite_links(body, page, pages, tmp_path / "out")
    assert '<a href="02_maps.html#Maps">next</a>' in out
    assert '<span class="site-repo-path"' in out and ">notes</span>" in out
    assert '<a href="https://example.org/x">out</a>' in out and '<a href="#here">' in out
    assert '<a data-site-link href="index.html">home</a>' in out
    with pytest.raises(BrokenLink, match="notebooks/01_hello.ipynb: link to 99_gone.ipynb"):
        rewrite_links('<a href="99_gone.ipynb">gone</a>', page, pages, tmp_path / "out")
    with pytest.raises(BrokenLink, match="image missing.png"):
        rewrite_links('<img src="missing.png">', page, pages, tmp_path / "out")


def test_error_outputs_must_be_announced_by_the_tag():
    nb = new_notebook(cells=[
        new_code_cell("fine", outputs=[TABLE]),
        tagged(new_code_cell("bad", outputs=[ERROR])),
        new_code_cell("oops", outputs=[ERROR]),
        tagged(new_code_cell("now fixed")),
    ])
    assert error_cells(nb) == ([2], [3])


def test_widget_outputs_become_a_note_and_need_no_cdn():
    nb = new_notebook(cells=[new_code_cell("view", outputs=[
        new_output("display_data", data={WIDGET_MIME: {"model_id": "x"}, "text/plain": "VBox"})])])
    nb.metadata["widgets"] = {"state": {}}
    nb = without_widgets(nb)
    assert "widgets" not in nb.metadata
    assert list(nb.cells[0].outputs[0].data) == ["text/html"]


def test_the_picture_is_the_first_bpf_cell_followed_by_a_table_and_a_plot(repo):
    pages = notebook_pages(repo)
    lonely = new_notebook(cells=[new_code_cell("%%bpf a\nint x;"), new_code_cell("t", outputs=[
        TABLE])])  # a table, no plot
    good = new_notebook(cells=[new_code_cell("print(1)"), new_code_cell("%%bpf b\nint y;"),
                               new_markdown_cell("then"), new_code_cell("t", outputs=[TABLE]),
                               new_code_cell("p", outputs=[PLOT]), new_code_cell("after")])
    chosen = mark_picture_cells(pages, {"01_hello.html": lonely, "02_maps.html": good})
    assert chosen.page == "02_maps.html"
    marked = [c.source for c in good.cells if TAG in c.metadata.get("tags", [])]
    assert marked == ["%%bpf b\nint y;", "t", "p"]
    assert not any(TAG in c.metadata.get("tags", []) for c in lonely.cells)
    assert mark_picture_cells(pages, {"01_hello.html": lonely}) is None


def test_a_failing_notebook_stops_the_build_naming_its_cell(repo):
    path = write_notebook(repo / "notebooks" / "04_fails.ipynb", new_code_cell("x = 1"),
                          new_code_cell("raise ValueError('the map is empty')"))
    page = page_of(repo, "04_fails.html")
    with pytest.raises(SiteError) as error:
        execute(page, log=lambda _: None)
    message = str(error.value)
    assert message.startswith("notebooks/04_fails.ipynb failed in cell 2 (`raise ValueError(")
    assert message.endswith("ValueError: the map is empty") and "\n" not in message
    assert not nbformat.read(path, as_version=4).cells[2].outputs  # the source is untouched


def test_an_announced_error_is_kept_and_a_vanished_one_stops_a_tutorial(repo):
    write_notebook(repo / "notebooks" / "05_errors.ipynb",
                   tagged(new_code_cell("raise KeyError('expected')")),
                   new_code_cell("print('after')"))
    nb = execute(page_of(repo, "05_errors.html"), log=lambda _: None)
    assert nb.cells[1].outputs[0].ename == "KeyError" and "after" in nb.cells[2].outputs[0].text
    assert failing_cell(nb).startswith("cell 1 ")
    write_notebook(repo / "notebooks" / "06_gone.ipynb", tagged(new_code_cell("x = 1")))
    with pytest.raises(SiteError, match="notebooks/06_gone.ipynb: cells \\[1\\] are tagged"):
        execute(page_of(repo, "06_gone.html"), log=lambda _: None)


def test_a_notebook_executed_by_the_tests_is_reused_until_its_source_changes(tmp_path):
    source = REPO / "notebooks" / "01_hello_world.ipynb"
    page = next(p for p in notebook_pages() if p.source == source)
    nb = nbformat.read(source, as_version=4)
    nb.cells.append(new_code_cell("print('ran')", outputs=[new_output(
        "stream", name="stdout", text="ran\n")]))
    remember(source, nb, cache=tmp_path)
    remember(REPO / "labs" / "01_hello_world" / "lab.ipynb", nb, cache=tmp_path)  # not a page
    assert [p.name for p in tmp_path.iterdir()] == ["01_hello_world.ipynb"]
    again = reused(page, tmp_path)
    assert again is not None and again.cells[-1].outputs[0].text == "ran\n"
    stale = nbformat.read(tmp_path / "01_hello_world.ipynb", as_version=4)
    stale.metadata["ebpf_nb_site"]["source_sha256"] = "0" * 64  # as if the source had changed
    nbformat.write(stale, tmp_path / "01_hello_world.ipynb")
    assert reused(page, tmp_path) is None
