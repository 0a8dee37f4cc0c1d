"""Syscall numbers of the machine's own architecture (execve is 59 on x86_64, 221 on arm64).

The C library's headers are the source of truth: ``<sys/syscall.h>`` run through the C
preprocessor gives each ``__NR_name`` as the number this architecture uses. When no preprocessor
is installed, the numbers are read from the kernel's ``asm/unistd*.h`` headers directly.
"""
from __future__ import annotations

import functools
import platform
import re
import shutil
import subprocess
from pathlib import Path

_HEADER_GLOBS = ("/usr/include/*-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h",
                 "/usr/include/asm-generic/unistd.h")
_NUMBER = re.compile(r"^(\w+)=\(?\s*(\d+)\s*\)?$")


def syscall_number(name: str) -> int:
    """The number of syscall ``name`` on this machine's architecture.

    >>> syscall_number("execve") in (59, 221, 11)
    True
    """
    numbers = syscall_numbers()
    if name not in numbers:
        raise KeyError(f"no syscall called {name!r} on {platform.machine()}")
    return numbers[name]


def syscall_numbers(names: list[str] | None = None) -> dict[str, int]:
    """A ``{name: number}`` table of this architecture's syscalls (all, or only ``names``)."""
    table = _table()
    if names is None:
        return dict(table)
    return {name: table[name] for name in names if name in table}


@functools.cache
def _table() -> dict[str, int]:
    names = _names_from_headers()
    return _via_preprocessor(names) or _via_headers()


def _header_paths() -> list[Path]:
    paths: list[Path] = []
    for pattern in _HEADER_GLOBS:
        paths.extend(sorted(Path("/").glob(pattern.lstrip("/"))))
    return paths


def _names_from_headers() -> set[str]:
    names: set[str] = set()
    for path in _header_paths():
        names.update(re.findall(r"#define\s+__NR_(\w+)\s", path.read_text(errors="replace")))
    names.discard("syscalls")
    return names


def _via_preprocessor(names: set[str]) -> dict[str, int]:
    cpp = shutil.which("cpp") or shutil.which("clang-cpp")
    if not cpp or not names:
        return {}
    source = "#include <sys/syscall.h>\n" + "".join(f"{n}=__NR_{n}\n" for n in sorted(names))
    try:
        out = subprocess.run([cpp, "-P", "-"], input=source, capture_output=True, text=True,
                             timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    table: dict[str, int] = {}
    for line in out.splitlines():
        match = _NUMBER.match(line.replace(" ", ""))
        if match:
            table[match.group(1)] = int(match.group(2))
    return table


def _via_headers() -> dict[str, int]:
    table: dict[str, int] = {}
    for path in _header_paths():
        for name, number in re.findall(r"#define\s+__NR_(\w+)\s+(\d+)\s*$",
                                       path.read_text(errors="replace"), re.MULTILINE):
            table.setdefault(name, int(number))
    return table
