"""The kit's error tree: every mistake a student can make ends in one of these.

Each error carries a one-line ``message`` (what is wrong, and where), an optional ``hint``
(what to do), and optional ``details`` (the compiler's or verifier's own words, trimmed).
``str(err)`` is what the notebook shows; no library traceback is needed to understand it.
An OS error of the data layer becomes one of these in :mod:`ebpf_nb.oserrors`, which keeps its
``errno``.
"""
from __future__ import annotations


class EbpfNbError(Exception):
    """Base class of all errors the kit raises on purpose."""

    errno: int | None = None  # the OS error's errno, when one was translated into this

    def __init__(self, message: str, *, hint: str | None = None, details: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def __str__(self) -> str:
        parts = [self.message]
        if self.details:
            parts.append(self.details.rstrip())
        if self.hint:
            parts.append(f"Hint: {self.hint}")
        return "\n".join(parts)


class UsageError(EbpfNbError):
    """Bad options or arguments: an unknown map, a malformed probe, a bad value."""


class CompileError(EbpfNbError):
    """The C in the cell does not compile. ``line``/``column`` are the cell's own."""

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None,
                 hint: str | None = None, details: str | None = None):
        super().__init__(message, hint=hint, details=details)
        self.line = line
        self.column = column


class VerifierError(EbpfNbError):
    """The kernel's verifier rejected the program; ``details`` holds its log, trimmed."""

    def __init__(self, message: str, *, program: str | None = None, log: str = "",
                 hint: str | None = None, details: str | None = None):
        super().__init__(message, hint=hint, details=details)
        self.program = program
        self.log = log


class AttachError(EbpfNbError):
    """A program loaded but could not be attached (unknown probe, function, tracepoint...)."""


class HostError(EbpfNbError):
    """The machine is not ready: privileges, tracefs, headers, kprobes, BTF."""


class PrivilegeError(HostError):
    """Not root (or lacking CAP_BPF/CAP_PERFMON)."""


class TriggerStopped(BaseException):
    """Raised by the kit inside a trigger function still running when its read ends (from the
    reading thread, with ``PyThreadState_SetAsyncExc``). Not an ``Exception``: a trigger's own
    ``except Exception`` lets it through. Nobody sees it: the trigger's thread catches it."""
