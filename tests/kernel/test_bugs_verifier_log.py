"""CO-RE verifier logs reach the error whole, however long (issue 14).

libbpf hands the log to its print callback as one printf-style message. The callback formatted
it into a fixed 1 MiB buffer, so a longer log lost its end: the "-- END PROG LOAD LOG --" marker
and the verifier's reason line, and the student got "libbpf could not load the cell"."""
from __future__ import annotations

import pytest

from ebpf_nb.core import CoreProgram
from ebpf_nb.errors import VerifierError

# The loop makes the verifier walk ITERATIONS copies of its body before the unchecked lookup at
# the end (about 1 KB of log per iteration): the reason is the log's last instruction line.
LONG_LOG = """#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1); __type(key, u32);
         __type(value, u64); } m SEC(".maps");
SEC("tracepoint/syscalls/sys_enter_getpid")
int f(void *ctx)
{
    u64 x = bpf_ktime_get_ns();
    for (int i = 0; i < ITERATIONS; i++)
        x = x * 3 + (x >> 7) + i;
    u32 k = 0;
    u64 *v = bpf_map_lookup_elem(&m, &k);
    return *v + x;
}
char LICENSE[] SEC("license") = "GPL";
"""
REASON = "R0 invalid mem access 'map_value_or_null'"


@pytest.mark.parametrize(("iterations", "more_than"), [(20, 4096), (1500, 1 << 20)],
                         ids=["over-4KiB", "over-1MiB"])
def test_the_reason_line_of_a_long_verifier_log_reaches_the_error(iterations, more_than):
    with pytest.raises(VerifierError) as info:
        CoreProgram(LONG_LOG.replace("ITERATIONS", str(iterations)), "longlog")
    err = info.value
    assert len(err.log) > more_than
    assert err.message == f"the verifier rejected f at cell line 13: {REASON}"
    last = err.log.rstrip("\n").splitlines()[-2:]
    assert last[0] == REASON and last[1].startswith("processed ")
