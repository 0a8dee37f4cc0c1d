"""Where the CO-RE backend keeps what it generates, and the key of the running kernel build.

The cache directory is ``$EBPF_NB_CACHE`` or ``~/.cache/ebpf_nb``. A kernel build is named by
``uname -r`` plus a digest of its BTF, so a rebuilt kernel with the same release string still
gets its own ``vmlinux.h`` and objects (and a reboot into the same build keeps the cache).
"""
from __future__ import annotations

import functools
import hashlib
import os
import platform
from pathlib import Path

KERNEL_BTF = Path("/sys/kernel/btf/vmlinux")


def cache_dir() -> Path:
    """The root of the cache (created on first use)."""
    root = Path(os.environ.get("EBPF_NB_CACHE") or Path.home() / ".cache" / "ebpf_nb")
    root.mkdir(parents=True, exist_ok=True)
    return root


def kernel_key(btf_path: Path = KERNEL_BTF) -> str:
    """A short, filesystem-safe name of this kernel build: release plus a digest of its BTF."""
    st = btf_path.stat()
    digest = _btf_digest(str(btf_path), st.st_size, st.st_mtime_ns)
    release = "".join(c if c.isalnum() or c in "._-" else "_" for c in platform.release())
    return f"{release}-{digest}"


@functools.lru_cache(maxsize=8)
def _btf_digest(path: str, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
