"""A libbpf BPF object as Python objects: open, set globals, load, attach, close.

Built on the kit's one libbpf binding (:mod:`ebpf_nb.kernel.libbpf`): every failed call raises
its :class:`~ebpf_nb.kernel.libbpf.LibbpfError` (``errno``, and ``log``, libbpf's messages of
that call, from :mod:`ebpf_nb.core.libbpf_log`). What a failure means for the student is
decided by :mod:`ebpf_nb.core.program`.
"""
from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ebpf_nb.core.libbpf_log import captured_log, logged_lib
from ebpf_nb.kernel.libbpf import LibbpfError, OpenOpts, UprobeOpts, check, check_ptr
from ebpf_nb.kernel.maps import prog_id_of_fd

__all__ = ["LIBBPF_ATTACH", "BpfObject", "LibbpfError", "Link", "ObjectMap", "ObjectProgram",
           "prog_jited_code"]


def _asks(call: str) -> property:
    """A read-only property: libbpf's ``call`` on the object's pointer (``self.ptr``)."""
    return property(lambda self: getattr(logged_lib(), call)(self.ptr), doc=f"libbpf's {call}()")


@dataclass
class ObjectProgram:
    """One program of an object (``SEC()`` function): name, section, and its fd once loaded."""

    ptr: int
    name: str
    section: str

    fd = _asks("bpf_program__fd")
    prog_type = _asks("bpf_program__type")

    def info_id(self) -> int:
        """The kernel's id of the loaded program (what ``bpftool prog show id`` takes)."""
        return prog_id_of_fd(self.fd)


@dataclass
class ObjectMap:
    """One map of an object, as libbpf describes it."""

    ptr: int
    name: str

    fd = _asks("bpf_map__fd")
    map_type = _asks("bpf_map__type")
    max_entries = _asks("bpf_map__max_entries")
    btf_key_type_id = _asks("bpf_map__btf_key_type_id")
    btf_value_type_id = _asks("bpf_map__btf_value_type_id")

    def initial_value(self) -> bytes:
        """The map's initial contents (``.rodata``/``.data``), before load."""
        size = ctypes.c_size_t()
        ptr = logged_lib().bpf_map__initial_value(self.ptr, ctypes.byref(size))
        return ctypes.string_at(ptr, size.value) if ptr else b""

    def set_initial_value(self, data: bytes) -> None:
        buf = ctypes.create_string_buffer(data, len(data))
        check(logged_lib().bpf_map__set_initial_value(self.ptr, buf, len(data)),
              "bpf_map__set_initial_value")


@dataclass
class Link:
    """An attachment; ``destroy()`` detaches it (idempotent)."""

    ptr: int | None

    def destroy(self) -> None:
        if self.ptr:
            logged_lib().bpf_link__destroy(self.ptr)
            self.ptr = None


@dataclass
class BpfObject:
    """An opened (and later loaded) BPF object file. ``close()`` unloads everything it holds."""

    path: Path
    ptr: int | None = None
    programs: dict[str, ObjectProgram] = field(default_factory=dict)
    maps: dict[str, ObjectMap] = field(default_factory=dict)

    @classmethod
    def open(cls, path: Path, *, name: str | None = None) -> BpfObject:
        opts = OpenOpts(sz=ctypes.sizeof(OpenOpts))
        if name:
            opts.object_name = name.encode()
        libbpf = logged_lib()
        with captured_log() as log:
            ctypes.set_errno(0)
            ptr = libbpf.bpf_object__open_file(str(path).encode(), ctypes.byref(opts))
        obj = cls(path, check_ptr(ptr, "bpf_object__open_file", log))
        prog = libbpf.bpf_object__next_program(ptr, None)
        while prog:
            name_ = libbpf.bpf_program__name(prog).decode()
            obj.programs[name_] = ObjectProgram(prog, name_,
                                                libbpf.bpf_program__section_name(prog).decode())
            prog = libbpf.bpf_object__next_program(ptr, prog)
        map_ = libbpf.bpf_object__next_map(ptr, None)
        while map_:
            name_ = libbpf.bpf_map__name(map_).decode()
            obj.maps[name_] = ObjectMap(map_, name_)
            map_ = libbpf.bpf_object__next_map(ptr, map_)
        return obj

    def btf_raw(self) -> bytes:
        """The object's BTF as raw bytes (after libbpf's fix-ups of data sections)."""
        libbpf = logged_lib()
        btf = libbpf.bpf_object__btf(self.ptr)
        if not btf:
            return b""
        size = ctypes.c_uint32()
        data = libbpf.btf__raw_data(btf, ctypes.byref(size))
        return ctypes.string_at(data, size.value) if data else b""

    def load(self) -> None:
        """Load maps and programs into the kernel (``LibbpfError`` with libbpf's messages)."""
        with captured_log() as log:
            ret = logged_lib().bpf_object__load(self.ptr)
        check(ret, "bpf_object__load", log)

    def set_attach_target(self, program: str, function: str) -> None:
        check(logged_lib().bpf_program__set_attach_target(self.programs[program].ptr, 0,
                                                          function.encode()),
              "bpf_program__set_attach_target")

    def attach(self, program: str, kind: str | None = None, target: tuple[str, ...] = ()
               ) -> Link:
        """Attach ``program`` from its SEC() name (``kind=None``) or to an explicit probe.

        ``kind`` is a probe kind of :data:`LIBBPF_ATTACH`; ``target`` its ':'-separated
        parts.
        """
        libbpf, prog = logged_lib(), self.programs[program].ptr
        if kind is not None and kind not in LIBBPF_ATTACH:
            raise ValueError(f"unknown attach kind {kind!r}")
        enc = tuple(t.encode() for t in target)
        with captured_log() as log:
            ctypes.set_errno(0)
            if kind is None:
                ptr = libbpf.bpf_program__attach(prog)
            else:
                ptr = LIBBPF_ATTACH[kind](libbpf, prog, enc)
        return Link(check_ptr(ptr, f"attach {program}", log))

    def close(self) -> None:
        """Unload programs and maps (links must be destroyed first). Idempotent.

        libbpf frees every program and map of the object: their wrappers are dropped too, so
        none of their freed pointers can be used afterwards."""
        if self.ptr:
            logged_lib().bpf_object__close(self.ptr)
            self.ptr = None
        self.programs = {}
        self.maps = {}


