"""IPython magics: ``%%bpf``, ``%bpf_list``, ``%bpf_detach``, ``%bpf_doctor``.

The magics only parse their options and hand off to :class:`~ebpf_nb.bcc_program.BpfProgram`
(or the CO-RE backend) and a :class:`~ebpf_nb.registry.Registry`.
"""
from __future__ import annotations

import argparse
import keyword
import shlex
import sys
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pandas as pd
from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Bool
from traitlets.config import Configurable

from . import host
from .errors import EbpfNbError, UsageError
from .probes import attach_help
from .program import Program
from .registry import Registry

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell


def _parse(func: Callable[..., object], line: str) -> argparse.Namespace:
    """Parse a magic's option line, turning IPython's argparse errors into our UsageError."""
    try:
        shlex.split(line)
        args: argparse.Namespace = parse_argstring(func, line)
        return args
    except ValueError as err:  # unbalanced quotes
        raise UsageError(f"cannot read the options {line!r}: {err}") from None
    except (IPythonUsageError, SystemExit) as err:
        raise UsageError(f"bad options {line!r}: {err}",
                         hint=f"see %%{func.__name__}? for the options") from None


@magics_class
class BpfMagics(Magics, Configurable):
    """The eBPF magics. ``%config BpfMagics.short_errors = False`` shows full tracebacks."""

    short_errors = Bool(True, config=True,
                        help="Show the kit's errors as one short message (no traceback).")

    def __init__(self, shell: InteractiveShell | None = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.registry = Registry()

    @magic_arguments()
    @argument("name", nargs="?", default="bpf",
              help="Python name the program object is bound to (default: bpf).")
    @argument("-a", "--attach", dest="probes", action="append", default=[],
              metavar="PROBE[=FUNC]",
              help=f"Attach FUNC to PROBE: {attach_help()}. "
                   "Without -a, BCC's naming conventions attach (TRACEPOINT_PROBE, kprobe__F...).")
    @argument("-D", "--define", dest="defines", action="append", default=[],
              metavar="MACRO[=VALUE]", help="Define a C macro for the compile.")
    @argument("--no-attach", action="store_true",
              help="Load only; call NAME.attach() later (e.g. after filling a program array).")
    @argument("--core", action="store_true",
              help="CO-RE mode: libbpf-style C with vmlinux.h, compiled by clang, loaded by libbpf.")
    @argument("-G", "--global", dest="globals", action="append", default=[],
              metavar="NAME=VALUE", help="CO-RE: set a read-only global before load.")
    @cell_magic
    def bpf(self, line: str, cell: str) -> None:
        """Compile the cell's C, load it into the kernel, attach it, bind it to NAME."""
        args = _parse(self.bpf, line)
        name = args.name
        if not name.isidentifier() or keyword.iskeyword(name):
            raise UsageError(f"{name!r} is not a valid Python name for the program",
                             hint="use letters, digits and _, e.g. %%bpf hello")
        if not cell.strip():
            raise UsageError("the cell has no C code", hint="write the eBPF program below %%bpf")
        if args.globals and not args.core:
            raise UsageError("-G sets CO-RE globals: add --core")
        program = self.registry.replace(name, lambda: self._build(args, cell))
        assert self.shell is not None  # a cell magic runs in a shell
        self.shell.user_ns[name] = program
        print(_loaded_message(program))

    @staticmethod
    def _build(args: argparse.Namespace, cell: str) -> Program:
        cell = as_compiled(cell)
        if args.core:
            globals_ = dict(_split_assignment(g) for g in args.globals)
            from .core import CoreProgram
            return CoreProgram(cell, args.name, probes=args.probes, globals=globals_,
                               defines=args.defines, attach=not args.no_attach)
        from .bcc_program import BpfProgram
        return BpfProgram(cell, args.name, probes=args.probes, defines=args.defines,
                          attach=not args.no_attach)

    @line_magic
    def bpf_list(self, line: str = "") -> pd.DataFrame:
        """Programs loaded from this notebook: name, backend, state, probes, maps."""
        rows = [{"name": p.name, "backend": p.backend,
                 "state": p.state,
                 "probes": ", ".join(str(a) for a in p.attachments),
                 "maps": ", ".join(f"{m} ({t})" for m, t in p.maps.items()) if p.loaded else ""}
                for p in self.registry]
        return pd.DataFrame(rows, columns=["name", "backend", "state", "probes", "maps"])

    @magic_arguments()
    @argument("name", nargs="?", help="The program to detach.")
    @argument("--all", action="store_true", help="Detach every program of this notebook.")
    @line_magic
    def bpf_detach(self, line: str = "") -> None:
        """Detach and unload a program (``%bpf_detach NAME``) or all (``--all``)."""
        args = _parse(self.bpf_detach, line)
        if args.all:
            names = self.registry.detach_all()
            print("detached: " + (", ".join(names) if names else "nothing was loaded"))
            return
        if not args.name:
            raise UsageError("say which program to detach", hint="%bpf_detach NAME, or --all")
        if not self.registry.detach(args.name):
            known = ", ".join(p.name for p in self.registry) or "none"
            raise UsageError(f"no program named {args.name!r} is loaded (loaded: {known})")
        print(f"detached: {args.name}")

    @line_magic
    def bpf_doctor(self, line: str = "") -> pd.DataFrame:
        """Check this machine for eBPF: privileges, tracefs, headers, BTF, kprobes, JIT, bcc."""
        return host.doctor()


def as_compiled(cell: str) -> str:
    """The cell's C as the compilers see it: one empty line stands for the ``%%bpf`` line.

    This is the one place the editor's numbering is made: with it, every line number clang,
    BCC, libbpf and the verifier report is the line JupyterLab shows (``%%bpf`` is line 1)."""
    return "\n" + cell


def _split_assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip().isidentifier():
        raise UsageError(f"bad -G {text!r}", hint="write -G NAME=VALUE")
    return name.strip(), value.strip()


def _loaded_message(program: Program) -> str:
    lines = [f"{program.name}: {program.state_text()}"]
    lines += [f"  {a}" for a in program.attachments]
    lines += [f"  note: {n}" for n in program.notes]
    return "\n".join(lines)


def _show_error(shell: InteractiveShell, etype: type[BaseException], value: BaseException,
                tb: TracebackType | None, tb_offset: int | None = None) -> list[str]:
    """Custom exception handler: the kit's errors as one short message.

    IPython discards what a handler returns, so it shows the message itself through
    ``_showtraceback`` (which ipykernel turns into the cell's error output). Like Python's own
    prompt it keeps the error in ``sys.last_value``: ``%debug`` works, and so do checks of
    what a cell that had to fail said."""
    sys.last_type, sys.last_value, sys.last_traceback = etype, value, tb
    if sys.version_info >= (3, 12):
        sys.last_exc = value
    magics = shell.magics_manager.registry.get("BpfMagics")
    if magics is not None and not magics.short_errors:
        stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
    else:
        stb = [f"\x1b[0;31m{etype.__name__}\x1b[0m: {value}"]
    shell._showtraceback(etype, value, stb)
    return stb


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """``%load_ext ebpf_nb``."""
    ipython.register_magics(BpfMagics)
    ipython.set_custom_exc((EbpfNbError,), _show_error)


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    """``%unload_ext ebpf_nb``: detach everything this notebook attached."""
    magics = ipython.magics_manager.registry.get("BpfMagics")
    if magics is not None:
        magics.registry.detach_all()
    ipython.set_custom_exc((), None)
