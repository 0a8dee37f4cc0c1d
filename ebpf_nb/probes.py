"""Probe specifications: ``-a kprobe:FUNC=fn``, ``tracepoint:CAT:EVENT``, ``syscall:NAME``, ...

A spec names where a program attaches (``kind`` and ``target``) and, optionally, which C function
to attach (``function``). This module only parses and describes; attaching is the backends' job.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UsageError

#: kind -> (number of ':'-separated target parts, example)
KINDS: dict[str, tuple[int, str]] = {
    "kprobe": (1, "kprobe:do_sys_openat2"),
    "kretprobe": (1, "kretprobe:do_sys_openat2"),
    "tracepoint": (2, "tracepoint:syscalls:sys_enter_openat"),
    "raw_tracepoint": (1, "raw_tracepoint:sys_enter"),
    "fentry": (1, "fentry:vfs_read"),
    "fexit": (1, "fexit:vfs_read"),
    "uprobe": (2, "uprobe:/bin/bash:readline"),
    "uretprobe": (2, "uretprobe:/bin/bash:readline"),
    "syscall": (1, "syscall:execve"),
}
ALIASES = {"tp": "tracepoint", "raw_tp": "raw_tracepoint", "rawtp": "raw_tracepoint",
           "kfunc": "fentry", "kretfunc": "fexit", "k": "kprobe", "u": "uprobe"}

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class ProbeSpec:
    """Where to attach (``kind``, ``target`` parts) and, optionally, which C function."""

    kind: str
    target: tuple[str, ...]
    function: str | None = None

    def __str__(self) -> str:
        text = ":".join((self.kind, *self.target))
        return f"{text}={self.function}" if self.function else text


def parse_probe(text: str) -> ProbeSpec:
    """Parse ``KIND:TARGET[=FUNCTION]``; raise :class:`UsageError` naming what is wrong."""
    spec = text.strip()
    function = None
    if "=" in spec:
        spec, function = spec.rsplit("=", 1)
        if not _IDENT.match(function):
            raise UsageError(f"bad function name {function!r} in probe {text!r}",
                             hint="after '=' give the name of a C function of the cell.")
    kind, sep, rest = spec.partition(":")
    kind = ALIASES.get(kind, kind)
    if kind not in KINDS:
        raise UsageError(f"unknown probe kind {kind!r} in {text!r}",
                         hint="use one of: " + ", ".join(v[1] for v in KINDS.values()))
    parts_wanted, example = KINDS[kind]
    if kind in ("uprobe", "uretprobe"):
        path, _, symbol = rest.rpartition(":")
        parts = (path, symbol) if path else (symbol,)
    else:
        parts = tuple(rest.split(":")) if sep else ()
    if len(parts) != parts_wanted or not all(p.strip() for p in parts):
        raise UsageError(f"malformed probe {text!r}", hint=f"write it like {example}")
    if kind != "uprobe" and kind != "uretprobe" and not all(_IDENT.match(p) for p in parts):
        raise UsageError(f"malformed probe {text!r}: names may hold only letters, digits and '_'",
                         hint=f"write it like {example}")
    return ProbeSpec(kind, parts, function)


@dataclass(frozen=True)
class ConventionProbe:
    """A probe implied by a function's name under BCC's naming conventions."""

    function: str
    spec: ProbeSpec


def probe_from_convention(function: str) -> ConventionProbe | None:
    """``kprobe__X``, ``kretprobe__X``, ``tracepoint__CAT__EVENT``, ``raw_tracepoint__X``,
    ``kfunc__[vmlinux__]X`` / ``kretfunc__...`` -> the probe they imply (None otherwise)."""
    for prefix, kind in (("kprobe__", "kprobe"), ("kretprobe__", "kretprobe"),
                         ("raw_tracepoint__", "raw_tracepoint"),
                         ("kfunc__", "fentry"), ("kretfunc__", "fexit")):
        if function.startswith(prefix):
            target = function[len(prefix):]
            if kind in ("fentry", "fexit") and target.startswith("vmlinux__"):
                target = target[len("vmlinux__"):]
            return ConventionProbe(function, ProbeSpec(kind, (target,), function))
    if function.startswith("tracepoint__"):
        category, sep, event = function[len("tracepoint__"):].partition("__")
        if sep:
            return ConventionProbe(function, ProbeSpec("tracepoint", (category, event), function))
    return None
