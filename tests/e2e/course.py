"""The notebooks a student opens, found by glob (new tutorials and labs are picked up)."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def course_notebooks() -> list[Path]:
    """Every tutorial and every student lab, in curriculum order."""
    return sorted(REPO.glob("notebooks/*.ipynb")) + sorted(REPO.glob("labs/*/lab.ipynb"))
