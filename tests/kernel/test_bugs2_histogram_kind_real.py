"""A real linear histogram next to a comment saying log2 reads as linear."""
from __future__ import annotations

import subprocess

from histogram_sources import LINEAR_WITH_COMMENT

from ebpf_nb.bcc_program import BpfProgram


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
