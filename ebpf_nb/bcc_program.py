"""``BpfProgram``: a cell's C compiled, loaded and attached with BCC.

BCC does the compiling; this module hides what a student should not meet: diagnostics printed to
fd 2 (captured and mapped to cell lines), bare ``Exception``s (turned into the kit's errors),
autoload-at-construction (we attach ourselves, so ``--no-attach`` works and errors name the
probe), and atexit-only cleanup (``detach()`` releases everything now).
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from . import diagnostics, host
from .capture import capture_stderr
from .constants import BUFFER_MAP_TYPES, MapType
from .defines import define_flags
from .errors import AttachError, CompileError, EbpfNbError, HostError, UsageError
from .kernel import libbpf
from .kernel.maps import prog_id_of_fd as prog_id
from .probes import (
    KINDS,
    ProbeSpec,
    check_backend,
    convention_names,
    parse_probe,
    probe_from_convention,
)
from .program import Attachment, MapLayout, Program

try:  # BCC comes from the distribution (python3-bpfcc), not from PyPI
    from bcc import BPF
    from bcc.libbcc import lib as bcc_lib
except (ImportError, OSError):  # pragma: no cover - reported by BpfProgram and the doctor
    BPF = None
    bcc_lib = None
else:
    bcc_lib.bpf_num_tables.restype = ctypes.c_ulonglong
    bcc_lib.bpf_num_tables.argtypes = [ctypes.c_void_p]
    bcc_lib.bpf_table_name.restype = ctypes.c_char_p
    bcc_lib.bpf_table_name.argtypes = [ctypes.c_void_p, ctypes.c_ulonglong]

_HISTOGRAM = re.compile(r"BPF_HISTOGRAM\s*\(\s*(\w+)")
_COMMENT_OR_STRING = re.compile(r'"(?:\\.|[^"\\\n])*"|//[^\n]*|/\*.*?\*/', re.DOTALL)
_LOG2 = r"\b(?:bpf_)?log2l?\s*\("  # BCC's helpers, or a log2l() the cell defines

#: What BCC's bare ``Exception``s mean: words of the exception or of its fd-2 output -> cause.
#: BCC's kprobe and raw tracepoint attach failures give no reason: they count as no target.
_BCC_WORDS: tuple[tuple[str, str], ...] = (
    ("kernel headers", "no headers"), ("kconfig.h", "no headers"),
    ("privileges", "not permitted"),  # "Need super-user privileges to run"
    ("could not determine address", "no target"), ("not found", "no target"),
    ("No such file", "no target"), ("to kprobe", "no target"), ("to kretprobe", "no target"),
    ("to raw tracepoint", "no target"),
)

#: A kit error made of a BCC failure: ``(cause from _BCC_WORDS or None, exception, fd-2 output)``
BccFailure = Callable[[str | None, Exception, str], EbpfNbError]


@contextlib.contextmanager
def _bcc_errors(failure: BccFailure) -> Iterator[None]:
    """Run BCC calls with fd 2 captured; a bare ``Exception`` they raise becomes the kit error
    ``failure`` makes of it (raised after fd 2 is restored). The kit's own errors pass."""
    with capture_stderr() as captured:
        try:
            yield
        except EbpfNbError:
            raise
        except Exception as err:  # noqa: BLE001 - BCC raises bare Exception
            error = err
        else:
            return
    cause = next((c for said in (str(error), captured.text)  # the exception's words first
                  for words, c in _BCC_WORDS if words in said), None)
    try:
        made = failure(cause, error, captured.text)
    except EbpfNbError as plainer:  # e.g. host.require_privileges(): not root
        made = plainer
    raise made from None


#: probe kind -> BCC's attach call ``(bpf, target parts as bytes, function name as bytes)``
_BCC_ATTACH: dict[str, Callable[[Any, tuple[bytes, ...], bytes], object]] = {
    "kprobe": lambda b, t, fn: b.attach_kprobe(event=t[0], fn_name=fn),
    "kretprobe": lambda b, t, fn: b.attach_kretprobe(event=t[0], fn_name=fn),
    "tracepoint": lambda b, t, fn: b.attach_tracepoint(tp=t[0] + b":" + t[1], fn_name=fn),
    "raw_tracepoint": lambda b, t, fn: b.attach_raw_tracepoint(tp=t[0], fn_name=fn),
    "fentry": lambda b, t, fn: b.attach_kfunc(fn_name=fn),  # the target is in fn's name
    "fexit": lambda b, t, fn: b.attach_kretfunc(fn_name=fn),
    "uprobe": lambda b, t, fn: b.attach_uprobe(name=t[0], sym=t[1], fn_name=fn),
    "uretprobe": lambda b, t, fn: b.attach_uretprobe(name=t[0], sym=t[1], fn_name=fn),
}


