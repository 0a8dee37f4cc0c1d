"""The grading process of one submission: ``python -I -m ebpf_nb.labs.sandbox`` (trusted code).

It reads a job (a JSON file named by its argument: the steps of :mod:`ebpf_nb.labs.answers` with the student's C
filled in), runs it in a private IPython shell, and writes one JSON verdict line per check to
its standard output; everything else the cells print goes to standard error. It runs only the
canonical lab's Python and the kit's code: the student's text reaches it as the C of
``%%bpf`` cells, compiled and loaded as BPF programs, never as Python.
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, TextIO


def _verdict_stream() -> TextIO:
    """A private copy of stdout for verdicts; fd 1 itself then points at stderr."""
    verdicts = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    return verdicts


def run_job(job: dict[str, Any], verdicts: TextIO) -> None:
    """Run the steps of ``job``; one JSON line per check on ``verdicts``, then ``{"done": true}``
    (from :func:`main`) once everything ran."""
    from IPython.core.interactiveshell import InteractiveShell

    from ebpf_nb.labs.checks import EXERCISES, NOT_DONE, run_check

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "ebpf_nb")
    load_errors: dict[str, str] = {}
    for step in job["steps"]:
        kind = step["kind"]
        if kind == "run":
            shell.run_cell(step["source"], store_history=True)
        elif kind == "bpf":
            body = step.get("body")
            name = step["name"]
            if body is None:
                load_errors[name] = "the submission has no such cell"
                continue
            try:
                shell.run_cell_magic("bpf", step["source"], body)
                load_errors.pop(name, None)
            except Exception as err:  # noqa: BLE001 - the student's C: any error is feedback
                load_errors[name] = " ".join(str(err).split())[:600]
        elif kind == "check":
            result = _check_when_the_trace_pipe_is_free(run_check, step["name"])
            message = result.message
            spec = EXERCISES.get(step["name"])
            program = spec.program if spec else None
            if result.status == NOT_DONE and program in load_errors:
                message = f"your `%%bpf {program}` cell did not load: {load_errors[program]}"
            verdicts.write(json.dumps({"exercise": result.exercise, "status": result.status,
                                       "message": message}) + "\n")
    shell.run_line_magic("bpf_detach", "--all")


TRACE_PIPE_BUSY = "trace pipe is already being read"  # tracepipe.py's HostError
BUSY_RETRIES, BUSY_WAIT = 10, 3.0


def _check_when_the_trace_pipe_is_free(run_check: Any, exercise_id: str) -> Any:
    """A check's result; retried while another process holds the trace pipe (one reader at a
    time), so a busy machine does not fail a student's correct program."""
    for _ in range(BUSY_RETRIES):
        result = run_check(exercise_id)
        if TRACE_PIPE_BUSY not in result.message:
            return result
        time.sleep(BUSY_WAIT)
    return result


def main() -> int:
    verdicts = _verdict_stream()
    with open(sys.argv[1]) as job_file:
        job = json.load(job_file)
    run_job(job, verdicts)
    verdicts.write(json.dumps({"done": True}) + "\n")
    verdicts.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
