"""Executed notebooks and Markdown documents as self-contained HTML pages.

nbconvert's ``lab`` template, minus every script it would fetch from a CDN (require.js, MathJax,
mermaid, the widget manager): the pages work offline. Outputs (tables, plots, errors) are
embedded; a ``%%bpf`` cell is highlighted as C. Links between repository files become links
between pages; a link to any other file of the repository keeps its text, loses its target; a
link to a file that does not exist stops the build.
"""
from __future__ import annotations

import html
import os
import re
import shutil
from pathlib import Path

import nbformat
from jinja2 import Environment, FileSystemLoader, select_autoescape
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import markdown2html_mistune
from nbconvert.preprocessors import HighlightMagicsPreprocessor
from pygments.formatters import HtmlFormatter
from traitlets.config import Config

from .curriculum import REPO, Page

TEMPLATES = Path(__file__).parent / "templates"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = ('<p class="site-widget-note">A live view (a widget) was here: it updates while '
               "the cell runs in JupyterLab; a static page cannot show it.</p>")
ERROR_TAG = "raises-exception"
LINK = re.compile(r'<a\s([^>]*?)href="([^"]*)"([^>]*)>(.*?)</a>', re.DOTALL)
IMAGE = re.compile(r'<img\s([^>]*?)src="([^"]*)"', re.DOTALL)


class BrokenLink(ValueError):
    """A page links to a repository file that does not exist."""


def _environment() -> Environment:
    return Environment(loader=FileSystemLoader([TEMPLATES, TEMPLATES / "ebpf_site"]),
                       autoescape=select_autoescape(default=True))


def _exporter() -> HTMLExporter:
    config = Config()
    config.HTMLExporter.extra_template_basedirs = [str(TEMPLATES)]
    config.HTMLExporter.template_name = "ebpf_site"
    config.HTMLExporter.embed_images = True
    exporter = HTMLExporter(config=config)
    exporter.register_preprocessor(HighlightMagicsPreprocessor(languages={"%%bpf": "c"}),
                                   enabled=True)
    return exporter


def without_widgets(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Widget outputs replaced by a note: their state needs a widget manager from a CDN."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_MIME in data:
                output["data"] = {"text/html": WIDGET_NOTE}
    return nb


def error_cells(nb: nbformat.NotebookNode) -> tuple[list[int], list[int]]:
    """(cells with an error output that are not tagged raises-exception, tagged cells that
    show no error): both must be empty on a correct page."""
    unannounced, silent = [], []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errors = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
        tagged = ERROR_TAG in cell.get("metadata", {}).get("tags", [])
        if errors and not tagged:
            unannounced.append(index)
        if tagged and not errors:
            silent.append(index)
    return unannounced, silent


def rewrite_links(body: str, page: Page, pages: dict[Path, str], out: Path) -> str:
    """Repository-relative links and images of ``page`` made to work inside the site."""
    base = page.source.parent

    def link(match: re.Match) -> str:
        before, href, after, text = match.groups()
        target, _, anchor = href.partition("#")
        if "data-site-link" in before + after:
            return match.group(0)  # the site's own navigation
        if not target or re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("//"):
            return match.group(0)  # an anchor in this page or an absolute URL
        path = (base / target).resolve()
        if path in pages:
            href = pages[path] + (f"#{anchor}" if anchor else "")
            return f'<a {before}href="{html.escape(href)}"{after}>{text}</a>'
        if not path.exists():
            raise BrokenLink(f"{page.relative}: link to {href}, which does not exist")
        where = html.escape(str(path.relative_to(REPO)) if path.is_relative_to(REPO) else href)
        return f'<span class="site-repo-path" title="{where} in the repository">{text}</span>'

    def image(match: re.Match) -> str:
        before, src = match.groups()
        if src.startswith("data:") or re.match(r"[a-z][a-z0-9+.-]*:", src):
            return match.group(0)
        path = (base / src).resolve()
        if not path.is_file():
            raise BrokenLink(f"{page.relative}: image {src}, which does not exist")
        (out / "images").mkdir(exist_ok=True)
        if not (out / "images" / path.name).exists():  # the fresh picture wins over the README's
            shutil.copyfile(path, out / "images" / path.name)
        return f'<img {before}src="images/{html.escape(path.name)}"'

    return IMAGE.sub(image, LINK.sub(link, body))


def navigation(pages: list[Page], page: Page | None) -> dict[str, object]:
    """Previous and next notebook (curriculum order) and the menu, for the page template."""
    notebooks = [p for p in pages if p.kind != "document"]
    previous = following = None
    if page in notebooks:
        index = notebooks.index(page)
        previous = notebooks[index - 1] if index > 0 else None
        following = notebooks[index + 1] if index + 1 < len(notebooks) else None
    return {"previous": previous, "next": following, "page": page,
            "documents": [p for p in pages if p.kind == "document"]}


def notebook_page(nb: nbformat.NotebookNode, page: Page, pages: list[Page], out: Path) -> str:
    """The HTML of one executed notebook."""
    nb = without_widgets(nb)
    resources = {"metadata": {"name": page.title}, "site": navigation(pages, page)}
    body, _ = _exporter().from_notebook_node(nb, resources=resources)
    return rewrite_links(body, page, {p.source.resolve(): p.page for p in pages}, out)


def document_page(page: Page, pages: list[Page], out: Path) -> str:
    content = markdown2html_mistune(page.source.read_text())
    body = _environment().get_template("document.html.j2").render(
        title=page.title, content=content, pygments_css=HtmlFormatter().get_style_defs(
            ".highlight"), **navigation(pages, page))
    return rewrite_links(body, page, {p.source.resolve(): p.page for p in pages}, out)


def landing_page(pages: list[Page], intro_markdown: str, picture: str | None) -> str:
    topics: dict[str, dict[str, Page]] = {}
    for page in pages:
        if page.kind != "document":
            topics.setdefault(page.topic, {})[page.kind] = page
    return _environment().get_template("landing.html.j2").render(
        title="ebpf_nb — learn eBPF in Jupyter", intro=markdown2html_mistune(intro_markdown),
        topics=topics, picture=picture, **navigation(pages, None))


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)
