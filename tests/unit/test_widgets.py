"""Live views: widget state after a refresh, failed reads, stopping, threads joined on close.

The program here is a small fake with the three things a view uses (`table`, `events`,
`attached`); the real program is exercised by the browser test in tests/e2e.
"""
from __future__ import annotations

import threading
import time

import pandas as pd
import pytest
from view_tables import PNG_MAGIC, read_table, view_threads

from ebpf_nb import widgets
from ebpf_nb.errors import UsageError


class FakeProgram:
    """Counts per command that grow on every read; can fail a read or be detached."""

    def __init__(self) -> None:
        self.attached = True
        self.reads = 0
        self.fail_next = 0
        self.read_done = threading.Event()

    def table(self, name: str) -> pd.DataFrame:
        self.reads += 1
        self.read_done.set()
        if self.fail_next:
            self.fail_next -= 1
            raise OSError("map fd closed")
        n = self.reads
        return pd.DataFrame({"comm": ["bash", "cat", "ls", "sshd"], "value": [n, 10 * n, 2, 5]})

    def events(self, name: str, seconds: float | None = None,
               count: int | None = None) -> pd.DataFrame:
        self.reads += 1
        self.read_done.set()
        if self.fail_next:
            self.fail_next -= 1
            raise OSError("buffer gone")
        n = 3
        df = pd.DataFrame({"pid": range(self.reads * 10, self.reads * 10 + n),
                           "cpu": [0] * n,
                           "timestamp": [time.time()] * n})
        df.attrs.update(lost=2, interrupted=False)
        return df


def test_text_mode_outside_a_kernel():
    assert widgets.has_widget_frontend() is False


@pytest.mark.parametrize(("value", "expected"), [("text", False), ("widgets", True)])
def test_environment_forces_the_display(monkeypatch, value, expected):
    monkeypatch.setenv("EBPF_NB_DISPLAY", value)
    assert widgets.has_widget_frontend() is expected


def test_map_view_state_after_a_refresh():
    program = FakeProgram()
    view = widgets.MapWatcher(program, "counts", top=2, text=False, start=False)
    assert view.refresh() is True
    assert view.refreshes == 1 and view.failures == 0
    assert list(view.rows["comm"]) == ["cat", "sshd"]  # top 2 by value
    table = read_table(view.table.value)  # the HTML the browser shows
    assert table == {"comm": ["cat", "sshd"], "value": ["10", "5"]}
    first_png = bytes(view.chart.value)
    assert first_png.startswith(PNG_MAGIC)
    assert "4 entries" in view.status.value and "1 refreshes" in view.status.value
    view.refresh()
    assert read_table(view.table.value)["value"] == ["20", "5"]
    assert bytes(view.chart.value) != first_png
    view.close()


def test_log2_histogram_view_shows_bucket_labels():
    class Hist(FakeProgram):
        def table(self, name):
            df = pd.DataFrame({"low": [0, 1, 2, 4], "high": [0, 1, 3, 7], "count": [0, 5, 0, 9]})
            df.attrs["kind"] = "log2_histogram"
            return df

    view = widgets.watch(Hist(), "lat", text=False, start=False)
    view.refresh()
    assert list(view.rows["bucket"]) == ["1", "4-7"]
    assert list(view.rows["count"]) == [5, 9]
    view.close()


def test_failed_read_is_noted_and_the_view_recovers():
    program = FakeProgram()
    program.fail_next = 1
    view = widgets.MapWatcher(program, "counts", text=False, start=False)
    assert view.refresh() is False
    assert view.failures == 1
    assert "failed" in view.status.value and "map fd closed" in view.status.value
    assert "firebrick" in view.status.value
    assert view.refresh() is True
    assert view.failures == 1 and "map fd closed" not in view.status.value
    view.close()


def test_a_chart_that_cannot_be_drawn_leaves_the_table_live():
    view = widgets.MapWatcher(FakeProgram(), "counts", text=False, start=False, kind="pie")
    assert view.refresh() is True  # the read worked
    assert read_table(view.table.value)["comm"][0] == "cat"
    assert view.chart_error and "unknown plot kind" in view.chart_error
    assert "chart failed" in view.status.value and view.failures == 0
    view.close()


def test_thread_refreshes_then_stops_when_the_program_is_detached():
    program = FakeProgram()
    view = widgets.watch(program, "counts", every=0.1, text=False)
    assert view.running and [t.name for t in view_threads()] == ["ebpf_nb-map-counts"]
    deadline = time.monotonic() + 30
    while view.refreshes < 3 and time.monotonic() < deadline:
        program.read_done.wait(0.5)
        program.read_done.clear()
    assert view.refreshes >= 3
    program.attached = False
    view._thread.join(timeout=30)
    assert not view.running
    assert view.stopped_because == "program detached"
    assert "program detached" in view.status.value
    assert view.start_button.disabled is False and view.stop_button.disabled is True
    view.close()


