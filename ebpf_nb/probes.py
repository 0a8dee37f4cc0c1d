"""Probe specifications: ``-a kprobe:FUNC=fn``, ``tracepoint:CAT:EVENT``, ``syscall:NAME``, ...

A spec names where a program attaches (``kind`` and ``target``) and, optionally, which C function
to attach (``function``). Every probe kind is one :class:`ProbeKind` row of :data:`PROBE_KINDS`;
parsing, BCC's naming conventions, the ``-a`` help and both backends' attach dispatch are derived
from it. The attach calls themselves live in the backends (``bcc_program._BCC_ATTACH``,
``core.objects.LIBBPF_ATTACH``), looked up by kind and checked with :func:`check_backend`.
This module imports neither BCC nor libbpf.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import UsageError


@dataclass(frozen=True)
class ProbeKind:
    """One probe kind: how ``-a`` spells it and what the backends need to attach it."""

    name: str
    #: the ':'-separated target parts, as the help names them (their number is checked)
    parts: tuple[str, ...]
    example: str
    aliases: tuple[str, ...] = ()
    #: the first part is a file path (may hold '/', '.', ':'); the last part is after the last ':'
    path_first: bool = False
    #: BCC's function-name prefixes implying this kind (``PREFIX`` + parts joined by ``__``)
    conventions: tuple[str, ...] = ()
    #: what BCC loads the function as (``BPF.KPROBE``, ...); None when ``attached_as`` decides
    bcc_prog_type: str | None = None
    #: the target is fixed at load (BTF trampoline): BCC reads it from the function's
    #: conventional name, libbpf sets it as the program's attach target before load
    target_at_load: bool = False
    needs_kprobes: bool = False
    #: attached as one of these kinds, which each backend's resolver picks (``syscall``)
    attached_as: tuple[str, ...] = ()
    #: said in the ``-a`` help after the spelling
    note: str = ""
    #: what a failed BCC attach means when BCC says the target does not exist
    attach_reason: str | None = None
    #: the hint of a failed BCC attach; ``{0}`` is the first target part
    attach_hint: str | None = None

    @property
    def spelling(self) -> str:
        """``kind:PART:PART``, as the help writes it."""
        return ":".join((self.name, *self.parts))


_KPROBE_REASON = "no such kernel function (or it cannot be probed)"
_KPROBE_HINT = "check the name in /proc/kallsyms: grep -w {0} /proc/kallsyms"
_UPROBE_REASON = "the file or symbol does not exist"
_UPROBE_HINT = "check the path and the symbol: nm -D PATH | grep SYMBOL"

PROBE_KINDS: tuple[ProbeKind, ...] = (
    ProbeKind("kprobe", ("F",), "kprobe:do_sys_openat2", aliases=("k",),
              conventions=("kprobe__",), bcc_prog_type="KPROBE", needs_kprobes=True,
              attach_reason=_KPROBE_REASON, attach_hint=_KPROBE_HINT),
    ProbeKind("kretprobe", ("F",), "kretprobe:do_sys_openat2",
              conventions=("kretprobe__",), bcc_prog_type="KPROBE", needs_kprobes=True,
              attach_reason=_KPROBE_REASON, attach_hint=_KPROBE_HINT),
    ProbeKind("tracepoint", ("CAT", "EVENT"), "tracepoint:syscalls:sys_enter_openat",
              aliases=("tp",), conventions=("tracepoint__",), bcc_prog_type="TRACEPOINT"),
    ProbeKind("raw_tracepoint", ("EVENT",), "raw_tracepoint:sys_enter",
              aliases=("raw_tp", "rawtp"), conventions=("raw_tracepoint__",),
              bcc_prog_type="RAW_TRACEPOINT", attach_reason="no such raw tracepoint",
              attach_hint="raw tracepoints have the names of tracepoints: "
                          "ls /sys/kernel/tracing/events/*/"),
    ProbeKind("fentry", ("F",), "fentry:vfs_read", aliases=("kfunc",),
              conventions=("kfunc__vmlinux__", "kfunc__"), bcc_prog_type="TRACING",
              target_at_load=True),
    ProbeKind("fexit", ("F",), "fexit:vfs_read", aliases=("kretfunc",),
              conventions=("kretfunc__vmlinux__", "kretfunc__"), bcc_prog_type="TRACING",
              target_at_load=True),
    ProbeKind("uprobe", ("PATH", "SYM"), "uprobe:/bin/bash:readline", aliases=("u",),
              path_first=True, bcc_prog_type="KPROBE",
              attach_reason=_UPROBE_REASON, attach_hint=_UPROBE_HINT),
    ProbeKind("uretprobe", ("PATH", "SYM"), "uretprobe:/bin/bash:readline",
              path_first=True, bcc_prog_type="KPROBE",
              attach_reason=_UPROBE_REASON, attach_hint=_UPROBE_HINT),
    ProbeKind("syscall", ("NAME",), "syscall:execve", attached_as=("kprobe", "tracepoint"),
              note="a kprobe where kprobes exist, else the syscall's tracepoint"),
)

#: kind name -> its row
KINDS: dict[str, ProbeKind] = {k.name: k for k in PROBE_KINDS}
#: alias -> kind name
ALIASES: dict[str, str] = {alias: k.name for k in PROBE_KINDS for alias in k.aliases}

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
    name, sep, rest = spec.partition(":")
    kind = KINDS.get(ALIASES.get(name, name))
    if kind is None:
        raise UsageError(f"unknown probe kind {ALIASES.get(name, name)!r} in {text!r}",
                         hint="use one of: " + ", ".join(k.example for k in PROBE_KINDS))
    parts: tuple[str, ...]
    if kind.path_first:
        path, _, last = rest.rpartition(":")
        parts = (path, last) if path else (last,)
    else:
        parts = tuple(rest.split(":")) if sep else ()
    if len(parts) != len(kind.parts) or not all(p.strip() for p in parts):
        raise UsageError(f"malformed probe {text!r}", hint=f"write it like {kind.example}")
    if not kind.path_first and not all(_IDENT.match(p) for p in parts):
        raise UsageError(f"malformed probe {text!r}: names may hold only letters, digits and '_'",
                         hint=f"write it like {kind.example}")
    return ProbeSpec(kind.name, parts, function)


def attach_help() -> str:
    """The probe kinds as the ``-a`` help lists them, with their aliases."""
    kinds = ", ".join(k.spelling + (f" ({k.note})" if k.note else "") for k in PROBE_KINDS)
    aliases = ", ".join(f"{alias}={kind}" for alias, kind in ALIASES.items())
    return f"{kinds}; aliases: {aliases}"


@dataclass(frozen=True)
class ConventionProbe:
    """A probe implied by a function's name under BCC's naming conventions."""

    function: str
    spec: ProbeSpec


def probe_from_convention(function: str) -> ConventionProbe | None:
    """``kprobe__X``, ``kretprobe__X``, ``tracepoint__CAT__EVENT``, ``raw_tracepoint__X``,
    ``kfunc__[vmlinux__]X`` / ``kretfunc__...`` -> the probe they imply (None otherwise)."""
    for kind in PROBE_KINDS:
        prefix = next((p for p in kind.conventions if function.startswith(p)), None)
        if prefix is None:
            continue
        target = tuple(function[len(prefix):].split("__", len(kind.parts) - 1))
        if len(target) != len(kind.parts) or not all(target):
            return None
        return ConventionProbe(function, ProbeSpec(kind.name, target, function))
    return None


def convention_names(spec: ProbeSpec) -> tuple[str, ...]:
    """The function names BCC's conventions give a program attached at ``spec``."""
    return tuple(prefix + "__".join(spec.target) for prefix in KINDS[spec.kind].conventions)


def check_backend(backend: str, attach: Mapping[str, object], resolve: Mapping[str, object]
                  ) -> None:
    """Fail (at the backend's import) when a kind has no entry in ``backend``'s tables:
    ``attach`` for kinds attached by their own call, ``resolve`` for kinds ``attached_as``
    another."""
    missing = [k.name for k in PROBE_KINDS if k.name not in (resolve if k.attached_as else attach)]
    if missing:
        raise NotImplementedError(f"the {backend} backend cannot attach probe kind(s) "
                                  f"{', '.join(missing)}: give each an entry in its attach or "
                                  "resolve table")
