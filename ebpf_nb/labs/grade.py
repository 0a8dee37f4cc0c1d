"""Grade a folder of submitted lab notebooks into a CSV: one row per student per exercise.

No Python a student wrote is ever run, and nothing a student's notebook stored is believed:
not its outputs, its metadata, its ``check`` or its files. For each submission the grader
takes the canonical lab (``labs/NN_topic/solution.ipynb``: its exercise list, its Python, its
checks), puts the student's ``%%bpf`` C into the lab's answer cells (:mod:`.answers`) and runs
that in a fresh trusted process (:mod:`.sandbox`: ``python -I``, a private empty working
folder, a clean environment) with a wall-clock and a memory limit; the process group is
killed afterwards, which unloads every program it loaded. See ``docs/grading.md``.
"""
from __future__ import annotations

import json
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

import pandas as pd

from .answers import (
    MAX_NOTEBOOK_BYTES,
    CanonicalLab,
    SubmissionError,
    canonical_labs,
    metadata_lab,
    read_submission,
    student_answers,
    which_lab,
)
from .checks import PASS
from .safe_files import find_submissions, read_regular_file, write_csv

COLUMNS = ["student", "notebook", "exercise", "status", "points", "feedback"]
STATUSES = ("pass", "fail", "not done")
DEFAULT_TIMEOUT = 600.0  # seconds per submission; a solved lab takes well under a minute
DEFAULT_MEMORY_MB = 4096  # address space of the grading process (BCC and LLVM need ~1.5 GiB)
OUT_OF_MEMORY = ("memoryerror", "bad_alloc", "memory allocation", "cannot allocate memory",
                 "out of memory", "failed to map segment")
CHILD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def default_labs_root() -> Path:
    """The canonical labs: ``labs/`` of the kit's own checkout."""
    return Path(__file__).resolve().parents[2] / "labs"


def job_for(lab: CanonicalLab, answers: dict[str, str]) -> dict[str, object]:
    """The steps the grading process runs: the lab's, with the student's C in answer cells."""
    steps = []
    for step in lab.steps:
        entry = asdict(step)
        if step.kind == "bpf":
            entry["body"] = answers.get(step.cell_id)
        steps.append(entry)
    return {"lab": lab.name, "steps": steps}


def _limit_memory(megabytes: int) -> None:
    limit = megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_job(job: dict[str, object], timeout: float, memory_mb: int,
            env_extra: dict[str, str] | None = None) -> tuple[list[dict[str, str]], str]:
    """Run ``job`` in a fresh grading process; its verdicts and what stopped it ("" if none).

    The process group is killed before the process is reaped (so its id cannot have been
    reused by then), whether it finished, failed or ran out of time."""
    with tempfile.TemporaryDirectory(prefix="ebpf-nb-grade-") as private, \
            tempfile.TemporaryFile() as log:
        (Path(private) / "job.json").write_text(json.dumps(job))
        env = {"PATH": CHILD_PATH, "HOME": private, "IPYTHONDIR": private,
               "MPLBACKEND": "Agg", "MPLCONFIGDIR": private, "LANG": "C.UTF-8",
               "OPENBLAS_NUM_THREADS": "1", **(env_extra or {})}
        child = subprocess.Popen(
            [sys.executable, "-I", "-m", "ebpf_nb.labs.sandbox", "job.json"], cwd=private,
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
            start_new_session=True,
            preexec_fn=lambda: _limit_memory(memory_mb))  # noqa: PLW1509 - only setrlimit
        assert child.stdout is not None  # stdout=PIPE
        try:
            out, in_time = _read_until_closed(child.stdout, time.monotonic() + timeout)
        finally:
            _kill_group(child.pid)
            child.wait()
            child.stdout.close()
        lines = out.decode(errors="replace").splitlines()
        finished = json.dumps({"done": True}) in lines
        stopped = ""
        if not in_time:
            stopped = f"grading stopped: the submission took longer than {timeout:g} s"
        elif not finished:
            stopped = _why_it_failed(log, child.returncode, memory_mb)
    verdicts = []
    for line in lines:
        try:
            verdict = json.loads(line)
        except ValueError:
            continue
        if isinstance(verdict, dict) and "exercise" in verdict:
            verdicts.append(verdict)
    return verdicts, stopped


