"""Exercise checks: run a student's program with a deterministic trigger and say what is wrong.

A check is a function registered under an exercise id (``"02.per_uid"``) with the name of the
program the exercise asks for. It raises :class:`NotDone` when the student has not started (an
empty map, no program yet), :class:`Wrong` with a specific hint when the result is off, and
returns a short success text otherwise. :func:`check` turns all of that, including any other
exception, into a :class:`CheckResult` shown in the notebook; it never raises, so an unfinished
student notebook runs to its end. The result also carries a machine-readable MIME part that
the grader reads back from executed notebooks.
"""
from __future__ import annotations

import contextlib
import functools
import html
import json
import random
import re
import shlex
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MIME_TYPE = "application/vnd.ebpf-nb.check+json"
PASS, FAIL, NOT_DONE = "pass", "fail", "not done"
PLACEHOLDER = "YOUR CODE HERE"  # what the student notebook has where a solution was


class NotDone(Exception):
    """The exercise has not been started (or its cell has not been run)."""


class Wrong(Exception):
    """The exercise runs but its result is not right yet; the message says what to fix."""


@dataclass(frozen=True)
class CheckResult:
    """What a check found, shown in the notebook and read back by the grader."""

    exercise: str
    status: str  # "pass", "fail" or "not done"
    message: str

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def __str__(self) -> str:
        label = {PASS: "passes", FAIL: "not right yet", NOT_DONE: "not done yet"}[self.status]
        return f"[{self.exercise}] {label}: {self.message}"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        colour = {PASS: "#1a7f37", FAIL: "#cf222e", NOT_DONE: "#9a6700"}[self.status]
        html_text = (f'<div style="border-left:4px solid {colour};padding:4px 8px">'
                     f"{html.escape(str(self))}</div>")
        return {"text/plain": str(self), "text/html": html_text, MIME_TYPE: asdict(self)}


@dataclass(frozen=True)
class Exercise:
    """One registered exercise: its id, the program name it expects, and its check."""

    id: str
    program: str | None
    title: str
    func: Callable[[Any], str]
    hints: tuple[str, ...] = ()


EXERCISES: dict[str, Exercise] = {}


def exercise(exercise_id: str, *, program: str | None, title: str, hints: tuple[str, ...] = ()
             ) -> Callable[[Callable[[Any], str]], Callable[[Any], str]]:
    """Register ``func(program) -> success text`` as the check of ``exercise_id``; ``hints``
    are revealed one at a time by :func:`hint`. With a ``program`` name, ``func`` is only
    called with a program: ``None`` is "not done" (:func:`need_program`)."""
    def register(func: Callable[[Any], str]) -> Callable[[Any], str]:
        checked = func if program is None else \
            functools.wraps(func)(lambda given: func(need_program(given, program)))
        EXERCISES[exercise_id] = Exercise(exercise_id, program, title, checked, tuple(hints))
        return func
    return register


@dataclass(frozen=True)
class Hint:
    """One hint of an exercise, shown on request."""

    exercise: str
    number: int
    of: int
    text: str

    def __str__(self) -> str:
        return f"[{self.exercise}] hint {self.number} of {self.of}: {self.text}"

    def _repr_html_(self) -> str:
        return (f'<div style="border-left:4px solid #0969da;padding:4px 8px">'
                f"{html.escape(str(self))}</div>")


def hint(exercise_id: str, number: int = 1) -> Hint:
    """Hint ``number`` (1, 2...) of an exercise: ``hint("02.per_uid")``, then ``hint(..., 2)``."""
    _load_exercises()
    spec = EXERCISES.get(exercise_id)
    if spec is None:
        known = ", ".join(sorted(EXERCISES))
        raise KeyError(f"there is no exercise {exercise_id!r} (known: {known})")
    if not spec.hints:
        return Hint(exercise_id, 0, 0, "this exercise has no hints")
    if not 1 <= number <= len(spec.hints):
        raise ValueError(f"{exercise_id} has hints 1 to {len(spec.hints)}, not {number}")
    return Hint(exercise_id, number, len(spec.hints), spec.hints[number - 1])


def run_check(exercise_id: str, program: Any = None) -> CheckResult:
    """Run one exercise's check and return what it found; never raises."""
    _load_exercises()
    spec = EXERCISES.get(exercise_id)
    if spec is None:
        known = ", ".join(sorted(EXERCISES))
        return CheckResult(exercise_id, FAIL, f"there is no exercise {exercise_id!r} (known: {known})")
    try:
        if program is None and spec.program is not None:
            program = _from_notebook(spec.program)
        return CheckResult(exercise_id, PASS, spec.func(program))
    except NotDone as err:
        return CheckResult(exercise_id, NOT_DONE, str(err))
    except Exception as err:  # noqa: BLE001 - a check must report, never crash the notebook
        message = str(err) if isinstance(err, Wrong) else \
            f"the check could not run your program: {type(err).__name__}: {err}"
        if spec.program and PLACEHOLDER in _source_of(program, spec.program):
            return CheckResult(exercise_id, NOT_DONE,
                               f"the `{spec.program}` cell still has its {PLACEHOLDER} part "
                               f"(the check says: {message})")
        return CheckResult(exercise_id, FAIL, message)


