"""``CoreProgram``: a ``%%bpf NAME --core`` cell compiled by clang and loaded by libbpf.

Life of a cell: compile (or take the cached object) -> open with libbpf -> set ``.rodata``
globals -> load (CO-RE relocations, verifier) -> attach each program from its ``SEC()`` name or
as the ``-a`` probes say. ``detach()`` destroys the links and closes the object, which unloads
programs and maps. With ``attach=False`` the object is only opened, so globals can still be set
from Python (``set_global``) before ``attach()`` (or ``load()``) loads it.

Event structs of ring/perf buffers are not in a map's BTF; the kit takes, in order: the
``struct=`` given to ``events()``; the struct named where the cell writes to that map
(``bpf_ringbuf_reserve(&rb, sizeof(struct event), 0)``, ``struct event *e =
bpf_ringbuf_reserve(&rb, ...)``, ``bpf_perf_event_output(ctx, &events, F, &e, sizeof(e))`` with
``struct event e``); or the only named struct the cell defines.
"""
from __future__ import annotations

import errno
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ebpf_nb import diagnostics, oserrors
from ebpf_nb.constants import BUFFER_MAP_TYPES, ProgType, map_type_name
from ebpf_nb.core import objects
from ebpf_nb.core.btf_types import Btf
from ebpf_nb.core.compile import compile_cell
from ebpf_nb.defines import parse_defines
from ebpf_nb.errors import AttachError, CompileError, HostError, UsageError, VerifierError
from ebpf_nb.kernel import libbpf
from ebpf_nb.kernel.libbpf import LibbpfError
from ebpf_nb.oserrors import translating
from ebpf_nb.probes import KINDS, PROBE_KINDS, ProbeSpec, check_backend, parse_probe
from ebpf_nb.program import Attachment, MapLayout, Program
from ebpf_nb.reading import Trigger

FENTRY_REFUSED = "this kernel refuses fentry/fexit programs; use tp_btf/raw_tp/tracepoint"
_OUT_OF_FILES = (errno.EMFILE, errno.ENFILE)  # load failures that are the host's, not the C's
_TRACING_SECTIONS = ("fentry", "fexit", "fmod_ret", "lsm", "iter", "freplace")
#: attach kinds that need CONFIG_KPROBES (ksyscall: a syscall: probe on a kprobe program)
_KPROBE_KINDS = {"ksyscall", *(k.name for k in PROBE_KINDS if k.needs_kprobes)}


