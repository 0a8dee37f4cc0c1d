"""The system's libbpf (libbpf.so.1, v1.x) through ctypes: open, set globals, load, attach, close.

Why ctypes and not a binding from PyPI: the only candidate (``pylibbpf``) is a 0.0.x pybind11
extension that builds its own copy of libbpf and says it is "not ready for production use";
the distribution's libbpf.so.1 is already installed with ``libbpf-dev`` (whose headers clang
needs anyway) and its C API is small and stable. Only the calls this package uses are declared.

libbpf reports through a print callback (``libbpf_set_print``). One callback is installed for the
whole process (its ctypes object is kept in this module, so it is never garbage-collected); every
message is formatted whole with the C library's ``vasprintf`` and kept in ``LOG``, from which
``captured_log()`` hands the messages of one operation to the caller. BCC uses the same
libbpf.so.1 and installs its own callback when it loads some programs, so ``captured_log()``
puts ours back for its block (and BCC's after it).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ebpf_nb.errors import HostError
from ebpf_nb.kernel.maps import prog_id_of_fd

LIBBPF_WARN, LIBBPF_INFO, LIBBPF_DEBUG = 0, 1, 2

c_ptr = ctypes.c_void_p
PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
RINGBUF_SAMPLE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                     ctypes.c_size_t)


class OpenOpts(ctypes.Structure):
    """``struct bpf_object_open_opts`` as of libbpf 1.1 (``sz`` makes older fields safe)."""

    _fields_ = [("sz", ctypes.c_size_t), ("object_name", ctypes.c_char_p),
                ("relaxed_maps", ctypes.c_bool), ("pin_root_path", ctypes.c_char_p),
                ("_attach_prog_fd", ctypes.c_uint32), ("kconfig", ctypes.c_char_p),
                ("btf_custom_path", ctypes.c_char_p), ("kernel_log_buf", ctypes.c_char_p),
                ("kernel_log_size", ctypes.c_size_t), ("kernel_log_level", ctypes.c_uint32)]


class UprobeOpts(ctypes.Structure):
    """``struct bpf_uprobe_opts`` (libbpf >= 0.8 has ``func_name``)."""

    _fields_ = [("sz", ctypes.c_size_t), ("ref_ctr_offset", ctypes.c_size_t),
                ("bpf_cookie", ctypes.c_uint64), ("retprobe", ctypes.c_bool),
                ("func_name", ctypes.c_char_p)]


_SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "libbpf_set_print": (c_ptr, [PRINT_FN]),
    "libbpf_num_possible_cpus": (ctypes.c_int, []),
    "bpf_object__open_file": (c_ptr, [ctypes.c_char_p, ctypes.POINTER(OpenOpts)]),
    "bpf_object__load": (ctypes.c_int, [c_ptr]),
    "bpf_object__close": (None, [c_ptr]),
    "bpf_object__btf": (c_ptr, [c_ptr]),
    "bpf_object__next_program": (c_ptr, [c_ptr, c_ptr]),
    "bpf_object__next_map": (c_ptr, [c_ptr, c_ptr]),
    "bpf_program__name": (ctypes.c_char_p, [c_ptr]),
    "bpf_program__section_name": (ctypes.c_char_p, [c_ptr]),
    "bpf_program__fd": (ctypes.c_int, [c_ptr]),
    "bpf_program__type": (ctypes.c_int, [c_ptr]),
    "bpf_program__set_attach_target": (ctypes.c_int, [c_ptr, ctypes.c_int, ctypes.c_char_p]),
    "bpf_program__set_autoload": (ctypes.c_int, [c_ptr, ctypes.c_bool]),
    "bpf_program__attach": (c_ptr, [c_ptr]),
    "bpf_program__attach_tracepoint": (c_ptr, [c_ptr, ctypes.c_char_p, ctypes.c_char_p]),
    "bpf_program__attach_raw_tracepoint": (c_ptr, [c_ptr, ctypes.c_char_p]),
    "bpf_program__attach_kprobe": (c_ptr, [c_ptr, ctypes.c_bool, ctypes.c_char_p]),
    "bpf_program__attach_ksyscall": (c_ptr, [c_ptr, ctypes.c_char_p, c_ptr]),
    "bpf_program__attach_trace": (c_ptr, [c_ptr]),
    "bpf_program__attach_uprobe_opts": (c_ptr, [c_ptr, ctypes.c_int, ctypes.c_char_p,
                                                ctypes.c_size_t, ctypes.POINTER(UprobeOpts)]),
    "bpf_link__destroy": (ctypes.c_int, [c_ptr]),
    "bpf_map__name": (ctypes.c_char_p, [c_ptr]),
    "bpf_map__fd": (ctypes.c_int, [c_ptr]),
    "bpf_map__type": (ctypes.c_int, [c_ptr]),
    "bpf_map__key_size": (ctypes.c_uint32, [c_ptr]),
    "bpf_map__value_size": (ctypes.c_uint32, [c_ptr]),
    "bpf_map__max_entries": (ctypes.c_uint32, [c_ptr]),
    "bpf_map__btf_key_type_id": (ctypes.c_uint32, [c_ptr]),
    "bpf_map__btf_value_type_id": (ctypes.c_uint32, [c_ptr]),
    "bpf_map__initial_value": (c_ptr, [c_ptr, ctypes.POINTER(ctypes.c_size_t)]),
    "bpf_map__set_initial_value": (ctypes.c_int, [c_ptr, c_ptr, ctypes.c_size_t]),
    "btf__raw_data": (c_ptr, [c_ptr, ctypes.POINTER(ctypes.c_uint32)]),
    "bpf_map_get_next_key": (ctypes.c_int, [ctypes.c_int, c_ptr, c_ptr]),
    "bpf_map_lookup_elem": (ctypes.c_int, [ctypes.c_int, c_ptr, c_ptr]),
    "bpf_obj_get_info_by_fd": (ctypes.c_int, [ctypes.c_int, c_ptr,
                                              ctypes.POINTER(ctypes.c_uint32)]),
    "ring_buffer__new": (c_ptr, [ctypes.c_int, RINGBUF_SAMPLE_FN, c_ptr, c_ptr]),
    "ring_buffer__poll": (ctypes.c_int, [c_ptr, ctypes.c_int]),
    "ring_buffer__free": (None, [c_ptr]),
}

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
LOG: list[tuple[int, str]] = []  # (level, message) of every libbpf message, oldest first
_LOG_LIMIT = 20_000
_dropped = 0  # messages deleted from the front of LOG: a capture's start stays valid across it


def lib() -> ctypes.CDLL:
    """libbpf.so.1 with the prototypes declared and our print callback installed."""
    global _lib
    with _lock:
        if _lib is None:
            name = ctypes.util.find_library("bpf") or "libbpf.so.1"
            try:
                handle = ctypes.CDLL(name, use_errno=True)
            except OSError as err:
                raise HostError("libbpf (libbpf.so.1) is not installed: CO-RE cells load with it",
                                hint="run `make setup` (Debian/Ubuntu package: libbpf1)") from err
            for fn_name, (restype, argtypes) in _SIGNATURES.items():
                fn = getattr(handle, fn_name)
                fn.restype, fn.argtypes = restype, argtypes
            handle.libbpf_set_print(_PRINT_CALLBACK)
            _lib = handle
    return _lib


_libc = ctypes.CDLL(None, use_errno=True)
_libc.vasprintf.restype = ctypes.c_int
_libc.vasprintf.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p, ctypes.c_void_p]
_libc.free.restype = None
_libc.free.argtypes = [ctypes.c_void_p]


def _format(fmt: int | None, args: int | None) -> str:
    """One printf-style message of any length (a whole verifier log can be many MiB).

    A va_list can be consumed only once, so a fixed buffer cannot be retried when too small:
    ``vasprintf`` allocates what the message needs in its one pass."""
    out = ctypes.c_void_p()
    length = _libc.vasprintf(ctypes.byref(out), fmt, args)
    if length < 0 or not out.value:
        return ""
    try:
        return ctypes.string_at(out.value, length).decode(errors="replace")
    finally:
        _libc.free(out)


def _print(level: int, fmt: int | None, args: int | None) -> int:
    global _dropped
    try:
        LOG.append((level, _format(fmt, args)))
        if len(LOG) > _LOG_LIMIT:
            del LOG[: _LOG_LIMIT // 2]
            _dropped += _LOG_LIMIT // 2
    except Exception:  # noqa: BLE001, S110 -- an exception must never cross into C
        pass
    return 0


_PRINT_CALLBACK = PRINT_FN(_print)  # module-level: libbpf keeps only the raw pointer


@contextlib.contextmanager
def captured_log(level: int = LIBBPF_DEBUG) -> Iterator[list[str]]:
    """Collect, as text lines, libbpf's messages of ``level`` or more important in this block."""
    lines: list[str] = []
    previous = lib().libbpf_set_print(_PRINT_CALLBACK)  # BCC may have replaced ours
    start = _dropped + len(LOG)  # counted from libbpf's first message, not LOG's
    try:
        yield lines
    finally:
        lib().libbpf_set_print(ctypes.cast(previous, PRINT_FN))  # NULL stays NULL
        for lvl, message in LOG[max(0, start - _dropped):]:
            if lvl <= level:
                lines.extend(message.rstrip("\n").splitlines())


