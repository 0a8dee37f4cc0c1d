"""End to end in a real browser: JupyterLab runs a notebook that loads an eBPF program counting
``openat`` per command, shows a live table and a chart of its map, and the table's numbers change
while the test watches (the test opens files meanwhile, so they must); a plot renders as an image,
a 3-second event read shows its progress widget, and the kernel's end unloads the program.

Screenshots and the server and browser logs go to ``test-artifacts/``.
"""
from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

pytestmark = pytest.mark.kernel

NOTEBOOK = "watch_openat.ipynb"
PROGRAM_NAME = "tracepoint__syscalls__sys_enter_openat"  # BCC's name for TRACEPOINT_PROBE's
KERNEL_IDLE_JS = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const kernel = panel && panel.sessionContext && panel.sessionContext.session
                 && panel.sessionContext.session.kernel;
  return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
}"""
TABLE_JS = """() => {
  const table = document.querySelector('table.ebpf-nb-table');
  if (!table) return null;
  return [...table.querySelectorAll('tbody tr')].map(
      tr => [...tr.querySelectorAll('td')].map(td => td.innerText.trim()));
}"""
IMAGES_RENDERED_JS = """() => {
  const ok = img => img && img.complete && img.naturalWidth > 0 && img.naturalHeight > 0;
  return ok(document.querySelector('img.widget-image'))
      && ok(document.querySelector('.jp-RenderedImage img'));
}"""


STATUS_JS = """() => [...document.querySelectorAll('.widget-html')]
  .map(e => e.innerText).filter(t => t.includes('refreshes')).join(' | ')"""


PROGRESS_DONE_JS = """() => [...document.querySelectorAll('.widget-html')]
  .map(e => e.innerText).find(t => t.startsWith('opens.events:') && t.includes('done')) || null"""


def open_files_until(stop: threading.Event) -> None:
    """Keep the probe firing: every open() here is an openat the program counts."""
    while not stop.wait(0.01):
        with open("/etc/hostname", "rb"):
            pass


def loaded_program_ids(name: str) -> set[int]:
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True,
                         check=True).stdout
    return {p["id"] for p in json.loads(out or "[]") if p.get("name") == name}


def value_total(rows: list[list[str]]) -> int:
    return sum(int(row[-1]) for row in rows)


def test_live_table_and_plot_render_and_the_numbers_change(lab_server, page, artifacts, request):
    started = time.monotonic()
    page.goto(lab_server.notebook_url(NOTEBOOK))
    page.wait_for_function(KERNEL_IDLE_JS, timeout=90_000)
    loaded_before = loaded_program_ids(PROGRAM_NAME)
    stop = threading.Event()
    opener = threading.Thread(target=open_files_until, args=(stop,), daemon=True)
    opener.start()
    try:
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        request.addfinalizer(lambda: print("view status:", page.evaluate(STATUS_JS) or "none"))

        table = page.locator("table.ebpf-nb-table")
        table.wait_for(state="visible", timeout=90_000)
        page.wait_for_function(IMAGES_RENDERED_JS, timeout=60_000)
        first = page.evaluate(TABLE_JS)
        first_chart = page.locator("img.widget-image").get_attribute("src")
        page.screenshot(path=str(artifacts / "e2e-watch-first.png"), full_page=True)
        assert first, "the live table has no rows"
        assert all(len(row) == 3 and row[2].isdigit() for row in first), first

        page.wait_for_function(f"(first) => JSON.stringify(({TABLE_JS})()) !== first",
                               arg=json.dumps(first, separators=(",", ":")), timeout=20_000)
        later = page.evaluate(TABLE_JS)
        # the thread goes on: the status line counts at least three refreshes
        page.wait_for_function(f"() => Number((({STATUS_JS})().match(/(\\d+) refreshes/)"
                               "|| [0, 0])[1]) >= 3", timeout=20_000)
        ours = loaded_program_ids(PROGRAM_NAME) - loaded_before
        page.wait_for_function("(src) => document.querySelector('img.widget-image').src !== src",
                               arg=first_chart, timeout=20_000)
        page.screenshot(path=str(artifacts / "e2e-watch-later.png"), full_page=True)
        page.locator(".widget-vbox", has=table).first.screenshot(
            path=str(artifacts / "e2e-watch-widget.png"))
        page.locator(".jp-RenderedImage img").first.screenshot(
            path=str(artifacts / "e2e-plot.png"))
        watched = time.monotonic() - started
        # the last cell reads events for 3 s: its progress widget ends with the rows it received
        progress = page.wait_for_function(PROGRESS_DONE_JS, timeout=60_000).json_value()
        page.locator(".widget-hbox", has_text="opens.events:").last.screenshot(
            path=str(artifacts / "e2e-progress.png"))
    finally:
        stop.set()
        opener.join(timeout=5)

    assert later != first
    assert value_total(later) > value_total(first)  # counts only grow
    status = page.evaluate(STATUS_JS)
    print("view status:", status)
    assert "failed" not in status, status
    assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']") \
        .count() == 0, "a cell wrote to stderr"
    rows = int(progress.split(" rows")[0].rsplit(" ", 1)[-1].replace(",", ""))
    assert rows > 0 and " 0 lost" in progress, progress
    assert ours, f"no {PROGRAM_NAME} program appeared in bpftool while the notebook ran"
    lab_server.shutdown_kernels()  # the kernel's exit must unload the program
    deadline = time.monotonic() + 15
    while ours & loaded_program_ids(PROGRAM_NAME) and time.monotonic() < deadline:
        time.sleep(0.2)  # the kernel process is ending; no event to wait on from here
    assert not ours & loaded_program_ids(PROGRAM_NAME), "the program outlived its kernel"
    print(f"browser test: {watched:.1f} s from page load to a changed table and chart, "
          f"{time.monotonic() - started:.1f} s with the kernel's shutdown")
