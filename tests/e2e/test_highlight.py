"""In JupyterLab, a ``%%bpf`` cell is highlighted as C and every other cell stays Python (the
kit's prebuilt extension, ``labextension/``); opening a course notebook does not mark it
modified.

Colours are compared as the browser computes them against JupyterLab's own theme variables
(``--jp-mirror-editor-comment-color`` ...), so the check follows the theme, not a hard-coded RGB.
"""
from __future__ import annotations

import time

import pytest
from course import REPO, course_notebooks

NOTEBOOK = "highlight.ipynb"
SETTLE_SECONDS = 3.0  # a notebook that JupyterLab rewrites on open is dirty well within this

# The computed colour of the token holding `text` in code cell `cell`, and the theme's colour
# for `role` resolved in the same editor (null while the cell's editor is not rendered yet).
TOKEN_COLOUR_JS = """([cell, text, role]) => {
  const editors = [...document.querySelectorAll('.jp-CodeCell .cm-content')];
  const editor = editors[cell];
  if (!editor) return null;
  const walker = document.createTreeWalker(editor, NodeFilter.SHOW_TEXT);
  let node = null;
  while (walker.nextNode()) {
    if (walker.currentNode.textContent.includes(text)) { node = walker.currentNode; break; }
  }
  if (!node) return null;
  const probe = document.createElement('span');
  probe.style.color = `var(--jp-mirror-editor-${role}-color)`;
  editor.appendChild(probe);
  const theme = getComputedStyle(probe).color;
  probe.remove();
  return {token: getComputedStyle(node.parentElement).color, theme,
          plain: getComputedStyle(editor).color, tag: node.parentElement.className};
}"""
CELL_MIME_JS = """(index) => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = panel.content.widgets.filter(w => w.model.type === 'code');
  return cells[index] ? cells[index].model.mimeType : null;
}"""
SET_SOURCE_JS = """([index, source]) => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = panel.content.widgets.filter(w => w.model.type === 'code');
  cells[index].model.sharedModel.setSource(source);
}"""
DIRTY_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  return panel && panel.context ? panel.context.model.dirty : null;
}"""
READY_JS = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  return !!panel && !!panel.context && panel.context.isReady
         && !!panel.sessionContext.session && panel.sessionContext.session.kernel
         && panel.sessionContext.session.kernel.status === 'idle';
}"""


MODEL_JS = """(path) => [...window.jupyterapp.shell.widgets('main')]
  .find(w => w.context && w.context.path === path).context.model.toJSON()"""


def what_changed(lab_server, page, name: str) -> str:
    """The parts of the notebook that differ between the file and JupyterLab's model."""
    saved = lab_server.api(f"/api/contents/{name}?content=1")["content"]
    model = page.evaluate(MODEL_JS, name)
    changes = [f"metadata.{key}: {saved['metadata'].get(key)!r} -> {model['metadata'].get(key)!r}"
               for key in sorted(set(saved["metadata"]) | set(model["metadata"]))
               if saved["metadata"].get(key) != model["metadata"].get(key)]
    for key in ("nbformat", "nbformat_minor"):
        if saved.get(key) != model.get(key):
            changes.append(f"{key}: {saved.get(key)} -> {model.get(key)}")
    for index, (old, new) in enumerate(zip(saved["cells"], model["cells"])):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key) and key != "source":
                changes.append(f"cell {index} {key}: {old.get(key)!r} -> {new.get(key)!r}")
    return "; ".join(changes[:8]) or "no difference in metadata or cells"


def assert_styled(found: dict, what: str) -> None:
    """The token has the theme's colour for its role, and that colour is not plain text."""
    assert found["token"] == found["theme"] != found["plain"], f"{what}: {found}"


def colour(page, cell: int, text: str, role: str) -> dict:
    found = page.evaluate(TOKEN_COLOUR_JS, [cell, text, role])
    assert found, f"no token {text!r} in code cell {cell}"
    return found


def wait_for_colour(page, cell: int, text: str, role: str) -> dict:
    """Poll until the token carries the theme's colour for ``role`` (or 20 s have passed)."""
    deadline = time.monotonic() + 20
    while True:
        found = page.evaluate(TOKEN_COLOUR_JS, [cell, text, role])
        if found and found["token"] == found["theme"]:
            return found
        if time.monotonic() > deadline:
            assert found, f"{text!r} is not one token in code cell {cell}: not highlighted as C"
            return found
        page.wait_for_timeout(200)


@pytest.fixture
def highlight_page(lab_server, page):
    page.goto(lab_server.notebook_url(NOTEBOOK))
    page.wait_for_function(READY_JS, timeout=90_000)
    yield page
    lab_server.shutdown_kernels()


