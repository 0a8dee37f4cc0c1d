"""One libbpf binding (issue 14): one dlopen, each prototype once and used, one error when missing.

"libbpf missing" is made real in a fresh interpreter whose ``ctypes.CDLL`` refuses every library
named like libbpf (and, in the second case, libbcc, which links libbpf.so.1 and so fails to load
with it), as the dynamic loader does on a machine without the libbpf1 package.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ebpf_nb.kernel import libbpf

ROOT = Path(__file__).resolve().parents[2]

_WITHOUT_LIBBPF = r"""
import ctypes, json, sys
refused = sys.argv[1].split(",")
real = ctypes.CDLL
class NoLibbpf(real):
    def __init__(self, name, *args, **kw):
        if name and any(r in str(name) for r in refused):
            raise OSError(f"{name}: cannot open shared object file: No such file or directory")
        super().__init__(name, *args, **kw)
ctypes.CDLL = NoLibbpf

def outcome(fn):
    try:
        fn()
    except BaseException as err:  # what reaches the student
        return {"type": type(err).__name__, "os": isinstance(err, OSError), "text": str(err)}
    return {"type": None}

def bcc():
    from ebpf_nb.bcc_program import BpfProgram
    BpfProgram("int f(void *ctx) { return 0; }", "nolib_bcc", attach=False)

def core():
    from ebpf_nb.core import CoreProgram
    CoreProgram('#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\n'
                'SEC("raw_tp/sys_enter") int f(void *ctx) { return 0; }\n'
                'char LICENSE[] SEC("license") = "GPL";\n', "nolib_core", attach=False)

def read():
    from ebpf_nb.kernel.maps import read_map
    read_map(0)

print(json.dumps({"bcc": outcome(bcc), "core": outcome(core), "read": outcome(read)}))
"""


def _without(refused: str) -> dict[str, dict]:
    done = subprocess.run([sys.executable, "-c", _WITHOUT_LIBBPF, refused], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(os.geteuid() != 0, reason="the backends check privileges first")
@pytest.mark.parametrize("refused", ["libbpf", "libbpf,libbcc"])
def test_missing_libbpf_is_one_host_error_from_both_backends_and_the_map_reader(refused):
    results = _without(refused)
    for entry, result in results.items():
        assert result["type"] == "HostError", (entry, result)
        assert not result["os"], entry
        assert "libbpf.so.1" in result["text"] and "sudo make setup" in result["text"], entry
    texts = {entry: r["text"] for entry, r in results.items()}
    assert len(set(texts.values())) == 1, texts  # the same error, word for word


def test_libbpf_is_opened_once_for_both_backends(library_opens):
    opened = library_opens(libbpf)
    from ebpf_nb.core import libbpf_log

    assert libbpf.lib() is libbpf_log.logged_lib() is libbpf.lib()
    assert len(opened) == 1


def test_only_the_binding_opens_libbpf():
    """No other module dlopens libbpf (core/libbpf.py did, with its own prototypes)."""
    opens = re.compile(r"find_library\(\s*['\"]bpf['\"]|CDLL\([^)\n]*bpf")
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "ebpf_nb").rglob("*.py")
                 if path != ROOT / "ebpf_nb/kernel/libbpf.py" and opens.search(path.read_text())]
    assert not offenders


def test_every_declared_libbpf_call_is_used():
    """A prototype nobody calls is dead code: each one is called somewhere in ebpf_nb/."""
    sources = "\n".join(p.read_text() for p in (ROOT / "ebpf_nb").rglob("*.py")
                        if p != ROOT / "ebpf_nb/kernel/libbpf.py")
    unused = [name for name in libbpf.PROTOTYPES
              if not re.search(rf"[.\"']{name}\b", sources)]  # a call, or _asks("name")
    assert not unused


def test_the_errno_convention():
    """int calls: ``-errno`` returned; pointer calls: NULL and ``errno`` set. Both -> LibbpfError."""
    import ctypes as ct
    import errno

    with pytest.raises(libbpf.LibbpfError) as info:
        libbpf.check(-errno.EBADF, "bpf_map_lookup_elem")
    assert info.value.errno == errno.EBADF and info.value.call == "bpf_map_lookup_elem"
    assert str(info.value).endswith("bpf_map_lookup_elem: Bad file descriptor")
    ct.set_errno(errno.ENOENT)  # what a failed call leaves in ctypes' errno
    with pytest.raises(libbpf.LibbpfError) as info:
        libbpf.check_ptr(None, "bpf_object__open_file")
    assert info.value.errno == errno.ENOENT
    assert libbpf.check(3, "x") == 3 and libbpf.check_ptr(16, "y") == 16
