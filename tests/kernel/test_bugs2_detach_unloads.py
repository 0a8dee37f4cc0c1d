"""``Program.detach()`` unloads the program even when closing one of its views raises (issue 14:
the exception skipped ``_unload``, leaving the program in the kernel with nothing to free it)."""
from __future__ import annotations

import pytest
from kit_helpers import all_gone, prog_exists

from ebpf_nb.bcc_program import BpfProgram

SOURCE = """
BPF_HASH(counts, u32, u64);
BPF_RINGBUF_OUTPUT(events, 8);
struct event { u32 pid; };
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    u32 key = 0;
    counts.increment(key);
    struct event e = {.pid = bpf_get_current_pid_tgid() >> 32};
    events.ringbuf_output(&e, sizeof(e), 0);
    return 0;
}
"""


class FrontendGone(RuntimeError):
    pass


def test_detach_unloads_even_when_a_view_fails_to_close():
    prog = BpfProgram(SOURCE, "views")
    ids = list(prog.prog_ids.values())
    assert ids and all(prog_exists(i) for i in ids)
    broken = prog.watch("counts", every=60.0, text=False)
    healthy = prog.watch("counts", every=60.0, text=False)
    stream = prog.event_stream("events")

    def close() -> None:
        raise FrontendGone("the view's frontend went away")

    broken.close = close
    try:
        with pytest.raises(FrontendGone):
            prog.detach()
        assert all_gone(ids), f"programs {ids} still loaded after detach()"
        assert healthy._closed and stream.closed  # the other views were closed too
        assert not prog.loaded
        prog.detach()  # a second call does nothing
    finally:
        prog._unload()  # if detach() skipped it, do not leave the program in the kernel
        del broken.close
        broken.close()


def test_detach_unloads_even_when_an_on_detach_callback_raises():
    prog = BpfProgram(SOURCE, "callbacks")
    ids = list(prog.prog_ids.values())
    assert ids and all(prog_exists(i) for i in ids)
    stream = prog.event_stream("events")
    ran: list[str] = []

    def broken() -> None:
        ran.append("broken")
        raise FrontendGone("a callback failed")

    prog.on_detach(broken)
    prog.on_detach(lambda: ran.append("after"))
    try:
        with pytest.raises(FrontendGone):
            prog.detach()
        assert all_gone(ids), f"programs {ids} still loaded after detach()"
        assert ran == ["broken", "after"] and stream.closed and not prog.loaded
    finally:
        prog._unload()
