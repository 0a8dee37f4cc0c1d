"""A real event read runs inside small_pages()."""
from __future__ import annotations

import numpy as np
from hugepage_switch import numpy_setting


def test_an_event_read_runs_with_small_pages(hugepages_on):
    """EventStream.read allocates its rows, strings and columns inside small_pages()."""
    from types import SimpleNamespace

    from bcc import BPF

    from ebpf_nb.buffers import EventStream
    from ebpf_nb.constants import MapType
    from ebpf_nb.kernel.testrun import test_run
    b = BPF(text=SOURCE.encode())
    try:
        fn = b.load_func(b"emit", BPF.RAW_TRACEPOINT)
        layout = SimpleNamespace(map_type=MapType.RINGBUF, fd=b[b"events"].map_fd, name="events")
        during: list[bool] = []

        def trigger() -> None:
            during.append(numpy_setting())
            test_run(fn.fd, [5])

        with EventStream(layout, np.dtype([("seq", "<u8")]), label="pages") as stream:
            df = stream.read(count=5, trigger=trigger)
        assert list(df["seq"]) == [0, 1, 2, 3, 4]
        assert during == [False]
        assert numpy_setting() is True
    finally:
        b.cleanup()


SOURCE = r"""
BPF_RINGBUF_OUTPUT(events, 1);
int emit(struct bpf_raw_tracepoint_args *ctx) {
    u32 n = ctx->args[0];
    for (u64 i = 0; i < 8; i++) {
        if (i >= n) break;
        events.ringbuf_output(&i, sizeof(i), 0);
    }
    return 0;
}
"""
