"""The course's notebooks, found once for the tests that read them and those that run them."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
SOLUTIONS = sorted((ROOT / "labs").glob("*/solution.ipynb"))
STUDENTS = sorted((ROOT / "labs").glob("*/lab.ipynb"))


def ids(paths: list[Path]) -> list[str]:
    """Test ids: each notebook's path in the repository."""
    return [str(p.relative_to(ROOT)) for p in paths]
