"""Classroom labs: exercise checks, the student-notebook builder and the grader.

In a lab notebook: ``from ebpf_nb.labs import check`` then ``check("02.per_uid")`` after the
exercise's cell, ``hint("02.per_uid")`` (then ``hint("02.per_uid", 2)``) when stuck.
``syscall_number("execve")`` gives this architecture's numbers.
"""
from __future__ import annotations

from .checks import CheckResult, NotDone, Wrong, check, exercise, hint, run_check
from .syscalls import syscall_number, syscall_numbers

__all__ = ["CheckResult", "NotDone", "Wrong", "check", "exercise", "hint", "run_check",
           "syscall_number", "syscall_numbers"]
