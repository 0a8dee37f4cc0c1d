"""A program's state is named in one place (Program.state): the summary, %bpf_list and the cell's
reply all read it. No kernel: a Program base object with attachments set by hand."""
from __future__ import annotations

from ebpf_nb.magics import _loaded_message
from ebpf_nb.program import Attachment, Program


class _Unloadable(Program):
    def _unload(self) -> None:
        pass

    def _map_layouts(self):
        return {}


def test_loaded_attached_detached_are_named_alike_everywhere() -> None:
    p = _Unloadable("demo", "")
    assert p.state == "loaded"
    assert p.summary().startswith("demo (base): loaded (not attached: call .attach())")
    assert _loaded_message(p).startswith("demo: loaded (not attached: call .attach())")
    p.attachments.append(Attachment("tracepoint:syscalls:sys_enter_openat", "f", ""))
    assert p.state == "attached" and p.attached
    assert p.summary().startswith("demo (base): attached") and _loaded_message(p).startswith(
        "demo: attached")
    p.detach()
    assert p.state == "detached" and p.summary() == "demo (base): detached"
