"""The README's picture: a ``%%bpf`` cell, the table of its map and a plot, as the built site
shows them (a screenshot by Debian's chromium through Playwright, never drawn by hand)."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import nbformat

from .curriculum import Page

PICTURE = "images/bpf-cell.png"
TAG = "site-picture"
CHROMIUM = Path(os.environ.get("EBPF_NB_CHROMIUM", "/usr/bin/chromium"))
LOOKAHEAD = 4  # code cells after the %%bpf cell in which its table and plot must appear


def _shows(cell: nbformat.NotebookNode, what: str) -> bool:
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if what == "table" and "<table" in str(data.get("text/html", "")):
            return True
        if what == "plot" and "image/png" in data:
            return True
    return False


def mark_picture_cells(pages: list[Page],
                       executed: dict[str, nbformat.NotebookNode]) -> Page | None:
    """Tag the cells of the picture (the first %%bpf cell, in curriculum order, followed by a
    table and a plot) in the executed copy; returns their page."""
    for page in pages:
        nb = executed.get(page.page)
        if nb is None:
            continue
        code = [c for c in nb.cells if c.cell_type == "code"]
        for start, cell in enumerate(code):
            if not cell.source.lstrip().startswith("%%bpf"):
                continue
            seen: set[str] = set()
            for end in range(start + 1, min(start + 1 + LOOKAHEAD, len(code))):
                if code[end].source.lstrip().startswith("%%bpf"):
                    break
                seen |= {w for w in ("table", "plot") if _shows(code[end], w)}
                if seen == {"table", "plot"}:
                    for tagged in code[start:end + 1]:
                        tagged.setdefault("metadata", {}).setdefault("tags", []).append(TAG)
                    return page
    return None


def take_picture(page: Path, png: Path) -> None:
    """Screenshot the tagged cells of ``page`` (one region, top of the first to bottom of the
    last) into ``png``. Runs in a thread of its own: Playwright's sync API refuses to start in
    a thread where one is already running (a caller's browser test, say)."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            _screenshot(page, png)
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
            failure.append(error)

    worker = threading.Thread(target=run, name="site-picture")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]


def _screenshot(page: Path, png: Path) -> None:
    from playwright.sync_api import sync_playwright

    png.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            view = browser.new_page(viewport={"width": 1000, "height": 800})
            view.goto(page.as_uri())
            boxes = [cell.bounding_box() for cell in view.locator(f".celltag_{TAG}").all()]
            boxes = [b for b in boxes if b]
            if not boxes:
                raise RuntimeError(f"{page.name}: no cell tagged {TAG} to photograph")
            top = min(b["y"] for b in boxes)
            bottom = max(b["y"] + b["height"] for b in boxes)
            left = min(b["x"] for b in boxes)
            right = max(b["x"] + b["width"] for b in boxes)
            view.screenshot(path=str(png), full_page=True,
                            clip={"x": left, "y": top, "width": right - left,
                                  "height": bottom - top})
        finally:
            browser.close()
