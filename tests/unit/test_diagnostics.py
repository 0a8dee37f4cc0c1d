"""Verifier logs and clang output read against the cell's own lines, numbered as the editor
numbers them; tables of advice shown whole. Only the ``kernel`` tests load programs."""
from __future__ import annotations

from ebpf_nb import diagnostics
from ebpf_nb.advice import AdviceTable
from ebpf_nb.magics import as_compiled

CELL = as_compiled("""BPF_HASH(counts, u32, u64);
TRACEPOINT_PROBE(syscalls, sys_enter_execve) {
    u32 key = 0;
    u64 *v = counts.lookup(&key);
    (*v)++;
    return 0;
}""")

# what BCC 0.26 printed for CELL on kernel 6.18 (its main.c starts 22 lines above the cell)
BCC_LOG = """bpf: Failed to load program: Permission denied
0: R1=ctx() R10=fp0
; TRACEPOINT_PROBE(syscalls, sys_enter_execve) { @ main.c:24
0: (b7) r1 = 0                        ; R1=0
; u32 key = 0; @ main.c:26
1: (63) *(u32 *)(r10 -4) = r1         ; R1=0 R10=fp0 fp-8=0000????
; u64 *v = bpf_map_lookup_elem((void *)bpf_pseudo_fd(1, -1), &key); @ main.c:27
2: (18) r1 = 0xffff888104484000       ; R1=map_ptr(map=counts,ks=4,vs=8)
;  @ main.c:0
5: (07) r2 += -4                      ; R2=fp-4
; u64 *v = bpf_map_lookup_elem((void *)bpf_pseudo_fd(1, -1), &key); @ main.c:27
6: (85) call bpf_map_lookup_elem#1    ; R0=map_value_or_null(id=1,map=counts,ks=4,vs=8)
; (*v)++; @ main.c:28
7: (79) r1 = *(u64 *)(r0 +0)
R0 invalid mem access 'map_value_or_null'
processed 7 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0

HINT: The 'map_value_or_null' error can happen if you dereference a pointer value.
"""


def test_the_magic_line_is_line_one():
    compiled = as_compiled("int a;\nint b;")
    assert compiled.splitlines()[1:] == ["int a;", "int b;"]  # cell line 1 is editor line 2
    clang = "/virtual/main.c:3:5: error: use of undeclared identifier 'b'\n"
    assert diagnostics.parse_clang(clang)[0].line == 3


def test_excerpt_quotes_the_students_lines_not_bccs_rewrite():
    report = diagnostics.parse_verifier_log(BCC_LOG, CELL)
    assert report.reason == "R0 invalid mem access 'map_value_or_null'"
    assert report.cell_line == 6  # (*v)++ is editor line 6: %%bpf is line 1
    assert "; u64 *v = counts.lookup(&key);   <- cell line 5" in report.log
    assert "; (*v)++;   <- cell line 6" in report.log
    assert "bpf_pseudo_fd" not in report.log and "main.c" not in report.log
    assert "bpf: Failed" not in report.log and "HINT" not in report.log
    assert report.hints == [("The 'map_value_or_null' error can happen if you dereference a "
                             "pointer value.")]


def test_annotations_outside_the_cell_stay_as_the_verifier_wrote_them():
    log = "; static int helper(void) { @ main.c:3\n0: (b7) r0 = 0\n" + BCC_LOG
    report = diagnostics.parse_verifier_log(log, CELL, keep=100)
    assert "; static int helper(void) { @ main.c:3" in report.log  # BCC's header, not the cell
    assert report.cell_line == 6


def test_a_headers_lines_are_never_taken_for_the_cells():
    # line 30 of bpf_helpers.h minus the cell's offset (22) would be cell line 8
    log = BCC_LOG.replace("; (*v)++; @ main.c:28",
                          "; return bpf_tail_call(ctx, map, i); @ bpf_helpers.h:30\n"
                          "; (*v)++; @ main.c:28")
    report = diagnostics.parse_verifier_log(log, CELL)
    assert "; return bpf_tail_call(ctx, map, i); @ bpf_helpers.h:30" in report.log
    assert "<- cell line 8" not in report.log and report.cell_line == 6


def test_logs_without_source_or_reason():
    assert diagnostics.parse_verifier_log("", CELL).reason == "the verifier gave no reason"
    bare = "0: (b7) r0 = 0\ninvalid insn\nprocessed 1 insns (limit 1000000)\n"
    report = diagnostics.parse_verifier_log(bare, CELL)
    assert (report.reason, report.cell_line) == ("invalid insn", None)
    # a cell whose lines all differ from the log's: nothing is mapped, nothing invented
    report = diagnostics.parse_verifier_log(BCC_LOG, "int unrelated;\n")
    assert report.cell_line is None and "<- cell line" not in report.log


def test_verifier_hints_name_the_right_fix():
    hint = diagnostics.hint_for_verifier
    assert "NULL" in hint("R0 invalid mem access 'map_value_or_null'")
    assert "size" in hint("invalid unbounded variable-offset read from stack R1")
    assert "1 million" in hint("BPF program is too large. Processed 1000001 insn")
    assert "constant limit" in hint("infinite loop detected at insn 7")
    assert "BPF_CORE_READ" in hint("R1 invalid mem access 'scalar'")
    assert "initialise" in hint("invalid indirect read from stack R2 off -16+0 size 16")
    assert "512 bytes" in hint("combined stack size of 2 calls is 544. Too large")
    assert hint("something nobody has seen") is None


LONG_FIX = ("use tracepoints, raw tracepoints or `-a syscall:NAME` (the kit picks the tracepoint); "
            "the VM has kprobes, and this sentence ends with the word ZEBRA")


