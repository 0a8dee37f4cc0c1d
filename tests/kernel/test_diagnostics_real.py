"""Verifier rejections of real programs (BCC and CO-RE), shown against the cell's own lines, with the whole log."""
from __future__ import annotations

import pandas as pd
import pytest

from ebpf_nb import host
from ebpf_nb.advice import AdviceTable
from ebpf_nb.errors import VerifierError

CORE_UNCHECKED = """%%bpf unchecked_core --core
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 8);
    __type(key, u32);
    __type(value, u64);
} counts SEC(".maps");

SEC("raw_tp/sys_enter")
int count(void *ctx) {
    u32 key = 0;
    u64 *value = bpf_map_lookup_elem(&counts, &key);
    return *value;
}
"""


def test_a_core_rejection_names_the_editors_line_and_quotes_it(shell):
    result = shell.run_cell(CORE_UNCHECKED, store_history=False)
    err = result.error_in_exec
    assert isinstance(err, VerifierError), repr(err)
    # line 18 of the cell as JupyterLab numbers it, %%bpf being line 1
    assert err.message.startswith("the verifier rejected count at cell line 18: "), err.message
    assert "; u64 *value = bpf_map_lookup_elem(&counts, &key);   <- cell line 17" in str(err)
    assert "; return *value;   <- cell line 18" in str(err)
    assert "unchecked_core" not in shell.user_ns


def test_a_bcc_rejection_keeps_its_line_after_a_blank_first_line(shell):
    # a cell that starts with empty lines: the numbering still follows the editor
    result = shell.run_cell("%%bpf gap -a tracepoint:syscalls:sys_enter_getppid\n\n\n"
                            "BPF_HASH(h, u32, u64);\nint f(void *ctx) {\n    u32 k = 0;\n"
                            "    u64 *v = h.lookup(&k);\n    return *v;\n}", store_history=False)
    err = result.error_in_exec
    assert isinstance(err, VerifierError) and "at cell line 8:" in err.message, repr(err)
    assert "; u64 *v = h.lookup(&k);   <- cell line 7" in str(err)


@pytest.mark.parametrize("room", [10, 20, 30, 40])
def test_the_verifier_log_survives_libbpfs_message_buffer_filling_up(monkeypatch, room):
    """After many loads libbpf's message list is trimmed; a load that straddles the trim must
    still show its verifier log (it once ended as a bare 'Permission denied')."""
    from ebpf_nb.core import CoreProgram
    from ebpf_nb.core import libbpf_log as libbpf

    monkeypatch.setattr(libbpf, "LOG", [(4, "an older message")] * (libbpf._LOG_LIMIT - room))
    monkeypatch.setattr(libbpf, "_dropped", 0)
    with pytest.raises(VerifierError) as info:
        CoreProgram(CORE_UNCHECKED.split("\n", 1)[1], "unchecked_core")
    assert info.value.message.startswith("the verifier rejected count at cell line 17: ")
    assert "map_value_or_null" in info.value.message


def test_the_verifier_log_survives_bcc_replacing_libbpfs_print_callback():
    """BCC shares libbpf.so.1 and installs its own print callback (e.g. for the doctor's
    fentry probe); a CO-RE rejection afterwards must still show its log, and BCC's callback
    is left in place."""
    import ctypes

    from ebpf_nb.core import CoreProgram
    from ebpf_nb.kernel import libbpf

    seen: list[int] = []
    other = libbpf.PRINT_FN(lambda level, fmt, args: seen.append(level) or 0)
    host.doctor()  # loads BCC programs, as %bpf_doctor does
    previous = libbpf.lib().libbpf_set_print(other)
    try:
        with pytest.raises(VerifierError) as info:
            CoreProgram(CORE_UNCHECKED.split("\n", 1)[1], "unchecked_core")
        assert info.value.message.startswith("the verifier rejected count at cell line 17: ")
        assert not seen  # the kit's callback took the messages
        restored = libbpf.lib().libbpf_set_print(other)
        assert restored == ctypes.cast(other, ctypes.c_void_p).value  # BCC's is back
    finally:
        libbpf.lib().libbpf_set_print(ctypes.cast(previous, libbpf.PRINT_FN))


def test_a_long_core_verifier_log_is_shown_not_cut():
    """libbpf hands the whole verifier log over as one message; one over 4 KB once lost its
    end marker and the rejection said only 'Permission denied'."""
    from ebpf_nb.core import CoreProgram

    steps = "\n".join("    acc = acc * 31 + bpf_get_prandom_u32();" for _ in range(40))
    source = CORE_UNCHECKED.split("\n", 1)[1].replace(
        "    u32 key = 0;\n", f"    u64 acc = 0;\n{steps}\n    u32 key = acc;\n")
    with pytest.raises(VerifierError) as info:
        CoreProgram(source, "long_log")
    err = info.value
    assert len(err.log) > 8000, len(err.log)  # the verifier walked all 40 steps
    assert err.message.startswith("the verifier rejected count at cell line 58: "), err.message
    assert "map_value_or_null" in err.message and "; return *value;   <- cell line 58" in str(err)


def test_doctor_is_an_advice_table_and_filters_to_plain_frames():
    from IPython.core.interactiveshell import InteractiveShell

    table = host.doctor()
    assert isinstance(table, AdviceTable)
    assert type(table[table.status == "OK"]) is pd.DataFrame
    formats, _ = InteractiveShell.instance().display_formatter.format(table)
    assert formats["text/plain"] == repr(table) and "…" not in formats["text/plain"]
    assert formats["text/html"].startswith('<table class="ebpf-nb-advice"')
