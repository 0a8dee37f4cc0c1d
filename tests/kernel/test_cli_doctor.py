"""`python -m ebpf_nb.cli doctor` probes this host and prints its table."""
from __future__ import annotations

from ebpf_nb import cli


def test_doctor_prints_the_host_table(capsys) -> None:
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    for row in ("privileges", "tracefs", "BTF", "kprobes", "bcc"):
        assert row in out
