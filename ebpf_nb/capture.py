"""Capture what C libraries (BCC, libbpf, clang) write to the process's file descriptor 2.

BCC prints clang's diagnostics and the verifier's log straight to fd 2, which bypasses
``sys.stderr`` and, in a notebook, lands in the server's terminal instead of the cell. Wrapping a
call in :func:`capture_stderr` collects that text so it can be attached to our error.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

_lock = threading.RLock()


class Captured:
    """The text written to fd 2 while a :func:`capture_stderr` block ran."""

    def __init__(self) -> None:
        self.text = ""


@contextlib.contextmanager
def capture_stderr() -> Iterator[Captured]:
    """Redirect fd 2 to a temporary file for the duration of the block."""
    captured = Captured()
    with _lock, tempfile.TemporaryFile(mode="w+b") as sink:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            try:
                yield captured
            finally:
                os.dup2(saved, 2)
        finally:
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", errors="replace")
