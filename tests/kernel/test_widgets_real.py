"""Live views of a real program's map and events refresh in their threads."""
from __future__ import annotations

import threading
import time

from view_tables import PNG_MAGIC, read_table, view_threads

from ebpf_nb import widgets

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
