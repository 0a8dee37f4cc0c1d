"""What the data layer tells the student, in one place: notices and the progress of long reads.

The readers (:mod:`ebpf_nb.buffers`, ...) call :func:`notice` instead of printing and
:func:`progress` instead of drawing, so they import no UI: where a notice goes is ``sink``
(stderr by default; replace it to send notices elsewhere), and the progress form is chosen by
:mod:`ebpf_nb.progress`, imported only when a long read starts.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .progress import Progress

__all__ = ["notice", "progress", "sink"]


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr)


sink: Callable[[str], None] = _to_stderr
"""Where :func:`notice` sends its text (the stderr of the moment, by default)."""


def notice(text: str) -> None:
    """Tell the student something worth knowing that is not an error (events the kernel dropped)."""
    sink(text)


def progress(label: str, *, seconds: float | None, count: int | None) -> Progress:
    """A progress reporter for a read bounded by ``seconds`` and/or ``count``."""
    from .progress import make_progress

    return make_progress(label, seconds=seconds, count=count)
