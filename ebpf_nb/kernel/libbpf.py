"""The kit's one binding of the system's libbpf (``libbpf.so.1``, v1.x) through ctypes.

Every libbpf call the kit makes is declared here, once, and :func:`lib` opens the library once
per process. When it is missing, :func:`lib` raises :class:`~ebpf_nb.errors.HostError` saying
what to install (both backends need it: BCC's ``libbcc`` links it, and every map read uses it).

Errno convention (libbpf 1.x): a call that returns an ``int`` returns ``-errno`` on failure, a call
that returns a pointer returns NULL and sets ``errno``. :func:`check` and :func:`check_ptr` turn
either into :class:`LibbpfError`, an ``OSError`` whose ``errno`` is the reason; nothing else
raises on a failed call. The kit's error tree is reached later, in :mod:`ebpf_nb.oserrors` or
by the CO-RE loader.

Why ctypes and not a binding from PyPI: the only candidate (``pylibbpf``) is a 0.0.x pybind11
extension that builds its own copy of libbpf and says it is "not ready for production use";
the distribution's libbpf.so.1 is already installed with ``libbpf-dev`` (whose headers clang
needs anyway) and its C API is small and stable.
"""
from __future__ import annotations

import ctypes as ct
import errno
import os
from collections.abc import Sequence

from .sharedlib import LazyLibrary

SONAME = "libbpf.so.1"
ENOTSUPP = 524  # kernel-internal "operation not supported", leaks out of bpf() for batch ops
MISSING_HINT = "install it with `sudo make setup` (Debian/Ubuntu package: libbpf1)"

c_ptr = ct.c_void_p
c_u32_p = ct.POINTER(ct.c_uint32)
PRINT_FN = ct.CFUNCTYPE(ct.c_int, ct.c_int, ct.c_void_p, ct.c_void_p)


class BpfMapBatchOpts(ct.Structure):
    _fields_ = [("sz", ct.c_size_t), ("elem_flags", ct.c_uint64), ("flags", ct.c_uint64)]


class BpfTestRunOpts(ct.Structure):
    _fields_ = [
        ("sz", ct.c_size_t),
        ("data_in", ct.c_void_p), ("data_out", ct.c_void_p),
        ("data_size_in", ct.c_uint32), ("data_size_out", ct.c_uint32),
        ("ctx_in", ct.c_void_p), ("ctx_out", ct.c_void_p),
        ("ctx_size_in", ct.c_uint32), ("ctx_size_out", ct.c_uint32),
        ("retval", ct.c_uint32), ("repeat", ct.c_int), ("duration", ct.c_uint32),
        ("flags", ct.c_uint32), ("cpu", ct.c_uint32), ("batch_size", ct.c_uint32),
    ]


class BpfMapInfo(ct.Structure):
    """``struct bpf_map_info`` (uapi/linux/bpf.h), as far as the kit reads it."""
    _fields_ = [
        ("type", ct.c_uint32), ("id", ct.c_uint32), ("key_size", ct.c_uint32),
        ("value_size", ct.c_uint32), ("max_entries", ct.c_uint32), ("map_flags", ct.c_uint32),
        ("name", ct.c_char * 16), ("ifindex", ct.c_uint32),
        ("btf_vmlinux_value_type_id", ct.c_uint32), ("netns_dev", ct.c_uint64),
        ("netns_ino", ct.c_uint64), ("btf_id", ct.c_uint32), ("btf_key_type_id", ct.c_uint32),
        ("btf_value_type_id", ct.c_uint32), ("_pad", ct.c_uint32), ("map_extra", ct.c_uint64),
    ]


class OpenOpts(ct.Structure):
    """``struct bpf_object_open_opts`` as of libbpf 1.1 (``sz`` makes older fields safe)."""

    _fields_ = [("sz", ct.c_size_t), ("object_name", ct.c_char_p),
                ("relaxed_maps", ct.c_bool), ("pin_root_path", ct.c_char_p),
                ("_attach_prog_fd", ct.c_uint32), ("kconfig", ct.c_char_p),
                ("btf_custom_path", ct.c_char_p), ("kernel_log_buf", ct.c_char_p),
                ("kernel_log_size", ct.c_size_t), ("kernel_log_level", ct.c_uint32)]


class UprobeOpts(ct.Structure):
    """``struct bpf_uprobe_opts`` (libbpf >= 0.8 has ``func_name``)."""

    _fields_ = [("sz", ct.c_size_t), ("ref_ctr_offset", ct.c_size_t),
                ("bpf_cookie", ct.c_uint64), ("retprobe", ct.c_bool),
                ("func_name", ct.c_char_p)]


_INT, _U32 = ct.c_int, ct.c_uint32