class CoreProgram(Program):
    """A CO-RE cell: programs, maps and globals of one libbpf object, loaded in the kernel.

    ``cache_hit`` is True when the compiled object came from the cache (no clang run).
    """

    backend = "core"

    def __init__(self, source: str, name: str = "bpf", *, probes: Sequence[str] = (),
                 globals: Mapping[str, object] = {}, attach: bool = True,
                 defines: Mapping[str, str | None] | Sequence[str] = ()):
        super().__init__(name, source)
        from ebpf_nb import host

        host.require_privileges()
        libbpf.lib()  # HostError naming what to install when libbpf is missing
        specs = [parse_probe(p) for p in probes]
        self.compiled = compile_cell(source, defines=parse_defines(defines))
        self.cache_hit = self.compiled.cached
        self._links: list[objects.Link] = []
        self._obj: objects.BpfObject | None = None
        self._layouts: dict[str, MapLayout] | None = None
        self.in_kernel = False
        try:
            self._obj = objects.BpfObject.open(self.compiled.path, name=_object_name(name))
        except LibbpfError as err:
            raise CompileError(f"libbpf cannot open the compiled cell: {err.strerror}",
                               details=_relevant(err.log)) from None
        self.probes = specs
        try:
            self.btf = Btf(self._obj.btf_raw())
            self._bind_probes(specs)
            for key, value in globals.items():
                self.set_global(key, value)
            if attach:
                self.attach()
        except BaseException:
            self._unload()
            raise

    # --- globals --------------------------------------------------------------------------
    def _rodata(self) -> objects.ObjectMap | None:
        assert self._obj is not None
        return next((m for n, m in self._obj.maps.items() if n.endswith(".rodata")), None)

    @property
    def global_names(self) -> list[str]:
        """The cell's ``const volatile`` globals that can be set before load."""
        return sorted(n for n in self.btf.section_vars(".rodata") if "." not in n)

    def set_global(self, name: str, value: object) -> None:
        """Set a read-only (``const volatile``) global before the program is loaded."""
        self._require_loaded()
        variables = self.btf.section_vars(".rodata")
        var = variables.get(name)
        if var is None or "." in name:  # func.____fmt: bpf_printk's format strings
            known = ", ".join(self.global_names) or "none"
            raise UsageError(f"the cell has no read-only global named {name!r} (its globals: "
                             f"{known})", hint="declare it as: const volatile int NAME = 0;")
        if self.in_kernel:
            raise UsageError(f"{self.name} is already loaded: .rodata is frozen",
                             hint=f"run the cell again with -G {name}=VALUE, or create it with "
                                  "attach=False and set globals before attach()")
        rodata = self._rodata()
        assert rodata is not None
        data = bytearray(rodata.initial_value())
        data[var.offset:var.offset + var.size] = self.btf.encode(var.type_id, value)
        rodata.set_initial_value(bytes(data))

    def get_global(self, name: str) -> object:
        """The current value of a read-only global (as set, or as the cell initialised it)."""
        self._require_loaded()  # detach() freed the object that holds the values
        var = self.btf.section_vars(".rodata").get(name)
        rodata = self._rodata() if self._obj else None
        if var is None or rodata is None:
            raise UsageError(f"the cell has no read-only global named {name!r}")
        raw = rodata.initial_value()[var.offset:var.offset + var.size]
        value = np.frombuffer(raw, dtype=self.btf.dtype(var.type_id), count=1)[0]
        return value.decode(errors="replace").rstrip("\0") if isinstance(value, bytes) else \
            value.item()

    # --- load and attach ------------------------------------------------------------------
    def _bind_probes(self, specs: list[ProbeSpec]) -> None:
        """Check each ``-a`` probe names a program; fentry/fexit targets are set before load."""
        assert self._obj is not None
        programs = list(self._obj.programs)
        self._probe_program: list[tuple[ProbeSpec, str]] = []
        for spec in specs:
            function = spec.function
            if function is None:
                if len(programs) != 1:
                    raise UsageError(f"say which function {spec} attaches: the cell has "
                                     f"{len(programs)} programs ({', '.join(programs)})",
                                     hint=f"write it as {spec}=FUNCTION")
                function = programs[0]
            if function not in self._obj.programs:
                raise UsageError(f"probe {spec}: the cell has no SEC() program named "
                                 f"{function!r} (its programs: {', '.join(programs)})")
            if KINDS[spec.kind].target_at_load:
                self._obj.set_attach_target(function, spec.target[0])
            self._probe_program.append((spec, function))

    def load(self) -> CoreProgram:
        """Load maps and programs into the kernel (done by ``attach()`` when needed)."""
        self._require_loaded()
        if self.in_kernel:
            return self
        assert self._obj is not None
        try:
            self._obj.load()
        except LibbpfError as err:
            raise self._load_error(err) from None
        self.in_kernel = True
        return self

    def attach(self) -> CoreProgram:
        """Load if needed, then attach every program (explicit probes first); idempotent."""
        self.load()
        if self._links:
            return self
        assert self._obj is not None
        explicit = {function for _, function in self._probe_program}
        try:
            for spec, function in self._probe_program:
                kind, target, how = self._attach_plan(spec, function)
                self._links.append(self._attach_one(function, kind, target))
                probe = ":".join((spec.kind, *spec.target))
                self.attachments.append(Attachment(probe, function, how))
            for function, prog in self._obj.programs.items():
                if function in explicit:
                    continue
                try:
                    self._links.append(self._attach_one(function, None, ()))
                except _NoAutoAttach:
                    self.notes.append(f"{function}: SEC(\"{prog.section}\") names no attach "
                                      "point; loaded, not attached")
                    continue
                self.attachments.append(Attachment(prog.section, function, ""))
        except BaseException:
            self._destroy_links()
            raise
        return self

    def _attach_plan(self, spec: ProbeSpec, function: str) -> tuple[str, tuple[str, ...], str]:
        """The libbpf attach kind and target of a probe, and how a resolved kind attached."""
        if spec.kind in _RESOLVE:
            return _RESOLVE[spec.kind](self, spec, function)
        return spec.kind, spec.target, ""

    def _syscall_plan(self, spec: ProbeSpec, function: str) -> tuple[str, tuple[str, ...], str]:
        """``syscall:NAME``: by the program's type, libbpf's ksyscall or the entry tracepoint."""
        assert self._obj is not None
        prog_type = self._obj.programs[function].prog_type
        if prog_type == ProgType.KPROBE:
            return "ksyscall", spec.target, "kprobe on the syscall's kernel function"
        if prog_type == ProgType.TRACEPOINT:
            event = f"sys_enter_{spec.target[0]}"
            return "tracepoint", ("syscalls", event), f"tracepoint syscalls:{event}"
        raise UsageError(f"probe {spec}: {function} is not a kprobe or tracepoint program",
                         hint='put it in SEC("tracepoint") or SEC("ksyscall")')

    def _attach_one(self, function: str, kind: str | None, target: tuple[str, ...]
                    ) -> objects.Link:
        assert self._obj is not None
        try:
            return self._obj.attach(function, kind, target)
        except LibbpfError as err:
            section = self._obj.programs[function].section
            if kind is None and err.errno == errno.EOPNOTSUPP:
                raise _NoAutoAttach(function) from None
            what = f'SEC("{section}")' if kind is None else ":".join((kind, *target))
            hint = None
            if err.errno == errno.ENOENT:
                hint = "check the name: the kernel has no such tracepoint, function or symbol"
            elif kind in _KPROBE_KINDS or section.startswith("k"):
                from ebpf_nb import host

                if not host.kprobes_available():
                    hint = ("this kernel has no kprobes (CONFIG_KPROBES is off): use "
                            "tracepoint/raw_tp/tp_btf")
            raise AttachError(f"cannot attach {function} to {what}: {err.strerror}",
                              hint=hint, details=_relevant(err.log) or None) from None

    def _load_error(self, err: LibbpfError) -> Exception:
        assert self._obj is not None
        log = err.log
        text = "\n".join(log)
        failed = _failed_program(log)
        section = self._obj.programs[failed].section if failed in self._obj.programs else ""
        if err.errno in _OUT_OF_FILES:  # at any step, even after the verifier accepted it
            return _translated(err, f"loading {self.name}", log)
        if err.errno == errno.EPERM and (section.startswith(_TRACING_SECTIONS) or any(
                p.section.startswith(_TRACING_SECTIONS) for p in self._obj.programs.values())):
            return HostError(FENTRY_REFUSED, details=_relevant(log))
        if "failed to resolve CO-RE relocation" in text or "no matching targets found" in text:
            m = re.search(r"failed to resolve CO-RE relocation <(\w+)> \[\d+\] (.+?) \(", text)
            what = m[2] if m else "a type or field the cell uses"
            return VerifierError(
                f"CO-RE relocation failed in {failed or 'a program'}: {what} does not exist in "
                "this kernel", program=failed, log=text,
                hint="guard the read with bpf_core_field_exists() (or bpf_core_type_exists()) "
                     "and a fallback for kernels without it",
                details="\n".join(ln for ln in log if "relo #" in ln or "CO-RE" in ln))
        if "missing BPF prog type" in text or "failed to guess program type" in text:
            return CompileError(f"libbpf does not know the section of {failed or 'a program'}: "
                                f'SEC("{section}")', details=_relevant(log),
                                hint='use e.g. SEC("tracepoint/CAT/EVENT"), SEC("raw_tp/EVENT"), '
                                     'SEC("tp_btf/EVENT"), SEC("uprobe")')
        verifier = _verifier_log(log)
        if verifier:
            return diagnostics.verifier_error(failed, verifier, self.source)
        return _translated(err, f"loading {failed or self.name}", log)  # no verifier log

    # --- base class hooks ------------------------------------------------------------------
    def _destroy_links(self) -> None:
        for link in self._links:
            link.destroy()
        self._links = []

    def _unload(self) -> None:
        self._destroy_links()
        if self._obj is not None:
            self._obj.close()
        self.in_kernel = False
        self._layouts = None

    @property
    def maps(self) -> dict[str, str]:
        """Map name -> type; known before load, so listing maps does not freeze globals."""
        self._require_loaded()
        if self.in_kernel:
            return super().maps
        assert self._obj is not None
        return {name: map_type_name(m.map_type)
                for name, m in self._obj.maps.items() if "." not in name}

    def _map_layouts(self) -> dict[str, MapLayout]:
        if self._layouts is None:
            self.load()
            assert self._obj is not None
            layouts = {}
            for name, m in self._obj.maps.items():
                if "." in name:
                    continue  # .rodata/.data/.bss/.kconfig: globals, not the cell's maps
                event = None
                if m.map_type in BUFFER_MAP_TYPES:
                    event = self._event_dtype(name)
                layouts[name] = MapLayout(name, m.map_type, m.fd, self._dtype(m.btf_key_type_id),
                                          self._dtype(m.btf_value_type_id), m.max_entries,
                                          event_dtype=event)
            self._layouts = layouts
        return self._layouts

    def _dtype(self, type_id: int) -> np.dtype | None:
        if not type_id:
            return None
        try:
            return self.btf.dtype(type_id)
        except (ValueError, KeyError):
            return None

    def _program_names_by_id(self) -> dict[int, str]:
        if not self._obj or not self.in_kernel:
            return {}
        return {p.info_id(): name for name, p in self._obj.programs.items()}

    # --- events with a named struct ----------------------------------------------------------
    def event_struct(self, map_name: str) -> str | None:
        """The struct the kit decodes ``map_name``'s events with (see the module's doc)."""
        return _infer_event_struct(self.source, map_name)

    def _event_dtype(self, map_name: str, struct: str | None = None) -> np.dtype | None:
        struct = struct or self.event_struct(map_name)
        if struct is None:
            return None
        type_id = self.btf.find(struct, "struct")
        if type_id is None:
            type_id = self.btf.find(struct, "typedef")
        if type_id is None:
            raise UsageError(f"struct {struct} is not in the compiled cell's BTF",
                             hint="define the struct in the cell (struct NAME { ... };)")
        return self.btf.dtype(type_id)

    def events(self, map_name: str, seconds: float | None = None, count: int | None = None,
               trigger: Trigger = None, *, struct: str | None = None,
               max_rows: int | None = None, max_bytes: int | None = None) -> pd.DataFrame:
        """Events of a ring or perf buffer; ``struct="event"`` names the C struct to decode."""
        if struct is not None:
            layout = self._layout(map_name)
            layout.event_dtype = self._event_dtype(map_name, struct)
        elif self._layout(map_name).event_dtype is None:
            raise UsageError(f"the event struct of {map_name!r} is unknown",
                             hint=f'name it: {self.name}.events("{map_name}", struct="NAME")')
        return super().events(map_name, seconds=seconds, count=count, trigger=trigger,
                              max_rows=max_rows, max_bytes=max_bytes)

    # --- instructions ----------------------------------------------------------------------
    @translating
    def program_ids(self) -> dict[str, int]:
        """Kernel program id of each loaded SEC() function (what bpftool shows)."""
        self.load()
        assert self._obj is not None
        return {name: p.info_id() for name, p in self._obj.programs.items()}

    @translating
    def instructions(self, func: str | None = None, *, jited: bool = False,
                     text: bool = False) -> pd.DataFrame | str:
        """The kernel's translated (or JIT-ed) instructions of a loaded program.

        A DataFrame with ``function`` (the program or a BPF-to-BPF subprogram), ``pc``,
        ``opcode``, ``instruction`` and ``source``; ``text=True`` gives bpftool's listing.
        Subprogram calls read ``call pc+N``. ``func`` is a SEC() function (default: the only one).
        """
        ids = self.program_ids()
        if func is None:
            if len(ids) != 1:
                raise UsageError(f"say which program: {', '.join(ids)}",
                                 hint=f"{self.name}.instructions({next(iter(ids))!r})")
            func = next(iter(ids))
        if func not in ids:
            raise UsageError(f"{self.name} has no SEC() program named {func!r} "
                             f"(its programs: {', '.join(ids)})")
        assert self._obj is not None
        listing = dump_instructions(ids[func], jited=jited, prog_fd=self._obj.programs[func].fd)
        return listing if text else instructions_frame(listing)

    @property
    def state(self) -> str:
        """As :attr:`Program.state`, plus ``"opened"``: compiled and opened, not in the kernel
        yet (``--no-attach``: globals can still be set)."""
        return "opened" if self.loaded and not self.in_kernel else super().state

    def state_text(self) -> str:
        if self.state == "opened":
            return "opened, not loaded yet (set globals, then attach())"
        return super().state_text()

    def summary(self) -> str:
        text = super().summary()
        extra = []
        if self.loaded and self._obj is not None:
            extra += [f"  global {n} = {self.get_global(n)!r}" for n in self.global_names]
        extra += [f"  note   {n}" for n in self.notes]
        extra.append(f"  object {'cached' if self.cache_hit else 'compiled'}: "
                     f"{self.compiled.path.name}")
        return "\n".join([text, *extra])


