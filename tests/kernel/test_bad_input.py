"""Every mistake ends the cell with one short message of the kit's own: what, where, what to do."""
from __future__ import annotations

import pytest
from kit_helpers import run, shown

from ebpf_nb.errors import (
    AttachError,
    CompileError,
    HostError,
    UsageError,
    VerifierError,
)

TP = "TRACEPOINT_PROBE(syscalls, sys_enter_execve) { return 0; }"


def test_compile_error_names_cell_line_and_column_without_traceback(shell):
    err, text = shown(shell, "%%bpf broken\nint hello(void *ctx) {\n    u32 x = y + 1;\n"
                             "    return x;\n}")
    # line numbers as the editor shows them: the %%bpf line is line 1
    assert isinstance(err, CompileError) and (err.line, err.column) == (3, 13)
    assert "line 3, column 13" in text and "undeclared identifier 'y'" in text
    assert "Traceback" not in text and len(text.splitlines()) < 12


def test_verifier_rejection_shows_log_and_hint_not_permissions(shell):
    err, text = shown(shell, """%%bpf unsafe -a tracepoint:syscalls:sys_enter_execve
BPF_HASH(h, u32, u64);
int hello(void *ctx) {
    u32 k = 0;
    u64 *v = h.lookup(&k);
    return *v;
}""")
    assert isinstance(err, VerifierError) and "at cell line 6:" in text
    # the excerpt quotes the student's own line, not BCC's rewritten bpf_map_lookup_elem(...)
    assert "; u64 *v = h.lookup(&k);   <- cell line 5" in text
    assert "; return *v;   <- cell line 6" in text and "bpf_pseudo_fd" not in text
    assert "map_value_or_null" in text and "HINT" not in text and "Hint:" in text
    assert "privilege" not in text.lower() and "permission" not in text.lower()
    assert "Traceback" not in text


@pytest.mark.parametrize("line, cell, error, words", [
    ("-a tracepoint:nope:nope", "int f(void *ctx) { return 0; }", AttachError, "no tracepoint nope:nope"),
    ("-a raw_tracepoint:nope_nope", "int f(void *ctx) { return 0; }", AttachError, "raw_tracepoint:nope_nope"),
    ("-a uprobe:/no/such/file:main", "int f(void *ctx) { return 0; }", AttachError, "/no/such/file"),
    ("-a syscall:no_such_call", "int f(void *ctx) { return 0; }", AttachError, "no_such_call"),
    ("-a tracepoint:syscalls:sys_enter_execve=nope", "int f(void *ctx) { return 0; }", UsageError, "'nope'"),
    ("-a tracepoint:syscalls:sys_enter_execve", "int f(void *ctx) { return 0; }\nint g(void *ctx) { return 0; }", UsageError, "f, g"),
    ("-a bogus:thing", TP, UsageError, "unknown probe kind 'bogus'"),
    ("-a tracepoint:only_one", TP, UsageError, "tracepoint:syscalls:sys_enter_openat"),
    ("--frobnicate", TP, UsageError, "frobnicate"),
    ("1abc", TP, UsageError, "not a valid Python name"),
    ("-D 9bad", TP, UsageError, "macro"),
    ("-G x=1", TP, UsageError, "--core"),
    ("'unbalanced", TP, UsageError, "options"),
    ("nothing_to_attach", "int f(void *ctx) { return 0; }", UsageError, "nothing to attach"),
])
def test_bad_probes_and_options_are_named(shell, line, cell, error, words):
    err, text = shown(shell, f"%%bpf {line}\n{cell}")
    assert isinstance(err, error), repr(err)
    assert words in str(err), str(err)
    assert "Traceback" not in text


def test_kprobe_without_kprobes_says_what_to_do(shell):
    from ebpf_nb import host
    if host.kprobes_available():
        pytest.skip("this kernel has kprobes: the kprobe path is tested in test_probes_real")
    err, _ = shown(shell, "%%bpf kp -a kprobe:do_sys_openat2\nint f(void *ctx) { return 0; }")
    assert isinstance(err, HostError) and "CONFIG_KPROBES" in str(err) and "syscall:" in err.hint


def test_unknown_map_and_wrong_reads_are_named(shell):
    run(shell, """%%bpf prog
BPF_HASH(counts, u32, u64);
BPF_PERF_OUTPUT(out);
TRACEPOINT_PROBE(syscalls, sys_enter_execve) { return 0; }""")
    prog = shell.user_ns["prog"]
    with pytest.raises(UsageError, match=r"no map named 'nope' \(its maps: counts, out\)"):
        prog.table("nope")
    with pytest.raises(UsageError, match="events"):
        prog.table("out")
    with pytest.raises(UsageError, match="not a perf or ring buffer"):
        prog.events("counts", seconds=0.1)
    with pytest.raises(UsageError, match="seconds must be a positive"):
        prog.trace(seconds=-1)
    prog.detach()
    with pytest.raises(UsageError, match="was detached"):
        prog.table("counts")


def test_errors_in_trigger_functions_reach_the_user(shell):
    run(shell, "%%bpf prog\nstruct e { u32 x; };\nBPF_PERF_OUTPUT(out);\n"
               "TRACEPOINT_PROBE(syscalls, sys_enter_execve) { struct e v = {1}; "
               "out.perf_submit(args, &v, sizeof(v)); return 0; }")

    def bad_trigger():
        raise RuntimeError("boom from the trigger")
    with pytest.raises(RuntimeError, match="boom from the trigger"):
        shell.user_ns["prog"].events("out", trigger=bad_trigger)


def test_events_of_an_unknown_type_say_how_to_fix(shell):
    run(shell, "%%bpf scalar\nBPF_PERF_OUTPUT(out);\n"
               "TRACEPOINT_PROBE(syscalls, sys_enter_execve) { u32 x = 1; "
               "out.perf_submit(args, &x, sizeof(x)); return 0; }")
    with pytest.raises(UsageError, match="event type of 'out' is unknown"):
        shell.user_ns["scalar"].events("out", seconds=0.1)


def test_full_traceback_setting(shell):
    run(shell, "%config BpfMagics.short_errors = False")
    try:
        err, text = shown(shell, "%%bpf broken\nint f(void *ctx) { return y; }")
    finally:
        run(shell, "%config BpfMagics.short_errors = True")
    assert isinstance(err, CompileError)
    assert "Traceback" in text and "bcc_program.py" in text
    assert "undeclared identifier 'y'" in text
