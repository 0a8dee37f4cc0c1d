"""A real linear histogram next to a comment saying log2 reads as linear."""
from __future__ import annotations

import subprocess

from ebpf_nb.bcc_program import BpfProgram

LINEAR_WITH_COMMENT = """
// not a log2 histogram: one bucket per CPU
BPF_HISTOGRAM(per_cpu, int, 64);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    per_cpu.increment(bpf_get_smp_processor_id());   /* bpf_log2l would lose the CPU */
    return 0;
}
"""


def test_a_linear_histogram_next_to_a_log2_comment_reads_as_linear():
    prog = BpfProgram(LINEAR_WITH_COMMENT, "percpu")
    try:
        for _ in range(3):
            subprocess.run(["python3", "-c", "import os; os.getppid()"], check=True)
        df = prog.table("per_cpu")
        assert df.attrs["kind"] == "linear_histogram"
        assert list(df.columns) == ["key", "count"]
        assert df["count"].sum() >= 3 and df.key.max() < 64
    finally:
        prog.detach()