def _read_until_closed(stream: IO[bytes], deadline: float) -> tuple[bytes, bool]:
    """Everything written to ``stream`` until it closes, and whether that was in time."""
    chunks: list[bytes] = []
    fd = stream.fileno()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"".join(chunks), False
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if ready:
            data = os.read(fd, 1 << 16)
            if not data:
                return b"".join(chunks), True
            chunks.append(data)


def _why_it_failed(log: IO[bytes], returncode: int, memory_mb: int) -> str:
    log.seek(0, os.SEEK_END)
    log.seek(max(0, log.tell() - 4000))
    tail = log.read().decode(errors="replace")
    if any(sign in tail.lower() for sign in OUT_OF_MEMORY):
        return f"grading stopped: the memory limit ({memory_mb} MiB) was reached"
    last = [line for line in tail.splitlines() if line.strip()][-1:] or ["?"]
    return f"grading stopped: the grading process ended with code {returncode} ({last[0][:200]})"


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def rows_of(lab: CanonicalLab, verdicts: list[dict[str, str]], stopped: str, student: str,
            notebook: str) -> list[dict[str, object]]:
    """One row per exercise of the canonical lab; verdicts for any other id are ignored."""
    found: dict[str | None, dict[str, str]] = {}
    verdict: dict[str, str] | None
    for verdict in verdicts:
        exercise = verdict.get("exercise")
        if exercise in lab.exercises and verdict.get("status") in STATUSES:
            found.setdefault(exercise, verdict)
    rows = []
    for exercise in lab.exercises:
        verdict = found.get(exercise)
        if verdict is None:
            rows.append(_row(student, notebook, exercise, "not run", 0,
                             stopped or "the check did not run"))
        else:
            status = verdict["status"]
            rows.append(_row(student, notebook, exercise, status, 1 if status == PASS else 0,
                             str(verdict.get("message", ""))))
    return rows


@dataclass(frozen=True)
class Submission:
    """A notebook ready to grade: whose it is, the canonical lab it answers, the job to run."""
    student: str
    notebook: str
    lab: CanonicalLab
    job: dict[str, object]


Verdicts = tuple[list[dict[str, str]], str]  # the verdicts of one job, and what stopped it
JobRunner = Callable[[list[dict[str, object]]], list[Verdicts]]


def prepare_submission(path: Path, student: str, labs: dict[str, CanonicalLab]
                       ) -> Submission | list[dict[str, object]]:
    """The job for one submitted notebook, or its error rows when it cannot be graded. Only
    parses (no student code runs here)."""
    try:
        data = read_regular_file(path, MAX_NOTEBOOK_BYTES)
        cells = read_submission(data)
        lab = which_lab(path.name, cells, metadata_lab(data), labs)
    except (OSError, SubmissionError) as err:
        return [_row(student, path.name, "*", "error", 0, f"not graded: {err}")]
    if lab is None:
        return [_row(student, path.name, "*", "error", 0,
                     f"not graded: cannot tell which lab this is (name it after a lab folder: "
                     f"{', '.join(sorted(labs))})")]
    return Submission(student, path.name, lab, job_for(lab, student_answers(lab, cells)))


def host_runner(timeout: float = DEFAULT_TIMEOUT, memory_mb: int = DEFAULT_MEMORY_MB
                ) -> JobRunner:
    """Runs each job in a grading process on this machine (``--on-host``)."""
    env_extra = _cache_env()
    return lambda jobs: [run_job(job, timeout, memory_mb, env_extra) for job in jobs]


