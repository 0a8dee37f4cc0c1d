"""ebpf_nb: a Jupyter teaching kit for eBPF.

In a notebook: ``%load_ext ebpf_nb``, then ``%%bpf NAME`` cells. From plain Python::

    from ebpf_nb import BpfProgram
    prog = BpfProgram(source, "hello", probes=["syscall:execve"])
    prog.trace(trigger="ls")
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import (
    AttachError,
    CompileError,
    EbpfNbError,
    HostError,
    PrivilegeError,
    UsageError,
    VerifierError,
)

if TYPE_CHECKING:  # what the lazy __getattr__ below returns, for type checkers
    from IPython.core.interactiveshell import InteractiveShell

    from .bcc_program import BpfProgram
    from .host import doctor
    from .program import Program
    from .registry import Registry

__version__ = "0.1.0"
__all__ = [
    "AttachError",
    "BpfProgram",
    "CompileError",
    "EbpfNbError",
    "HostError",
    "PrivilegeError",
    "Program",
    "Registry",
    "UsageError",
    "VerifierError",
    "doctor",
    "load_ipython_extension",
    "unload_ipython_extension",
]


def __getattr__(name: str) -> object:
    # Lazy, so `import ebpf_nb` stays cheap and works where BCC is missing.
    if name == "BpfProgram":
        from .bcc_program import BpfProgram
        return BpfProgram
    if name == "Program":
        from .program import Program
        return Program
    if name == "Registry":
        from .registry import Registry
        return Registry
    if name == "doctor":
        from .host import doctor
        return doctor
    raise AttributeError(name)


def load_ipython_extension(ipython: InteractiveShell) -> None:
    from .magics import load_ipython_extension as load
    load(ipython)


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    from .magics import unload_ipython_extension as unload
    unload(ipython)