# --- helpers ---------------------------------------------------------------------------------

class _NoAutoAttach(Exception):
    """libbpf cannot attach a program from its SEC() name alone (e.g. a bare SEC("raw_tp"))."""


#: kinds attached as another kind -> ``(program, spec, function) -> (kind, target, how)``
_RESOLVE: dict[str, Callable[[CoreProgram, ProbeSpec, str], tuple[str, tuple[str, ...], str]]] = {
    "syscall": CoreProgram._syscall_plan,
}
check_backend("core", objects.LIBBPF_ATTACH, _RESOLVE)


def _translated(err: LibbpfError, where: str, log: list[str]) -> Exception:
    """A load failure that is no verifier rejection -> the kit's error for its errno."""
    found = oserrors.translate(err, where)
    found.details = _relevant(log) or found.details
    return found


def _object_name(name: str) -> str:
    """libbpf prefixes internal map names with the object name (keep it short and plain)."""
    clean = re.sub(r"\W", "_", name)[:8]
    return clean or "bpf"


def _failed_program(log: list[str]) -> str | None:
    for line in log:
        m = re.search(r"prog '([^']+)': (?:BPF program load failed|failed to load|relo #)", line)
        if m:
            return m[1]
    return None


def _verifier_log(log: list[str]) -> str:
    text = "\n".join(log)
    m = re.search(r"-- BEGIN PROG LOAD LOG --\n(.*?)-- END PROG LOAD LOG --", text, re.DOTALL)
    return m[1] if m else ""