def advice() -> AdviceTable:
    return AdviceTable([{"check": "kprobes", "status": "problem", "detail": "no <kprobes> & co",
                         "fix": LONG_FIX},
                        {"check": "JIT", "status": "OK", "detail": "on", "fix": None}],
                       columns=["check", "status", "detail", "fix"])


def test_advice_text_is_wrapped_left_aligned_and_whole():
    text = repr(advice())
    assert "…" not in text and "..." not in text
    assert LONG_FIX in " ".join(text.split())  # every word, in order
    lines = text.splitlines()
    assert lines[0].startswith("check ") and lines[2].startswith("kprobes ")  # left-aligned
    assert max(len(ln) for ln in lines) < 60 + 40  # wrapped, not one endless line
    fix_col = lines[0].index("fix")
    assert lines[3][:fix_col].strip() == "" and lines[3][fix_col:].strip()  # a continuation line
    assert lines[-1].split() == ["JIT", "OK", "on"]  # an empty cell shows empty, not "nan"


def test_advice_html_is_escaped_left_aligned_and_whole():
    page = advice()._repr_html_()
    assert LONG_FIX in page and "…" not in page and "..." not in page
    assert "no &lt;kprobes&gt; &amp; co" in page and "<kprobes>" not in page
    assert page.count("text-align:left") == 4 + 8  # every header and every cell
    assert "white-space:normal" in page


def test_an_empty_advice_table_still_shows_its_header():
    text = repr(AdviceTable([], columns=["check", "fix"]))
    assert text.splitlines()[0].split() == ["check", "fix"]
    assert "<thead>" in AdviceTable([], columns=["check"])._repr_html_()


def test_bccs_too_large_message_is_told_as_the_verifier_giving_up():
    log = "bpf: Argument list too long. Program  too large (41 insns), at most 4096 insns\n\n"
    report = diagnostics.parse_verifier_log(log, CELL)
    assert report.reason.startswith("too complex to verify") and "41 instructions" in report.reason
    assert "4096" not in report.reason and report.cell_line is None and report.log == ""
    assert "1 million" in diagnostics.hint_for_verifier(report.reason)


def test_btf_notes_before_the_instructions_are_left_out():
    log = "arg#0 reference type('UNKNOWN ') size cannot be determined: -22\n" + BCC_LOG
    report = diagnostics.parse_verifier_log(log, CELL, keep=100)
    assert "UNKNOWN" not in report.log and report.log.startswith("0: R1=ctx() R10=fp0")


def test_a_short_error_is_kept_in_sys_last_value_for_debug_and_checks():
    import sys

    from IPython.core.interactiveshell import InteractiveShell

    from ebpf_nb.errors import UsageError

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "ebpf_nb")
    result = shell.run_cell("%%bpf 1abc\nint f(void *ctx) { return 0; }", store_history=False)
    assert isinstance(result.error_in_exec, UsageError)
    assert sys.last_value is result.error_in_exec and sys.last_type is UsageError


# Linux before 6.4 prints the source line alone: "; code", with no "@ file:line" (seen in the
# Debian 12 guest, Linux 6.1), so the cell's lines can only be found by their text
OLD_KERNEL_LOG = "\n".join(
    ln.split(" @ ")[0] if ln.startswith(";") else ln for ln in BCC_LOG.splitlines())


def test_a_log_without_line_numbers_is_mapped_by_the_cells_text():
    assert "@ main.c" not in OLD_KERNEL_LOG
    report = diagnostics.parse_verifier_log(OLD_KERNEL_LOG, CELL)
    assert report.reason == "R0 invalid mem access 'map_value_or_null'"
    assert report.cell_line == 6
    assert "; u64 *v = counts.lookup(&key);   <- cell line 5" in report.log
    assert "; u32 key = 0;   <- cell line 4" in report.log
    assert "bpf_pseudo_fd" not in report.log


def test_without_line_numbers_a_text_the_cell_has_twice_or_never_is_not_mapped():
    twice = CELL.replace("    (*v)++;\n", "    (*v)++;\n    (*v)++;\n")
    report = diagnostics.parse_verifier_log(OLD_KERNEL_LOG, twice)
    assert report.cell_line is None and "; (*v)++;   <- cell line" not in report.log
    assert "; u64 *v = counts.lookup(&key);   <- cell line 5" in report.log
    report = diagnostics.parse_verifier_log(OLD_KERNEL_LOG, "int unrelated;\n")
    assert report.cell_line is None and "<- cell line" not in report.log
    # a header's line (no file name on old kernels) is left as written unless the cell has it
    log = OLD_KERNEL_LOG.replace("; (*v)++;", "; return bpf_tail_call(ctx, map, i);")
    report = diagnostics.parse_verifier_log(log, CELL)
    assert "; return bpf_tail_call(ctx, map, i);" in report.log and report.cell_line is None


def test_bccs_rewritten_map_calls_match_the_students_method_calls():
    cell = as_compiled("BPF_HASH(h, u32, u64);\nint f(void *ctx) {\n  u32 k = 0, one = 1;\n"
                       "  h.update(&k, &one);\n  h.delete(&k);\n  return 0;\n}")
    log = ("; bpf_map_update_elem((void *)bpf_pseudo_fd(1, -1), &k, &one, BPF_ANY);\n"
           "3: (85) call bpf_map_update_elem#2\n"
           "; bpf_map_delete_elem((void *)bpf_pseudo_fd(1, -1), &k);\n"
           "4: (85) call bpf_map_delete_elem#3\nbad thing\nprocessed 4 insns\n")
    report = diagnostics.parse_verifier_log(log, cell)
    assert "; h.update(&k, &one);   <- cell line 5" in report.log
    assert "; h.delete(&k);   <- cell line 6" in report.log and report.cell_line == 6