#: name -> (restype, argtypes) of every call the kit makes
PROTOTYPES: dict[str, tuple[object, list[object]]] = {
    # library
    "libbpf_major_version": (_U32, []),
    "libbpf_minor_version": (_U32, []),
    "libbpf_set_print": (c_ptr, [PRINT_FN]),
    # fd-level bpf() wrappers (kernel/)
    "bpf_map_lookup_batch": (_INT, [_INT, c_ptr, c_ptr, c_ptr, c_ptr, c_u32_p,
                                    ct.POINTER(BpfMapBatchOpts)]),
    "bpf_map_update_batch": (_INT, [_INT, c_ptr, c_ptr, c_u32_p, ct.POINTER(BpfMapBatchOpts)]),
    "bpf_map_get_next_key": (_INT, [_INT, c_ptr, c_ptr]),
    "bpf_map_lookup_elem": (_INT, [_INT, c_ptr, c_ptr]),
    "bpf_map_update_elem": (_INT, [_INT, c_ptr, c_ptr, ct.c_uint64]),
    "bpf_map_delete_elem": (_INT, [_INT, c_ptr]),
    "bpf_obj_get_info_by_fd": (_INT, [_INT, c_ptr, c_u32_p]),
    "bpf_prog_test_run_opts": (_INT, [_INT, ct.POINTER(BpfTestRunOpts)]),
    # objects (core/)
    "bpf_object__open_file": (c_ptr, [ct.c_char_p, ct.POINTER(OpenOpts)]),
    "bpf_object__load": (_INT, [c_ptr]),
    "bpf_object__close": (None, [c_ptr]),
    "bpf_object__btf": (c_ptr, [c_ptr]),
    "bpf_object__next_program": (c_ptr, [c_ptr, c_ptr]),
    "bpf_object__next_map": (c_ptr, [c_ptr, c_ptr]),
    "btf__raw_data": (c_ptr, [c_ptr, c_u32_p]),
    "bpf_program__name": (ct.c_char_p, [c_ptr]),
    "bpf_program__section_name": (ct.c_char_p, [c_ptr]),
    "bpf_program__fd": (_INT, [c_ptr]),
    "bpf_program__type": (_INT, [c_ptr]),
    "bpf_program__set_attach_target": (_INT, [c_ptr, _INT, ct.c_char_p]),
    "bpf_program__attach": (c_ptr, [c_ptr]),
    "bpf_program__attach_tracepoint": (c_ptr, [c_ptr, ct.c_char_p, ct.c_char_p]),
    "bpf_program__attach_raw_tracepoint": (c_ptr, [c_ptr, ct.c_char_p]),
    "bpf_program__attach_kprobe": (c_ptr, [c_ptr, ct.c_bool, ct.c_char_p]),
    "bpf_program__attach_ksyscall": (c_ptr, [c_ptr, ct.c_char_p, c_ptr]),
    "bpf_program__attach_trace": (c_ptr, [c_ptr]),
    "bpf_program__attach_uprobe_opts": (c_ptr, [c_ptr, _INT, ct.c_char_p, ct.c_size_t,
                                                ct.POINTER(UprobeOpts)]),
    "bpf_link__destroy": (_INT, [c_ptr]),
    "bpf_map__name": (ct.c_char_p, [c_ptr]),
    "bpf_map__fd": (_INT, [c_ptr]),
    "bpf_map__type": (_INT, [c_ptr]),
    "bpf_map__max_entries": (_U32, [c_ptr]),
    "bpf_map__btf_key_type_id": (_U32, [c_ptr]),
    "bpf_map__btf_value_type_id": (_U32, [c_ptr]),
    "bpf_map__initial_value": (c_ptr, [c_ptr, ct.POINTER(ct.c_size_t)]),
    "bpf_map__set_initial_value": (_INT, [c_ptr, c_ptr, ct.c_size_t]),
}


def _open_library() -> ct.CDLL:
    """dlopen libbpf.so.1 (the one place the kit does)."""
    return ct.CDLL(SONAME, use_errno=True)


def _declare(handle: ct.CDLL) -> ct.CDLL:
    for name, (restype, argtypes) in PROTOTYPES.items():
        fn = getattr(handle, name)
        fn.restype, fn.argtypes = restype, argtypes
    return handle


LIBRARY = LazyLibrary("libbpf", SONAME, needed_for="the kit loads programs and reads their maps "
                      "with it", hint=MISSING_HINT, opener=lambda: _open_library(),
                      prepare=_declare)


def lib() -> ct.CDLL:
    """libbpf.so.1 with every prototype declared, opened once; ``HostError`` if it is missing."""
    return LIBRARY.get()


def strerror(code: int) -> str:
    return "ENOTSUPP (not supported)" if code == ENOTSUPP else os.strerror(code)


class LibbpfError(OSError):
    """A libbpf call failed: ``errno`` is the reason, ``call`` what failed, ``log`` the messages
    libbpf printed meanwhile (CO-RE calls; empty otherwise)."""

    def __init__(self, call: str, code: int, log: Sequence[str] = ()):
        super().__init__(code, f"{call}: {strerror(code)}")
        self.call = call
        self.log = list(log)


def check(ret: int, call: str, log: Sequence[str] = ()) -> int:
    """``ret`` of an int-returning call; a negative one (``-errno``) raises :class:`LibbpfError`."""
    if ret < 0:
        raise LibbpfError(call, -ret, log)
    return ret


def check_ptr(ptr: int | None, call: str, log: Sequence[str] = ()) -> int:
    """``ptr`` of a pointer-returning call; NULL raises :class:`LibbpfError` with ``errno``."""
    if not ptr:
        raise LibbpfError(call, ct.get_errno() or errno.EINVAL, log)
    return ptr