def _relevant(log: list[str], limit: int = 25) -> str:
    """libbpf's messages worth showing: warnings and errors, not its step-by-step debug."""
    noise = ("libbpf: sec '", "found extern", "skipping unrecognized data section",
             "map '", "elf: section(", "CO-RE relocating", "loading kernel BTF",
             "found data map")
    keep = [ln for ln in log if not any(n in ln for n in noise)]
    return "\n".join(keep[-limit:])


_SIZEOF_STRUCT = r"sizeof\s*\(\s*struct\s+(\w+)\s*\)"


def _infer_event_struct(source: str, map_name: str) -> str | None:
    """The struct a cell writes into a ring/perf buffer map, read off the C (see module doc)."""
    m = re.escape(map_name)
    patterns = [
        rf"bpf_ringbuf_reserve\s*\(\s*&\s*{m}\s*,\s*{_SIZEOF_STRUCT}",
        rf"struct\s+(\w+)\s*\*\s*\w+\s*=\s*(?:\([^)]*\)\s*)?bpf_ringbuf_reserve\s*\(\s*&\s*{m}\b",
        rf"bpf_ringbuf_output\s*\(\s*&\s*{m}\s*,[^;]*?{_SIZEOF_STRUCT}",
        rf"bpf_perf_event_output\s*\([^,]+,\s*&\s*{m}\s*,[^;]*?{_SIZEOF_STRUCT}",
    ]
    for pattern in patterns:
        found = re.search(pattern, source)
        if found:
            return found[1]
    # output of a variable: find the variable, then its declaration
    for call in (rf"bpf_ringbuf_output\s*\(\s*&\s*{m}\s*,\s*&?\s*(\w+)",
                 rf"bpf_perf_event_output\s*\([^,]+,\s*&\s*{m}\s*,[^,]+,\s*&?\s*(\w+)"):
        found = re.search(call, source)
        if found:
            decl = re.search(rf"struct\s+(\w+)\s*\*?\s*{re.escape(found[1])}\s*[;=\[]", source)
            if decl:
                return decl[1]
    defined = set(re.findall(r"\bstruct\s+([A-Za-z_]\w*)\s*\{", source))
    return defined.pop() if len(defined) == 1 else None


