"""Build the static site: every tutorial and lab solution executed on the real kernel, as HTML.

    python -m tools.site.build OUT [--readme-picture docs/images/bpf-cell.png] [--jobs 1]

Writes OUT/index.html (landing page and curriculum), one page per notebook with its outputs,
the setup documents, and OUT/images/bpf-cell.png: a screenshot of the first ``%%bpf`` cell that is
followed by a table and a plot (``--readme-picture`` copies it for the README). Needs root
(the notebooks load eBPF programs) and, for the picture, Playwright with Debian's chromium.
A notebook that fails ends the build with its name, its cell and the error; the committed
notebooks are never written to.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from .curriculum import REPO, Page, all_pages
from .picture import PICTURE, mark_picture_cells, take_picture
from .render import (
    BrokenLink,
    document_page,
    error_cells,
    landing_page,
    notebook_page,
    write,
)

CACHE = REPO / "build" / "site-executed"  # executed notebooks, reused while nothing changed
CELL_TIMEOUT = 120  # seconds per cell: generous on a loaded 2-core machine
BUSY_ATTEMPTS, BUSY_PAUSE = 8, 8.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")
TRACE_PIPE_BUSY = re.compile(r"trace[_ ]pipe.*(busy|already being read)",
                             re.IGNORECASE | re.DOTALL)
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception)\b")


class SiteError(RuntimeError):
    """The site cannot be built: one short message says what and where."""


def execute(page: Page, log=print) -> nbformat.NotebookNode:
    """Run a copy of the notebook in a fresh kernel from its own folder; errors allowed only in
    cells tagged raises-exception (nbclient's rule). The trace pipe admits one reader on the
    whole machine: a notebook that finds it busy is run again, a few times."""
    for attempt in range(1, BUSY_ATTEMPTS + 1):
        nb = nbformat.read(page.source, as_version=4)
        client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                allow_errors=False,
                                resources={"metadata": {"path": str(page.source.parent)}})
        try:
            client.execute()
            break
        except CellExecutionError as error:
            text = ANSI.sub("", str(error))
            named = [line for line in text.splitlines() if EXCEPTION_LINE.match(line)]
            last = named[-1] if named else text.strip().splitlines()[-1]
            if TRACE_PIPE_BUSY.search(text) and attempt < BUSY_ATTEMPTS:
                log(f"site: {page.relative}: the trace pipe is busy (another reader), again")
                time.sleep(BUSY_PAUSE)
                continue
            raise SiteError(f"{page.relative} failed in {failing_cell(nb)}: {last}") from None
    check_errors(page, nb)
    return nb


def check_errors(page: Page, nb: nbformat.NotebookNode) -> None:
    """Every error shown is announced (its cell is tagged raises-exception); in a tutorial,
    every announced error is shown."""
    unannounced, silent = error_cells(nb)
    if unannounced:
        raise SiteError(f"{page.relative}: cells {unannounced} show an error without the "
                        "raises-exception tag")
    if silent and page.kind == "tutorial":  # a lab's tag is for its student notebook
        raise SiteError(f"{page.relative}: cells {silent} are tagged raises-exception but show "
                        "no error: the example error is gone")


def failing_cell(nb: nbformat.NotebookNode) -> str:
    """"cell 7 (`check(...)`)": the last cell holding an error output."""
    for index, cell in reversed(list(enumerate(nb.cells))):
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
            return f"cell {index} (`{first[:60]}`)"
    return "a cell"


def source_digest(page: Page) -> str:
    """What the outputs depend on: the notebook and every source file of the kit."""
    digest = hashlib.sha256(page.source.read_bytes())
    for path in sorted((REPO / "ebpf_nb").rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def reused(page: Page, cache: Path) -> nbformat.NotebookNode | None:
    """The notebook executed earlier into ``cache`` from this very source, if there is one."""
    path = cache / f"{Path(page.page).stem}.ipynb"
    if not path.is_file():
        return None
    nb = nbformat.read(path, as_version=4)
    same = nb.metadata.get("ebpf_nb_site", {}).get("source_sha256") == source_digest(page)
    return nb if same else None


def save(page: Page, nb: nbformat.NotebookNode, cache: Path) -> None:
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    copy = nbformat.from_dict(nb)
    copy.metadata["ebpf_nb_site"] = {"source_sha256": source_digest(page)}
    nbformat.write(copy, cache / f"{Path(page.page).stem}.ipynb")


def remember(source: Path, nb: nbformat.NotebookNode, cache: Path = CACHE) -> None:
    """Keep a notebook that was executed elsewhere (tests/kernel/test_notebooks.py) for the next site
    build, when ``source`` is one of the site's notebooks: the build then reuses it."""
    for page in all_pages():
        if page.kind != "document" and page.source.resolve() == source.resolve():
            save(page, nb, cache)


def intro_markdown() -> str:
    """The README's first paragraph (what the kit is), for the landing page."""
    text = (REPO / "README.md").read_text()
    paragraphs = [p for p in text.split("\n\n")
                  if p.strip() and not p.lstrip().startswith(("#", "!", "<", "["))]
    return paragraphs[0] if paragraphs else ""


def build(out: Path, readme_picture: Path | None = None, cache: Path | None = None,
          log=print) -> dict[str, float]:
    """Build the site into ``out`` (replaced); returns timings and the size in bytes. With
    ``cache``, executed notebooks are kept there and reused while their source is unchanged."""
    started = time.monotonic()
    pages = all_pages()
    staging = out.with_name(f".{out.name}.building")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    executed: dict[str, nbformat.NotebookNode] = {}
    for page in (p for p in pages if p.kind != "document"):
        t0 = time.monotonic()
        executed[page.page] = reused(page, cache) if cache else None
        if executed[page.page] is None:
            executed[page.page] = execute(page, log)
            if cache:
                save(page, executed[page.page], cache)
            log(f"site: executed {page.relative} in {time.monotonic() - t0:.1f} s")
        else:
            check_errors(page, executed[page.page])
            log(f"site: reused {page.relative}, executed earlier from the same source")
    execution = time.monotonic() - started
    pictured = mark_picture_cells(pages, executed)
    if pictured is None:
        raise SiteError("no %%bpf cell is followed by a table and a plot: nothing for the picture")
    try:
        for page in (p for p in pages if p.kind != "document"):
            write(staging / page.page, notebook_page(executed[page.page], page, pages, staging))
        take_picture(staging / pictured.page, staging / PICTURE)  # the documents may show it
        if readme_picture is not None:
            readme_picture.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(staging / PICTURE, readme_picture)
        for page in (p for p in pages if p.kind == "document"):
            write(staging / page.page, document_page(page, pages, staging))
        write(staging / "index.html", landing_page(pages, intro_markdown(), PICTURE))
    except BrokenLink as error:
        raise SiteError(str(error)) from None
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    total = time.monotonic() - started
    log(f"site: {len(pages) + 1} pages in {out}, {size / 1e6:.1f} MB; "
        f"{total:.0f} s ({execution:.0f} s executing notebooks); open {out / 'index.html'}")
    return {"seconds": total, "execution_seconds": execution, "bytes": size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the site's folder (replaced)")
    parser.add_argument("--readme-picture", type=Path, help="also copy the picture here")
    parser.add_argument("--executed", type=Path, metavar="DIR",
                        help="keep executed notebooks in DIR; reuse them while nothing changed")
    args = parser.parse_args(argv)
    try:
        build(args.out.resolve(), args.readme_picture, args.executed)
    except SiteError as error:
        print(f"site: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
