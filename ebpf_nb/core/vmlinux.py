"""``vmlinux.h``: every type of the running kernel as C, generated from its BTF with bpftool.

Generated once per kernel build (see ``cache.kernel_key``) into
``<cache>/vmlinux/<kernel key>/vmlinux.h``; the directory is what clang gets as ``-I``. A
header that another user could have written is never used (see :mod:`ebpf_nb.core.cache`).
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ebpf_nb.core.cache import KERNEL_BTF, atomic_write, cache_dir, kernel_key, trusted_file
from ebpf_nb.errors import HostError


def vmlinux_include_dir(btf_path: Path = KERNEL_BTF, *, cache: Path | None = None) -> Path:
    """The directory holding this kernel's ``vmlinux.h``, generating the header when missing."""
    if not btf_path.exists():
        raise HostError(
            f"{btf_path} does not exist: this kernel was built without BTF",
            hint="CO-RE needs a kernel with CONFIG_DEBUG_INFO_BTF=y; use a BCC cell instead.",
        )
    root = cache or cache_dir()
    directory = root / "vmlinux" / kernel_key(btf_path)
    header = directory / "vmlinux.h"
    if not trusted_file(header, root):  # missing, or writable by someone else: made anew
        atomic_write(header, dump_btf_as_c(btf_path), root)
    return directory


def dump_btf_as_c(btf_path: Path) -> bytes:
    """``bpftool btf dump file BTF format c``: the kernel's types as one C header."""
    bpftool = shutil.which("bpftool") or next(
        (p for p in ("/usr/sbin/bpftool", "/sbin/bpftool") if Path(p).exists()), None)
    if bpftool is None:
        raise HostError("bpftool is not installed: it generates vmlinux.h for CO-RE cells",
                        hint="run `make setup` (Debian/Ubuntu package: bpftool)")
    done = subprocess.run([bpftool, "btf", "dump", "file", str(btf_path), "format", "c"],
                          capture_output=True, check=False)
    if done.returncode != 0 or not done.stdout:
        raise HostError(f"bpftool could not dump {btf_path} as C",
                        details=done.stderr.decode(errors="replace").strip())
    return done.stdout
