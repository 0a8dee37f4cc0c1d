"""clang for CO-RE cells: the cell's C -> a BPF ELF object, cached by source, flags and kernel.

The cell is compiled exactly as written (file ``cell.c``), so clang's line and column numbers are
the cell's own. One thing is appended after the last line (line numbers above it do not move):
for each ``struct NAME { ... }`` the cell defines, a pointer variable in the section
``.ebpf_nb.types``, which libbpf skips at load time. It keeps those structs in the object's BTF
even when only a local variable uses them (a ring-buffer event struct, typically), so their
layouts can become DataFrame columns.
"""
from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ebpf_nb import diagnostics
from ebpf_nb.core.cache import atomic_write, cache_dir, kernel_key, trusted_file
from ebpf_nb.core.vmlinux import vmlinux_include_dir
from ebpf_nb.errors import CompileError, HostError

CELL_FILE = "cell.c"
TYPES_SECTION = ".ebpf_nb.types"
LIBBPF_INCLUDE = Path("/usr/include")
MAX_CACHED_OBJECTS = 500  # holds bpf/bpf_helpers.h etc. (libbpf-dev)

_TARGET_ARCH = {"x86_64": "x86", "i686": "x86", "aarch64": "arm64", "arm64": "arm64",
                "armv7l": "arm", "s390x": "s390", "ppc64le": "powerpc", "ppc64": "powerpc",
                "riscv64": "riscv", "mips64": "mips", "loongarch64": "loongarch"}
_NAMED_STRUCT = re.compile(r"\bstruct\s+([A-Za-z_]\w*)\s*\{")


@dataclass(frozen=True)
class CompiledObject:
    """A compiled cell: the object file, the cell's source, and whether the cache answered."""

    path: Path
    source: str
    flags: tuple[str, ...]
    cached: bool


def target_arch(machine: str | None = None) -> str:
    """The ``__TARGET_ARCH_<arch>`` suffix bpf_tracing.h expects for this machine."""
    machine = machine or platform.machine()
    try:
        return _TARGET_ARCH[machine]
    except KeyError:
        raise HostError(f"no CO-RE target architecture known for machine {machine!r}") from None


def clang_flags(include_dir: Path, defines: Mapping[str, str | None] = {}) -> tuple[str, ...]:
    """The flags every CO-RE cell is compiled with (the include dir holds ``vmlinux.h``)."""
    flags = ["-O2", "-g", "-target", "bpf", f"-D__TARGET_ARCH_{target_arch()}",
             f"-I{include_dir}", f"-idirafter{LIBBPF_INCLUDE}"]
    multiarch = LIBBPF_INCLUDE / f"{platform.machine()}-linux-gnu"
    if multiarch.is_dir():  # <asm/types.h> for cells that include uapi headers
        flags.append(f"-idirafter{multiarch}")
    for name, value in sorted(defines.items()):
        flags.append(f"-D{name}" if value is None else f"-D{name}={value}")
    return tuple(flags)


def source_to_compile(source: str) -> str:
    """The cell plus, after its last line, the BTF keepers of the structs it defines."""
    names = sorted(set(_NAMED_STRUCT.findall(source)))
    keepers = "".join(
        f'struct {n} *__ebpf_nb_type_{n} __attribute__((section("{TYPES_SECTION}"), used));\n'
        for n in names)
    return source + ("" if source.endswith("\n") else "\n") + keepers


def compile_cell(source: str, *, defines: Mapping[str, str | None] = {},
                 cache: Path | None = None) -> CompiledObject:
    """Compile a cell's C into a BPF object, or return the cached object of an identical cell.

    Raises ``CompileError`` with the cell's line and column and clang's own words, and when the
    object has no ``SEC()`` program or no license.
    """
    clang = _find_clang()
    root = cache or cache_dir()
    flags = clang_flags(vmlinux_include_dir(cache=root), defines)
    key = _object_key(source, flags, clang)
    obj = root / "objects" / f"{key}.o"
    if trusted_file(obj, root):  # never an object another user could have put there
        os.utime(obj)  # most recently used: pruned last
        return CompiledObject(obj, source, flags, cached=True)
    with tempfile.TemporaryDirectory(prefix="ebpf_nb-") as tmp:
        (Path(tmp) / CELL_FILE).write_text(source_to_compile(source))
        done = subprocess.run([clang, *flags, "-c", CELL_FILE, "-o", "cell.o"], cwd=tmp,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise (diagnostics.compile_error(done.stderr, cell_file=CELL_FILE)
                   or CompileError("clang failed to compile the cell",
                                   details=done.stderr.strip()[-1500:] or None))
        _strip_dwarf(Path(tmp) / "cell.o")
        data = (Path(tmp) / "cell.o").read_bytes()
    check_object(data)
    atomic_write(obj, data, root)
    prune(obj.parent)
    return CompiledObject(obj, source, flags, cached=False)


def _strip_dwarf(path: Path) -> None:
    """Drop DWARF (``llvm-strip -g``): BTF and line info stay, the object shrinks ~20x."""
    strip = shutil.which("llvm-strip") or next(
        (s for v in range(20, 10, -1) if (s := shutil.which(f"llvm-strip-{v}"))), None)
    if strip:
        subprocess.run([strip, "-g", str(path)], capture_output=True, check=False)


def prune(objects: Path, keep: int = MAX_CACHED_OBJECTS) -> None:
    """Keep only the ``keep`` most recently used objects."""
    entries = sorted(objects.glob("*.o"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[keep:]:
        old.unlink(missing_ok=True)


def check_object(data: bytes) -> None:
    """Refuse an object with no ``SEC()`` program or no license, saying so plainly."""
    sections = elf_sections(data)
    programs = [name for name, flags, size in sections
                if flags & _SHF_EXECINSTR and size and name != ".text"]
    if not programs:
        raise CompileError(
            "the cell has no BPF program: no function is in a SEC() section",
            hint='put SEC("tracepoint/syscalls/sys_enter_execve") (or raw_tp/..., tp_btf/..., '
                 'uprobe/...) on the line before the function')
    if not any(name == "license" for name, _, _ in sections):
        raise CompileError(
            "the cell has no license: the kernel refuses most helpers to unlicensed programs",
            hint='add: char LICENSE[] SEC("license") = "GPL";')


_SHF_EXECINSTR = 0x4


def elf_sections(data: bytes) -> list[tuple[str, int, int]]:
    """``(name, flags, size)`` of each section of a 64-bit ELF object."""
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise CompileError("clang did not produce a 64-bit ELF object")
    end = "<" if data[5] == 1 else ">"
    shoff, = struct.unpack_from(end + "Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x3A)
    headers = [struct.unpack_from(end + "IIQQQQIIQQ", data, shoff + i * shentsize)
               for i in range(shnum)]
    strtab_off = headers[shstrndx][4]

    def name(off: int) -> str:
        start = strtab_off + off
        return data[start:data.index(b"\0", start)].decode()

    return [(name(h[0]), h[2], h[5]) for h in headers]


def _find_clang() -> str:
    clang = shutil.which("clang")
    if clang is None:
        raise HostError("clang is not installed: CO-RE cells are compiled with it",
                        hint="run `make setup` (Debian/Ubuntu package: clang)")
    return clang


def _object_key(source: str, flags: tuple[str, ...], clang: str) -> str:
    st = Path(clang).resolve().stat()
    parts = [source_to_compile(source), *flags, kernel_key(), f"{clang}:{st.st_size}:{st.st_mtime_ns}"]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]