def _errno_of(ret: int | None = None) -> int:
    if ret is not None and ret < 0:
        return -ret
    return ctypes.get_errno() or errno.EINVAL


class LibbpfCallError(OSError):
    """A libbpf call failed; ``errno`` holds the reason, ``log`` libbpf's messages."""

    def __init__(self, call: str, err: int, log: list[str]):
        super().__init__(err, f"{call}: {os.strerror(err)}")
        self.call = call
        self.log = log


@dataclass
class Program:
    """One program of an object (``SEC()`` function): name, section, and its fd once loaded."""

    ptr: int
    name: str
    section: str

    @property
    def fd(self) -> int:
        return lib().bpf_program__fd(self.ptr)

    @property
    def prog_type(self) -> int:
        return lib().bpf_program__type(self.ptr)

    def info_id(self) -> int:
        """The kernel's id of the loaded program (what ``bpftool prog show id`` takes)."""
        return prog_id_of_fd(self.fd)


@dataclass
class Map:
    """One map of an object, as libbpf describes it."""

    ptr: int
    name: str

    @property
    def fd(self) -> int:
        return lib().bpf_map__fd(self.ptr)

    @property
    def map_type(self) -> int:
        return lib().bpf_map__type(self.ptr)

    @property
    def key_size(self) -> int:
        return lib().bpf_map__key_size(self.ptr)

    @property
    def value_size(self) -> int:
        return lib().bpf_map__value_size(self.ptr)

    @property
    def max_entries(self) -> int:
        return lib().bpf_map__max_entries(self.ptr)

    @property
    def btf_key_type_id(self) -> int:
        return lib().bpf_map__btf_key_type_id(self.ptr)

    @property
    def btf_value_type_id(self) -> int:
        return lib().bpf_map__btf_value_type_id(self.ptr)

    def initial_value(self) -> bytes:
        """The map's initial contents (``.rodata``/``.data``), before load."""
        size = ctypes.c_size_t()
        ptr = lib().bpf_map__initial_value(self.ptr, ctypes.byref(size))
        return ctypes.string_at(ptr, size.value) if ptr else b""

    def set_initial_value(self, data: bytes) -> None:
        buf = ctypes.create_string_buffer(data, len(data))
        ret = lib().bpf_map__set_initial_value(self.ptr, buf, len(data))
        if ret < 0:
            raise LibbpfCallError("bpf_map__set_initial_value", -ret, [])


