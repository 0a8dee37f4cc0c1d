"""Helpers shared by the tests (kept out of conftest.py so they can be imported): the kernel's
view of loaded programs, waiting for it, running cells and what they show."""
from __future__ import annotations

import io
import json
import subprocess
import time
from contextlib import redirect_stdout


def bpftool_prog_ids() -> set[int]:
    """Ids of every program loaded in the kernel, as bpftool sees them."""
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True,
                         check=True).stdout
    return {p["id"] for p in json.loads(out or "[]")}


def still_loaded(ids: set[int], wait: float = 3.0) -> set[int]:
    """Which of ``ids`` the kernel still holds, after giving it ``wait`` seconds to free them
    (programs behind raw tracepoints and perf events are freed after an RCU grace period)."""
    deadline = time.monotonic() + wait
    while True:
        left = ids & bpftool_prog_ids()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def prog_exists(prog_id: int) -> bool:
    """Whether the kernel holds the program ``prog_id``."""
    return prog_id in bpftool_prog_ids()


def all_gone(ids, timeout: float = 5.0) -> bool:
    """True once no program of ``ids`` exists (polled: see :func:`still_loaded`)."""
    return not still_loaded(set(ids), wait=timeout)


def eventually(predicate, timeout: float = 10.0, every: float = 0.05) -> bool:
    """Whether ``predicate()`` became true within ``timeout`` seconds: for kernel state that
    settles asynchronously (programs freed after an RCU grace period, threads ending, fds
    closed), never checked only once."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def run(shell, code: str):
    """Run a cell and return its result, failing the test on any error."""
    result = shell.run_cell(code, store_history=False)
    if result.error_before_exec or result.error_in_exec:
        raise result.error_before_exec or result.error_in_exec
    return result


def run_error(shell, code: str) -> BaseException:
    """Run a cell that must fail; return the exception it ended with."""
    result = shell.run_cell(code, store_history=False)
    err = result.error_before_exec or result.error_in_exec
    assert err is not None, f"the cell should have failed:\n{code}"
    return err


def shown(shell, code: str) -> tuple[BaseException, str]:
    """The error a cell ends with and the text the student sees."""
    out = io.StringIO()
    with redirect_stdout(out):
        err = run_error(shell, code)
    return err, out.getvalue()
