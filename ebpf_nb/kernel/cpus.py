"""CPU lists from sysfs: per-CPU map values are sized by *possible* CPUs, perf rings by *online*."""
from __future__ import annotations

from functools import cache
from pathlib import Path

CPU_ROOT = Path("/sys/devices/system/cpu")


def parse_cpu_list(text: str) -> list[int]:
    """``"0-3,6"`` -> ``[0, 1, 2, 3, 6]`` (the kernel's cpulist format)."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


@cache
def possible_cpus(root: Path = CPU_ROOT) -> list[int]:
    """CPUs the kernel sizes per-CPU maps for (``/sys/devices/system/cpu/possible``)."""
    return parse_cpu_list((root / "possible").read_text())


def online_cpus(root: Path = CPU_ROOT) -> list[int]:
    """CPUs online now (``/sys/devices/system/cpu/online``); one perf ring is opened per CPU."""
    return parse_cpu_list((root / "online").read_text())
