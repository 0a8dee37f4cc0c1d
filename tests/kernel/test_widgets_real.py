"""Live views of a real program's map and events refresh in their threads."""
from __future__ import annotations

import threading
import time
from html.parser import HTMLParser

from ebpf_nb import widgets

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def read_table(markup: str) -> dict[str, list[str]]:
    """The columns of the HTML table a view shows, as text, by header."""
    parser = _Cells()
    parser.feed(markup)
    header, *rows = parser.rows
    return {name: [row[i] for row in rows] for i, name in enumerate(header)}


def view_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ebpf_nb-")]


VIEWED_SOURCE = r"""
struct event_t { u32 pid; char comm[16]; };
BPF_HASH(counts, struct event_t, u64);
BPF_PERF_OUTPUT(events);

TRACEPOINT_PROBE(syscalls, sys_enter_openat) {
    struct event_t e = {};
    e.pid = bpf_get_current_pid_tgid() >> 32;
    bpf_get_current_comm(&e.comm, sizeof(e.comm));
    counts.increment(e);
    events.perf_submit(args, &e, sizeof(e));
    return 0;
}
"""


def test_views_of_a_real_program_refresh_in_their_threads():
    from ebpf_nb.bcc_program import BpfProgram

    stop = threading.Event()

    def open_files():
        while not stop.wait(0.005):
            with open("/etc/hostname", "rb"):
                pass

    opener = threading.Thread(target=open_files, daemon=True)
    program = BpfProgram(VIEWED_SOURCE, "views_test")
    opener.start()
    try:
        table = widgets.watch(program, "counts", every=0.2, text=False)
        stream = widgets.watch_events(program, "events", every=0.3, text=False)
        deadline = time.monotonic() + 60
        while (table.refreshes < 3 or stream.refreshes < 3) and time.monotonic() < deadline:
            time.sleep(0.1)  # the views' own threads do the work; nothing to wait on but them
        assert table.failures == 0 and stream.failures == 0, (table.last_error, stream.last_error)
        assert table.refreshes >= 3 and stream.refreshes >= 3
        assert {"pid", "comm", "value"} <= set(table.frame.columns)
        assert "comm" in read_table(table.table.value)
        assert stream.total_rows > 0 and {"pid", "comm"} <= set(stream.latest.columns)
        assert bytes(table.chart.value).startswith(PNG_MAGIC)
        assert widgets.close_watchers(program) == 2
        assert view_threads() == []
    finally:
        stop.set()
        opener.join(timeout=5)
        widgets.close_watchers(program)
        program.detach()
