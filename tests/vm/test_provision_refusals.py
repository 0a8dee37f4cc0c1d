"""vagrant/provision.sh refuses bad input before changing anything (the same checks run in the
test VM, where "nothing changed" is also verified on a fresh machine; see tests/vm/guest_run.sh).

Needs root (as `make test` runs): the unsupported-distribution case bind-mounts a fake
/etc/os-release in a private mount namespace, the host's own file is never touched."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROVISION = REPO / "vagrant" / "provision.sh"


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)


@pytest.fixture(autouse=True)
def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("these tests switch users and mount namespaces: run them as root (make test)")


def test_without_root_it_stops_and_says_why():
    result = run("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                 "bash", str(PROVISION), "--repo", str(REPO))
    assert result.returncode == 1
    assert "must run as root" in result.stderr
    assert "[ebpf_nb setup] installing" not in result.stdout


def test_on_an_unsupported_distribution_it_stops_and_names_it(tmp_path: Path):
    fake = tmp_path / "os-release"
    fake.write_text('ID=fakeos\nPRETTY_NAME="Fake OS 1"\n')
    result = run("unshare", "--mount", "sh", "-c",
                 'mount --bind "$1" /etc/os-release && exec bash "$2" --repo "$3" --vm --user nobody',
                 "sh", str(fake), str(PROVISION), str(REPO))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "unsupported distribution 'Fake OS 1'" in result.stderr
    assert result.stdout == ""


def test_unknown_options_and_bad_service_settings_are_refused():
    assert run("bash", str(PROVISION), "--frobnicate").returncode == 2
    result = run("bash", str(PROVISION), "--repo", str(REPO), "--service", "--user", "root")
    assert result.returncode == 1
    assert "--user must not be root" in result.stderr or "needs systemd" in result.stderr
    result = run("bash", str(PROVISION), "--repo", "/nonexistent")
    assert result.returncode == 1 and "does not hold the ebpf_nb repository" in result.stderr