def test_a_bpf_cell_is_c_and_a_python_cell_stays_python(highlight_page, artifacts):
    page = highlight_page
    comment = wait_for_colour(page, 0, "// counts execve calls or id map", "comment")
    assert_styled(comment, "the C comment is not a comment")
    assert page.evaluate(CELL_MIME_JS, 0) == "text/x-csrc"
    for keyword in ("struct", "return"):
        found = colour(page, 0, keyword, "keyword")
        assert_styled(found, f"C keyword {keyword!r}")
    for type_name in ("u32", "int", "char"):  # JupyterLab leaves types plain: the kit colours them
        found = colour(page, 0, type_name, "variable-3")
        assert_styled(found, f"C type {type_name!r}")
    found = colour(page, 0, '"a string"', "string")
    assert_styled(found, "C string")
    found = colour(page, 0, "#include", "meta")
    assert found["token"] != found["plain"], f"the preprocessor line is unstyled: {found}"
    # Python keywords and builtins are plain words inside C
    for word in (" or ", " id ", " map"):
        found = colour(page, 0, word, "keyword")
        assert found["token"] == comment["token"], f"{word!r} is not part of the C comment"

    python = wait_for_colour(page, 1, "# a Python comment", "comment")
    assert_styled(python, "the Python comment is not a comment")
    assert page.evaluate(CELL_MIME_JS, 1) == "text/x-ipython"
    found = colour(page, 1, "def", "keyword")
    assert_styled(found, "Python keyword def")
    found = colour(page, 1, "struct", "keyword")
    assert found["token"] != found["theme"], f"'struct' is a keyword in Python: {found}"
    found = colour(page, 1, "ctx", "variable-3")  # the C-only style leaves Python alone
    assert found["token"] != found["theme"], f"a Python name got the C type colour: {found}"
    page.locator(".jp-Notebook").first.screenshot(path=str(artifacts / "highlight-cells.png"))


def test_a_cell_follows_its_source(highlight_page):
    """Typing %%bpf into a Python cell makes it C; removing it makes it Python again."""
    page = highlight_page
    page.wait_for_function(f"() => ({CELL_MIME_JS})(0) === 'text/x-csrc'", timeout=20_000)
    page.evaluate(SET_SOURCE_JS, [1, "\n%%bpf\n// now C\nstruct x;"])
    page.wait_for_function(f"() => ({CELL_MIME_JS})(1) === 'text/x-csrc'", timeout=20_000)
    assert_styled(wait_for_colour(page, 1, "// now C", "comment"), "a new C comment")
    page.evaluate(SET_SOURCE_JS, [0, "# %%bpf in a comment is not a cell magic\nx = 1"])
    page.wait_for_function(f"() => ({CELL_MIME_JS})(0) === 'text/x-ipython'", timeout=20_000)
    page.evaluate(SET_SOURCE_JS, [1, "%%bpfx\n# not the bpf magic"])
    page.wait_for_function(f"() => ({CELL_MIME_JS})(1) === 'text/x-ipython'", timeout=20_000)


PANEL_JS = """(path) => [...window.jupyterapp.shell.widgets('main')]
  .find(w => w.context && w.context.path === path)"""
ALL_READY_JS = f"""(paths) => paths.every(path => {{
  const panel = ({PANEL_JS})(path);
  const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!panel && panel.context.isReady && !!kernel && kernel.status === 'idle';
}})"""
DIRTY_PATHS_JS = f"(paths) => paths.filter(path => ({PANEL_JS})(path).context.model.dirty)"
OPEN_JS = """(paths) => { for (const path of paths)
  window.jupyterapp.commands.execute('docmanager:open', {path, activate: false}); }"""


def test_opening_the_course_notebooks_does_not_modify_them(lab_server, page):
    """All opened at once (their kernels start side by side), then left alone for a while."""
    names = [str(p.relative_to(REPO)) for p in course_notebooks()]
    assert len(names) >= 14, names  # every tutorial and student lab, found by glob
    page.goto(f"{lab_server.url}/lab?token={lab_server.token}&reset")
    page.wait_for_function("() => !!window.jupyterapp && !!document.querySelector('.jp-LabShell')",
                           timeout=90_000)
    try:
        page.evaluate(OPEN_JS, names)
        page.wait_for_function(ALL_READY_JS, arg=names, timeout=180_000)
        page.wait_for_timeout(SETTLE_SECONDS * 1000)
        dirty = page.evaluate(DIRTY_PATHS_JS, names)
        reasons = [f"{name}: {what_changed(lab_server, page, name)}" for name in dirty]
        assert not dirty, (f"{len(dirty)} of {len(names)} notebooks are marked modified "
                           f"{SETTLE_SECONDS} s after opening:\n" + "\n".join(reasons))
    finally:
        lab_server.shutdown_kernels()
