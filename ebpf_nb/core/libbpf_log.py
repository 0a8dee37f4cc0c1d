"""libbpf's messages (its print callback) kept for the CO-RE loader to show.

One callback is installed for the whole process, the first time a CO-RE object is used (its
ctypes object lives in this module, so it is never garbage-collected); every message is
formatted whole with the C library's ``vasprintf`` and kept in ``LOG``, from which
:func:`captured_log` hands the messages of one operation to the caller. BCC uses the same
libbpf.so.1 and installs its own callback when it loads some programs, so :func:`captured_log`
puts ours back for its block (and BCC's after it).
"""
from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Iterator

from ebpf_nb.kernel.libbpf import PRINT_FN, lib

LIBBPF_DEBUG = 2  # libbpf's levels: 0 warn, 1 info, 2 debug

LOG: list[tuple[int, str]] = []  # (level, message) of every libbpf message, oldest first
_LOG_LIMIT = 20_000
_dropped = 0  # messages deleted from the front of LOG: a capture's start stays valid across it
_installed = False
_lock = threading.Lock()

_libc = ctypes.CDLL(None, use_errno=True)
_libc.vasprintf.restype = ctypes.c_int
_libc.vasprintf.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p, ctypes.c_void_p]
_libc.free.restype = None
_libc.free.argtypes = [ctypes.c_void_p]


def _format(fmt: int | None, args: int | None) -> str:
    """One printf-style message of any length (a whole verifier log can be many MiB).

    A va_list can be consumed only once, so a fixed buffer cannot be retried when too small:
    ``vasprintf`` allocates what the message needs in its one pass."""
    out = ctypes.c_void_p()
    length = _libc.vasprintf(ctypes.byref(out), fmt, args)
    if length < 0 or not out.value:
        return ""
    try:
        return ctypes.string_at(out.value, length).decode(errors="replace")
    finally:
        _libc.free(out)


def _print(level: int, fmt: int | None, args: int | None) -> int:
    global _dropped
    try:
        LOG.append((level, _format(fmt, args)))
        if len(LOG) > _LOG_LIMIT:
            del LOG[: _LOG_LIMIT // 2]
            _dropped += _LOG_LIMIT // 2
    except Exception:  # noqa: BLE001, S110 -- an exception must never cross into C
        pass
    return 0


_PRINT_CALLBACK = PRINT_FN(_print)  # module-level: libbpf keeps only the raw pointer


def logged_lib() -> ctypes.CDLL:
    """libbpf (:func:`ebpf_nb.kernel.libbpf.lib`) with our print callback installed once."""
    global _installed
    handle = lib()
    if not _installed:
        with _lock:
            if not _installed:
                handle.libbpf_set_print(_PRINT_CALLBACK)
                _installed = True
    return handle


@contextlib.contextmanager
def captured_log(level: int = LIBBPF_DEBUG) -> Iterator[list[str]]:
    """Collect, as text lines, libbpf's messages of ``level`` or more important in this block."""
    lines: list[str] = []
    previous = logged_lib().libbpf_set_print(_PRINT_CALLBACK)  # BCC may have replaced ours
    start = _dropped + len(LOG)  # counted from libbpf's first message, not LOG's
    try:
        yield lines
    finally:
        lib().libbpf_set_print(ctypes.cast(previous, PRINT_FN))  # NULL stays NULL
        for lvl, message in LOG[max(0, start - _dropped):]:
            if lvl <= level:
                lines.extend(message.rstrip("\n").splitlines())