def grade_notebook(path: Path, student: str, labs: dict[str, CanonicalLab],
                   timeout: float = DEFAULT_TIMEOUT, memory_mb: int = DEFAULT_MEMORY_MB,
                   env_extra: dict[str, str] | None = None) -> list[dict[str, object]]:
    """The grade rows of one submitted notebook, graded on this machine."""
    prepared = prepare_submission(path, student, labs)
    if not isinstance(prepared, Submission):
        return prepared
    verdicts, stopped = run_job(prepared.job, timeout, memory_mb, env_extra)
    return rows_of(prepared.lab, verdicts, stopped, student, path.name)


def grade(directory: Path, out: Path | None = None, timeout: float = DEFAULT_TIMEOUT,
          memory_mb: int = DEFAULT_MEMORY_MB, labs_root: Path | None = None,
          runner: JobRunner | None = None) -> pd.DataFrame:
    """Grade every notebook under ``directory``; writes ``grades.csv`` there (or ``out``).

    The student is the notebook's first folder under ``directory`` (``alice/02_maps.ipynb``) or,
    for notebooks directly in it, the file name (``alice.ipynb``). ``runner`` runs the jobs
    (default: :func:`host_runner`; :mod:`.vm` runs them in a disposable VM).
    """
    directory = Path(directory).resolve()
    out = Path(out) if out else directory / "grades.csv"
    out = out.parent.resolve() / out.name  # the folder is the teacher's; a link at out is not
    labs = canonical_labs(labs_root or default_labs_root())
    runner = runner or host_runner(timeout, memory_mb)
    graded: list[list[dict[str, object]] | Submission] = []
    for path, refused in find_submissions(directory):
        relative = path.relative_to(directory)
        student = relative.parts[0] if len(relative.parts) > 1 else Path(relative).stem
        student = "".join(c if c.isprintable() else "?" for c in student)  # no terminal escapes
        if refused:
            graded.append([_row(student, path.name, "*", "error", 0, f"{relative} {refused}")])
            continue
        try:
            graded.append(prepare_submission(path, student, labs))
        except Exception as err:  # noqa: BLE001 - one notebook must never stop the class
            graded.append([_row(student, path.name, "*", "error", 0,
                                f"the grader failed on this notebook: {type(err).__name__}: {err}")])
    submissions = [item for item in graded if isinstance(item, Submission)]
    results = _run_all(runner, submissions)
    rows: list[dict[str, object]] = []
    for item in graded:
        if isinstance(item, Submission):
            verdicts, stopped = results[id(item)]
            rows.extend(rows_of(item.lab, verdicts, stopped, item.student, item.notebook))
        else:
            rows.extend(item)
    write_csv(out, COLUMNS, rows)
    return pd.DataFrame(rows, columns=COLUMNS)


def _run_all(runner: JobRunner, submissions: list[Submission]) -> dict[int, Verdicts]:
    """The runner's verdicts per submission; when the runner fails or answers for fewer jobs,
    the submissions left without an answer are "not run" with the reason."""
    if not submissions:
        return {}
    try:
        answers = runner([s.job for s in submissions])
        reason = "grading stopped: the grader returned no verdicts for this submission"
    except Exception as err:  # noqa: BLE001 - the class still gets its CSV
        answers, reason = [], f"grading stopped: the grader failed: {type(err).__name__}: {err}"
    results = {id(s): (list(answers[i][0]), str(answers[i][1])) if i < len(answers) else ([], reason)
               for i, s in enumerate(submissions)}
    return results


def _cache_env() -> dict[str, str]:
    """The grading processes share root's checked CO-RE cache (objects keyed by their C)."""
    from ebpf_nb.core.cache import cache_dir
    return {"EBPF_NB_CACHE": str(cache_dir())}


def _row(student: str, notebook: str, exercise: str, status: str, points: int,
         feedback: str) -> dict[str, object]:
    return {"student": student, "notebook": notebook, "exercise": exercise, "status": status,
            "points": points, "feedback": feedback}
