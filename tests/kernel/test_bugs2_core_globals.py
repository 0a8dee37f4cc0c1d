"""``CoreProgram.get_global()`` once the libbpf object is gone (issue 14).

``detach()`` closes the libbpf object, which frees its maps and their initial values; a re-run
of a cell detaches the old program first, so a failed re-run leaves the student's old variable
pointing at a closed object. ``get_global`` read the freed ``.rodata`` copy; it must refuse."""
from __future__ import annotations

import pytest

from ebpf_nb.core import CoreProgram
from ebpf_nb.errors import CompileError, UsageError
from ebpf_nb.registry import Registry

SOURCE = """#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
const volatile u32 magic = 0xBEEF;
SEC("raw_tp/sys_enter")
int on_enter(void *ctx) { return magic == 1; }
char LICENSE[] SEC("license") = "GPL";
"""


def test_get_global_after_detach_raises_usage_error():
    p = CoreProgram(SOURCE, "glob")
    assert p.get_global("magic") == 0xBEEF
    p.detach()
    with pytest.raises(UsageError) as info:
        p.get_global("magic")
    assert "detached" in info.value.message
    assert info.value.hint and "again" in info.value.hint


def test_get_global_after_a_failed_rerun_raises_usage_error():
    registry = Registry()
    old = registry.replace("glob", lambda: CoreProgram(SOURCE, "glob", attach=False))
    old.set_global("magic", 7)
    assert old.get_global("magic") == 7
    with pytest.raises(CompileError):
        registry.replace("glob", lambda: CoreProgram(SOURCE + "this is not C;", "glob"))
    with pytest.raises(UsageError, match="detached"):
        old.get_global("magic")
    with pytest.raises(UsageError, match="detached"):
        old.set_global("magic", 8)
