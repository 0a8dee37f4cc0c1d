"""The kernel version libbpf gives a CO-RE program as ``LINUX_KERNEL_VERSION``.

libbpf does not simply parse ``uname -r`` (``get_kernel_version()`` in libbpf_probes.c):

1. Ubuntu: ``/proc/version_signature`` ("Ubuntu 6.8.0-45.45-generic 6.8.12"), third word;
2. Debian, libbpf 1.2 and later: ``uname -v`` ("#1 SMP Debian 6.1.119-1 (2024-11-22)"),
   the version after the first "Debian ";
3. otherwise ``uname -r`` ("6.18.44-custom"), which must start with three numbers.

The code is ``KERNEL_VERSION(a, b, c) = (a << 16) + (b << 8) + min(c, 255)``. Distribution
release strings keep the patch level at 0 (Ubuntu's 6.8.0-45-generic is really 6.8.12), so a
number computed from ``platform.release()`` is wrong on exactly the kernels students use.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import HostError

VERSION_SIGNATURE = Path("/proc/version_signature")
DEBIAN_SINCE_LIBBPF = (1, 2)  # the Debian check landed in libbpf 1.2 (bpf-next, February 2023)

_THREE_NUMBERS = r"(\d+)\.(\d+)\.(\d+)"


@dataclass(frozen=True)
class KernelVersion:
    """A kernel version as libbpf sees it, and where libbpf read it."""

    major: int
    minor: int
    patch: int
    source: str  # "/proc/version_signature", "uname -v" or "uname -r"

    @property
    def code(self) -> int:
        """The number a program reads in ``LINUX_KERNEL_VERSION``."""
        return (self.major << 16) + (self.minor << 8) + min(self.patch, 255)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch} (from {self.source})"


def _numbers(match: re.Match[str] | None, source: str) -> KernelVersion | None:
    if match is None:
        return None
    major, minor, patch = (int(n) for n in match.groups())
    return KernelVersion(major, minor, patch, source)


def libbpf_kernel_version(*, version_signature: str | None, uname_version: str,
                          uname_release: str, debian_check: bool = True) -> KernelVersion | None:
    """The version libbpf computes from these inputs; None where libbpf fails (it returns 0).

    ``version_signature`` is the text of /proc/version_signature (None when absent or
    unreadable); ``debian_check`` is False for libbpf older than 1.2, which skips step 2.
    """
    if version_signature is not None:  # fscanf("%*s %*s %u.%u.%u")
        found = _numbers(re.match(rf"\s*\S+\s+\S+\s+{_THREE_NUMBERS}", version_signature),
                         str(VERSION_SIGNATURE))
        if found:
            return found
    if debian_check:  # strstr(version, "Debian "), then sscanf("Debian %u.%u.%u")
        at = uname_version.find("Debian ")
        if at >= 0:
            found = _numbers(re.match(rf"Debian\s+{_THREE_NUMBERS}", uname_version[at:]),
                             "uname -v")
            if found:
                return found
    return _numbers(re.match(rf"\s*{_THREE_NUMBERS}", uname_release), "uname -r")


def libbpf_version() -> tuple[int, int]:
    """(major, minor) of the libbpf.so the kit loads CO-RE programs with."""
    from ebpf_nb.kernel.libbpf import lib

    handle = lib()
    return int(handle.libbpf_major_version()), int(handle.libbpf_minor_version())


def _read_signature() -> str | None:
    try:
        return VERSION_SIGNATURE.read_text()
    except OSError:  # absent (not Ubuntu) or unreadable: libbpf skips it too
        return None


def expected_kernel_version() -> KernelVersion:
    """What ``LINUX_KERNEL_VERSION`` holds for a CO-RE program loaded on this machine."""
    uname = os.uname()
    found = libbpf_kernel_version(version_signature=_read_signature(),
                                  uname_version=uname.version, uname_release=uname.release,
                                  debian_check=libbpf_version() >= DEBIAN_SINCE_LIBBPF)
    if found is None:
        raise HostError(f"libbpf cannot tell this kernel's version from `uname -r` = "
                        f"{uname.release!r}: programs using LINUX_KERNEL_VERSION fail to load",
                        hint="declare it `__weak` and test it for 0 in the program")
    return found
