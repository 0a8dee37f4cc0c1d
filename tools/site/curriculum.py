"""What the site holds, in the order a student meets it: the setup notebook, then for each topic
its tutorial and its lab's solution; then the setup and classroom documents (Markdown).

Everything is found by glob, so a new tutorial (``notebooks/02b_*.ipynb``) or lab
(``labs/02b_*/solution.ipynb``) appears without editing this file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[2]
# Markdown documents shown as pages, with their page names (their links to each other work)
DOCUMENTS = {
    "README.md": "setup.html",
    "docs/vm.md": "vm.html",
    "docs/ARCHITECTURE.md": "architecture.html",
    "labs/README.md": "labs.html",
    "benchmarks/README.md": "benchmarks.html",
}

TITLES = {"README.md": "Setup (the README)"}  # its own title is the project's name


@dataclass(frozen=True)
class Page:
    """One page of the site, made from one file of the repository."""

    source: Path  # absolute
    page: str  # file name in the site
    title: str
    kind: str  # "tutorial", "lab" or "document"
    topic: str  # "00", "01", "02b" ... for notebooks, "" for documents

    @property
    def relative(self) -> str:
        """The source's path in the repository (for messages)."""
        root = REPO if self.source.is_relative_to(REPO) else self.source.parents[1]
        return str(self.source.relative_to(root))


def topic_of(name: str) -> str:
    """``02b_verifier`` -> ``02b``."""
    return name.split("_", 1)[0]


def sort_key(topic: str) -> tuple[int, str]:
    """Topics in curriculum order: 01 < 02 < 02b < 03."""
    match = re.match(r"(\d+)(.*)", topic)
    return (int(match.group(1)), match.group(2)) if match else (10**6, topic)


def notebook_title(path: Path) -> str:
    """The first Markdown heading of a notebook, without its ``#``s (else its file name)."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return path.stem


def document_title(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return path.stem


def notebook_pages(repo: Path = REPO) -> list[Page]:
    """Tutorials and lab solutions in curriculum order (a topic's tutorial, then its lab)."""
    pages = []
    for path in repo.glob("notebooks/[0-9][0-9]*_*.ipynb"):
        pages.append(Page(path, f"{path.stem}.html", notebook_title(path), "tutorial",
                          topic_of(path.stem)))
    for path in repo.glob("labs/*/solution.ipynb"):
        lab = path.parent.name
        pages.append(Page(path, f"lab-{lab}.html", notebook_title(path), "lab", topic_of(lab)))
    return sorted(pages, key=lambda p: (sort_key(p.topic), p.kind != "tutorial", p.page))


def document_pages(repo: Path = REPO) -> list[Page]:
    return [Page(repo / source, page, TITLES.get(source) or document_title(repo / source),
                 "document", "")
            for source, page in DOCUMENTS.items() if (repo / source).exists()]


def all_pages(repo: Path = REPO) -> list[Page]:
    return notebook_pages(repo) + document_pages(repo)
