"""OS errors of the data layer -> the kit's error tree, in one place (the psutil pattern).

:mod:`ebpf_nb.kernel` speaks ``OSError`` (an errno and the call's own words). The public reads
(``Program.table``, ``events``, ``event_stream`` and a stream's ``read``, program ids) run under
:func:`translated`, which turns an ``OSError`` raised in the kernel layer into one short kit error:
what failed and where (the message), the call's own words (``details``), what to do (``hint``).
The errno stays on it as ``err.errno``. An ``OSError`` of the student's own code (a trigger
function that cannot open a file) passes unchanged: only errors raised in ``ebpf_nb.kernel``
are the kit's to explain.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypeVar

from .errors import EbpfNbError, HostError, PrivilegeError, UsageError
from .kernel.libbpf import ENOTSUPP

_ROOT_HINT = "run as root (or with CAP_BPF and CAP_PERFMON)"
_UNSUPPORTED = ("this kernel does not support it", "run %bpf_doctor to see what it offers")


class Meaning(NamedTuple):
    error: type[EbpfNbError]
    what: str
    hint: str | None


_CLOSED = Meaning(UsageError, "its file descriptor is closed",
                  "the program was detached or its fd closed: run its cell again")

MEANINGS: dict[int, Meaning] = {
    errno.EMFILE: Meaning(HostError, "too many open files",
                          "raise the limit (`ulimit -n 4096` in the shell that starts Jupyter) "
                          "or detach other programs (a map, a program, a perf buffer's CPU: a file each)"),
    errno.ENFILE: Meaning(HostError, "the system has too many open files",
                          "detach other programs"),
    errno.EPERM: Meaning(PrivilegeError, "not permitted", _ROOT_HINT),
    errno.EACCES: Meaning(PrivilegeError, "permission denied", _ROOT_HINT),
    errno.EBADF: _CLOSED,
    errno.EBADFD: _CLOSED,  # what BPF_OBJ_GET_INFO_BY_FD answers for a closed fd (Linux 6.x)
    errno.ENOENT: Meaning(UsageError, "key not found", "table() shows the keys there are"),
    errno.EEXIST: Meaning(UsageError, "the key is already there",
                          "update it without BPF_NOEXIST"),
    errno.E2BIG: Meaning(UsageError, "the map is full",
                         "delete entries, or declare the map with more max_entries"),
    errno.ENOMEM: Meaning(HostError, "out of memory",
                          "use smaller maps or buffers, or detach other programs"),
    errno.ENOSPC: Meaning(HostError, "no room left", "read it again"),
    errno.EINVAL: Meaning(UsageError, "invalid argument", None),
    errno.EBUSY: Meaning(HostError, "busy", "try again; another tool may hold it"),
    errno.EOPNOTSUPP: Meaning(HostError, *_UNSUPPORTED),
    ENOTSUPP: Meaning(HostError, *_UNSUPPORTED),
    errno.ENOSYS: Meaning(HostError, *_UNSUPPORTED),
    errno.ENODEV: Meaning(HostError, *_UNSUPPORTED),
}


def translate(err: OSError, where: str) -> EbpfNbError:
    """The kit's error for ``err``, raised by ``where`` (e.g. ``"hello.table('counts')"``)."""
    code = err.errno or 0
    name = errno.errorcode.get(code, "ENOTSUPP" if code == ENOTSUPP else f"errno {code}")
    meaning = MEANINGS.get(code) or Meaning(HostError, os.strerror(code).lower(), None)
    result = meaning.error(f"{where} failed: {meaning.what} ({name})", hint=meaning.hint,
                           details=err.strerror if err.strerror else None)
    result.errno = code
    return result


def from_kernel_layer(err: BaseException) -> bool:
    """True when ``err`` was raised in (or through) :mod:`ebpf_nb.kernel`."""
    tb = err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__", "").startswith("ebpf_nb.kernel."):
            return True
        tb = tb.tb_next
    return False


_outermost = threading.local()  # one public read inside another: the outer one names it


@contextlib.contextmanager
def translated(where: str) -> Iterator[None]:
    """Raise the kit's error (see :func:`translate`) for an ``OSError`` of the kernel layer.

    Nested (``events()`` reads through a stream's ``read()``), only the outermost translates."""
    if getattr(_outermost, "where", None) is not None:
        yield
        return
    _outermost.where = where
    try:
        yield
    except OSError as err:
        if not from_kernel_layer(err):
            raise
        raise translate(err, where) from None
    finally:
        _outermost.where = None


F = TypeVar("F", bound=Callable[..., Any])


def translating(method: F) -> F:
    """:func:`translated` around a public read method; ``where`` is ``NAME.method(arg)``, NAME
    the object's ``label`` or ``name`` and arg the first argument (a map name) if any."""
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        subject = getattr(self, "label", None) or getattr(self, "name", type(self).__name__)
        arg = repr(args[0]) if args and isinstance(args[0], str) else ""
        with translated(f"{subject}.{method.__name__}({arg})"):
            return method(self, *args, **kwargs)
    return wrapper  # type: ignore[return-value]
