"""A shell trigger never outlives the read it runs in (issue 14).

Cleanup sent SIGTERM to the trigger's process group and nothing more: a child that ignores
SIGTERM kept running after the read had returned (holding the trigger's output pipe, so the
trigger's thread was abandoned too). Here the trigger's child ignores SIGTERM and would sleep
for a minute; the read is bounded to half a second."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from ebpf_nb import reading


def state(pid: int) -> str | None:
    """The process state letter from /proc (None once the pid is gone).

    An ended process stays "Z" until its parent reaps it: orphans are reaped by PID 1, which
    in some containers never does; a zombie runs nothing, so it counts as ended."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def idle_poll(timeout: float) -> int:
    time.sleep(timeout)
    return 0


@pytest.mark.timeout(60)
def test_a_child_that_ignores_sigterm_is_killed_when_the_read_ends(tmp_path):
    pidfile = tmp_path / "child.pid"
    trigger = f"sh -c 'trap \"\" TERM; echo $$ > {pidfile}; exec sleep 60'; echo not reached"
    t0 = time.monotonic()
    outcome = reading.bounded_read(idle_poll, seconds=0.5, trigger=trigger)
    elapsed = time.monotonic() - t0
    pid = int(pidfile.read_text())
    assert state(pid) in (None, "Z"), f"the trigger's child {pid} outlived the read"
    assert outcome.stopped_by == "seconds"
    assert elapsed < 0.5 + reading.KILL_GRACE + 2.0  # the grace, then SIGKILL: no long wait


@pytest.mark.timeout(60)
def test_a_trigger_that_ends_on_sigterm_is_not_waited_for(tmp_path, monkeypatch):
    monkeypatch.setattr(reading, "KILL_GRACE", 10.0)
    pidfile = tmp_path / "child.pid"
    trigger = f"sh -c 'echo $$ > {pidfile}; exec sleep 60'"
    t0 = time.monotonic()
    reading.bounded_read(idle_poll, seconds=0.5, trigger=trigger)
    elapsed = time.monotonic() - t0
    assert state(int(pidfile.read_text())) in (None, "Z")
    assert elapsed < 5.0  # it ended on SIGTERM: the 10 s grace was not waited out


# A trigger function still running when its read ends was abandoned: ``stop()`` joined its
# thread for 5 s and returned with the function still running, unseen (issue 14).

def trigger_threads() -> list[str]:
    import threading
    return [t.name for t in threading.enumerate() if t.name == "ebpf_nb-trigger"]


@pytest.mark.timeout(60)
def test_a_trigger_function_that_never_returns_is_stopped_with_the_read(capsys):
    calls = []

    def forever() -> None:
        while True:
            calls.append(1)
            time.sleep(0.01)

    t0 = time.monotonic()
    outcome = reading.bounded_read(idle_poll, seconds=0.5, trigger=forever)
    elapsed = time.monotonic() - t0
    assert elapsed < 1.5, f"the read took {elapsed:.2f} s"
    assert trigger_threads() == []  # the thread is gone, not abandoned
    made = len(calls)
    time.sleep(0.1)
    assert len(calls) == made and made > 0  # and the function no longer runs
    assert outcome.trigger_error is None and not outcome.trigger_running
    assert "still running" not in capsys.readouterr().err


@pytest.mark.timeout(60)
def test_a_trigger_function_catching_exception_is_stopped_too():
    def stubborn() -> None:
        while True:
            try:
                time.sleep(0.01)
            except Exception:  # noqa: BLE001, S110 - what a student might write
                pass

    t0 = time.monotonic()
    outcome = reading.bounded_read(idle_poll, seconds=0.3, trigger=stubborn)
    assert time.monotonic() - t0 < 1.5 and trigger_threads() == []
    assert outcome.trigger_error is None


@pytest.mark.timeout(60)
def test_a_trigger_function_blocked_in_c_is_reported_and_the_read_returns(capsys):
    from kit_helpers import eventually

    def blocked() -> None:
        time.sleep(3)  # one C call: the stop can only land once it returns

    t0 = time.monotonic()
    outcome = reading.bounded_read(idle_poll, seconds=0.3, trigger=blocked)
    elapsed = time.monotonic() - t0
    assert elapsed < 0.3 + reading.TRIGGER_STOP_WAIT + 0.7, f"the read took {elapsed:.2f} s"
    assert outcome.trigger_running is True
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "blocked() is still running" in err[0]
    assert "cannot be stopped from outside" in err[0]
    assert eventually(lambda: not trigger_threads(), timeout=10)  # it stops once sleep returns
    assert "Traceback" not in capsys.readouterr().err  # TriggerStopped is caught in its thread