@dataclass
class Link:
    """An attachment; ``destroy()`` detaches it (idempotent)."""

    ptr: int | None
    program: str
    probe: str

    def destroy(self) -> None:
        if self.ptr:
            lib().bpf_link__destroy(self.ptr)
            self.ptr = None


@dataclass
class BpfObject:
    """An opened (and later loaded) BPF object file. ``close()`` unloads everything it holds."""

    path: Path
    ptr: int | None = None
    programs: dict[str, Program] = field(default_factory=dict)
    maps: dict[str, Map] = field(default_factory=dict)
    open_log: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, path: Path, *, name: str | None = None, kconfig: str | None = None
             ) -> BpfObject:
        opts = OpenOpts(sz=ctypes.sizeof(OpenOpts))
        if name:
            opts.object_name = name.encode()
        if kconfig:
            opts.kconfig = kconfig.encode()
        libbpf = lib()
        with captured_log() as log:
            ctypes.set_errno(0)
            ptr = libbpf.bpf_object__open_file(str(path).encode(), ctypes.byref(opts))
        if not ptr:
            raise LibbpfCallError("bpf_object__open_file", _errno_of(), log)
        obj = cls(path, ptr, open_log=log)
        prog = libbpf.bpf_object__next_program(ptr, None)
        while prog:
            name_ = libbpf.bpf_program__name(prog).decode()
            obj.programs[name_] = Program(prog, name_,
                                          libbpf.bpf_program__section_name(prog).decode())
            prog = libbpf.bpf_object__next_program(ptr, prog)
        map_ = libbpf.bpf_object__next_map(ptr, None)
        while map_:
            name_ = libbpf.bpf_map__name(map_).decode()
            obj.maps[name_] = Map(map_, name_)
            map_ = libbpf.bpf_object__next_map(ptr, map_)
        return obj

    def btf_raw(self) -> bytes:
        """The object's BTF as raw bytes (after libbpf's fix-ups of data sections)."""
        btf = lib().bpf_object__btf(self.ptr)
        if not btf:
            return b""
        size = ctypes.c_uint32()
        data = lib().btf__raw_data(btf, ctypes.byref(size))
        return ctypes.string_at(data, size.value) if data else b""

    def load(self) -> list[str]:
        """Load maps and programs into the kernel; return libbpf's messages (raise on failure)."""
        with captured_log() as log:
            ret = lib().bpf_object__load(self.ptr)
        if ret < 0:
            raise LibbpfCallError("bpf_object__load", _errno_of(ret), log)
        return log

    def set_attach_target(self, program: str, function: str) -> None:
        ret = lib().bpf_program__set_attach_target(self.programs[program].ptr, 0,
                                                   function.encode())
        if ret < 0:
            raise LibbpfCallError("bpf_program__set_attach_target", -ret, [])

    def attach(self, program: str, kind: str | None = None, target: tuple[str, ...] = ()
               ) -> Link:
        """Attach ``program`` from its SEC() name (``kind=None``) or to an explicit probe.

        ``kind`` is one of tracepoint, raw_tracepoint, kprobe, kretprobe, ksyscall, fentry,
        fexit, uprobe, uretprobe; ``target`` its ':'-separated parts.
        """
        libbpf, prog = lib(), self.programs[program].ptr
        enc = [t.encode() for t in target]
        with captured_log() as log:
            ctypes.set_errno(0)
            if kind is None:
                ptr = libbpf.bpf_program__attach(prog)
            elif kind == "tracepoint":
                ptr = libbpf.bpf_program__attach_tracepoint(prog, enc[0], enc[1])
            elif kind == "raw_tracepoint":
                ptr = libbpf.bpf_program__attach_raw_tracepoint(prog, enc[0])
            elif kind in ("kprobe", "kretprobe"):
                ptr = libbpf.bpf_program__attach_kprobe(prog, kind == "kretprobe", enc[0])
            elif kind == "ksyscall":
                ptr = libbpf.bpf_program__attach_ksyscall(prog, enc[0], None)
            elif kind in ("fentry", "fexit"):
                ptr = libbpf.bpf_program__attach_trace(prog)
            elif kind in ("uprobe", "uretprobe"):
                opts = UprobeOpts(sz=ctypes.sizeof(UprobeOpts), retprobe=kind == "uretprobe",
                                  func_name=enc[1])
                ptr = libbpf.bpf_program__attach_uprobe_opts(prog, -1, enc[0], 0,
                                                             ctypes.byref(opts))
            else:
                raise ValueError(f"unknown attach kind {kind!r}")
        if not ptr:
            raise LibbpfCallError(f"attach {program}", _errno_of(), log)
        probe = self.programs[program].section if kind is None else ":".join((kind, *target))
        return Link(ptr, program, probe)

    def close(self) -> None:
        """Unload programs and maps (links must be destroyed first). Idempotent.

        libbpf frees every program and map of the object: their wrappers are dropped too, so
        none of their freed pointers can be used afterwards."""
        if self.ptr:
            lib().bpf_object__close(self.ptr)
            self.ptr = None
        self.programs = {}
        self.maps = {}


def prog_jited_code(fd: int) -> bytes:
    """The native code the JIT made of a loaded program (``bpf_prog_info.jited_prog_insns``)."""
    info = ctypes.create_string_buffer(256)
    size = ctypes.c_uint32(len(info))
    ret = lib().bpf_obj_get_info_by_fd(fd, info, ctypes.byref(size))
    if ret < 0:
        raise LibbpfCallError("bpf_obj_get_info_by_fd", _errno_of(ret), [])
    jited_len = int.from_bytes(info.raw[16:20], sys.byteorder)
    code = ctypes.create_string_buffer(max(jited_len, 1))
    info = ctypes.create_string_buffer(256)  # ask only for the JIT-ed code this time
    info[16:20] = jited_len.to_bytes(4, sys.byteorder)
    info[24:32] = ctypes.addressof(code).to_bytes(8, sys.byteorder)
    size = ctypes.c_uint32(len(info))
    ret = lib().bpf_obj_get_info_by_fd(fd, info, ctypes.byref(size))
    if ret < 0:
        raise LibbpfCallError("bpf_obj_get_info_by_fd", _errno_of(ret), [])
    return code.raw[:jited_len]


def num_possible_cpus() -> int:
    return lib().libbpf_num_possible_cpus()