def _quiet_bpf_class() -> type[Any]:
    """A BPF subclass that does not attach by naming convention in its constructor."""
    class QuietBPF(BPF):  # type: ignore[misc]  # BCC has no types: BPF is Any
        def _trace_autoload(self) -> None:
            pass
    return QuietBPF


class BpfProgram(Program):
    """A BCC program built from C source.

    >>> prog = BpfProgram(r'''TRACEPOINT_PROBE(syscalls, sys_enter_execve) {
    ...     bpf_trace_printk("exec\\n"); return 0; }''', name="hello")   # doctest: +SKIP
    >>> prog.trace(trigger="true")                                      # doctest: +SKIP
    """

    backend = "bcc"

    def __init__(self, source: str, name: str = "bpf", *, probes: Sequence[str | ProbeSpec] = (),
                 defines: Sequence[str] | Mapping[str, str] = (), cflags: Sequence[str] = (),
                 attach: bool = True):
        super().__init__(name, source)
        libbpf.lib()  # HostError naming what to install (libbcc links libbpf.so.1 too)
        if BPF is None:
            raise HostError("BCC's Python bindings are not importable",
                            hint="apt-get install python3-bpfcc, and use the venv `make setup` "
                                 "creates (it sees the system site-packages).")
        self.loaded = False
        self.probe_specs = [p if isinstance(p, ProbeSpec) else parse_probe(p) for p in probes]
        self.cflags = [*define_flags(defines), *cflags]
        host.require_privileges()
        host.require_headers()
        self._bpf = self._compile(source)
        self.loaded = True
        self._layouts: dict[str, MapLayout] | None = None
        self.functions = self._function_names()
        try:
            self._plan = self._plan_attachments()
            if attach:
                self.attach()
        except BaseException:
            self.detach()
            raise

    # --- compile ------------------------------------------------------------------------------
    def _compile(self, source: str) -> Any:  # BCC's BPF object
        with _bcc_errors(self._compile_error):
            return _quiet_bpf_class()(text=source.encode(), cflags=self.cflags)

    def _compile_error(self, cause: str | None, err: Exception, output: str) -> EbpfNbError:
        found = diagnostics.compile_error(output, cell_file="main.c")
        if found is not None:
            return found
        if cause == "no headers":
            return HostError("BCC found no kernel headers to compile against",
                             hint="run `make setup`, or use a CO-RE cell (%%bpf NAME --core).",
                             details=output.strip()[-800:])
        return CompileError(f"BCC could not compile the cell: {err}",
                            details=output.strip()[-1500:] or None)

    def _function_names(self) -> list[str]:
        module = self._bpf.module
        return [bcc_lib.bpf_function_name(module, i).decode()
                for i in range(bcc_lib.bpf_num_functions(module))]

    # --- attach -------------------------------------------------------------------------------
    def _plan_attachments(self) -> list[ProbeSpec]:
        """Probe specs with their function resolved: ``-a`` options, else naming conventions."""
        if not self.probe_specs:
            return [c.spec for f in self.functions if (c := probe_from_convention(f))]
        convention = {f for f in self.functions if probe_from_convention(f)}
        candidates = [f for f in self.functions if f not in convention]
        plan = []
        for spec in self.probe_specs:
            if spec.function is None:
                if KINDS[spec.kind].target_at_load:  # BCC reads the target from the name
                    fits = [f for f in self.functions if f in convention_names(spec)]
                else:
                    fits = candidates
                if len(fits) != 1:
                    listed = ", ".join(fits) or "none"
                    raise UsageError(f"say which function to attach to {spec}: the cell defines "
                                     f"{len(fits)} that fit ({listed})",
                                     hint=f"write -a {spec}=FUNCTION_NAME")
                spec = ProbeSpec(spec.kind, spec.target, fits[0])
            elif spec.function not in self.functions:
                raise UsageError(f"the cell defines no function {spec.function!r} for {spec}",
                                 hint="its functions: " + (", ".join(self.functions) or "none"))
            plan.append(spec)
        return plan

    def attach(self) -> BpfProgram:
        """Attach every planned probe (a second call does nothing)."""
        self._require_loaded()
        if self.attachments:
            return self
        if not self._plan:
            raise UsageError(
                "nothing to attach: no -a option and no function named by BCC's conventions "
                "(tracepoint__CAT__EVENT, kprobe__FUNC, raw_tracepoint__EVENT, ...)",
                hint="add e.g. -a tracepoint:syscalls:sys_enter_execve, or use "
                     "TRACEPOINT_PROBE(syscalls, sys_enter_execve) { ... }")
        try:
            for spec in self._plan:
                self.attachments.append(self._attach_one(spec))
        except BaseException:
            # BCC cannot take back one probe: unload everything, so that no layout keeps the
            # closed fds and every later call says what happened
            self.unloaded_because = "was unloaded: its attach() failed"
            self.detach()
            raise
        return self

    def _attach_one(self, spec: ProbeSpec) -> Attachment:
        assert spec.function is not None
        asked, how = _where(spec), ""
        if spec.kind in _RESOLVE:
            spec, how = _RESOLVE[spec.kind](self, spec)
        elif KINDS[spec.kind].needs_kprobes and spec.function in convention_names(spec):
            spec, how = self._fix_syscall_name(spec)
        kind = KINDS[spec.kind]
        if kind.needs_kprobes and not host.kprobes_available():
            raise HostError(f"cannot attach {_where(spec)}: this kernel was built without kprobes "
                            "(CONFIG_KPROBES is off)",
                            hint="use a tracepoint (-a tracepoint:syscalls:sys_enter_NAME), a raw "
                                 "tracepoint, or -a syscall:NAME, which picks what exists.")
        if kind.name == "tracepoint" and not BPF.tracepoint_exists(*spec.target):
            raise AttachError(f"there is no tracepoint {':'.join(spec.target)}",
                              hint="list them with: ls /sys/kernel/tracing/events/"
                                   f"{spec.target[0]}/")
        assert kind.bcc_prog_type is not None  # only kinds that _RESOLVE resolves have none
        function = spec.function
        assert function is not None  # resolving keeps the function
        self._load(function, kind.bcc_prog_type)
        target = tuple(t.encode() for t in spec.target)
        with _bcc_errors(lambda cause, err, output: _attach_error(spec, cause, err, output)):
            _BCC_ATTACH[kind.name](self._bpf, target, function.encode())
        return Attachment(asked, function, how)

    def _fix_syscall_name(self, spec: ProbeSpec) -> tuple[ProbeSpec, str]:
        """``kprobe__sys_clone`` means the architecture's syscall function (``__x64_sys_clone``),
        as in BCC's own naming-convention attach (``fix_syscall_fnname``)."""
        if not host.kprobes_available():
            return spec, ""
        event = self._bpf.fix_syscall_fnname(spec.target[0].encode()).decode()
        if event == spec.target[0]:
            return spec, ""
        return ProbeSpec(spec.kind, (event,), spec.function), f"{spec.kind} on {event}"

    def _resolve_syscall(self, spec: ProbeSpec) -> tuple[ProbeSpec, str]:
        """``syscall:NAME`` -> a kprobe on the syscall function, or its entry tracepoint."""
        name = spec.target[0]
        if host.kprobes_available():
            event = self._bpf.get_syscall_fnname(name.encode()).decode()
            return ProbeSpec("kprobe", (event,), spec.function), f"kprobe on {event}"
        if not BPF.tracepoint_exists("syscalls", f"sys_enter_{name}"):
            raise AttachError(f"there is no system call named {name!r} on this machine",
                              hint="list them with: ls /sys/kernel/tracing/events/syscalls/")
        tp = ProbeSpec("tracepoint", ("syscalls", f"sys_enter_{name}"), spec.function)
        return tp, f"tracepoint syscalls:sys_enter_{name}: this kernel has no kprobes"

    def _load(self, fn: str, prog_type: str) -> Any:  # BCC's function handle
        """Load one function as ``prog_type``; verifier rejections become VerifierError."""
        with _bcc_errors(lambda cause, err, log: self._load_error(fn, prog_type, cause, log)):
            return self._bpf.load_func(fn.encode(), getattr(BPF, prog_type))

    def _load_error(self, fn: str, prog_type: str, cause: str | None, log: str) -> EbpfNbError:
        if prog_type == "TRACING" and cause == "not permitted" and host.has_bpf_privileges():
            return HostError(f"this kernel refuses fentry/fexit programs ({fn}: the load returned "
                             "EPERM although this process may load BPF programs)",
                             hint="attach to a tracepoint or raw tracepoint instead; "
                                  "%bpf_doctor shows what this kernel offers.")
        if cause == "not permitted":
            host.require_privileges()
        return diagnostics.verifier_error(fn, log, self.source)

    # --- tail calls ---------------------------------------------------------------------------
    def tail_calls(self, prog_array: str, targets: Mapping[int | range | Iterable[int], str],
                   default: str | None = None) -> dict[int, str]:
        """Load ``targets`` (index or range -> function) with the entry program's type and put
        them in ``prog_array``; ``default`` fills every other slot. Returns index -> function."""
        layout = self._layout(prog_array)
        if layout.map_type != MapType.PROG_ARRAY:
            raise UsageError(f"{prog_array!r} is a {layout.type_name}, not a program array",
                             hint=f"declare it with BPF_PROG_ARRAY({prog_array}, N)")
        prog_type = self._entry_prog_type()
        slots: dict[int, str] = {}
        if default is not None:
            slots.update({i: default for i in range(layout.max_entries)})
        for key, fn in targets.items():
            indexes = [key] if isinstance(key, int) else list(key)
            for i in indexes:
                if not 0 <= i < layout.max_entries:
                    raise UsageError(f"index {i} is outside {prog_array!r} "
                                     f"(0..{layout.max_entries - 1})")
                slots[i] = fn
        table = self._bpf[prog_array.encode()]
        for fn in set(slots.values()):
            if fn not in self.functions:
                raise UsageError(f"the cell defines no function {fn!r}",
                                 hint="its functions: " + ", ".join(self.functions))
        loaded = {fn: self._load(fn, prog_type) for fn in set(slots.values())}
        for i, fn in slots.items():
            with _bcc_errors(_slot_refused(prog_array, i, fn)):
                table[ctypes.c_int(i)] = ctypes.c_int(loaded[fn].fd)
        return dict(sorted(slots.items()))

    def _entry_prog_type(self) -> str:
        if not self._plan:
            raise UsageError("tail calls need an entry program: attach one with -a first")
        entry = self._plan[0]
        if entry.kind in _RESOLVE:
            entry, _ = _RESOLVE[entry.kind](self, entry)
        prog_type = KINDS[entry.kind].bcc_prog_type
        assert prog_type is not None  # only kinds that _RESOLVE resolves have none
        return prog_type

    def _program_names_by_id(self) -> dict[int, str]:
        return {prog_id(f.fd): name.decode() for name, f in self._bpf.funcs.items()}

    @property
    def prog_ids(self) -> dict[str, int]:
        """Function name -> kernel program id, for every loaded function (see bpftool)."""
        if not self.loaded:
            return {}
        return {name.decode(): prog_id(f.fd) for name, f in self._bpf.funcs.items()}

    # --- maps ---------------------------------------------------------------------------------
    def _map_layouts(self) -> dict[str, MapLayout]:
        if self._layouts is None:
            self._layouts = self._describe_maps()
        return self._layouts

    def _describe_maps(self) -> dict[str, MapLayout]:
        module = self._bpf.module
        histograms = histogram_kinds(self.source)
        layouts = {}
        for i in range(bcc_lib.bpf_num_tables(module)):
            name = bcc_lib.bpf_table_name(module, i).decode()
            table = self._bpf.get_table(name.encode())
            map_type = bcc_lib.bpf_table_type_id(module, i)
            key_dtype = _dtype(getattr(table, "Key", None))
            # per-CPU tables: BCC's Leaf is an array of ncpus values; sLeaf is one value
            value_dtype = _dtype(getattr(table, "sLeaf", None) or getattr(table, "Leaf", None))
            kind = histograms.get(name)
            event_dtype = None
            if map_type in BUFFER_MAP_TYPES:
                event_dtype = self._event_dtype(table)
            layouts[name] = MapLayout(name, map_type, table.map_fd, key_dtype, value_dtype,
                                      int(bcc_lib.bpf_table_max_entries_id(module, i)), kind, event_dtype)
        return layouts

    @staticmethod
    def _event_dtype(table: Any) -> np.dtype | None:
        """BCC learns an event's struct from the program's ``perf_submit``/``ringbuf_output``."""
        try:
            with capture_stderr():
                from bcc.table import _get_event_class
                dtype = np.dtype(_get_event_class(table))
        except Exception:  # noqa: BLE001 - BCC raises bare Exception
            return None
        return dtype if dtype.itemsize else None  # BCC learns only structs

    def _symbolize(self, address: int, kernel: bool) -> str:
        if kernel:
            symbol: bytes = BPF.ksym(address, show_offset=True)
            return symbol.decode("utf-8", "replace")
        return hex(address)

    # --- unload -------------------------------------------------------------------------------
    def _unload(self) -> None:
        bpf = getattr(self, "_bpf", None)
        if bpf is None:
            return
        with capture_stderr():
            bpf.cleanup()
        atexit.unregister(bpf.cleanup)  # BCC keeps every BPF object alive for atexit otherwise
        self._bpf = None
        self._layouts = None