def dump_instructions(prog_id: int, *, jited: bool = False, prog_fd: int | None = None) -> str:
    """``bpftool prog dump xlated id N``; JIT-ed code with bpftool, or, when bpftool was built
    without a disassembler (Debian's), the program's native code disassembled by objdump."""
    kind = "jited" if jited else "xlated"
    done = subprocess.run(["bpftool", "prog", "dump", kind, "id", str(prog_id)],
                          capture_output=True, text=True, check=False)
    if done.returncode == 0 and done.stdout.strip():
        return done.stdout
    if jited and prog_fd is not None and "libbfd" in (done.stdout + done.stderr):
        return _objdump(objects.prog_jited_code(prog_fd))
    raise HostError(f"bpftool could not dump program {prog_id}",
                    details=(done.stderr or done.stdout).strip())


def _objdump(code: bytes) -> str:
    import platform
    import tempfile

    arch = {"x86_64": "i386:x86-64", "aarch64": "aarch64"}.get(platform.machine())
    if arch is None:
        raise HostError(f"no disassembler for JIT-ed code on {platform.machine()}")
    if shutil.which("objdump") is None:
        raise HostError("objdump is not installed: it disassembles JIT-ed code",
                        hint="install binutils (run `make setup`)")
    with tempfile.NamedTemporaryFile(suffix=".bin") as tmp:
        tmp.write(code)
        tmp.flush()
        done = subprocess.run(["objdump", "-D", "-b", "binary", "-m", arch, tmp.name],
                              capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise HostError("objdump could not disassemble the JIT-ed code",
                        hint="install binutils", details=done.stderr.strip())
    lines = done.stdout.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip().endswith("<.data>:")), 0)
    return "\n".join(lines[start + 1:]) + "\n"


