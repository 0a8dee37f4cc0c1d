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


# --- Branches this machine cannot take for real, driven through stand-ins for apt -------------
# Ubuntu's bpftool comes with linux-tools; some distributions have no chromium package. The
# stand-ins answer apt-cache/dpkg-query as such a machine would and record what apt-get was
# asked to install; provision.sh itself runs unchanged. (The real packages are installed on
# Debian in the clean-root test and the VM guest.)
STUB = """#!/bin/sh
# stand-in for {name}, see tests/vm/test_provision_refusals.py
{body}
"""


def _stubs(tmp_path: Path, candidates: set[str], installed_missing: set[str]) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    bodies = {
        "bpftool": "exit 1" if "bpftool" in installed_missing else 'exec /usr/sbin/bpftool "$@"',
        "apt-cache": ('[ "$1" = policy ] || exit 0\ncase " ' + " ".join(sorted(candidates))
                      + ' " in *" $2 "*) echo "$2:"; echo "  Candidate: 1.0" ;; esac'),
        "apt-get": f'echo "$*" >> {tmp_path}/apt-get.log',
        "dpkg-query": ('case " ' + " ".join(sorted(installed_missing)) + ' " in *" $3 "*) exit 1 ;; '
                       'esac\nprintf "install ok installed"'),
    }
    for name, body in bodies.items():
        stub = bin_dir / name
        stub.write_text(STUB.format(name=name, body=body))
        stub.chmod(0o755)
    return bin_dir


def _provision_with_stubs(tmp_path: Path, os_release: str, bin_dir: Path, *options: str):
    fake = tmp_path / "os-release"
    fake.write_text(os_release)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run(
        ["unshare", "--mount", "sh", "-c",
         'mount --bind "$1" /etc/os-release && shift && exec bash "$@"', "sh", str(fake),
         str(PROVISION), "--repo", str(REPO), "--skip-venv", *options],
        check=False, capture_output=True, text=True, timeout=120, env=env)


def test_on_ubuntu_bpftool_comes_from_the_kernels_linux_tools(tmp_path: Path):
    kernel = os.uname().release
    bin_dir = _stubs(tmp_path, {f"linux-tools-{kernel}", "linux-tools-common"}, {"bpftool"})
    result = _provision_with_stubs(tmp_path, 'ID=ubuntu\nVERSION_ID="24.04"\n'
                                   'PRETTY_NAME="Ubuntu 24.04 LTS"\n', bin_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    installs = (tmp_path / "apt-get.log").read_text()
    assert f"install -y -qq --no-install-recommends linux-tools-common linux-tools-{kernel}" \
        in installs, installs


def test_without_a_kernel_specific_linux_tools_the_generic_one_is_used(tmp_path: Path):
    bin_dir = _stubs(tmp_path, {"linux-tools-generic", "linux-tools-common"}, {"bpftool"})
    result = _provision_with_stubs(tmp_path, 'ID=ubuntu\nVERSION_ID="22.04"\n', bin_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "linux-tools-common linux-tools-generic" in (tmp_path / "apt-get.log").read_text()


def test_without_a_chromium_package_it_says_how_to_point_at_one(tmp_path: Path):
    bin_dir = _stubs(tmp_path, set(), {"chromium"})
    result = _provision_with_stubs(tmp_path, 'ID=ubuntu\nVERSION_ID="24.04"\n', bin_dir,
                                   "--test-tools")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no chromium package here: point EBPF_NB_CHROMIUM" in result.stdout
    assert "chromium" not in (tmp_path / "apt-get.log").read_text()


def test_a_release_too_old_is_refused_before_anything_changes(tmp_path: Path):
    bin_dir = _stubs(tmp_path, set(), set())
    result = _provision_with_stubs(tmp_path, 'ID=debian\nVERSION_ID="11"\n'
                                   'PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\n', bin_dir)
    assert result.returncode == 1
    assert "Debian GNU/Linux 11 (bullseye) is too old: use Debian 12" in result.stderr
    assert not (tmp_path / "apt-get.log").exists() and result.stdout == ""
    result = _provision_with_stubs(tmp_path, 'ID=ubuntu\nVERSION_ID="20.04"\n', bin_dir)
    assert result.returncode == 1 and "too old: use Ubuntu 22.04" in result.stderr


def test_a_failing_step_names_itself_its_line_and_what_to_do(tmp_path: Path):
    bin_dir = _stubs(tmp_path, set(), {"bpftool"})
    (bin_dir / "apt-get").write_text("#!/bin/sh\necho 'E: Failed to fetch http://deb.debian.org/"
                                     "x  Temporary failure resolving deb.debian.org'\nexit 100\n")
    result = _provision_with_stubs(tmp_path, 'ID=debian\nVERSION_ID="12"\n', bin_dir)
    assert result.returncode == 100
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("[ebpf_nb setup] FAILED while downloading the package lists")
    assert "provision.sh line " in last and "the package archive cannot be reached" in last
    assert "it continues where it stopped" in last


def test_a_kernel_too_old_is_refused_before_anything_changes(tmp_path: Path):
    bin_dir = _stubs(tmp_path, set(), set())
    (bin_dir / "uname").write_text('#!/bin/sh\n[ "$1" = -r ] && echo 5.4.0-150-generic '
                                   '|| exec /bin/uname "$@"\n')
    (bin_dir / "uname").chmod(0o755)
    result = _provision_with_stubs(tmp_path, 'ID=debian\nVERSION_ID="12"\n', bin_dir)
    assert result.returncode == 1
    assert "kernel 5.4.0-150-generic is too old: the kit needs Linux 5.8 or newer" in result.stderr
    assert not (tmp_path / "apt-get.log").exists()
