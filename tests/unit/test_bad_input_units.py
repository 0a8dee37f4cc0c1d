"""Bad input found before anything is loaded: an empty cell, no privileges, a host without tracefs or headers."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from kit_helpers import shown

from ebpf_nb.errors import (
    EbpfNbError,
    HostError,
    UsageError,
)


def test_empty_cell(shell):
    err, _ = shown(shell, "%%bpf empty\n   \n")
    assert isinstance(err, UsageError) and "no C code" in str(err)


def test_unprivileged_user_is_told_to_become_root(tmp_path):
    code = ("from ebpf_nb.bcc_program import BpfProgram\n"
            "from ebpf_nb.errors import PrivilegeError\n"
            "try:\n    BpfProgram('int f(void *c) { return 0; }')\n"
            "except PrivilegeError as e:\n    print('PRIV', e)\n")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             "--inh-caps=-all", sys.executable, "-c", code], cwd=repo,
                            capture_output=True, text=True, check=False,
                            env={**os.environ, "HOME": str(tmp_path)})
    assert "PRIV loading eBPF programs needs root" in result.stdout, result.stderr[-2000:]


def test_host_errors_point_to_the_fix(tmp_path):
    from ebpf_nb import host
    fake = host.HostPaths(proc=tmp_path / "proc", sys=tmp_path / "sys",
                          lib_modules=tmp_path / "modules", release="9.9.9-test")
    with pytest.raises(HostError, match="tracefs is not mounted") as info:
        host.require_tracefs(fake)
    assert "mount -t tracefs" in info.value.hint
    with pytest.raises(HostError, match="no kernel headers") as info:
        host.require_headers(fake)
    assert "make setup" in info.value.hint and "--core" in info.value.hint
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/status").write_text("Name: x\nCapEff:\t0000000000000000\n")
    with pytest.raises(EbpfNbError, match="needs root"):
        host.require_privileges(fake)
