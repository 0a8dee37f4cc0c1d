"""LINUX_KERNEL_VERSION as libbpf computes it: Ubuntu's signature, Debian's uname -v, uname -r."""
from __future__ import annotations

import pytest

from ebpf_nb.core import kernel_version as kv
from ebpf_nb.core.kernel_version import KernelVersion, libbpf_kernel_version

UBUNTU = {"version_signature": "Ubuntu 6.8.0-45.45-generic 6.8.12\n",
          "uname_version": "#45-Ubuntu SMP PREEMPT_DYNAMIC Fri Aug 30 12:02:04 UTC 2024",
          "uname_release": "6.8.0-45-generic"}
DEBIAN = {"version_signature": None,
          "uname_version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)",
          "uname_release": "6.1.0-28-amd64"}
PLAIN = {"version_signature": None, "uname_version": "#1 SMP PREEMPT_DYNAMIC @0",
         "uname_release": "6.18.44-fc-v857"}


def test_ubuntu_takes_the_signature_not_the_release() -> None:
    found = libbpf_kernel_version(**UBUNTU)
    assert found == KernelVersion(6, 8, 12, "/proc/version_signature")
    assert found.code == (6 << 16) + (8 << 8) + 12 != (6 << 16) + (8 << 8)


def test_debian_takes_uname_v_from_libbpf_1_2_on() -> None:
    assert libbpf_kernel_version(**DEBIAN) == KernelVersion(6, 1, 119, "uname -v")
    older = libbpf_kernel_version(**DEBIAN, debian_check=False)
    assert older == KernelVersion(6, 1, 0, "uname -r"), "libbpf 1.1 reads the release only"


def test_other_kernels_take_the_release() -> None:
    assert libbpf_kernel_version(**PLAIN) == KernelVersion(6, 18, 44, "uname -r")


def test_patch_levels_above_255_are_capped_like_kernel_version() -> None:
    found = libbpf_kernel_version(**{**DEBIAN, "uname_version": "#1 SMP Debian 4.19.316-1"})
    assert (found.patch, found.code) == (316, (4 << 16) + (19 << 8) + 255)


@pytest.mark.parametrize("signature", ["", "Ubuntu", "Ubuntu 6.8.0-45.45-generic",
                                       "Ubuntu 6.8.0-45.45-generic 6.8", "garbage x y z"])
def test_a_broken_signature_falls_back_like_libbpf(signature: str) -> None:
    found = libbpf_kernel_version(**{**UBUNTU, "version_signature": signature})
    assert found == KernelVersion(6, 8, 0, "uname -r")


def test_debian_word_without_a_version_falls_back_to_the_release() -> None:
    odd = {**DEBIAN, "uname_version": "#1 SMP Debian (custom) 6.1.119"}
    assert libbpf_kernel_version(**odd) == KernelVersion(6, 1, 0, "uname -r")


@pytest.mark.parametrize("release", ["6.8", "", "linux-6.8.1", "v6.8.1"])
def test_a_release_without_three_numbers_is_what_libbpf_refuses(release: str) -> None:
    assert libbpf_kernel_version(**{**PLAIN, "uname_release": release}) is None


def test_this_machine_reads_the_real_files(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    signature = tmp_path / "version_signature"
    signature.write_text("Ubuntu 6.8.0-45.45-generic 6.8.12\n")
    monkeypatch.setattr(kv, "VERSION_SIGNATURE", signature)
    monkeypatch.setattr(kv, "libbpf_version", lambda: (1, 3))
    assert kv.expected_kernel_version() == KernelVersion(6, 8, 12, str(signature))
    signature.unlink()
    assert kv.expected_kernel_version().source in ("uname -v", "uname -r")
