"""Progress of bounded reads: throttled redraws, the forms it takes, silence where it must."""
from __future__ import annotations

import io
import threading

import pytest

from ebpf_nb import progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def line_progress(clock, *, seconds=10.0, count=None):
    out = io.StringIO()
    p = progress.make_progress("events(ev)", seconds=seconds, count=count, mode="line",
                               stream=out, clock=clock)
    assert isinstance(p, progress.LineProgress)
    return p, out


def test_redraws_are_throttled_to_four_per_second():
    clock = FakeClock()
    p, out = line_progress(clock)
    for step in range(1, 301):  # a poll every 10 ms for 3 s
        clock.now = 100.0 + step * 0.01
        p.update(rows=step, lost=0)
    # nothing in the first half second, then at most one redraw per 0.25 s
    assert p.draws == 11
    assert out.getvalue().count("\r") == 11
    assert p.rows == 300  # every update is kept even when not drawn


def test_short_reads_show_nothing():
    clock = FakeClock()
    p, out = line_progress(clock, seconds=0.3)
    for step in range(30):
        clock.now = 100.0 + step * 0.01
        p.update(rows=step)
    p.close()
    assert out.getvalue() == "" and p.draws == 0


def test_line_shows_elapsed_rows_and_drops_and_ends_with_a_newline():
    clock = FakeClock()
    p, out = line_progress(clock, seconds=30.0)
    clock.now += 3.2
    p.update(rows=1204, lost=7)
    line = out.getvalue()
    assert "events(ev): 3.2/30 s · 1,204 rows · 7 lost" in line
    assert "[##" in line  # about a tenth of the bar
    clock.now += 1.0
    p.close()
    final = out.getvalue().split("\r")[-1]
    assert final.startswith("events(ev): 4.2 s · 1,204 rows · 7 lost · done")
    assert final.endswith("\n")
    p.update(rows=5000)  # after close: ignored
    assert out.getvalue().count("\r") == 2


def test_count_bound_and_interruption():
    clock = FakeClock()
    p, out = line_progress(clock, seconds=None, count=100)
    clock.now += 1
    p.update(rows=50)
    assert "[##########          ]" in out.getvalue() and "50/100 rows" in out.getvalue()
    p.close(interrupted=True)
    assert out.getvalue().rstrip().endswith("interrupted")


def test_widget_form_updates_its_bar_and_text(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    clock = FakeClock()
    p = progress.make_progress("events(ev)", seconds=10.0, count=None, mode="widget", clock=clock)
    assert isinstance(p, progress.WidgetProgress)
    clock.now += 2.5
    p.update(rows=40, lost=1)
    assert shown == [p.box]
    assert p.bar.value == pytest.approx(0.25)
    assert "40 rows" in p.note.value and "1 lost" in p.note.value
    clock.now += 0.1
    p.update(rows=41)  # within the throttle: nothing redrawn
    assert "40 rows" in p.note.value
    p.close()
    assert p.bar.value == 1.0 and p.bar.bar_style == "success" and "41 rows" in p.note.value
    assert shown == [p.box]


def test_nothing_off_the_main_thread():
    made = []
    thread = threading.Thread(target=lambda: made.append(
        progress.make_progress("x", seconds=5, count=None, mode="line")))
    thread.start()
    thread.join()
    assert isinstance(made[0], progress.NullProgress)


def test_disabled(monkeypatch):
    monkeypatch.setattr(progress, "enabled", False)
    assert isinstance(progress.make_progress("x", seconds=5, count=None, mode="line"),
                      progress.NullProgress)


def test_automatic_choice(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("EBPF_NB_PROGRESS", raising=False)
    monkeypatch.delenv("EBPF_NB_DISPLAY", raising=False)
    assert isinstance(progress.make_progress("x", seconds=5, count=None, stream=Tty()),
                      progress.LineProgress)
    assert isinstance(progress.make_progress("x", seconds=5, count=None, stream=io.StringIO()),
                      progress.NullProgress)  # not a terminal, not a notebook: silent
    monkeypatch.setenv("EBPF_NB_PROGRESS", "0")
    assert isinstance(progress.make_progress("x", seconds=5, count=None, stream=Tty()),
                      progress.NullProgress)
    monkeypatch.setenv("EBPF_NB_PROGRESS", "widget")
    assert isinstance(progress.make_progress("x", seconds=5, count=None), progress.WidgetProgress)
