"""ctypes bindings to the few libbpf (``libbpf.so.1``) calls the kit needs, and errno handling.

libbpf 1.x returns ``-errno`` from its low-level ``bpf_*`` wrappers; :func:`check` turns that into
``OSError`` with the right errno, so callers can test ``err.errno``.
"""
from __future__ import annotations

import ctypes as ct
import ctypes.util
import errno as _errno
import os
from functools import cache

ENOTSUPP = 524  # kernel-internal "operation not supported", leaks out of bpf() for batch ops

c_u32_p = ct.POINTER(ct.c_uint32)


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


_PROTOTYPES = {
    "bpf_map_lookup_batch": [ct.c_int, ct.c_void_p, ct.c_void_p, ct.c_void_p, ct.c_void_p,
                             c_u32_p, ct.POINTER(BpfMapBatchOpts)],
    "bpf_map_update_batch": [ct.c_int, ct.c_void_p, ct.c_void_p, c_u32_p,
                             ct.POINTER(BpfMapBatchOpts)],
    "bpf_map_get_next_key": [ct.c_int, ct.c_void_p, ct.c_void_p],
    "bpf_map_lookup_elem": [ct.c_int, ct.c_void_p, ct.c_void_p],
    "bpf_map_update_elem": [ct.c_int, ct.c_void_p, ct.c_void_p, ct.c_uint64],
    "bpf_map_delete_elem": [ct.c_int, ct.c_void_p],
    "bpf_obj_get_info_by_fd": [ct.c_int, ct.c_void_p, c_u32_p],
    "bpf_prog_test_run_opts": [ct.c_int, ct.POINTER(BpfTestRunOpts)],
}


@cache
def lib() -> ct.CDLL:
    """libbpf, loaded once (``libbpf.so.1`` from the distribution's libbpf1 package)."""
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    try:
        handle = ct.CDLL(name, use_errno=True)
    except OSError:
        handle = ct.CDLL("libbpf.so.1", use_errno=True)
    for func, argtypes in _PROTOTYPES.items():
        fn = getattr(handle, func)
        fn.restype = ct.c_int
        fn.argtypes = argtypes
    return handle


def check(ret: int, what: str) -> int:
    """Raise ``OSError(errno)`` for a negative libbpf return; pass other values through."""
    if ret < 0:
        code = -ret if ret != -1 else (ct.get_errno() or _errno.EIO)
        raise OSError(code, f"{what}: {os.strerror(code) if code != ENOTSUPP else 'ENOTSUPP'}")
    return ret