_XLATED_FUNC = re.compile(r"^(?!;)(?P<proto>\S.*\(.*\)):$")
_XLATED_INSN = re.compile(r"^\s*(?P<pc>\d+):\s*\((?P<op>[0-9a-f]{2})\)\s*(?P<insn>.*)$")
_JITED_INSN = re.compile(r"^\s*(?P<pc>[0-9a-f]+):\s*(?:[0-9a-f]{2}\s)+\s*(?P<insn>.*)$")


def instructions_frame(listing: str) -> pd.DataFrame:
    """A bpftool listing as rows: function, pc, opcode, instruction, source."""
    rows = []
    function, source = "", ""
    for line in listing.splitlines():
        if m := _XLATED_FUNC.match(line):
            function = m["proto"].split("(")[0].split()[-1].lstrip("*")
            continue
        if line.startswith(";"):
            source = line[1:].strip()
            continue
        if m := _XLATED_INSN.match(line):
            rows.append({"function": function, "pc": int(m["pc"]), "opcode": m["op"],
                         "instruction": m["insn"].strip(), "source": source})
        elif m := _JITED_INSN.match(line):
            rows.append({"function": function, "pc": int(m["pc"], 16), "opcode": "",
                         "instruction": m["insn"].strip(), "source": source})
    df = pd.DataFrame(rows, columns=["function", "pc", "opcode", "instruction", "source"])
    df.attrs["listing"] = listing
    return df
