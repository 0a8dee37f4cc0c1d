"""Where the CO-RE backend keeps what it generates, and the key of the running kernel build.

The cache directory is ``$EBPF_NB_CACHE`` or ``~/.cache/ebpf_nb``. A kernel build is named by
``uname -r`` plus a digest of its BTF, so a rebuilt kernel with the same release string still
gets its own ``vmlinux.h`` and objects (and a reboot into the same build keeps the cache).

Root loads what is in this cache, so it is private: every folder in it is created 0700 and
checked on every use (a real folder, not a link, owned by the current user, writable by no
one else: else :class:`~ebpf_nb.errors.HostError`); a cached file is used only when it passes
the same test (else it is rebuilt); files are written with ``mkstemp`` and renamed into place.
"""
from __future__ import annotations

import functools
import hashlib
import os
import platform
import stat
import tempfile
from pathlib import Path

from ebpf_nb.errors import HostError

KERNEL_BTF = Path("/sys/kernel/btf/vmlinux")


def cache_dir() -> Path:
    """The root of the cache (created 0700 on first use, checked on every call)."""
    root = Path(os.environ.get("EBPF_NB_CACHE") or Path.home() / ".cache" / "ebpf_nb")
    root.parent.mkdir(parents=True, exist_ok=True)
    return private_dir(root)


def private_dir(path: Path) -> Path:
    """``path`` as a folder only this user can write (made 0700 when missing), else HostError.

    A folder of ours that others can merely read (an older kit made them 0755) is tightened
    to 0700; one that others can write, a link, or another user's folder is refused."""
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    problem = _untrusted(info, is_dir=True)
    if problem:
        raise HostError(f"the cache folder {path} {problem}: a program placed there could be "
                        "loaded as root, so it is not used",
                        hint=f"remove it (rm -rf {path}) or point EBPF_NB_CACHE at a private "
                             "folder; the kit recreates it 0700")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def trusted_file(path: Path, root: Path) -> bool:
    """Whether ``path`` (under the cache ``root``) may be used: a regular file of this user
    that no one else can write, in folders that pass :func:`private_dir`."""
    relative = path.parent.relative_to(root)
    folder = root
    for part in relative.parts:
        folder = folder / part
        if not folder.exists():
            return False
        private_dir(folder)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    return not _untrusted(info, is_dir=False)


def _untrusted(info: os.stat_result, *, is_dir: bool) -> str:
    """Why a cache entry must not be trusted ("" when it may)."""
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if is_dir and not stat.S_ISDIR(info.st_mode):
        return "is not a folder"
    if not is_dir and not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if info.st_uid != os.geteuid():
        return f"belongs to uid {info.st_uid}, not to uid {os.geteuid()}"
    if stat.S_IMODE(info.st_mode) & 0o022:
        return f"can be written by other users (mode {stat.S_IMODE(info.st_mode):04o})"
    return ""


def kernel_key(btf_path: Path = KERNEL_BTF) -> str:
    """A short, filesystem-safe name of this kernel build: release plus a digest of its BTF."""
    st = btf_path.stat()
    digest = _btf_digest(str(btf_path), st.st_size, st.st_mtime_ns)
    release = "".join(c if c.isalnum() or c in "._-" else "_" for c in platform.release())
    return f"{release}-{digest}"


@functools.lru_cache(maxsize=8)
def _btf_digest(path: str, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def atomic_write(path: Path, data: bytes, root: Path | None = None) -> None:
    """Write ``data`` to ``path`` so that a reader never sees a half-written file.

    Every folder from the cache ``root`` (default: the parent folder) down to ``path`` is made
    and checked with :func:`private_dir`; the file is a fresh ``mkstemp`` file (0600) renamed
    over ``path`` (a link or a planted file there is replaced, never written through)."""
    root = root or path.parent
    folder = private_dir(root)
    for part in path.parent.relative_to(root).parts:
        folder = private_dir(folder / part)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
