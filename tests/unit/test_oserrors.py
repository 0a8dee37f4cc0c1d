"""OS errors of the data layer reach the student as one short kit error, not an OSError (issue 14).

The failures are real: a perf buffer opened under a lowered RLIMIT_NOFILE (perf_event_open fails
with EMFILE, in a child process so the limit cannot touch the test run), and a map read through a
file descriptor that has been closed (the kernel answers EBADF).
"""
from __future__ import annotations

import errno
import os

import pytest

from ebpf_nb.errors import HostError, PrivilegeError, UsageError


@pytest.mark.parametrize(("code", "cls", "words"), [
    (errno.EPERM, PrivilegeError, "not permitted (EPERM)"),
    (errno.EACCES, PrivilegeError, "permission denied (EACCES)"),
    (errno.ENOENT, UsageError, "key not found (ENOENT)"),
    (errno.E2BIG, UsageError, "the map is full (E2BIG)"),
    (errno.EMFILE, HostError, "too many open files (EMFILE)"),
    (524, HostError, "this kernel does not support it (ENOTSUPP)"),
    (errno.EXDEV, HostError, "invalid cross-device link (EXDEV)"),
])
def test_translate_maps_errno_to_the_error_tree(code, cls, words):
    from ebpf_nb.oserrors import translate

    err = translate(OSError(code, f"BPF_MAP_UPDATE_ELEM: {os.strerror(code)}"), "p.table('m')")
    assert type(err) is cls and err.errno == code
    assert err.message == f"p.table('m') failed: {words}"
    assert err.details == f"BPF_MAP_UPDATE_ELEM: {os.strerror(code)}"