def check(exercise_id: str, program: Any = None) -> None:
    """Check an exercise and show the verdict in the notebook (or print it outside IPython).

    ``program`` is the object the exercise's ``%%bpf NAME`` cell made; when left out, the check
    looks the expected name up in the notebook, and says "not done yet" when it is not there.
    """
    result = run_check(exercise_id, program)
    try:
        from IPython import get_ipython
        from IPython.display import display
        in_notebook = get_ipython() is not None
    except ImportError:  # pragma: no cover - IPython is a dependency
        in_notebook = False
    if in_notebook:
        display(result)
    else:
        print(result)


def results_from_outputs(outputs: list[dict[str, Any]]) -> list[CheckResult]:
    """The check results found in a cell's outputs (as nbformat stores them)."""
    found = []
    for output in outputs:
        data = output.get("data", {}) if isinstance(output, dict) else {}
        if MIME_TYPE in data:
            raw = data[MIME_TYPE]
            raw = json.loads(raw) if isinstance(raw, str) else raw
            found.append(CheckResult(raw["exercise"], raw["status"], raw["message"]))
    return found


def _from_notebook(name: str) -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        get_ipython = lambda: None
    shell = get_ipython()
    namespace = shell.user_ns if shell is not None else {}
    if name not in namespace:
        raise NotDone(f"there is no program called {name!r} yet: run the `%%bpf {name}` cell "
                      "first (if it ran and failed, fix the error it showed)")
    return namespace[name]


def _source_of(program: Any, name: str) -> str:
    """The C of ``program``: its own ``source`` if it keeps one, else the notebook cell."""
    for attribute in ("source", "text", "code"):
        value = getattr(program, attribute, None)
        if isinstance(value, str):
            return value
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return ""
    shell = get_ipython()
    history = list(shell.history_manager.input_hist_raw) if shell is not None else []
    pattern = re.compile(rf"^\s*%%bpf\s+(?:.*\s)?{re.escape(name)}(\s|$)")
    for cell in reversed(history):
        first = cell.lstrip().splitlines()[0] if cell.strip() else ""
        if pattern.match(first) or f"run_cell_magic('bpf', '{name}" in first:
            return cell
    return ""


def _load_exercises() -> None:
    from . import exercises  # noqa: F401 - registers every lab's checks


# --- helpers for the checks ---------------------------------------------------------------------

def marker(prefix: str = "ebpfnb") -> str:
    """A short unique word to recognise the trigger's own events among everyone else's."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def as_user(command: str, uid: int = 65534, gid: int | None = None) -> str:
    """``command`` run as another user (nobody by default), with no extra groups."""
    return f"setpriv --reuid={uid} --regid={uid if gid is None else gid} --clear-groups {command}"


def other_user() -> tuple[int, int]:
    """A random uid and a different random gid that no account on the machine uses."""
    import grp
    import pwd
    while True:
        uid, gid = random.sample(range(20000, 60000), 2)
        try:
            pwd.getpwuid(uid)
            continue
        except KeyError:
            pass
        try:
            grp.getgrgid(gid)
            continue
        except KeyError:
            return uid, gid


@contextlib.contextmanager
def private_dir(prefix: str = "ebpfnb-") -> Iterator[Path]:
    """A fresh 0700 directory (``tempfile.mkdtemp``), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_python(code: str, *args: str, timeout: float = 30) -> int:
    """Run ``code`` in a new interpreter (this one's executable); returns its pid."""
    import sys
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return proc.pid


def run(command: str, timeout: float = 30) -> None:
    """Run a shell command to make the kernel do something; its output is discarded."""
    subprocess.run(["/bin/sh", "-c", command], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=timeout, check=False)


def python_command(code: str) -> str:
    """A shell command running ``code`` with this interpreter (which the checks know exists)."""
    import sys
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


def need_program(program: Any, name: str) -> Any:
    if program is None:
        raise NotDone(f"there is no program called {name!r} yet: run its `%%bpf {name}` cell")
    return program


def str_columns(frame: Any) -> list[str]:
    return [c for c in frame.columns if frame[c].map(lambda v: isinstance(v, str)).any()]