def histogram_kinds(source: str) -> dict[str, str]:
    """Each ``BPF_HISTOGRAM`` of a cell -> ``"log2_histogram"`` when the bucket it counts comes
    from ``bpf_log2``/``bpf_log2l`` (or a ``log2l`` the cell defines), in the call or through
    the variable or field the call passes; else ``"linear_histogram"``. Comments and string
    literals do not count."""
    code = _COMMENT_OR_STRING.sub(lambda m: '""' if m[0].startswith('"') else " ", source)
    return {name: "log2_histogram" if _counts_log2(code, name) else "linear_histogram"
            for name in _HISTOGRAM.findall(code)}


def _counts_log2(code: str, name: str) -> bool:
    for call in re.finditer(rf"\b{name}\s*\.\s*\w+\s*\(\s*([^;]*)", code):
        argument = call[1]
        if re.search(_LOG2, argument):
            return True
        var = re.match(r"&?\s*(\w+)", argument)
        if var and re.search(rf"\b{var[1]}\s*(?:(?:\.|->)\s*\w+\s*)*=(?!=)[^;]*{_LOG2}", code):
            return True
    return False


def _dtype(ctype: type | None) -> np.dtype | None:
    if ctype is None:
        return None
    try:
        return np.dtype(ctype)
    except (TypeError, ValueError):
        return np.dtype((np.uint8, ctypes.sizeof(ctype)))


