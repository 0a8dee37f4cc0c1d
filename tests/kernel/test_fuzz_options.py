"""Property-based fuzz of %%bpf option lines: the only exceptions a user sees are the kit's."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebpf_nb.errors import EbpfNbError

TOKENS = ["-a", "-D", "-G", "--no-attach", "--core", "--attach", "--define", "-x", "prog", "1",
          "syscall:execve", "tracepoint:syscalls:sys_enter_execve", "tracepoint:x", "kprobe:",
          "raw_tracepoint:sys_enter", "uprobe:/bin/sh:main", "=f", "f", "X=1", "'", '"', "{x}",
          "$y", "--", "-h", "--help", ":", "=", "fentry:vfs_read", "syscall:", "a=b=c"]
CELL = "int f(void *ctx) { return 0; }"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=8)), max_size=6))
def test_option_lines_fail_only_with_the_kits_errors(shell, tokens):
    line = " ".join(t.replace("\n", " ") for t in tokens)
    result = shell.run_cell(f"%%bpf {line}\n{CELL}", store_history=False)
    err = result.error_before_exec or result.error_in_exec
    assert err is None or isinstance(err, EbpfNbError), repr(err)
    shell.run_cell("%bpf_detach --all", store_history=False)
