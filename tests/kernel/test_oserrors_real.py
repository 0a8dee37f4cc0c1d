"""OS errors of real loads and reads reach the student as one short message of the kit's error tree."""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import pytest

from ebpf_nb.errors import EbpfNbError, UsageError

ROOT = Path(__file__).resolve().parents[2]

CELL = r"""#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
struct event { u32 pid; };
struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, sizeof(u32));
         __uint(value_size, sizeof(u32)); } events SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 8); __type(key, u32);
         __type(value, u64); } counts SEC(".maps");
SEC("raw_tp/sys_enter")
int fire(void *ctx) {
    struct event e = {};
    bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &e, sizeof(e));
    return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""

# The child fills every hole below its highest fd, then allows three more files: the perf
# reader's dup of the map fd, its epoll fd and CPU 0's perf event; CPU 1's perf_event_open fails.
_EMFILE_CHILD = textwrap.dedent(r"""
    import json, os, resource, sys, traceback
    from ebpf_nb.core import CoreProgram
    prog = CoreProgram(sys.argv[1], "emfile", attach=False)
    prog.load()
    highest = max(int(n) for n in os.listdir("/proc/self/fd"))
    fillers = []
    while (fd := os.open("/dev/null", os.O_RDONLY)) < highest:
        fillers.append(fd)
    os.close(fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 4, resource.getrlimit(
        resource.RLIMIT_NOFILE)[1]))
    try:
        prog.events("events", seconds=0.1)
        out = {"type": None}
    except BaseException as err:
        out = {"type": type(err).__name__, "os": isinstance(err, OSError), "text": str(err),
               "errno": getattr(err, "errno", None),
               "traceback": "".join(traceback.format_exception(err))}
    print(json.dumps(out))
""")


def _cpus() -> int:
    from ebpf_nb.kernel.cpus import online_cpus
    return len(online_cpus())


@pytest.mark.timeout(120)
def test_perf_event_open_failing_with_emfile_is_one_short_message():
    if _cpus() < 2:
        pytest.skip("needs two CPUs: CPU 0's perf event uses the last file allowed")
    done = subprocess.run([sys.executable, "-c", _EMFILE_CHILD, CELL], cwd=ROOT, timeout=110,
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["type"] == "HostError" and not out["os"], out
    assert out["errno"] == errno.EMFILE
    first, *rest = out["text"].splitlines()
    assert first == "emfile.events('events') failed: too many open files (EMFILE)"
    assert rest[0] == "perf_event_open on CPU 1: Too many open files"  # the call's own words
    assert rest[-1].startswith("Hint: raise the limit (`ulimit -n")
    assert len(out["text"].splitlines()) == 3
    assert "OSError" not in out["traceback"]  # no raw traceback behind it either


@pytest.fixture
def core_prog():
    from ebpf_nb.core import CoreProgram
    prog = CoreProgram(CELL, "closedfd", attach=False)
    prog.load()
    yield prog
    prog.detach()


def test_a_read_through_a_closed_map_fd_is_one_short_message(core_prog):
    layout = core_prog._layout("counts")
    real_fd = layout.fd
    closed = os.open("/dev/null", os.O_RDONLY)
    os.close(closed)
    layout.fd = closed  # the fd the program's layout holds is closed (as after a stray close)
    try:
        with pytest.raises(EbpfNbError) as info:
            core_prog.table("counts")
    finally:
        layout.fd = real_fd
    err = info.value
    assert not isinstance(err, OSError) and isinstance(err, UsageError)
    assert err.errno in (errno.EBADF, errno.EBADFD)  # Linux 6.x answers EBADFD here
    assert err.message == ("closedfd.table('counts') failed: its file descriptor is closed "
                           f"({errno.errorcode[err.errno]})")
    assert "BPF_OBJ_GET_INFO_BY_FD" in err.details
    assert "run its cell again" in err.hint
    shown = "".join(traceback.format_exception(err))
    assert "OSError" not in shown and "LibbpfError" not in shown
    assert core_prog.table("counts").empty  # the real fd still reads


def test_a_trigger_functions_own_oserror_is_not_rewritten(core_prog):
    """The student's own OSError is theirs: it is raised as it is, not as a map error."""
    def trigger():
        open("/nonexistent/ebpf_nb-trigger-file")  # noqa: SIM115 - raises

    with pytest.raises(FileNotFoundError):
        core_prog.events("events", seconds=0.2, trigger=trigger)


# Each attempt allows ``n`` more files than the child has open, so loading runs out of them at a
# different step: libbpf's feature probe, the CPU mask, a map, or the program's fd after the
# verifier accepted it (which was reported as "the verifier rejected fire: ... no reason").
_EMFILE_LOAD_CHILD = textwrap.dedent(r"""
    import json, os, resource, sys
    from ebpf_nb.core import CoreProgram
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    results = []
    for n in range(1, 9):
        prog = CoreProgram(sys.argv[1], "emload", attach=False)
        highest = max(int(name) for name in os.listdir("/proc/self/fd"))
        fillers = []
        while (fd := os.open("/dev/null", os.O_RDONLY)) < highest:
            fillers.append(fd)
        os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (highest + n, hard))
        try:
            prog.load()
            results.append({"n": n, "type": None})
        except BaseException as err:
            results.append({"n": n, "type": type(err).__name__, "text": str(err),
                            "errno": getattr(err, "errno", None)})
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            for fd in fillers:
                os.close(fd)
            prog.detach()
    print(json.dumps(results))
""")


@pytest.mark.timeout(120)
def test_a_load_that_runs_out_of_files_says_so_not_that_the_verifier_rejected_it():
    done = subprocess.run([sys.executable, "-c", _EMFILE_LOAD_CHILD, CELL], cwd=ROOT,
                          timeout=110, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.splitlines()[-1])
    failed = [r for r in results if r["type"] is not None]
    assert len(failed) >= 2, results  # several steps ran out of files
    assert results[-1]["type"] is None, results  # with enough files it loads
    for r in failed:
        assert r["type"] == "HostError" and r["errno"] == errno.EMFILE, r
        assert r["text"].startswith("loading emload failed: too many open files (EMFILE)"), r
        assert "verifier" not in r["text"].splitlines()[0], r
        assert "ulimit -n" in r["text"], r