def _attach_uprobe(retprobe: bool) -> Callable[[Any, int, tuple[bytes, ...]], int]:
    def attach(libbpf: Any, prog: int, target: tuple[bytes, ...]) -> int:
        opts = UprobeOpts(sz=ctypes.sizeof(UprobeOpts), retprobe=retprobe, func_name=target[1])
        return libbpf.bpf_program__attach_uprobe_opts(prog, -1, target[0], 0, ctypes.byref(opts))
    return attach


#: probe kind -> libbpf's attach call ``(libbpf, program pointer, target parts as bytes)``;
#: ``ksyscall`` is how a ``syscall:`` probe attaches a kprobe program.
LIBBPF_ATTACH: dict[str, Callable[[Any, int, tuple[bytes, ...]], int]] = {
    "tracepoint": lambda lib, prog, t: lib.bpf_program__attach_tracepoint(prog, t[0], t[1]),
    "raw_tracepoint": lambda lib, prog, t: lib.bpf_program__attach_raw_tracepoint(prog, t[0]),
    "kprobe": lambda lib, prog, t: lib.bpf_program__attach_kprobe(prog, False, t[0]),
    "kretprobe": lambda lib, prog, t: lib.bpf_program__attach_kprobe(prog, True, t[0]),
    "ksyscall": lambda lib, prog, t: lib.bpf_program__attach_ksyscall(prog, t[0], None),
    "fentry": lambda lib, prog, t: lib.bpf_program__attach_trace(prog),  # target set at load
    "fexit": lambda lib, prog, t: lib.bpf_program__attach_trace(prog),
    "uprobe": _attach_uprobe(retprobe=False),
    "uretprobe": _attach_uprobe(retprobe=True),
}


def prog_jited_code(fd: int) -> bytes:
    """The native code the JIT made of a loaded program (``bpf_prog_info.jited_prog_insns``)."""
    libbpf = logged_lib()
    info = ctypes.create_string_buffer(256)
    size = ctypes.c_uint32(len(info))
    check(libbpf.bpf_obj_get_info_by_fd(fd, info, ctypes.byref(size)), "bpf_obj_get_info_by_fd")
    jited_len = int.from_bytes(info.raw[16:20], sys.byteorder)
    code = ctypes.create_string_buffer(max(jited_len, 1))
    info = ctypes.create_string_buffer(256)  # ask only for the JIT-ed code this time
    # (typeshed lets a char array's slice take only a list; ctypes takes bytes too)
    info[16:20] = jited_len.to_bytes(4, sys.byteorder)  # type: ignore[call-overload]
    info[24:32] = ctypes.addressof(code).to_bytes(8, sys.byteorder)  # type: ignore[call-overload]
    size = ctypes.c_uint32(len(info))
    check(libbpf.bpf_obj_get_info_by_fd(fd, info, ctypes.byref(size)), "bpf_obj_get_info_by_fd")
    return code.raw[:jited_len]