def _where(spec: ProbeSpec) -> str:
    """A probe as the student wrote it, without the ``=FUNCTION`` part."""
    return ":".join((spec.kind, *spec.target))


def _attach_error(spec: ProbeSpec, cause: str | None, err: Exception, output: str
                  ) -> AttachError:
    """A failed BCC attach: its kind's reason when BCC says the target does not exist."""
    kind = KINDS[spec.kind]
    reason = kind.attach_reason if cause == "no target" and kind.attach_reason else str(err)
    return AttachError(f"could not attach {spec.function} to {_where(spec)}: {reason}",
                       details=output.strip()[-600:] or None,
                       hint=kind.attach_hint.format(*spec.target) if kind.attach_hint else None)


def _slot_refused(prog_array: str, index: int, fn: str) -> BccFailure:
    """A program array's slot that BCC could not set to ``fn``."""
    return lambda cause, err, output: AttachError(
        f"could not put {fn} in {prog_array}[{index}]: {err}")


#: kinds BCC attaches as another kind -> ``(program, spec) -> (spec of that kind, how)``
_RESOLVE: dict[str, Callable[[BpfProgram, ProbeSpec], tuple[ProbeSpec, str]]] = {
    "syscall": BpfProgram._resolve_syscall,
}
check_backend("bcc", _BCC_ATTACH, _RESOLVE)
