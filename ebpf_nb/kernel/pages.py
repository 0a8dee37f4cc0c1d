"""Small pages for a read's fresh arrays: numpy's transparent huge pages turned off meanwhile.

numpy asks for transparent huge pages (``madvise(MADV_HUGEPAGE)``) for every array of 4 MiB or
more. Where the host takes back a VM's free memory (virtio-balloon free page reporting, as on
the Firecracker VM the benchmarks run on), a 2 MiB huge page the guest has not used for a second
or more costs ~20 ms to fault in; the same memory in 4 KiB pages ~1 ms (128 MiB: 1.1-1.5 s
against 60-80 ms, measured; memory freed a moment ago costs 15-55 ms either way). A read's rows,
strings and columns are new memory every time (the DataFrame keeps them), so a read allocates
them in small pages: :func:`small_pages` around it.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

try:  # numpy's own switch (numpy >= 1.20); without it arrays keep numpy's default
    from numpy._core.multiarray import _set_madvise_hugepage  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - older numpy
    try:
        from numpy.core.multiarray import _set_madvise_hugepage  # type: ignore[no-redef]
    except ImportError:
        _set_madvise_hugepage = None

ENABLED = True  # False: reads leave numpy's setting alone (for measuring the difference)

_lock = threading.Lock()
_depth = 0
_saved = True


@contextlib.contextmanager
def small_pages() -> Iterator[None]:
    """numpy allocates without ``MADV_HUGEPAGE`` inside the block (in every thread, as numpy's
    switch is global); the setting in force before the outermost block is restored after it,
    also when blocks of several threads overlap."""
    global _depth, _saved
    if not ENABLED or _set_madvise_hugepage is None:
        yield
        return
    with _lock:
        if _depth == 0:
            _saved = _set_madvise_hugepage(False)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _set_madvise_hugepage(_saved)
