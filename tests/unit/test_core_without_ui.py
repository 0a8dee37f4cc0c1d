"""A core without the UI (issue 14): the data layer imports and detaches with ipywidgets and the
views out of reach, tells the student things through ``display``, and a program's detach runs
every ``on_detach`` callback and still unloads when one raises."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from ebpf_nb import display, widgets
from ebpf_nb.program import Program

CORE = ["ebpf_nb.program", "ebpf_nb.buffers", "ebpf_nb.reading", "ebpf_nb.tracepipe",
        "ebpf_nb.map_kinds", "ebpf_nb.frames", "ebpf_nb.display", "ebpf_nb.kernel",
        "ebpf_nb.kernel.maps", "ebpf_nb.kernel.ringbuf", "ebpf_nb.kernel.perfbuf",
        "ebpf_nb.kernel.claims", "ebpf_nb.kernel.testrun"]
UI = ["ipywidgets", "IPython", "matplotlib", "ebpf_nb.widgets", "ebpf_nb.frontend",
      "ebpf_nb.progress", "ebpf_nb.plots"]


def test_the_core_imports_and_detaches_with_the_ui_blocked():
    code = textwrap.dedent(f"""
        import importlib, sys
        for name in ("ipywidgets", "ebpf_nb.widgets", "ebpf_nb.frontend", "ebpf_nb.progress"):
            sys.modules[name] = None  # importing it raises ImportError
        for name in {CORE!r}:
            importlib.import_module(name)
        from ebpf_nb import display
        from ebpf_nb.program import Program

        class P(Program):
            def _unload(self):
                print("unloaded")

        program = P("p", "")
        program.on_detach(lambda: print("callback"))
        program.detach()
        display.notice("a notice")
        loaded = [m for m in {UI!r} if sys.modules.get(m) is not None]
        print("ui modules:", loaded)
    """)
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["callback", "unloaded", "ui modules: []"]
    assert done.stderr == "a notice\n"


class Recorded(Program):
    """A program with no kernel side: records its unload."""

    def __init__(self) -> None:
        super().__init__("p", "")
        self.unloads = 0

    def _unload(self) -> None:
        self.unloads += 1


class Broken(RuntimeError):
    pass


def test_detach_runs_every_callback_in_order_and_unloads_when_one_raises():
    program, ran = Recorded(), []

    def broken() -> None:
        ran.append("broken")
        raise Broken("view frontend gone")

    program.on_detach(lambda: ran.append("first"))
    program.on_detach(broken)
    program.on_detach(lambda: ran.append("last"))
    with pytest.raises(Broken):
        program.detach()
    assert ran == ["first", "broken", "last"]
    assert program.unloads == 1 and not program.loaded
    program.detach()  # a second call does nothing
    assert program.unloads == 1 and ran == ["first", "broken", "last"]


def test_a_cancelled_callback_is_not_run():
    program, ran = Recorded(), []
    cancel = program.on_detach(lambda: ran.append("x"))
    cancel()
    cancel()  # twice is harmless
    program.detach()
    assert ran == [] and program.unloads == 1


class Viewed(Recorded):
    attached = True

    def table(self, name: str):
        import pandas as pd

        return pd.DataFrame({"key": [1], "value": [2]})


def test_a_view_closes_on_detach_and_forgets_it_once_closed():
    program = Viewed()
    view = widgets.MapWatcher(program, "m", text=True)
    assert len(program._on_detach) == 1
    program.detach()
    assert view._closed
    other = Viewed()
    closed_first = widgets.MapWatcher(other, "m", text=True)
    closed_first.close()
    assert other._on_detach == []  # a closed view is not kept alive by its program


def test_notices_go_to_the_sink(monkeypatch):
    heard: list[str] = []
    monkeypatch.setattr(display, "sink", heard.append)
    display.notice("p.events: the kernel dropped 3 events")
    assert heard == ["p.events: the kernel dropped 3 events"]


def test_notices_go_to_stderr_by_default(capsys):
    display.notice("hello")
    assert capsys.readouterr().err == "hello\n"
