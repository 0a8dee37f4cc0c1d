"""The CO-RE backend: plain libbpf C compiled by clang against ``vmlinux.h``, loaded by libbpf.

``CoreProgram`` is the program object of a ``%%bpf NAME --core`` cell; the pieces it is built
from are usable on their own: ``vmlinux`` (the header, cached per kernel build), ``compile``
(clang, cached per source/flags/kernel), ``objects`` (a libbpf object: open, load, attach; on
the kit's one libbpf binding, :mod:`ebpf_nb.kernel.libbpf`), ``libbpf_log`` (libbpf's
messages), ``btf_types`` (BTF -> numpy dtypes).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what the lazy __getattr__ below returns, for type checkers
    from ebpf_nb.core.program import CoreProgram

__all__ = ["CoreProgram"]


def __getattr__(name: str) -> object:  # lazy: importing ebpf_nb.core must not load libbpf
    if name == "CoreProgram":
        from ebpf_nb.core.program import CoreProgram

        return CoreProgram
    raise AttributeError(name)