def test_close_joins_the_thread_and_closes_the_widgets():
    view = widgets.watch(FakeProgram(), "counts", every=60.0, text=False)
    assert len(view_threads()) == 1
    started = time.monotonic()
    view.close()
    assert time.monotonic() - started < 30  # the 60 s wait between reads is interruptible
    assert view_threads() == []
    assert view.box.comm is None and view.table.comm is None
    view.start()  # a closed view stays closed
    assert view_threads() == []


def test_stop_then_start_again():
    program = FakeProgram()
    view = widgets.watch(program, "counts", every=0.1, text=False)
    assert view.stop() is True
    assert view_threads() == [] and view.stopped_because == "stopped"
    view.start()
    assert len(view_threads()) == 1 and view.stopped_because is None
    view.close()


def test_a_view_closed_elsewhere_stops_its_thread():
    view = widgets.watch(FakeProgram(), "counts", every=0.1, text=False)
    view.box.close()
    view._thread.join(timeout=30)
    assert view.stopped_because == "view closed"


def test_close_watchers_of_one_program_only():
    a, b = FakeProgram(), FakeProgram()
    view_a = widgets.watch(a, "counts", every=0.2, text=False)
    view_b = widgets.watch(b, "counts", every=0.2, text=False)
    assert widgets.close_watchers(a) == 1
    assert not view_a.running and view_b.running
    view_b.close()


def test_text_mode_prints_one_snapshot_and_starts_no_thread():
    program = FakeProgram()
    view = widgets.watch(program, "counts", top=2, text=True)
    assert view_threads() == [] and view.box is None
    text = repr(view)
    assert text.splitlines()[0].startswith("counts (4 entries")
    assert "cat" in text and "bash" not in text  # only the top 2
    assert view._repr_mimebundle_() == {"text/plain": text}


def test_widget_mode_displays_the_box():
    view = widgets.watch(FakeProgram(), "counts", text=False, start=False)
    bundle = view._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == view.box.model_id
    view.close()


def test_every_is_validated_and_editable():
    with pytest.raises(UsageError):
        widgets.watch(FakeProgram(), "counts", every=0.0, text=True)
    view = widgets.watch(FakeProgram(), "counts", every=1.0, text=False, start=False)
    view.every_box.value = 2.5  # what the student types in the view
    assert view.every == 2.5
    view.close()


def test_event_view_keeps_latest_rows_rate_and_drops():
    program = FakeProgram()
    view = widgets.watch_events(program, "events", every=0.1, rows=4, text=False, start=False)
    view.refresh()
    view.refresh()
    assert view.total_rows == 6 and view.lost == 4
    assert list(view.latest["pid"]) == [11, 12, 20, 21, 22][-4:]
    assert view.rate > 0
    assert read_table(view.table.value)["pid"] == ["12", "20", "21", "22"]
    assert "4 lost" in view.status.value and "6 events" in view.status.value
    assert bytes(view.chart.value).startswith(PNG_MAGIC)
    view.close()


def test_event_view_thread_stops_on_close():
    program = FakeProgram()
    view = widgets.watch_events(program, "events", every=0.1, text=False)
    assert program.read_done.wait(3)
    view.close()
    assert view_threads() == [] and view.total_rows >= 3


def test_event_view_text_snapshot():
    view = widgets.watch_events(FakeProgram(), "events", text=True)
    assert "3 events" in repr(view) and "2 lost" in repr(view)


def test_under_nbclient_views_and_progress_degrade_to_text():
    """A kernel with no frontend (nbclient, as CI runs the tutorials): a printed snapshot, no
    widget, no thread, no progress widget."""
    import nbformat
    from nbclient import NotebookClient

    fake = (
        "import pandas as pd\n"
        "class P:\n"
        "    attached = True\n"
        "    def table(self, name):\n"
        "        return pd.DataFrame({'comm': ['cat', 'ls'], 'value': [3, 9]})\n"
    )
    show_view = "from ebpf_nb import widgets, progress\nview = widgets.watch(P(), 'counts')\nview"
    report = (
        "import threading\n"
        "print(widgets.has_widget_frontend(), view.text_mode,\n"
        "      [t.name for t in threading.enumerate() if t.name.startswith('ebpf_nb-')],\n"
        "      type(progress.make_progress('x', seconds=5, count=None)).__name__)"
    )
    cells = [fake, show_view, report]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    (view_output,) = nb.cells[1].outputs
    assert set(view_output["data"]) == {"text/plain"}
    assert view_output["data"]["text/plain"].splitlines()[1:] == ["comm  value", "  ls      9",
                                                                  " cat      3"]
    assert nb.cells[2].outputs[0]["text"] == "False True [] NullProgress\n"
