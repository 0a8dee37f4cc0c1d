"""Every exercise has at least two known-wrong answers (tests/wrong_answers.py)."""
from __future__ import annotations

from wrong_answers import WRONG

from ebpf_nb.labs.checks import EXERCISES, _load_exercises


def test_every_exercise_has_wrong_answers() -> None:
    _load_exercises()
    covered = {row[0] for row in WRONG}
    assert covered == set(EXERCISES), f"exercises without wrong answers: {set(EXERCISES) - covered}"
    few = [e for e in EXERCISES if sum(r[0] == e for r in WRONG) < 2]
    assert not few, f"exercises with fewer than two wrong answers: {few}"
